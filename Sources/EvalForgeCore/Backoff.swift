/// Exponential backoff with jitter: the one delay rule of every retry loop (the SDK's exporter, the
/// collector's forwarder, the Postgres metadata store), so they spread out the same way.
package enum Backoff {
    /// `initial` doubled for each attempt after the first, capped at `max`, then a uniform pick in the
    /// upper half of that (retrying clients spread out, none waits less than half). Saturating: huge
    /// attempts or durations give `max`, never a trap. At least 1 ms.
    package static func delay(attempt: Int, initial: Duration, max maxDelay: Duration) -> Duration {
        let initialMs = Swift.max(1, milliseconds(initial))
        let base = initialMs.multipliedSaturated(by: Int64(1) << Int64(Swift.max(0, Swift.min(attempt - 1, 20))))
        let ms = Swift.max(1, Swift.min(base, milliseconds(maxDelay)))
        return .milliseconds(Int64.random(in: ms / 2...ms))
    }

    /// Whole milliseconds of `d`, saturating.
    package static func milliseconds(_ d: Duration) -> Int64 {
        let (s, a) = d.components
        return s.multipliedSaturated(by: 1000).addingSaturated(a / 1_000_000_000_000_000)
    }
}
