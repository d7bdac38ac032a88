// `scripts/bench collector`: throughput of `evalforge collector` on this machine. Realistic LLM spans
// (1–2 KB, ~15 GenAI attributes, 10 % exact re-sends) are POSTed as OTLP/HTTP protobuf by a separate
// load process (this executable with `--load`) through the whole collector pipeline: receive →
// normalize → dedup → rollups → tail sampling → WAL → forward, to a backend stand-in in this process
// that reads every ForwardBatch. Reports spans/s, the collector's CPU and peak RSS, spans lost
// (acknowledged to the client but not forwarded) and duplicates dropped. Progress goes to stderr; a
// summary and, last, one JSON line go to stdout. See docs/benchmarks.md.

import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// MARK: Options

struct Options {
    var seconds = 20.0
    var warmup = 3.0
    var connections = 8
    var spansPerRequest = 200
    var duplicates = 0.1
    var rate = 0.0
    var fsync = "interval:100"
    var edgeRatio = 0.1
    var modes = ["headline", "edge", "always"]
    var collectorBin: String?
    var mainScratch = ".build-release"
    var sinkLive = false
    var perf: String?
    var maxBatchSpans: Int?
    var keepDir = false
    /// forward.compression for the collector; nil: its default.
    var compression: String?
    var quick = false
}

func parseArguments() -> (load: LoadOptions?, options: Options) {
    var o = Options()
    var l = LoadOptions()
    var isLoad = false
    var args = Array(CommandLine.arguments.dropFirst())
    func value(_ name: String) -> String {
        guard !args.isEmpty else {
            note("\(name) needs a value")
            exit(2)
        }
        return args.removeFirst()
    }
    func number(_ name: String) -> Double {
        let v = value(name)
        guard let d = Double(v) else {
            note("\(name) \(v): expected a number")
            exit(2)
        }
        return d
    }
    while !args.isEmpty {
        let a = args.removeFirst()
        switch a {
        case "--load": isLoad = true
        case "--port": l.port = Int(number(a))
        case "--seed": l.seed = UInt64(number(a))
        case "--seconds": o.seconds = number(a)
        case "--warmup": o.warmup = number(a)
        case "--connections": o.connections = Int(number(a))
        case "--spans-per-request": o.spansPerRequest = Int(number(a))
        case "--duplicates": o.duplicates = number(a)
        case "--rate": o.rate = number(a)
        case "--fsync": o.fsync = value(a)
        case "--edge-ratio": o.edgeRatio = number(a)
        case "--modes": o.modes = value(a).split(separator: ",").map(String.init)
        case "--collector-bin": o.collectorBin = value(a)
        case "--main-scratch": o.mainScratch = value(a)
        case "--sink-live": o.sinkLive = true
        case "--perf": o.perf = value(a)
        case "--max-batch-spans": o.maxBatchSpans = Int(number(a))
        case "--compression": o.compression = value(a)
        case "--keep-dir": o.keepDir = true
        case "--quick":
            o.quick = true
            o.seconds = 5
            o.warmup = 2
        case "-h", "--help":
            print("""
                usage: CollectorBench [--seconds 20] [--warmup 3] [--connections 8] [--spans-per-request 200]
                       [--duplicates 0.1] [--rate SPANS_PER_S (0 = as fast as acknowledged)] [--fsync interval:100]
                       [--edge-ratio 0.1] [--modes headline,edge,always] [--collector-bin PATH]
                       [--main-scratch .build-release] [--sink-live] [--perf perf.data] [--max-batch-spans N]
                       [--compression lz4|zstd|gzip|none (default: the collector's)]
                       [--keep-dir] [--quick]
                """)
            exit(0)
        default:
            note("unknown argument \(a); see --help")
            exit(2)
        }
    }
    l.seconds = o.seconds
    l.warmup = o.warmup
    l.connections = o.connections
    l.spansPerRequest = o.spansPerRequest
    l.duplicateFraction = o.duplicates
    l.rate = o.rate
    return (isLoad ? l : nil, o)
}

let (loadOptions, options) = parseArguments()
if let loadOptions { runLoad(loadOptions) }

// MARK: The collector binary

