import Synchronization

/// A failure the mock injects instead of (or in the middle of) an answer.
enum MockFault: String, Sendable {
    /// 429 with `Retry-After`.
    case rateLimited = "429"
    /// 500.
    case serverError = "500"
    /// Anthropic's 529 `overloaded_error`; 503 on the OpenAI route, which has no 529.
    case overloaded = "529"
    /// The response stops half-way and the connection closes without the final events.
    case cut
    /// A 200 whose body is invalid JSON, or a stream with a broken event.
    case malformed
}

/// Decides which requests fail: a forced fault (header) wins; otherwise the configured rates are
/// applied with a draw seeded from (seed, request, arrival number), so a run replays the same faults
/// for the same requests in the same order, and a retried request draws again (and can succeed).
struct FaultInjector: Sendable {
    let rates: MockLLMConfiguration.FaultRates
    private let arrivals = RequestCounter()

    init(rates: MockLLMConfiguration.FaultRates) {
        self.rates = rates
    }

    func fault(forced: MockFault?, seed: UInt64, requestHash: UInt64) -> MockFault? {
        if let forced { return forced }
        guard rates.total > 0 else { return nil }
        let n = arrivals.next()
        var rng = MockRNG(seed: seed ^ requestHash, body: withUnsafeBytes(of: n.littleEndian) { Array($0) })
        let u = rng.unit()
        var edge = rates.rate429
        if u < edge { return .rateLimited }
        edge += rates.rate500
        if u < edge { return .serverError }
        edge += rates.rate529
        if u < edge { return .overloaded }
        edge += rates.rateStreamCut
        if u < edge { return .cut }
        return nil
    }
}

/// Numbers requests in arrival order: one relaxed atomic increment, no lock.
final class RequestCounter: Sendable {
    private let value = Atomic<UInt64>(0)
    func next() -> UInt64 { value.add(1, ordering: .relaxed).newValue }
}
