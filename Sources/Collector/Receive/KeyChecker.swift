import AsyncHTTPClient
import EvalForgeCrypto
import Foundation
import NIOCore
import Synchronization

/// How the collector's OTLP receiver admits clients (`auth.mode`; docs/collector-configuration.md).
public enum CollectorAuthMode: String, Sendable, Equatable, CaseIterable {
    /// Every request carries a key with the `ingest` scope of the project this collector forwards
    /// to, checked against the backend (`GET /api/auth/check`) and cached. The default.
    case key
    /// No key: whoever reaches the listener may send. For loopback-only setups (`evalforge dev`);
    /// refused on a non-loopback address unless `auth.force_open` is set.
    case open
}

/// The project a key writes to, as the backend's `GET /api/auth/check` answers it.
public struct KeyProject: Sendable, Hashable {
    public var id: String
    public var name: String
}

/// Decides whether an OTLP request may be accepted, from the key it carries: validated against the
/// backend, cached per SHA-256 of the key (no plaintext kept) — valid answers for `auth.cache_ttl_ms`
/// (so a revoked key is refused at most that long after), refusals for `auth.negative_ttl_ms`. The
/// client's key must belong to the project the collector's own `forward.api_key` writes to, since
/// every batch is stored under that key's project.
///
/// A backend that cannot be reached (or answers anything but 200/401/403) does not open the door:
/// a key the backend accepted within `auth.stale_grace_ms` stays accepted (so telemetry keeps being
/// queued durably through a short backend outage), any other key gets 503 with Retry-After.
final class KeyChecker: Sendable {
    /// What the receiver does with a request.
    enum Decision: Sendable, Equatable {
        /// Accept; spans must belong to this project (nil: unknown, open mode without an answer).
        case accept(KeyProject?)
        case refuse(status: Int, message: String, retryAfterSeconds: Int?)
    }

    enum Outcome: Sendable, Equatable {
        case valid(KeyProject)
        /// 401 or 403 from the backend, with the message clients get.
        case refused(status: Int, message: String)
        /// No usable answer; why.
        case unreachable(String)
    }

    private struct Entry {
        var outcome: Outcome
        var expires: ContinuousClock.Instant
        /// The latest time the backend accepted the key (cleared by a refusal), for the stale grace.
        var lastValid: (project: KeyProject, at: ContinuousClock.Instant)?
    }

    /// Most keys remembered; beyond it expired entries, then refusals, then everything is dropped
    /// (random keys from a hostile client must not grow memory without bound).
    static let maxEntries = 10_000

    let mode: CollectorAuthMode
    let checkURL: String
    let ttl: Duration
    let negativeTTL: Duration
    let staleGrace: Duration
    let forwardKey: @Sendable () -> String?
    let fetcher: @Sendable (String) async -> Outcome
    private let cache = Mutex<[String: Entry]>([:])
    private let inflight = Mutex<[String: Task<Outcome, Never>]>([:])

    init(configuration c: CollectorConfiguration, forwardKey: @escaping @Sendable () -> String?, fetcher: (@Sendable (String) async -> Outcome)? = nil) {
        mode = c.authMode
        // Every backend can answer (they share the metadata store): the first that is reachable decides.
        let urls = c.backendURLs.map { u -> String in
            var base = u
            while base.hasSuffix("/") { base.removeLast() }
            return base + "/api/auth/check"
        }
        checkURL = urls.first ?? ""
        ttl = c.authCacheTTL
        negativeTTL = c.authNegativeTTL
        staleGrace = c.authStaleGrace
        self.forwardKey = forwardKey
        self.fetcher = fetcher ?? { key in
            var last = Outcome.unreachable("no backend URL configured")
            for url in urls {
                last = await Self.fetch(url: url, key: key)
                if case .unreachable = last { continue }
                return last
            }
            return last
        }
    }

    /// The decision for a request carrying `key` (nil: none).
    func authorize(key: String?) async -> Decision {
        if mode == .open {
            // Open: anyone may send; the project spans must name is the forward key's, when known.
            guard let fk = forwardKey(), case .valid(let p) = await outcome(for: fk) else { return .accept(nil) }
            return .accept(p)
        }
        guard let key else {
            return .refuse(status: 401, message: "missing API key: send Authorization: Bearer <key> (a key with the 'ingest' scope; docs/access-control.md)", retryAfterSeconds: nil)
        }
        guard Self.isWellFormed(key) else {
            return .refuse(status: 401, message: "malformed API key: expected 8 to 256 printable ASCII characters without spaces", retryAfterSeconds: nil)
        }
        let client: KeyProject
        switch await outcome(for: key) {
        case .valid(let p): client = p
        case .refused(let status, let message): return .refuse(status: status, message: message, retryAfterSeconds: nil)
        case .unreachable(let why):
            return .refuse(status: 503, message: "cannot verify the API key now (\(why)); retry later", retryAfterSeconds: 5)
        }
        guard let fk = forwardKey() else {
            return .refuse(status: 503, message: "the collector has no forward.api_key, so it cannot tell which project it writes to; the operator must set one", retryAfterSeconds: 30)
        }
        switch await outcome(for: fk) {
        case .valid(let own):
            guard own.id == client.id else {
                return .refuse(status: 403, message: "the API key belongs to project '\(client.name)' (id \(client.id)) but this collector forwards to project '\(own.name)' (id \(own.id)); send to that project's collector or use a key of '\(own.name)'", retryAfterSeconds: nil)
            }
            return .accept(client)
        case .refused(_, let message):
            return .refuse(status: 503, message: "the backend refuses this collector's own forward.api_key (\(message)); the operator must fix it (SIGHUP reloads it)", retryAfterSeconds: 30)
        case .unreachable(let why):
            return .refuse(status: 503, message: "cannot verify which project this collector writes to (\(why)); retry later", retryAfterSeconds: 5)
        }
    }