/// Builds `evalforge` in release from the main package (the current directory, as scripts/bench
/// runs it) unless --collector-bin names one.
func collectorBinary() -> (path: String, buildSeconds: Double?) {
    if let bin = options.collectorBin { return (bin, nil) }
    guard FileManager.default.fileExists(atPath: "Package.swift"), FileManager.default.fileExists(atPath: "Sources/EvalForgeCLI") else {
        note("run from the repository root (scripts/bench collector), or pass --collector-bin PATH")
        exit(2)
    }
    let scratch = options.mainScratch
    try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    let log = scratch + "/build-evalforge.log"
    note("swift build -c release --product evalforge --scratch-path \(scratch) (log: \(log))")
    let start = monotonicNanos()
    let status = (try? runToCompletion("/usr/bin/env", ["swift", "build", "-c", "release", "--product", "evalforge", "--scratch-path", scratch], log: log)) ?? -1
    let seconds = Double(monotonicNanos() - start) / 1e9
    guard status == 0 else {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let errors = text.split(separator: "\n").filter { $0.contains("error:") }.prefix(40)
        note((errors.isEmpty ? Array(text.split(separator: "\n").suffix(20)) : Array(errors)).joined(separator: "\n"))
        note("build of evalforge failed")
        exit(1)
    }
    note("evalforge built in \(Int(seconds.rounded())) s")
    return (scratch + "/release/evalforge", seconds)
}

// MARK: One run

struct Mode {
    var name: String
    var samplingRatio: Double
    var fsync: String
}

struct RunResult {
    var mode: Mode
    var load: LoadResult
    var windowSeconds: Double
    var freshInWindow: Int
    var spansPerSecond: Double
    var collectorCPUSeconds: Double
    var cpuCores: Double
    var loadCPUCores: Double
    var sinkCPUCores: Double
    var otherCPUCores: Double
    var loadAverage: Double
    var rssPeakMiB: Double
    var rssHWMMiB: Double
    var peakQueueRecords: Int
    var peakQueueMiB: Double
    var peakPendingTraces: Int
    var sink: BatchSink.Totals
    var health: [String: Any]
    var drainSeconds: Double
    var collectorExit: Int32
    /// Spans the sink received (spans_accepted) in batches that arrived during the window, per second.
    var forwardedPerSecond: Double
    /// WAL records not yet forwarded at the start and end of the window.
    var backlogStart: Int
    var backlogEnd: Int
    /// After the load stopped: spans forwarded per second and collector CPU per span forwarded
    /// (only the forwarder works then), when the drain lasted long enough to tell.
    var drainForwardedPerSecond: Double
    var drainCPUMicrosPerSpan: Double
    var lost: Int { load.final.freshSpans - Int(sink.accepted) }
    var keptFraction: Double { sink.accepted > 0 ? Double(sink.kept) / Double(sink.accepted) : .nan }
    /// Collector CPU per unique span acknowledged in the window (the re-sent spans' cost included).
    var cpuMicrosPerSpan: Double { collectorCPUSeconds / Double(max(1, freshInWindow)) * 1e6 }
}

final class WindowMarks: Sendable {
    struct Mark {
        var snapshot: LoadSnapshot
        var collectorCPU: Double
        var selfCPU: Double
        var machineBusy: Double
        var loadAverage: Double
        var backlog: Int
    }
    let start = Mutex<Mark?>(nil)
    let end = Mutex<Mark?>(nil)
    let result = Mutex<LoadResult?>(nil)
}

