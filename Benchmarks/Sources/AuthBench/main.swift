// The authentication + rate limiting micro-benchmark (`scripts/bench auth`): what the backend's
// APIKeyMiddleware and RateLimitMiddleware do per request, measured in-process on a real metadata
// file (SQLite, a temporary data directory): the admin-token check and the key lookup by SHA-256,
// then the budget's subject (tier cache) and one unit of the request budget (local bucket; the
// shared counter is leased once per 1/64 of the window's capacity). Prints one JSON line last.
// Usage: AuthBench [--requests N] [--per-minute N]
import Backend
import Foundation
import Logging

func argument(_ name: String, _ fallback: Int) -> Int {
    let a = CommandLine.arguments
    if let i = a.firstIndex(of: name), i + 1 < a.count, let v = Int(a[i + 1]), v > 0 { return v }
    return fallback
}

func log(_ s: String) { FileHandle.standardError.write(Data(("auth-bench: " + s + "\n").utf8)) }

let requests = argument("--requests", 200_000)
let perMinute = Int64(argument("--per-minute", 640_000))
let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-auth-bench-\(UUID().uuidString)").path
defer { try? FileManager.default.removeItem(atPath: dir) }

var logger = Logger(label: "auth-bench")
logger.logLevel = .error
var c = BackendConfiguration(host: "127.0.0.1", port: 0, dataDirectory: dir)
c.adminToken = "auth-bench-admin-token-0123456789"
var tiers = RateLimitTiers()
// A tier whose per-minute budget the run does not exhaust: every request is admitted, and the
// shared counter is leased every perMinute/64 requests, as in steady traffic below the limit.
tiers.tiers["bench"] = RateLimitTier(name: "bench", limits: [.requests: RateLimit(perMinute: perMinute, perDay: perMinute * 10_000)])
tiers.defaultTier = "bench"
c.rateLimits = tiers
let services = try await BackendApp.makeServices(configuration: c, logger: logger)
let key = try await services.projects.createKey(projectID: "default", name: "bench").key
let limiter = services.rateLimiter

func nowNs() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

// Warm-up: caches, SQLite statements, first leases.
for _ in 0..<2_000 {
    _ = try await services.projects.authenticateKey(key)
    _ = await limiter.subject(projectID: "default", keyID: nil, isInstanceAdmin: false)
}

var authNs: UInt64 = 0, limitNs: UInt64 = 0
var refused = 0
// Minute windows are UTC-aligned: a run crossing a minute starts a fresh window, which is fine
// (the budget is not exhausted either way).
for _ in 0..<requests {
    let t0 = nowNs()
    let isAdmin = try await services.projects.isAdminToken(key)
    let found = try await services.projects.authenticateKey(key)
    let t1 = nowNs()
    if let subject = await limiter.subject(projectID: found?.project.id, keyID: found?.keyID, isInstanceAdmin: isAdmin) {
        if await !limiter.consume(subject, .requests, 1).allowed { refused += 1 }
    }
    let t2 = nowNs()
    authNs += t1 - t0
    limitNs += t2 - t1
}
await services.store.shutdown()
let n = Double(requests)
let auth = Double(authNs) / n / 1000, limit = Double(limitNs) / n / 1000
log("\(requests) requests: authentication \(String(format: "%.2f", auth)) µs, rate limiting \(String(format: "%.2f", limit)) µs per request; \(refused) refused")
let out: [String: Any] = [
    "bench": "auth", "requests": requests, "per_minute_limit": perMinute, "refused": refused,
    "us_per_request_auth": (auth * 100).rounded() / 100, "us_per_request_rate_limit": (limit * 100).rounded() / 100,
    "us_per_request": ((auth + limit) * 100).rounded() / 100,
    "leases_per_request": 1.0 / Double(max(1, perMinute / 64)),
]
print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
