#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanosecond clocks read straight from the vDSO: no allocation, no lock.
enum Clocks {
    @inline(__always) static func unixNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Wall clock minus monotonic clock (wrapping arithmetic, so any pair of readings round-trips):
    /// `monotonicNanos() &+ wallClockOffset()` is the wall-clock time.
    static func wallClockOffset() -> UInt64 {
        let monotonic = monotonicNanos()
        return unixNanos() &- monotonic
    }

    @inline(__always) static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