func run(_ mode: Mode, binary: String, sink: BatchSink, selfPath: String) throws -> RunResult? {
    sink.reset()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-collector-bench-\(getpid())-\(mode.name)").path
    try? FileManager.default.removeItem(atPath: dir)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { if !options.keepDir { try? FileManager.default.removeItem(atPath: dir) } }
    let port = freePort()
    var yaml = """
        receiver:
          port: \(port)
        queue:
          directory: "\(dir)/wal"
          fsync: "\(mode.fsync)"
        forward:
          backend_url: "http://127.0.0.1:\(sink.port)"
          collector_id: "bench"

        """
    if let n = options.maxBatchSpans { yaml += "  max_batch_spans: \(n)\n" }
    if let c = options.compression { yaml += "  compression: \(c)\n" }
    yaml += """
        sampling:
          ratio: \(mode.samplingRatio)

        """
    try yaml.write(toFile: dir + "/collector.yaml", atomically: true, encoding: .utf8)
    let collectorLog = dir + "/collector.log"
    // Open mode on loopback and any free operator port, by environment so binaries from before
    // collector keys and the operator listener (before/after runs) take the same command.
    var collectorEnv = ProcessInfo.processInfo.environment
    collectorEnv["EVALFORGE_COLLECTOR_AUTH_MODE"] = "open"
    let operatorPort = freePort()
    collectorEnv["EVALFORGE_COLLECTOR_OPERATOR_PORT"] = "\(operatorPort)"
    let collector = try spawn(binary, ["collector", "--config", dir + "/collector.yaml", "--log-level", "warning"], log: collectorLog, environment: collectorEnv)
    let pid = collector.processIdentifier
    var up = false
    for _ in 0..<300 {
        if healthz(port: port) != nil { up = true; break }
        if !collector.isRunning { break }
        usleep(100_000)
    }
    guard up else {
        note("[\(mode.name)] the collector did not come up on port \(port); its log:\n" + ((try? String(contentsOfFile: collectorLog, encoding: .utf8)) ?? ""))
        stop(collector)
        return nil
    }
    note("[\(mode.name)] collector pid \(pid) on 127.0.0.1:\(port), fsync \(mode.fsync), sampling ratio \(mode.samplingRatio); sink on \(sink.port); queue \(dir)")
    // Counters: on the operator listener, or on the receiver for binaries from before it (whose
    // /healthz has them); the operator listener may come up a moment after the receiver.
    var foundStatsPort = port
    for _ in 0..<50 {
        if healthz(port: operatorPort) != nil { foundStatsPort = operatorPort; break }
        if healthz(port: port)?["queueDepthRecords"] != nil { break }
        Thread.sleep(forTimeInterval: 0.1)
    }
    let statsPort = foundStatsPort
    let sampler = CollectorSampler(pid: pid, port: statsPort)
    let marks = WindowMarks()
    let perfPath = mode.name == options.modes.first ? options.perf : nil
    let perfRun = Mutex<Process?>(nil)
    var loadArgs = ["--load", "--port", "\(port)", "--seconds", "\(options.seconds)", "--warmup", "\(options.warmup)",
                    "--connections", "\(options.connections)", "--spans-per-request", "\(options.spansPerRequest)",
                    "--duplicates", "\(options.duplicates)"]
    if options.rate > 0 { loadArgs += ["--rate", "\(options.rate)"] }
    note("[\(mode.name)] load: \(options.connections) connections × \(options.spansPerRequest) spans/request, \(Int(options.duplicates * 100)) % re-sent, \(options.warmup) s warm-up + \(options.seconds) s measured" + (options.rate > 0 ? ", paced to \(Int(options.rate)) spans/s" : ", unpaced"))
    let load = try LineReadingProcess(selfPath, loadArgs, stderrLog: dir + "/load.log") { line in
        let parts = line.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { return }
        let json = Data(parts[1].utf8)
        switch parts[0] {
        case "MEASURE_START":
            guard let s = try? JSONDecoder().decode(LoadSnapshot.self, from: json) else { return }
            marks.start.withLock { $0 = .init(snapshot: s, collectorCPU: procCPUSeconds(pid) ?? .nan, selfCPU: processCPUSeconds(), machineBusy: machineBusySeconds(), loadAverage: loadAverage1m(), backlog: healthz(port: statsPort)?.int("queueDepthRecords") ?? -1) }
            if let perfPath {
                let seconds = Int(min(options.seconds, 15))
                note("perf record -e cpu-clock -F 299 -g -p \(pid) -o \(perfPath) -- sleep \(seconds)")
                let p = try? spawn("/usr/bin/env", ["perf", "record", "-e", "cpu-clock", "-F", "299", "-g", "-p", "\(pid)", "-o", perfPath, "--", "sleep", "\(seconds)"], log: perfPath + ".log")
                perfRun.withLock { $0 = p }
            }
        case "MEASURE_END":
            guard let s = try? JSONDecoder().decode(LoadSnapshot.self, from: json) else { return }
            marks.end.withLock { $0 = .init(snapshot: s, collectorCPU: procCPUSeconds(pid) ?? .nan, selfCPU: processCPUSeconds(), machineBusy: machineBusySeconds(), loadAverage: loadAverage1m(), backlog: healthz(port: statsPort)?.int("queueDepthRecords") ?? -1) }
        case "RESULT":
            marks.result.withLock { $0 = try? JSONDecoder().decode(LoadResult.self, from: json) }
        default: break
        }
    }
    let loadStatus = load.wait()
    if let p = perfRun.withLock({ $0 }) { p.waitUntilExit() }
    guard loadStatus == 0, let result = marks.result.withLock({ $0 }), let start = marks.start.withLock({ $0 }), let end = marks.end.withLock({ $0 }) else {
        note("[\(mode.name)] the load process failed (exit \(loadStatus)); its stderr:\n" + ((try? String(contentsOfFile: dir + "/load.log", encoding: .utf8)) ?? ""))
        sampler.stop()
        stop(collector)
        return nil
    }

    // Drain: everything acknowledged is forwarded once the WAL holds no unacknowledged record and no
    // trace awaits a sampling decision.
    let drainStart = monotonicNanos()
    let drainCPUStart = procCPUSeconds(pid) ?? .nan
    let forwardedAtDrainStart = healthz(port: statsPort)?.int("spansForwarded") ?? 0
    var health: [String: Any] = [:]
    while monotonicNanos() - drainStart < 180_000_000_000, collector.isRunning {
        if let h = healthz(port: statsPort) {
            health = h
            if h.int("queueDepthRecords") == 0 && h.int("pendingTraces") == 0 && h.int("spansReceived") >= result.final.freshSpans + result.final.duplicateSpans {
                break
            }
        }
        usleep(200_000)
    }
    let drainSeconds = Double(monotonicNanos() - drainStart) / 1e9
    let drainCPU = (procCPUSeconds(pid) ?? .nan) - drainCPUStart
    let drainForwarded = health.int("spansForwarded") - forwardedAtDrainStart
    if health.int("queueDepthRecords") != 0 || health.int("pendingTraces") != 0 {
        note("[\(mode.name)] WARNING: not drained after \(Int(drainSeconds)) s: \(health)")
    }
    sampler.stop()
    let hwm = Double(procStatusKiB(pid, "VmHWM") ?? 0) / 1024
    let exitStatus = stop(collector)
    let totals = sink.tally()
    let warnings = ((try? String(contentsOfFile: collectorLog, encoding: .utf8)) ?? "").split(separator: "\n")
    if !warnings.isEmpty {
        note("[\(mode.name)] collector log (\(warnings.count) lines; first 10):\n" + warnings.prefix(10).joined(separator: "\n"))
    }

    let window = Double(end.snapshot.monotonicNanos - start.snapshot.monotonicNanos) / 1e9
    let fresh = end.snapshot.freshSpans - start.snapshot.freshSpans
    let collectorCPU = end.collectorCPU - start.collectorCPU
    let loadCPU = end.snapshot.cpuSeconds - start.snapshot.cpuSeconds
    let selfCPU = end.selfCPU - start.selfCPU
    let machine = end.machineBusy - start.machineBusy
    return RunResult(
        mode: mode, load: result, windowSeconds: window, freshInWindow: fresh,
        spansPerSecond: Double(fresh) / window,
        collectorCPUSeconds: collectorCPU, cpuCores: collectorCPU / window,
        loadCPUCores: loadCPU / window, sinkCPUCores: selfCPU / window,
        otherCPUCores: max(0, machine - collectorCPU - loadCPU - selfCPU) / window, loadAverage: end.loadAverage,
        rssPeakMiB: Double(sampler.peakKiB) / 1024, rssHWMMiB: hwm,
        peakQueueRecords: max(sampler.peakQueueRecords, end.backlog), peakQueueMiB: Double(sampler.peakQueueBytes) / 1_048_576,
        peakPendingTraces: sampler.peakPendingTraces,
        sink: totals, health: health, drainSeconds: drainSeconds, collectorExit: exitStatus,
        forwardedPerSecond: Double(totals.accepted(from: start.snapshot.monotonicNanos, to: end.snapshot.monotonicNanos)) / window,
        backlogStart: start.backlog, backlogEnd: end.backlog,
        drainForwardedPerSecond: drainSeconds >= 2 ? Double(drainForwarded) / drainSeconds : .nan,
        drainCPUMicrosPerSpan: drainSeconds >= 2 && drainForwarded > 0 ? drainCPU / Double(drainForwarded) * 1e6 : .nan)
}

