import AsyncHTTPClient
import EvalForgeCore
import EvalForgeCrypto
import EvalForgeStore
import Foundation
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Synchronization

/// Webhook signatures: `X-EvalForge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
public enum WebhookSignature {
    public static let header = "X-EvalForge-Signature"

    public static func sign(body: String, secret: String, timestamp: Int64) -> String {
        "t=\(timestamp),v1=" + Digest.hmacSHA256Hex(key: secret, message: "\(timestamp).\(body)")
    }

    /// Verifies a signature header against the body; rejects timestamps more than `tolerance`
    /// seconds away from `now` (replay protection).
    public static func verify(header: String, body: String, secret: String, tolerance: Int64 = 300, now: Int64 = Int64(Date().timeIntervalSince1970)) -> Bool {
        var t: Int64?
        var sigs: [String] = []
        for part in header.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { continue }
            if kv[0] == "t" { t = Int64(kv[1]) } else if kv[0] == "v1" { sigs.append(String(kv[1])) }
        }
        // The header is the sender's: `now - t` must not overflow for t = Int64.min.
        guard let t else { return false }
        let (delta, overflow) = now.subtractingReportingOverflow(t)
        guard !overflow, delta.magnitude <= tolerance.magnitude else { return false }
        let want = Array(Digest.hmacSHA256Hex(key: secret, message: "\(t).\(body)").utf8)
        return sigs.contains { Digest.constantTimeEqual(Array($0.utf8), want) }
    }
}

/// Webhook delivery settings.
public struct WebhookSettings: Sendable {
    /// Waits before retries 1, 2, 3, …; after the last one the delivery is failed. Default 1 s, 5 s, 15 s, 60 s, 300 s.
    public var retrySchedule: [Duration]
    /// Per-attempt timeout (a receiver that hangs is cut off and retried). Default 10 s.
    public var timeout: Duration
    /// Deliveries attempted at once. Default 16.
    public var concurrency: Int

    public init(retrySchedule: [Duration] = [.seconds(1), .seconds(5), .seconds(15), .seconds(60), .seconds(300)], timeout: Duration = .seconds(10), concurrency: Int = 16) {
        self.retrySchedule = retrySchedule
        self.timeout = timeout
        self.concurrency = concurrency
    }
}

/// Durable webhook delivery: events are written to `eval_deliveries` (with the webhook's secret
/// applied at send time) and a background loop sends due deliveries, retrying on the schedule.
final class WebhookDispatcher: Service, Sendable {
    private let db: any MetadataDatabase
    private let repo: EvalRepository
    private let http: OutboundHTTP
    private let settings: WebhookSettings
    private let logger: Logger
    /// Set when a delivery was enqueued; the loop checks it between short sleeps.
    private let woken = Mutex(false)
    private let delivered = Counter(label: "evalforge_eval_webhook_deliveries_total", dimensions: [("result", "delivered")])
    private let failedAttempts = Counter(label: "evalforge_eval_webhook_deliveries_total", dimensions: [("result", "attempt_failed")])

    init(repo: EvalRepository, http: OutboundHTTP, settings: WebhookSettings, logger: Logger) {
        self.db = repo.db
        self.repo = repo
        self.http = http
        self.settings = settings
        self.logger = logger
    }

