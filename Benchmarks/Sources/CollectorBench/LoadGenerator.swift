import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The load process (`CollectorBench --load …`, spawned by the orchestrator): `connections`
/// threads, each with one keep-alive HTTP/1.1 connection, POST OTLP/HTTP protobuf requests of
/// `spansPerRequest` spans to the collector back to back (or paced to `rate` spans/s in all).
/// A fraction of each request's spans are byte-exact re-sends of spans the same connection sent
/// in an earlier acknowledged request.
///
/// Protocol on stdout, one line each: `MEASURE_START <json>` after the warm-up, `MEASURE_END <json>`
/// after the measured seconds, then `RESULT <json>` once every connection has finished its request
/// in flight. Each json is a `LoadSnapshot`; RESULT is a `LoadResult`.
struct LoadOptions {
    var port = 0
    var seconds = 20.0
    var warmup = 3.0
    var connections = 8
    var spansPerRequest = 200
    var duplicateFraction = 0.1
    var rate = 0.0
    var seed: UInt64 = 42
}

struct LoadSnapshot: Codable {
    var monotonicNanos: UInt64
    var requests: Int
    var freshSpans: Int
    var duplicateSpans: Int
    var failedRequests: Int
    var failedSpans: Int
    var rejectedSpans: Int
    var requestBytes: Int
    var cpuSeconds: Double
}

struct LoadResult: Codable {
    var start: LoadSnapshot
    var end: LoadSnapshot
    var final: LoadSnapshot
    var statuses: [String: Int]
    var firstErrors: [String]
    var templateSpanBytes: Double
}

final class LoadCounters: Sendable {
    let requests = Atomic<Int>(0)
    let fresh = Atomic<Int>(0)
    let duplicates = Atomic<Int>(0)
    let failedRequests = Atomic<Int>(0)
    let failedSpans = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let bytes = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
    let problems = Mutex<(statuses: [String: Int], first: [String])>(([:], []))

    func problem(_ status: String, _ text: String) {
        problems.withLock {
            $0.statuses[status, default: 0] += 1
            if $0.first.count < 5 { $0.first.append(text) }
        }
    }

    func snapshot() -> LoadSnapshot {
        LoadSnapshot(
            monotonicNanos: monotonicNanos(),
            requests: requests.load(ordering: .relaxed), freshSpans: fresh.load(ordering: .relaxed),
            duplicateSpans: duplicates.load(ordering: .relaxed), failedRequests: failedRequests.load(ordering: .relaxed),
            failedSpans: failedSpans.load(ordering: .relaxed), rejectedSpans: rejected.load(ordering: .relaxed),
            requestBytes: bytes.load(ordering: .relaxed), cpuSeconds: processCPUSeconds())
    }
}

func runLoad(_ o: LoadOptions) -> Never {
    let roots = SpanFactory.templates(count: 2_048, child: false, seed: o.seed)
    let children = SpanFactory.templates(count: 2_048, child: true, seed: o.seed &+ 1)
    let all = roots + children
    let templateBytes = Double(all.reduce(0) { $0 + $1.bytes.count }) / Double(all.count)
    let services = ["support-assistant", "checkout-agent", "search-rag", "doc-summarizer"]
    let counters = LoadCounters()
    let done = DispatchGroup()
    let perConnectionRate = o.rate / Double(o.connections)

    for c in 0..<o.connections {
        done.enter()
        let thread = Thread {
            defer { done.leave() }
            var builder = RequestBuilder(roots: roots, children: children, service: services[c % services.count], connection: c, seed: o.seed &* 1_000 &+ UInt64(c))
            let conn = HTTPConnection(port: o.port)
            var next = monotonicNanos()
            let interval = perConnectionRate > 0 ? UInt64(Double(o.spansPerRequest) / perConnectionRate * 1e9) : 0
            while !counters.stop.load(ordering: .relaxed) {
                if interval > 0 {
                    let now = monotonicNanos()
                    if next > now { sleepUntil(monotonicNanos: next) }
                    next = max(next &+ interval, now &- 200_000_000)  // catch up at most 200 ms
                }
                let b = builder.build(spans: o.spansPerRequest, duplicateFraction: o.duplicateFraction)
                let head = Array("POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:\(o.port)\r\nContent-Type: application/x-protobuf\r\nContent-Length: \(b.body.count)\r\n\r\n".utf8)
                let spans = b.fresh + b.duplicates
                do {
                    let (status, body) = try conn.request(head, body: b.body)
                    if status == 200 {
                        let rejected = partialSuccessRejected(body)
                        if rejected > 0 {
                            counters.rejected.add(rejected, ordering: .relaxed)
                            counters.problem("200-partial", "partial success: \(rejected) spans rejected")
                        }
                        counters.requests.add(1, ordering: .relaxed)
                        counters.fresh.add(b.fresh, ordering: .relaxed)
                        counters.duplicates.add(b.duplicates, ordering: .relaxed)
                        counters.bytes.add(b.body.count, ordering: .relaxed)
                        builder.acknowledged(b)
                    } else {
                        counters.failedRequests.add(1, ordering: .relaxed)
                        counters.failedSpans.add(spans, ordering: .relaxed)
                        counters.problem("\(status)", "HTTP \(status): \(String(decoding: body.prefix(200), as: UTF8.self))")
                        if status == 503 { usleep(50_000) }
                    }
                } catch {
                    counters.failedRequests.add(1, ordering: .relaxed)
                    counters.failedSpans.add(spans, ordering: .relaxed)
                    counters.problem("error", "\(error)")
                    conn.close()
                    usleep(10_000)
                }
            }
        }
        thread.stackSize = 4 << 20
        thread.start()
    }

    func emit(_ tag: String, _ value: some Encodable) {
        let json = String(decoding: (try? JSONEncoder().encode(value)) ?? Data(), as: UTF8.self)
        FileHandle.standardOutput.write(Data("\(tag) \(json)\n".utf8))
    }

    usleep(UInt32(o.warmup * 1e6))
    let start = counters.snapshot()
    emit("MEASURE_START", start)
    usleep(UInt32(o.seconds * 1e6))
    let end = counters.snapshot()
    emit("MEASURE_END", end)
    counters.stop.store(true, ordering: .relaxed)
    done.wait()
    let final = counters.snapshot()
    let problems = counters.problems.withLock { $0 }
    emit("RESULT", LoadResult(start: start, end: end, final: final, statuses: problems.statuses, firstErrors: problems.first, templateSpanBytes: templateBytes))
    exit(0)
}

/// ExportTraceServiceResponse.partial_success(1).rejected_spans(1); 0 when absent.
func partialSuccessRejected(_ body: [UInt8]) -> Int {
    guard !body.isEmpty else { return 0 }
    return body.withUnsafeBufferPointer { b -> Int in
        var r = ProtoReader(b, 0, b.count)
        do {
            while let (f, v) = try r.next() {
                guard f == 1, case .bytes(let s, let e) = v else { continue }
                var p = ProtoReader(b, s, e)
                while let (f2, v2) = try p.next() {
                    if f2 == 1, case .varint(let n) = v2 { return Int(n) }
                }
            }
        } catch {
            return 0
        }
        return 0
    }
}

/// Monotonic time in nanoseconds.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

func sleepUntil(monotonicNanos nanos: UInt64) {
    var ts = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
}

/// User + system CPU seconds of this process, all threads.
func processCPUSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
}
