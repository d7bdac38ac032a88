import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

func note(_ s: String) { FileHandle.standardError.write(Data("[bench collector] \(s)\n".utf8)) }

/// CPU seconds (user + system, all threads) of process `pid`, from /proc/PID/stat.
func procCPUSeconds(_ pid: Int32) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return nil }
    // After "pid (comm)": state is field 3; utime and stime are fields 14 and 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// A `/proc/PID/status` value in KiB (`VmRSS`, `VmHWM`).
func procStatusKiB(_ pid: Int32, _ key: String) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
        return Int(line.dropFirst(key.count + 1).split(whereSeparator: \.isWhitespace).first ?? "")
    }
    return nil
}

/// Samples the collector while it runs, on its own thread: its resident set every 100 ms (`peakKiB`
/// is the largest seen) and its /healthz every second (the largest WAL backlog and number of traces
/// awaiting a sampling decision).
final class CollectorSampler: Sendable {
    private let peak = Atomic<Int>(0)
    private let maxQueueRecords = Atomic<Int>(0)
    private let maxQueueBytes = Atomic<Int>(0)
    private let maxPendingTraces = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(pid: Int32, port: Int) {
        Thread { [self] in
            var tick = 0
            while !stopped.load(ordering: .relaxed) {
                if let kib = procStatusKiB(pid, "VmRSS") { Self.raise(peak, kib) }
                if tick % 10 == 0, let h = healthz(port: port) {
                    Self.raise(maxQueueRecords, h.int("queueDepthRecords"))
                    Self.raise(maxQueueBytes, h.int("queueBytes"))
                    Self.raise(maxPendingTraces, h.int("pendingTraces"))
                }
                tick += 1
                usleep(100_000)
            }
            finished.signal()
        }.start()
    }

    private static func raise(_ a: borrowing Atomic<Int>, _ v: Int) {
        var cur = a.load(ordering: .relaxed)
        while v > cur {
            let (exchanged, now) = a.compareExchange(expected: cur, desired: v, ordering: .relaxed)
            if exchanged { break }
            cur = now
        }
    }

    var peakKiB: Int { peak.load(ordering: .relaxed) }
    var peakQueueRecords: Int { maxQueueRecords.load(ordering: .relaxed) }
    var peakQueueBytes: Int { maxQueueBytes.load(ordering: .relaxed) }
    var peakPendingTraces: Int { maxPendingTraces.load(ordering: .relaxed) }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        finished.wait()
    }
}

/// Busy CPU seconds of the whole machine (all cores, every process), from /proc/stat.
func machineBusySeconds() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") })
    else { return .nan }
    let v = line.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard v.count >= 5 else { return .nan }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = v.prefix(8).reduce(0, +) - v[3] - v[4]
    return busy / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The 1-minute load average.
func loadAverage1m() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return .nan }
    return Double(text.split(separator: " ").first ?? "") ?? .nan
}

/// Starts `path args` with stdout and stderr appended to `log`.
func spawn(_ path: String, _ args: [String], log: String, environment: [String: String]? = nil) throws -> Process {
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    p.standardOutput = out
    p.standardError = out
    p.standardInput = FileHandle.nullDevice
    if let environment { p.environment = environment }
    try p.run()
    return p
}

/// Sends SIGTERM and waits up to `timeout` seconds, then SIGKILL. Returns the exit status.
@discardableResult
func stop(_ p: Process, timeout: Double = 20) -> Int32 {
    guard p.isRunning else { return p.terminationStatus }
    kill(p.processIdentifier, SIGTERM)
    let end = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < end { usleep(50_000) }
    if p.isRunning {
        note("process \(p.processIdentifier) did not exit \(Int(timeout)) s after SIGTERM; killing it")
        kill(p.processIdentifier, SIGKILL)
    }
    p.waitUntilExit()
    return p.terminationStatus
}

/// Runs `path args` to completion with its output in `log`; returns the exit status.
func runToCompletion(_ path: String, _ args: [String], log: String) throws -> Int32 {
    let p = try spawn(path, args, log: log)
    p.waitUntilExit()
    return p.terminationStatus
}

/// Starts a child whose stdout is read line by line on a background thread.
final class LineReadingProcess: Sendable {
    let process: Process
    private let finished = DispatchSemaphore(value: 0)

    init(_ path: String, _ args: [String], stderrLog: String, onLine: @escaping @Sendable (String) -> Void) throws {
        _ = FileManager.default.createFile(atPath: stderrLog, contents: nil)
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrLog))
        let pipe = Pipe()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.standardOutput = pipe
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
        let finished = self.finished
        let reader = pipe.fileHandleForReading
        Thread {
            var pending = Data()
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...nl)
                    onLine(line)
                }
            }
            if !pending.isEmpty { onLine(String(decoding: pending, as: UTF8.self)) }
            finished.signal()
        }.start()
    }

    /// Waits for the process to exit and its output to be read.
    func wait() -> Int32 {
        process.waitUntilExit()
        finished.wait()
        return process.terminationStatus
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freePort() -> Int {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// GET http://127.0.0.1:port/healthz as a JSON object.
func healthz(port: Int) -> [String: Any]? {
    let c = HTTPConnection(port: port)
    defer { c.close() }
    guard let (status, body) = try? c.get("/healthz"), status == 200 else { return nil }
    return (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
}

extension Dictionary where Key == String, Value == Any {
    func int(_ k: String) -> Int { (self[k] as? NSNumber)?.intValue ?? (self[k] as? Int) ?? 0 }
}