// MARK: Main

func f(_ v: Double, _ digits: Int = 1) -> String { v.isFinite ? String(format: "%.\(digits)f", v) : "null" }

let (binary, buildSeconds) = collectorBinary()
guard FileManager.default.isExecutableFile(atPath: binary) else {
    note("no executable at \(binary)")
    exit(1)
}
let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
let sink = try BatchSink(live: options.sinkLive)
note("backend stand-in on 127.0.0.1:\(sink.port) (\(options.sinkLive ? "inflates batches as they arrive" : "stores batches; inflates them after each run"))")

var results: [String: RunResult] = [:]
for name in options.modes {
    let mode: Mode
    switch name {
    case "headline": mode = Mode(name: name, samplingRatio: 1.0, fsync: options.fsync)
    case "edge": mode = Mode(name: name, samplingRatio: options.edgeRatio, fsync: options.fsync)
    case "always": mode = Mode(name: name, samplingRatio: 1.0, fsync: "always")
    default:
        note("unknown mode \(name); use headline, edge, always")
        exit(2)
    }
    guard let r = try run(mode, binary: binary, sink: sink, selfPath: selfPath) else { exit(1) }
    results[name] = r
    let l = r.load.final
    let dupFraction = Double(l.duplicateSpans) / Double(max(1, l.freshSpans + l.duplicateSpans))
    note("[\(name)] \(f(r.spansPerSecond, 0)) unique spans/s acknowledged over \(f(r.windowSeconds, 2)) s; collector \(f(r.cpuCores, 2)) cores (\(f(r.cpuMicrosPerSpan)) µs CPU per span), peak RSS \(f(r.rssPeakMiB)) MiB (VmHWM \(f(r.rssHWMMiB))); load \(f(r.loadCPUCores, 2)) cores; this process (sink) \(f(r.sinkCPUCores, 2)) cores; other processes \(f(r.otherCPUCores, 2)) cores (load average \(f(r.loadAverage, 2)))")
    note("[\(name)] forwarded to the sink during the window: \(f(r.forwardedPerSecond, 0)) spans/s; WAL backlog \(r.backlogStart) → \(r.backlogEnd) records (at its largest \(r.peakQueueRecords), \(f(r.peakQueueMiB)) MiB); \(r.peakPendingTraces) traces at most awaiting a sampling decision")
    let requestsInWindow = r.load.end.requests - r.load.start.requests
    if r.backlogEnd - r.backlogStart > max(50, requestsInWindow / 10) {
        note("[\(name)] NOTE: the WAL backlog grew by \(f(Double(r.backlogEnd - r.backlogStart) / r.windowSeconds, 1)) records/s: the forwarder (\(f(r.forwardedPerSecond, 0)) spans/s) is slower than the receiver; a longer run fills the queue (queue.max_bytes, 1 GiB) and the receiver answers 503")
    }
    note("[\(name)] drain after the load: \(f(r.drainSeconds, 1)) s" + (r.drainForwardedPerSecond.isFinite ? ", forwarding \(f(r.drainForwardedPerSecond, 0)) spans/s at \(f(r.drainCPUMicrosPerSpan)) µs collector CPU per span forwarded" : ""))
    note("[\(name)] client: \(l.requests) requests acknowledged, \(l.freshSpans) unique + \(l.duplicateSpans) re-sent spans (\(f(dupFraction * 100, 1)) %), \(f(Double(l.requestBytes) / Double(max(1, l.requests)) / 1024, 1)) KiB/request; \(l.failedRequests) failed requests (\(l.failedSpans) spans), \(l.rejectedSpans) rejected; \(r.load.statuses) \(r.load.firstErrors)")
    note("[\(name)] sink: \(r.sink.batches) batches (\(r.sink.resentBatches) resent), spans_accepted \(r.sink.accepted), spans_kept \(r.sink.kept), spans present \(r.sink.spansPresent), rollup rows \(r.sink.rollupRows) counting \(r.sink.rollupRequests) requests, \(f(Double(r.sink.bodyBytes) / 1_048_576)) MiB compressed → \(f(Double(r.sink.inflatedBytes) / 1_048_576)) MiB, \(r.sink.malformed) malformed")
    note("[\(name)] collector /healthz after drain (\(f(r.drainSeconds, 1)) s): \(r.health); exit status \(r.collectorExit)")
    if r.lost != 0 { note("[\(name)] WARNING: lost \(r.lost) (unique spans acknowledged \(l.freshSpans) − spans_accepted at the sink \(r.sink.accepted))") }
    if r.sink.kept != UInt64(r.sink.spansPresent) { note("[\(name)] WARNING: spans_kept \(r.sink.kept) != spans present in batches \(r.sink.spansPresent)") }
    if r.sink.rollupRequests != r.sink.accepted { note("[\(name)] WARNING: rollup requests \(r.sink.rollupRequests) != spans_accepted \(r.sink.accepted)") }
    if r.health.int("duplicatesDropped") != l.duplicateSpans { note("[\(name)] WARNING: duplicatesDropped \(r.health.int("duplicatesDropped")) != re-sent spans acknowledged \(l.duplicateSpans)") }
}
try? sink.close()