    /// The cached or fetched outcome for `key`; an unreachable backend resolves to the key's last
    /// valid answer while it is within the stale grace.
    func outcome(for key: String) async -> Outcome {
        let hash = Digest.sha256Hex(key)
        let now = ContinuousClock.now
        if let e = cache.withLock({ $0[hash] }), now < e.expires { return resolve(e, now: now) }
        let fetched = await singleFlight(hash: hash, key: key)
        let entry = cache.withLock { m -> Entry in
            let previous = m[hash]
            let e: Entry
            switch fetched {
            case .valid(let p): e = Entry(outcome: fetched, expires: now + ttl, lastValid: (p, now))
            case .refused: e = Entry(outcome: fetched, expires: now + negativeTTL, lastValid: nil)
            case .unreachable: e = Entry(outcome: fetched, expires: now + negativeTTL, lastValid: previous?.lastValid)
            }
            if previous == nil, m.count >= Self.maxEntries { Self.prune(&m, now: now) }
            m[hash] = e
            return e
        }
        return resolve(entry, now: now)
    }

    private func resolve(_ e: Entry, now: ContinuousClock.Instant) -> Outcome {
        if case .unreachable = e.outcome, let last = e.lastValid, now - last.at <= staleGrace { return .valid(last.project) }
        return e.outcome
    }

    /// One request to the backend per key at a time; concurrent callers share its answer.
    private func singleFlight(hash: String, key: String) async -> Outcome {
        let fetcher = self.fetcher
        let task = inflight.withLock { m -> Task<Outcome, Never> in
            if let t = m[hash] { return t }
            let t = Task { await fetcher(key) }
            m[hash] = t
            return t
        }
        let result = await task.value
        inflight.withLock { m in if m[hash] == task { m[hash] = nil } }
        return result
    }

    private static func prune(_ m: inout [String: Entry], now: ContinuousClock.Instant) {
        m = m.filter { now < $0.value.expires || $0.value.lastValid != nil }
        if m.count >= maxEntries { m = m.filter { if case .valid = $0.value.outcome { return true } else { return false } } }
        if m.count >= maxEntries { m.removeAll(keepingCapacity: true) }
    }

    /// 8…256 visible ASCII characters: what every key is (the backend's rule, `APIKeyMiddleware`).
    static func isWellFormed(_ key: String) -> Bool {
        (8...256).contains(key.utf8.count) && key.utf8.allSatisfy { (0x21...0x7e).contains($0) }
    }

    /// Asks the backend which project `key` writes to (5 s timeout). Answers are bounded (64 KiB) and checked;
    /// anything but 200 with a project, 401 or 403 is `unreachable`.
    static func fetch(url: String, key: String) async -> Outcome {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        request.headers.add(name: "Authorization", value: "Bearer \(key)")
        request.headers.add(name: "Accept", value: "application/json")
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            let body = try await response.body.collect(upTo: 64 << 10)
            let bytes = Data(body.readableBytesView)
            switch response.status.code {
            case 200:
                guard let project = projectOf(bytes) else { return .unreachable("the backend's answer to GET /api/auth/check has no project") }
                return .valid(project)
            case 401:
                return .refused(status: 401, message: messageOf(bytes) ?? "invalid, revoked or expired API key")
            case 403:
                return .refused(status: 403, message: messageOf(bytes) ?? "the API key lacks the 'ingest' scope")
            default:
                return .unreachable("the backend answered \(response.status.code) to GET /api/auth/check")
            }
        } catch {
            return .unreachable("the backend at \(url) cannot be reached: \(String(describing: error).prefix(200))")
        }
    }

    /// `{"project":{"id":…,"name":…}}`, each 1…256 bytes.
    static func projectOf(_ data: Data) -> KeyProject? {
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let p = root["project"] as? [String: Any],
              let id = p["id"] as? String, let name = p["name"] as? String,
              (1...256).contains(id.utf8.count), (1...256).contains(name.utf8.count) else { return nil }
        return KeyProject(id: id, name: name)
    }

    /// The backend's error message (`{"error":{"message":…}}` or `{"error":…}`), at most 300 characters.
    static func messageOf(_ data: Data) -> String? {
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        let m = (root["error"] as? [String: Any])?["message"] as? String ?? root["error"] as? String
        return m.map { String($0.prefix(300)) }
    }
}