    /// Records one delivery per enabled webhook of the project subscribed to `event`.
    func enqueue(projectID: String, event: String, data: JSON) async {
        do {
            let hooks = try await repo.webhooks(projectID).filter { $0.enabled && ($0.events.isEmpty || $0.events.contains(event)) }
            guard !hooks.isEmpty else { return }
            let now = nowMs()
            try await db.write { c in
                for h in hooks {
                    let id = newID("dlv")
                    let payload = JSON.object(["id": .string(id), "event": .string(event), "createdAt": .number(Double(now)), "data": data]).text
                    try c.run("INSERT INTO eval_deliveries (id, webhook_id, project_id, event, payload, status, next_attempt_unix_ms, created_unix_ms, updated_unix_ms) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                              [.text(id), .text(h.id), .text(projectID), .text(event), .text(payload), .integer(now), .integer(now), .integer(now)])
                }
            }
            wakeUp()
        } catch {
            logger.error("webhook enqueue failed", metadata: ["event": "\(event)", "error": "\(error)"])
        }
    }

    /// Sends a `webhook.test` event now (one attempt, answered synchronously); retries follow the schedule.
    func test(projectID: String, webhookID: String) async throws -> Delivery {
        guard let hook = try await repo.webhooks(projectID).first(where: { $0.id == webhookID }) else { throw EvaluationError.notFound("webhook '\(webhookID)' does not exist in this project") }
        let id = newID("dlv")
        let now = nowMs()
        let payload = JSON.object(["id": .string(id), "event": "webhook.test", "createdAt": .number(Double(now)), "data": ["webhookId": .string(hook.id)]]).text
        try await db.write { c in
            try c.run("INSERT INTO eval_deliveries (id, webhook_id, project_id, event, payload, status, next_attempt_unix_ms, created_unix_ms, updated_unix_ms) VALUES (?, ?, ?, 'webhook.test', ?, 'sending', ?, ?, ?)",
                      [.text(id), .text(hook.id), .text(projectID), .text(payload), .integer(now), .integer(now), .integer(now)])
        }
        await attempt(Pending(id: id, url: hook.url, secret: hook.secret, event: "webhook.test", payload: payload, attempts: 0, log: "[]"))
        guard let d = try await repo.deliveries(projectID, webhookID: webhookID, limit: 1000).first(where: { $0.id == id }) else { throw EvaluationError.notFound("delivery vanished") }
        return d
    }

    struct Pending: Sendable {
        var id, url, secret, event, payload: String
        var attempts: Int
        var log: String
    }

    func run() async throws {
        // A delivery left 'sending' by a stopped process is due again.
        _ = try? await db.write { c in try c.run("UPDATE eval_deliveries SET status = 'pending' WHERE status = 'sending'") }
        try await cancelWhenGracefulShutdown { await self.loop() }
    }

    private func loop() async {
        while !Task.isCancelled {
            let due = (try? await claimDue()) ?? []
            if !due.isEmpty {
                await withTaskGroup(of: Void.self) { group in
                    var running = 0
                    for d in due {
                        if running >= settings.concurrency { await group.next(); running -= 1 }
                        group.addTask { await self.attempt(d) }
                        running += 1
                    }
                }
                continue
            }
            let next = (try? await nextDueMs()) ?? nil
            let deadline = min(nowMs() + 1000, next ?? Int64.max)
            // Sleep in short slices until the next retry is due or an event is enqueued.
            while nowMs() < deadline, !Task.isCancelled {
                if woken.withLock({ w in defer { w = false }; return w }) { break }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    private func wakeUp() { woken.withLock { $0 = true } }

    /// Longest wait a receiver's `Retry-After` can add before the next attempt.
    static let maxRetryAfter: Duration = .seconds(3600)

    private func nextDueMs() async throws -> Int64? {
        try await db.read { c in try c.scalar("SELECT MIN(next_attempt_unix_ms) FROM eval_deliveries WHERE status = 'pending'")?.int64 }
    }

    /// Marks due deliveries 'sending' and returns them with their webhook's URL and secret.
    private func claimDue() async throws -> [Pending] {
        let now = nowMs()
        let secrets = repo.secrets
        return try await db.write { c in
            let rows = try c.query("SELECT d.id, w.url, w.secret, d.event, d.payload, d.attempts, d.log FROM eval_deliveries d JOIN eval_webhooks w ON w.id = d.webhook_id WHERE d.status = 'pending' AND d.next_attempt_unix_ms <= ? ORDER BY d.next_attempt_unix_ms LIMIT 64", [.integer(now)])
            for r in rows { try c.run("UPDATE eval_deliveries SET status = 'sending' WHERE id = ?", [r[0]]) }
            // The secret is sealed at rest (a delivery row never holds it): opened here, at send time.
            return try rows.map { Pending(id: $0[0].string ?? "", url: $0[1].string ?? "", secret: try secrets.open($0[2].string ?? ""), event: $0[3].string ?? "", payload: $0[4].string ?? "", attempts: Int($0[5].int64 ?? 0), log: $0[6].string ?? "[]") }
        }
    }

    /// One attempt; records the outcome and schedules the next attempt or gives up.
    private func attempt(_ d: Pending) async {
        let ts = Int64(Date().timeIntervalSince1970)
        var request = HTTPClientRequest(url: d.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "evalforge-webhooks/1")
        request.headers.add(name: "X-EvalForge-Event", value: d.event)
        request.headers.add(name: "X-EvalForge-Delivery", value: d.id)
        request.headers.add(name: WebhookSignature.header, value: WebhookSignature.sign(body: d.payload, secret: d.secret, timestamp: ts))
        request.body = .bytes(ByteBuffer(string: d.payload))
        let start = ContinuousClock.now
        var status: Int?
        var failure = ""
        var retryAfter: Duration?
        do {
            // The answer is read (bounded) only to free the connection; nothing of it is stored.
            let response = try await http.execute(request, field: "webhook.url", timeout: .nanoseconds(max(1, Checked.nanoseconds(settings.timeout))), maxBodyBytes: 64 << 10)
            status = response.status
            if !(200..<300).contains(response.status) { failure = "receiver answered \(response.status)" + ((300..<400).contains(response.status) ? " (redirects are not followed)" : "") }
            if response.status == 429 || response.status == 503 {
                retryAfter = RetryAfter.parse(response.retryAfter, maximum: Self.maxRetryAfter)
            }
        } catch let e as OutboundError {
            failure = "refused: \(e.message)"
        } catch let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout {
            failure = "timeout: no answer within \(settings.timeout)"
        } catch {
            failure = "transport error: \(excerpt(String(describing: error)))"
        }
        let ms = Checked.milliseconds(start.duration(to: .now))
        // A stored row is read back, not trusted: a negative count must not index the schedule.
        let attempts = (max(0, d.attempts)).addingSaturated(1)
        var log = JSON.parse(d.log)?.arrayValue ?? []
        log.append(["attempt": .number(Double(attempts)), "at": .number(Double(nowMs())), "status": status.map { .number(Double($0)) } ?? .null, "error": .string(failure), "durationMs": .number(ms.rounded())])
        let ok = failure.isEmpty
        let newStatus: String
        var next = nowMs()
        if ok {
            newStatus = "delivered"
            delivered.increment()
        } else if attempts <= settings.retrySchedule.count {
            newStatus = "pending"
            // The schedule's wait, or longer when the receiver asked for it with Retry-After (bounded).
            let wait = max(settings.retrySchedule[attempts - 1], retryAfter ?? .zero)
            next = next.addingSaturated(Checked.nanoseconds(wait) / 1_000_000)
            failedAttempts.increment()
        } else {
            newStatus = "failed"
            failedAttempts.increment()
        }
        if !ok { logger.info("webhook delivery attempt failed", metadata: ["delivery": "\(d.id)", "attempt": "\(attempts)", "error": "\(failure)"]) }
        let logText = JSON.array(log).text
        let finalStatus = newStatus
        let nextAt = next
        let code = status
        let reason = failure
        _ = try? await db.write { c in
            try c.run("UPDATE eval_deliveries SET status = ?, attempts = ?, next_attempt_unix_ms = ?, last_status_code = ?, last_error = ?, log = ?, updated_unix_ms = ? WHERE id = ?",
                      [.text(finalStatus), .integer(Int64(attempts)), .integer(nextAt), code.map { .integer(Int64($0)) } ?? .null, .text(reason), .text(logText), .integer(nowMs()), .text(d.id)])
        }
        if newStatus == "pending" { wakeUp() }
    }
}
