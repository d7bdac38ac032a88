import CAllocCounter
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in nanoseconds.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Sleeps until the monotonic clock reads `nanos`.
func sleepUntil(monotonicNanos nanos: UInt64) {
    var ts = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
}

func sleepMillis(_ ms: Int) { usleep(UInt32(ms * 1000)) }

/// Allocation calls made so far by the calling thread (malloc, calloc, realloc, memalign family).
@inline(__always)
func threadAllocations() -> UInt64 { evalforge_bench_thread_allocs() }

/// Runs `body` on a fresh OS thread, outside Swift's cooperative pool (which keeps running the export
/// loops and the receiver), and returns its result.
func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
        let thread = Thread { c.resume(returning: body()) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}

struct Percentiles: Sendable {
    var p10: Double
    var p50: Double
    var p90: Double
    var p99: Double
    var mean: Double

    init(_ samples: [Double]) {
        let s = samples.sorted()
        func q(_ f: Double) -> Double { s.isEmpty ? .nan : s[min(s.count - 1, Int((Double(s.count - 1) * f).rounded()))] }
        p10 = q(0.10)
        p50 = q(0.50)
        p90 = q(0.90)
        p99 = q(0.99)
        mean = s.isEmpty ? .nan : s.reduce(0, +) / Double(s.count)
    }
}

/// How a per-span measurement is run.
struct TimingPlan: Sendable {
    /// Spans per timed batch; a sample is one batch's time / spansPerBatch.
    var spansPerBatch = 100
    /// Timed batches in all.
    var batches = 2_000
    /// Batches per round; between rounds the recorder's buffer is given time to drain, so it never
    /// overflows while being timed.
    var batchesPerRound = 200
    /// Untimed spans recorded first.
    var warmupSpans = 20_000
    /// Spans over which the calling thread's allocations are counted.
    var allocationSpans = 10_000
}

struct SpanCost: Sendable {
    var perSpanNanos: Percentiles
    var allocationsPerSpan: Double
}

/// Times `record` (one recorded span per call) on the calling thread: p50/p90 of per-batch
/// means, plus the calling thread's allocations per span. `drain` is called after warm-up,
/// between rounds and after the allocation count, to let the exporter catch up.
@inline(__always)
func measureSpanCost(_ plan: TimingPlan, drain: () -> Void, _ record: () -> Void) -> SpanCost {
    for _ in 0..<plan.warmupSpans { record() }
    drain()

    let a0 = threadAllocations()
    for _ in 0..<plan.allocationSpans { record() }
    let a1 = threadAllocations()
    drain()

    var samples: [Double] = []
    samples.reserveCapacity(plan.batches)
    var done = 0
    while done < plan.batches {
        let n = min(plan.batchesPerRound, plan.batches - done)
        for _ in 0..<n {
            let t0 = monotonicNanos()
            for _ in 0..<plan.spansPerBatch { record() }
            let t1 = monotonicNanos()
            samples.append(Double(t1 &- t0) / Double(plan.spansPerBatch))
        }
        done += n
        drain()
    }
    return SpanCost(
        perSpanNanos: Percentiles(samples),
        allocationsPerSpan: Double(a1 &- a0) / Double(plan.allocationSpans))
}

/// Records `perMillisecond` spans every millisecond for `seconds` on the calling thread, catching
/// up if it falls behind. Returns the number of spans recorded.
func recordAtFixedRate(spansPerSecond: Int, seconds: Int, _ record: () -> Void) -> Int {
    let perTick = max(1, spansPerSecond / 1000)
    let ticks = seconds * 1000
    let start = monotonicNanos() + 1_000_000
    var recorded = 0
    for tick in 0..<ticks {
        sleepUntil(monotonicNanos: start + UInt64(tick) * 1_000_000)
        for _ in 0..<perTick { record() }
        recorded += perTick
    }
    return recorded
}