// MARK: Report

let headlineName = results["headline"] != nil ? "headline" : options.modes[0]
let h = results[headlineName]!
let templateBytes = h.load.templateSpanBytes
for name in options.modes {
    guard let r = results[name] else { continue }
    print("\(name.padding(toLength: 9, withPad: " ", startingAt: 0)) ratio \(r.mode.samplingRatio) fsync \(r.mode.fsync.padding(toLength: 13, withPad: " ", startingAt: 0)) \(f(r.spansPerSecond, 0)) spans/s  collector \(f(r.cpuCores, 2)) cores  RSS \(f(r.rssPeakMiB)) MiB  lost \(r.lost)  duplicates dropped \(r.health.int("duplicatesDropped"))  kept \(r.sink.kept)/\(r.sink.accepted)  load \(f(r.loadCPUCores, 2)) cores")
}

var fields: [(String, String)] = [
    ("bench", "\"collector\""),
    ("spans_per_sec", f(h.spansPerSecond, 0)),
    ("cpu_cores_used", f(h.cpuCores, 2)),
    ("rss_mib", f(h.rssPeakMiB)),
    ("lost", "\(h.lost)"),
    ("duplicates_dropped", "\(h.health.int("duplicatesDropped"))"),
    ("fsync", "\"\(h.mode.fsync)\""),
    ("sampling_ratio", "\(h.mode.samplingRatio)"),
    ("load_cpu_cores", f(h.loadCPUCores, 2)),
    ("sink_cpu_cores", f(h.sinkCPUCores, 2)),
    ("other_processes_cpu_cores", f(h.otherCPUCores, 2)),
    ("loadavg_1m", f(h.loadAverage, 2)),
    ("cpu_us_per_span", f(h.cpuMicrosPerSpan)),
    ("forwarded_spans_per_sec", f(h.forwardedPerSecond, 0)),
    ("wal_backlog_growth_records", "\(h.backlogEnd - h.backlogStart)"),
    ("peak_wal_backlog_records", "\(h.peakQueueRecords)"),
    ("drain_seconds", f(h.drainSeconds, 1)),
    ("drain_forward_spans_per_sec", f(h.drainForwardedPerSecond, 0)),
    ("drain_forward_cpu_us_per_span", f(h.drainCPUMicrosPerSpan)),
    ("spans_acknowledged", "\(h.load.final.freshSpans)"),
    ("resent_spans_acknowledged", "\(h.load.final.duplicateSpans)"),
    ("sink_spans_accepted", "\(h.sink.accepted)"),
    ("sink_spans_kept", "\(h.sink.kept)"),
    ("failed_requests", "\(h.load.final.failedRequests)"),
    ("span_bytes", f(templateBytes, 0)),
    ("seconds", f(h.windowSeconds, 1)),
    ("connections", "\(options.connections)"),
    ("spans_per_request", "\(options.spansPerRequest)"),
]
if options.rate > 0 { fields.append(("offered_spans_per_sec", f(options.rate, 0))) }
for (name, prefix) in [("edge", "edge"), ("always", "fsync_always")] {
    guard let r = results[name], name != headlineName else { continue }
    fields.append(("\(prefix)_spans_per_sec", f(r.spansPerSecond, 0)))
    fields.append(("\(prefix)_cpu_cores_used", f(r.cpuCores, 2)))
    fields.append(("\(prefix)_cpu_us_per_span", f(r.cpuMicrosPerSpan)))
    fields.append(("\(prefix)_forwarded_spans_per_sec", f(r.forwardedPerSecond, 0)))
    fields.append(("\(prefix)_other_processes_cpu_cores", f(r.otherCPUCores, 2)))
    fields.append(("\(prefix)_rss_mib", f(r.rssPeakMiB)))
    fields.append(("\(prefix)_lost", "\(r.lost)"))
    if name == "edge" {
        fields.append(("edge_sampling_ratio", "\(r.mode.samplingRatio)"))
        fields.append(("edge_kept_fraction", f(r.keptFraction, 3)))
    }
}
if let buildSeconds { fields.append(("build_seconds", f(buildSeconds, 0))) }
fields.append(("quick", options.quick ? "true" : "false"))
print("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
