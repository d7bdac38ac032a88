import EvalForgeCrypto
import EvalForgeStore
import Foundation

/// Which values are secrets at rest and how they are sealed: a provider's `apiKey` and header
/// values, an `http` target's header values (in experiments and in runs' configuration snapshots)
/// and a webhook's `secret`. The surrounding JSON stays readable; only those values are replaced by
/// their `SecretKeyring` seal. docs/security.md, "Secrets at rest".
enum SecretsAtRest {
    static func seal(_ p: ProviderConfig, _ k: SecretKeyring) throws -> ProviderConfig {
        var p = p
        p.apiKey = try k.seal(p.apiKey)
        p.headers = try p.headers.mapValues { v in try k.seal(v) }
        return p
    }

    static func open(_ p: ProviderConfig, _ k: SecretKeyring) throws -> ProviderConfig {
        var p = p
        p.apiKey = try k.open(p.apiKey)
        p.headers = try p.headers.mapValues { v in try k.open(v) }
        return p
    }

    static func seal(_ t: Target, _ k: SecretKeyring) throws -> Target {
        var t = t
        t.headers = try t.headers?.mapValues { v in try k.seal(v) }
        return t
    }

    static func open(_ t: Target, _ k: SecretKeyring) throws -> Target {
        var t = t
        t.headers = try t.headers?.mapValues { v in try k.open(v) }
        return t
    }

    /// Opens every sealed or plain secret of the metadata file and seals again those that are plain
    /// text (rows from before encryption) or sealed with an old key (rotation), in one transaction.
    /// Returns how many values were (re-)sealed. A value that does not open (a key that is not
    /// configured, or damage) throws, naming the row, before anything is changed.
    static func resealAll(_ db: any MetadataDatabase, _ k: SecretKeyring) async throws -> Int {
        let count = try await db.write { c in
            // SQLite: freed cell space is zeroed, so the plain text replaced here does not linger in
            // pages. (Postgres keeps old row versions until VACUUM: docs/storage.md says so.)
            if c.dialect == .sqlite { try c.execute("PRAGMA secure_delete = ON") }
            defer { if c.dialect == .sqlite { try? c.execute("PRAGMA secure_delete = OFF") } }
            var count = 0
            /// The value to store for `stored`: itself when sealed with the current key (after
            /// checking it opens), else its plaintext sealed anew.
            func reseal(_ stored: String, _ place: @autoclosure () -> String) throws -> String {
                do {
                    let plain = try k.open(stored)
                    guard k.needsReseal(stored) else { return stored }
                    count += 1
                    return try k.seal(plain)
                } catch {
                    throw SecretsError.located(error, in: place())
                }
            }
            for r in try c.query("SELECT project_id, name, config FROM eval_providers") {
                guard let p = decodeJSON(ProviderConfig.self, r[2].string) else { continue }
                let place = "provider '\(p.name)' of project '\(r[0].string ?? "")'"
                var q = p
                q.apiKey = try reseal(p.apiKey, place + ", apiKey")
                for (name, v) in p.headers { q.headers[name] = try reseal(v, place + ", header \(name)") }
                if q != p {
                    try c.run("UPDATE eval_providers SET config = ? WHERE project_id = ? AND name = ?", [.text(encodeJSON(q)), r[0], r[1]])
                }
            }
            for r in try c.query("SELECT id, secret FROM eval_webhooks") {
                let old = r[1].string ?? ""
                let new = try reseal(old, "webhook '\(r[0].string ?? "")', secret")
                if new != old { try c.run("UPDATE eval_webhooks SET secret = ? WHERE id = ?", [.text(new), r[0]]) }
            }
            for r in try c.query("SELECT id, target FROM eval_experiments WHERE target LIKE '%\"headers\"%'") {
                guard let t = decodeJSON(Target.self, r[1].string), let headers = t.headers else { continue }
                var u = t
                for (name, v) in headers { u.headers?[name] = try reseal(v, "experiment '\(r[0].string ?? "")', target header \(name)") }
                if u != t { try c.run("UPDATE eval_experiments SET target = ? WHERE id = ?", [.text(encodeJSON(u)), r[0]]) }
            }
            for r in try c.query("SELECT id, config FROM eval_runs WHERE config LIKE '%\"headers\"%'") {
                guard let config = decodeJSON(RunConfig.self, r[1].string), let headers = config.target.headers else { continue }
                var u = config
                for (name, v) in headers { u.target.headers?[name] = try reseal(v, "run '\(r[0].string ?? "")', target header \(name)") }
                if u != config { try c.run("UPDATE eval_runs SET config = ? WHERE id = ?", [.text(encodeJSON(u)), r[0]]) }
            }
            return count
        }
        // The replaced plain text must not stay behind in the WAL's old frames either.
        if count > 0, let file = db as? SQLiteDatabase { try await file.checkpointTruncatingWAL() }
        return count
    }
}

extension SecretsError {
    /// `error` with the row it happened in, for the start-up message.
    static func located(_ error: any Error, in place: String) -> SecretsError {
        let message = (error as? SecretsError)?.message ?? "\(error)"
        if let e = error as? SecretsError, e.isUnknownKey { return .unknownKey("secrets at rest (\(place)): \(message)") }
        return .damaged("secrets at rest (\(place)): \(message)")
    }
}

extension Experiment {
    /// The experiment with its target's header values as hints (API answers).
    var redacted: Experiment {
        var e = self
        e.target.headers = e.target.headers?.mapValues(ProviderConfig.hint)
        return e
    }
}
