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
/// Every backend on the metadata database runs the loop: a delivery is claimed ('sending') under a
/// lease (owner, expiry, a heartbeat every third of it), so no other backend sends it while its
/// sender lives; a sender that stopped mid-send leaves its lease to run out and the delivery is sent
/// again (deliveries are at least once: receivers dedupe by `X-EvalForge-Delivery`). Only the
/// owner records an attempt's outcome.
final class WebhookDispatcher: Service, Sendable {
    private let db: any MetadataDatabase
    private let repo: EvalRepository
    private let http: OutboundHTTP
    private let settings: WebhookSettings
    private let lease: WorkLease
    private let logger: Logger
    /// Set when a delivery was enqueued; the loop checks it between short sleeps.
    private let woken = Mutex(false)
    private let delivered = Counter(label: "evalforge_eval_webhook_deliveries_total", dimensions: [("result", "delivered")])
    private let failedAttempts = Counter(label: "evalforge_eval_webhook_deliveries_total", dimensions: [("result", "attempt_failed")])

    init(repo: EvalRepository, http: OutboundHTTP, settings: WebhookSettings, lease: WorkLease, logger: Logger) {
        self.db = repo.db
        self.lease = lease
        self.repo = repo
        self.http = http
        self.settings = settings
        self.logger = logger
    }

    /// Records one delivery per enabled webhook of the project subscribed to `event`, inside the
    /// caller's write transaction: the run engine enqueues a run's events in the transaction that
    /// changes the run, so each is recorded once across backends and none is lost to a crash right
    /// after the change. Returns the deliveries recorded (the caller wakes the loop with `wake`).
    @discardableResult
    static func enqueue(_ c: any MetadataConnection, projectID: String, event: String, data: JSON) throws -> Int {
        let now = nowMs()
        var n = 0
        for r in try c.query("SELECT id, events FROM eval_webhooks WHERE project_id = ? AND enabled = 1 ORDER BY created_unix_ms", [.text(projectID)]) {
            let events = decodeJSON([String].self, r[1].string) ?? []
            guard events.isEmpty || events.contains(event) else { continue }
            let id = newID("dlv")
            let payload = JSON.object(["id": .string(id), "event": .string(event), "createdAt": .number(Double(now)), "data": data]).text
            try c.run("INSERT INTO eval_deliveries (id, webhook_id, project_id, event, payload, status, next_attempt_unix_ms, created_unix_ms, updated_unix_ms) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                      [.text(id), r[0], .text(projectID), .text(event), .text(payload), .integer(now), .integer(now), .integer(now)])
            n += 1
        }
        return n
    }

    /// Wakes the delivery loop (deliveries were recorded).
    func wake() { wakeUp() }

    /// Sends a `webhook.test` event now (one attempt, answered synchronously); retries follow the schedule.
    func test(projectID: String, webhookID: String) async throws -> Delivery {
        guard let hook = try await repo.webhooks(projectID).first(where: { $0.id == webhookID }) else { throw EvaluationError.notFound("webhook '\(webhookID)' does not exist in this project") }
        let id = newID("dlv")
        let now = nowMs()
        let payload = JSON.object(["id": .string(id), "event": "webhook.test", "createdAt": .number(Double(now)), "data": ["webhookId": .string(hook.id)]]).text
        let (owner, until) = (lease.owner, lease.until(now))
        try await db.write { c in
            try c.run("""
                INSERT INTO eval_deliveries (id, webhook_id, project_id, event, payload, status, next_attempt_unix_ms, created_unix_ms, updated_unix_ms, owner, lease_until_ms)
                VALUES (?, ?, ?, 'webhook.test', ?, 'sending', ?, ?, ?, ?, ?)
                """, [.text(id), .text(hook.id), .text(projectID), .text(payload), .integer(now), .integer(now), .integer(now), .text(owner), .integer(until)])
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
        // No reset at start: a delivery left 'sending' by a stopped process is claimed again when
        // its lease runs out, by whichever backend comes first.
        try await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.lease.heartbeat("webhook deliveries", logger: self.logger) { try await self.extend() } }
                await self.loop()
                group.cancelAll()
            }
        }
        // A graceful stop: deliveries this process still holds are due again at once, elsewhere (in
        // a task of its own: a cancelled task's metadata writes are dropped before they run).
        let (owner, db) = (lease.owner, self.db)
        await Task {
            _ = try? await db.write { c in
                try c.run("UPDATE eval_deliveries SET status = 'pending', owner = NULL, lease_until_ms = 0 WHERE status = 'sending' AND owner = ?", [.text(owner)])
            }
        }.value
    }

    /// The heartbeat: extends the lease of every delivery this process is sending.
    private func extend() async throws {
        let (owner, until) = (lease.owner, lease.until())
        try await db.claimWrite { c in
            try c.run("UPDATE eval_deliveries SET lease_until_ms = ? WHERE status = 'sending' AND owner = ?", [.integer(until), .text(owner)])
        }
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

    /// Claims due deliveries — pending ones whose attempt is due, and 'sending' ones whose lease ran
    /// out (their sender stopped) — under this process's lease, and returns them with their
    /// webhook's URL and secret. On Postgres, rows another backend is claiming are skipped.
    private func claimDue() async throws -> [Pending] {
        let now = nowMs()
        let (owner, until) = (lease.owner, lease.until(now))
        let secrets = repo.secrets
        return try await db.claimWrite { c in
            let rows = try c.query("""
                SELECT d.id, w.url, w.secret, d.event, d.payload, d.attempts, d.log FROM eval_deliveries d JOIN eval_webhooks w ON w.id = d.webhook_id
                WHERE (d.status = 'pending' AND d.next_attempt_unix_ms <= ?) OR (d.status = 'sending' AND d.lease_until_ms <= ?)
                ORDER BY d.next_attempt_unix_ms LIMIT 64
                """ + c.dialect.skipLocked(of: "d"), [.integer(now), .integer(now)])
            for r in rows { try c.run("UPDATE eval_deliveries SET status = 'sending', owner = ?, lease_until_ms = ? WHERE id = ?", [.text(owner), .integer(until), r[0]]) }
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
        let owner = lease.owner
        // Only while this process still holds the delivery (its lease did not run out and another
        // backend did not claim it meanwhile): each attempt is recorded by its sender alone.
        _ = try? await db.write { c in
            try c.run("""
                UPDATE eval_deliveries SET status = ?, attempts = ?, next_attempt_unix_ms = ?, last_status_code = ?, last_error = ?, log = ?, updated_unix_ms = ?, owner = NULL, lease_until_ms = 0
                WHERE id = ? AND status = 'sending' AND owner = ?
                """, [.text(finalStatus), .integer(Int64(attempts)), .integer(nextAt), code.map { .integer(Int64($0)) } ?? .null, .text(reason), .text(logText), .integer(nowMs()), .text(d.id), .text(owner)])
        }
        if newStatus == "pending" { wakeUp() }
    }
}
