import Synchronization

/// What forwarding reads that can change while the collector runs — the API key, reloaded on
/// SIGHUP (`CollectorPipeline.reload(apiKey:)`), and which backends are healthy — and what it reports: whether forwarding is
/// degraded (the backend refuses or cannot be reached; nothing is released meanwhile) and why,
/// shown by `/healthz` and the `evalforge_collector_forward_degraded` gauge.
final class ForwardingState: Sendable {
    private struct State {
        var apiKey: String?
        /// Batches held by a refusal or repeated failures, with the latest reason.
        var held: [String: String] = [:]
        var latest: String?
    }

    private let state: Mutex<State>
    /// The backends batches go to and their health.
    let backends: BackendPool

    init(apiKey: String?, backendURLs: [String]) {
        state = Mutex(State(apiKey: apiKey))
        backends = BackendPool(urls: backendURLs)
    }

    var apiKey: String? { state.withLock { $0.apiKey } }

    /// Sets the key; true when it changed.
    func setAPIKey(_ key: String?) -> Bool {
        state.withLock { s in
            guard s.apiKey != key else { return false }
            s.apiKey = key
            return true
        }
    }

    /// Why forwarding is degraded (the latest reason of a held batch), nil while no batch is held.
    var degradedReason: String? { state.withLock { $0.held.isEmpty ? nil : $0.latest } }

    /// Marks batch `id` held for `reason`; true when forwarding was not degraded before.
    func hold(_ id: String, reason: String) -> Bool {
        state.withLock { s in
            let was = s.held.isEmpty
            s.held[id] = reason
            s.latest = reason
            return was
        }
    }

    /// Batch `id` went through; true when that ends the degraded state (no batch held any more).
    func delivered(_ id: String) -> Bool {
        state.withLock { s in
            guard s.held.removeValue(forKey: id) != nil else { return false }
            return s.held.isEmpty
        }
    }
}
