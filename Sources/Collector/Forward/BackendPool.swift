import AsyncHTTPClient
import EvalForgeCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// How a backend looks from a collector, as its `/healthz` shows it.
public struct BackendStatus: Sendable, Hashable, Codable {
    public var url: String
    public var healthy: Bool
    /// Why it is unhealthy (the failed check or delivery), nil when healthy.
    public var reason: String?
}

/// The backends a collector forwards to and which of them are healthy. Each batch goes to the next
/// healthy backend (round robin), and a delivery that fails with a transport error or a 5xx marks
/// its backend unhealthy and is tried on another at once. Unhealthy backends get batches again
/// after their `/readyz` passes (`BackendHealthService`, only run with several backends). When none
/// is healthy every backend is tried in turn with the usual backoff. Exactly once across backends
/// rests on the batch id: every backend of one deployment shares the store and its batch ledger,
/// so a batch one backend stored (its answer lost) is answered as a duplicate by the next.
final class BackendPool: Sendable {
    struct Backend: Sendable {
        /// The configured base URL (without trailing slashes).
        let base: String
        let batchesURL: String
        let readyURL: String
        let healthURL: String
    }

    let backends: [Backend]
    private struct State {
        var reasons: [String?]
        var next = 0
    }
    private let state: Mutex<State>

    init(urls: [String]) {
        backends = urls.map { url in
            let base = CollectorConfiguration.trimmedBase(url)
            return Backend(base: base, batchesURL: base + "/v1/batches", readyURL: base + "/readyz", healthURL: base + "/healthz")
        }
        state = Mutex(State(reasons: Array(repeating: nil, count: urls.count)))  // healthy until shown otherwise
    }

    var count: Int { backends.count }

    /// The backend for the next attempt: the next healthy one not in `tried`, else the next not in
    /// `tried`, else the next one.
    func pick(avoiding tried: Set<Int>) -> Int {
        state.withLock { s in
            let n = backends.count
            guard n > 1 else { return 0 }
            let start = s.next
            var fallback: Int?
            for k in 0..<n {
                let i = (start + k) % n
                guard !tried.contains(i) else { continue }
                if s.reasons[i] == nil {
                    s.next = (i + 1) % n
                    return i
                }
                if fallback == nil { fallback = i }
            }
            let i = fallback ?? start % n
            s.next = (i + 1) % n
            return i
        }
    }

    /// True when a healthy backend is left outside `tried` (a failed delivery then fails over at once).
    func hasHealthy(avoiding tried: Set<Int>) -> Bool {
        state.withLock { s in s.reasons.indices.contains { !tried.contains($0) && s.reasons[$0] == nil } }
    }

    /// Marks backend `i` unhealthy; true when it was healthy before.
    @discardableResult
    func markFailed(_ i: Int, reason: String) -> Bool {
        state.withLock { s in
            let was = s.reasons[i] == nil
            s.reasons[i] = String(reason.prefix(300))
            return was
        }
    }

    /// Marks backend `i` healthy; true when it was unhealthy before.
    @discardableResult
    func markHealthy(_ i: Int) -> Bool {
        state.withLock { s in
            let was = s.reasons[i] != nil
            s.reasons[i] = nil
            return was
        }
    }

    var statuses: [BackendStatus] {
        state.withLock { s in backends.indices.map { BackendStatus(url: backends[$0].base, healthy: s.reasons[$0] == nil, reason: s.reasons[$0]) } }
    }

    /// One readiness check of backend `i`: `/readyz` answers 200, or (a backend from before
    /// readiness existed, during a rolling upgrade) answers 404 and `/healthz` answers 200. Nil when
    /// healthy, else why not.
    func check(_ i: Int, client: HTTPClient, timeout: Duration) async -> String? {
        let b = backends[i]
        let deadline = ContinuousClock.now + timeout
        func get(_ url: String) async -> (status: Int, body: String)? {
            var request = HTTPClientRequest(url: url)
            request.method = .GET
            let left = max(.milliseconds(1), deadline - .now)
            guard let response = try? await client.execute(request, timeout: .nanoseconds(Forwarder.nanoseconds(left))) else { return nil }
            let body = (try? await response.body.collect(upTo: 16 * 1024)).map { String(buffer: $0) } ?? ""
            return (Int(response.status.code), body)
        }
        guard let ready = await get(b.readyURL) else { return "\(b.readyURL) did not answer within \(timeout)" }
        if ready.status == 200 { return nil }
        if ready.status == 404, let health = await get(b.healthURL), health.status == 200 { return nil }
        return "\(b.readyURL) answered \(ready.status): \(ready.body.prefix(200))"
    }
}

/// Checks every backend's readiness each `forward.health_interval_ms` (run only with several
/// backends), so a backend marked unhealthy gets batches again once it is ready, and one that
/// stopped being ready gets none before a delivery fails on it.
struct BackendHealthService: Service {
    let pool: BackendPool
    let interval: Duration
    let timeout: Duration
    let logger: Logger

    func run() async throws {
        // Its own client: a backend that refuses connections fails its check at once, not after
        // the connection retries of a shared client.
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .nanoseconds(Forwarder.nanoseconds(timeout))
        configuration.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await withTaskGroup(of: (Int, String?).self) { group in
                    for i in 0..<pool.count {
                        group.addTask { (i, await pool.check(i, client: client, timeout: timeout)) }
                    }
                    for await (i, problem) in group {
                        if let problem {
                            if pool.markFailed(i, reason: problem) {
                                logger.warning("backend not ready; no batches go to it until it is", metadata: ["backend": "\(pool.backends[i].base)", "reason": "\(problem)"])
                            }
                        } else if pool.markHealthy(i) {
                            logger.notice("backend ready again", metadata: ["backend": "\(pool.backends[i].base)"])
                        }
                    }
                }
                try? await Task.sleep(for: max(interval, .milliseconds(100)))  // never a busy loop, whatever the configuration
            }
        }
        try? await client.shutdown()  // an HTTPClient must be shut down, not dropped
    }
}
