import Synchronization

/// A counting semaphore for async code: at most `limit` holders; waiters queue FIFO and are
/// removed when their task is cancelled (no lock is held while waiting).
final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var nextID = 0
        var waiters: [(id: Int, cont: CheckedContinuation<Bool, Never>)] = []
    }
    private let state: Mutex<State>

    init(limit: Int) { state = Mutex(State(available: max(1, limit))) }

    /// Waits for a permit; false when the task was cancelled while waiting (no permit taken).
    func acquire() async -> Bool {
        let id: Int? = state.withLock { s in
            if s.available > 0 { s.available -= 1; return nil }
            s.nextID += 1
            return s.nextID
        }
        guard let id else { return true }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let resumeNow: Bool? = state.withLock { s in
                    if Task.isCancelled { return false }
                    if s.available > 0 { s.available -= 1; return true }
                    s.waiters.append((id, c))
                    return nil
                }
                if let r = resumeNow { c.resume(returning: r) }
            }
        } onCancel: {
            let c: CheckedContinuation<Bool, Never>? = state.withLock { s in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).cont
            }
            c?.resume(returning: false)
        }
    }

    func release() {
        let c: CheckedContinuation<Bool, Never>? = state.withLock { s in
            if s.waiters.isEmpty { s.available += 1; return nil }
            return s.waiters.removeFirst().cont
        }
        c?.resume(returning: true)
    }
}

/// A token bucket: `rate` requests per second with a burst of `burst`. `delay()` reserves a token and
/// returns how long to sleep before using it (reservations never hold a lock while sleeping).
final class TokenBucket: Sendable {
    private struct State {
        var tokens: Double
        var last: ContinuousClock.Instant
    }
    private let rate: Double
    private let burst: Double
    private let state: Mutex<State>

    init(rate: Double, burst: Double? = nil) {
        self.rate = rate
        self.burst = max(1, burst ?? rate)
        state = Mutex(State(tokens: max(1, burst ?? rate), last: .now))
    }

    func reserve() -> Duration {
        state.withLock { s in
            let now = ContinuousClock.now
            let elapsed = s.last.duration(to: now)
            let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            s.tokens = min(burst, s.tokens + secs * rate)
            s.last = now
            s.tokens -= 1
            if s.tokens >= 0 { return .zero }
            // At most an hour: the rate is validated, but the arithmetic must not trap on any value.
            return .milliseconds(Checked.clamped((-s.tokens / rate) * 1000, to: 0...3_600_000))
        }
    }
}

/// Opens after `threshold` consecutive failures and rejects calls for `cooldown`; then lets calls
/// through again (half-open), closing on the first success and re-opening on the first failure.
final class CircuitBreaker: Sendable {
    private struct State {
        var failures = 0
        var openUntil: ContinuousClock.Instant?
        var halfOpen = false
    }
    private let threshold: Int
    private let cooldown: Duration
    private let state = Mutex(State())

    init(threshold: Int, cooldown: Duration) {
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
    }

    /// nil when a call may proceed, else the time until the breaker half-opens.
    func check() -> Duration? {
        state.withLock { s in
            guard let until = s.openUntil else { return nil }
            let now = ContinuousClock.now
            if now >= until { s.openUntil = nil; s.halfOpen = true; return nil }
            return now.duration(to: until)
        }
    }

    func success() { state.withLock { s in s.failures = 0; s.halfOpen = false } }

    /// Returns true when this failure opened the breaker.
    @discardableResult
    func failure() -> Bool {
        state.withLock { s in
            s.failures += 1
            if s.halfOpen || s.failures >= threshold {
                let wasOpen = s.openUntil != nil
                s.openUntil = .now + cooldown
                s.halfOpen = false
                s.failures = 0
                return !wasOpen
            }
            return false
        }
    }
}
