import EvalForgeCore
import EvalForgeCrypto
import EvalForgeStore
import Foundation
import Testing
@testable import Evaluation

/// Provider API keys and headers, `http` target headers and webhook secrets are sealed with
/// AES-GCM at rest (docs/security.md, "Secrets at rest"): the SQLite file never holds them, the
/// API shows hints only, plain rows of older versions are sealed at start, a wrong key stops the
/// start with a message saying what to do, and an old key re-seals with the new one.
@Suite("Secrets at rest", .serialized)
struct SecretsAtRestTests {
    static let project = "p"
    static let apiKey = "sk-live-APIKEYSECRET-0123456789"
    static let header = "org-HEADERSECRET-abcdef"
    static let targetHeader = "Bearer TARGETSECRET-token-42"
    static let webhookSecret = "whsec-WEBHOOKSECRET-value-99"
    static let all = [apiKey, header, targetHeader, webhookSecret]

    static func keyring(_ seed: UInt8, previous: [UInt8] = []) throws -> SecretKeyring {
        try SecretKeyring(current: [UInt8](repeating: seed, count: 32), previous: previous.map { [UInt8](repeating: $0, count: 32) })
    }

    static func settings(_ keys: SecretKeyring?) -> EvaluationSettings {
        var s = EvaluationSettings(webhooks: .init(retrySchedule: [], timeout: .milliseconds(400)), outbound: .testLoopback)
        s.secrets = keys
        return s
    }

    /// Every byte of the metadata file and its WAL.
    static func rawBytes(_ dir: String) -> Data {
        ["/meta.sqlite", "/meta.sqlite-wal"].reduce(Data()) { $0 + ((try? Data(contentsOf: URL(fileURLWithPath: dir + $1))) ?? Data()) }
    }

    static func storeEverySecret(_ service: EvaluationService) async throws {
        _ = try await service.putProvider(projectID: project, ProviderConfig(name: "judge", kind: .openai, baseURL: "http://127.0.0.1:9/v1", apiKey: apiKey, model: "m", headers: ["OpenAI-Organization": header]))
        _ = try await service.createWebhook(projectID: project, url: "http://127.0.0.1:9/hook", secret: webhookSecret, events: ["run.completed"])
        _ = try await service.putEvaluator(projectID: project, .init(name: "len", type: "length", max: 1000))
        let ds = try await service.createDataset(projectID: project, name: "d", items: items(2))
        let e = try await service.createExperiment(projectID: project, name: "e", datasetID: ds.id, target: Target(type: "http", url: "http://127.0.0.1:9/answer", headers: ["Authorization": targetHeader]), evaluators: ["len"], concurrency: 1)
        #expect(e.target.headers?["Authorization"] == "••••" + String(targetHeader.suffix(4)), "the create answer masks too")
        _ = try await service.startRun(projectID: project, experimentID: e.id)  // the run's configuration snapshot holds the target
    }

    @Test("the raw SQLite file holds no secret; the API shows hints; the secrets are used in the clear")
    func sealedOnDiskMaskedInTheAPI() async throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await Runner(dir: dir, settings: Self.settings(nil))
        try await Self.storeEverySecret(r.service)

        let providers = try await r.service.listProviders(projectID: Self.project)
        #expect(providers.first?.apiKey == "••••" + String(Self.apiKey.suffix(4)))
        #expect(providers.first?.headers["OpenAI-Organization"] == "••••" + String(Self.header.suffix(4)))
        #expect(try await r.service.listWebhooks(projectID: Self.project).first?.secret == "••••" + String(Self.webhookSecret.suffix(4)))
        #expect(try await r.service.listExperiments(projectID: Self.project).first?.target.headers?["Authorization"] == "••••" + String(Self.targetHeader.suffix(4)))
        // Inside, the runner reads them in the clear (to call the provider, sign webhooks, call the target).
        let repo = r.service.repo
        #expect(try await repo.providers(Self.project).first?.apiKey == Self.apiKey)
        #expect(try await repo.webhooks(Self.project).first?.secret == Self.webhookSecret)
        let runID = try #require(try await repo.runs(Self.project).first?.id)
        #expect(try await repo.runConfig(runID)?.target.headers?["Authorization"] == Self.targetHeader)
        await r.stop()

        let raw = Self.rawBytes(dir)
        #expect(raw.count > 0)
        for secret in Self.all {
            #expect(raw.range(of: Data(secret.utf8)) == nil, "\(secret) is in the metadata file")
        }
        #expect(raw.range(of: Data(SecretKeyring.prefix.utf8)) != nil, "sealed values are there instead")
        // Without a configured key: generated beside the metadata file, owner-only.
        #expect(OwnerOnlyFiles.mode(dir + "/secrets.key") == 0o600)
    }

    @Test("plain-text rows of an older version are sealed at start, and leave no trace in the file")
    func plainRowsAreSealedAtStart() async throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var r = try await Runner(dir: dir, settings: Self.settings(try Self.keyring(1)))
        await r.stop()
        // What an older version wrote: the secrets as they came.
        let db = try SQLiteDatabase(path: dir + "/meta.sqlite")
        let plain = ProviderConfig(name: "old", kind: .openai, baseURL: "http://127.0.0.1:9/v1", apiKey: Self.apiKey, model: "m", headers: ["X-Org": Self.header])
        try await db.write { c in
            try c.run("INSERT INTO eval_providers (project_id, name, config, created_unix_ms) VALUES (?, 'old', ?, 1)", [.text(Self.project), .text(encodeJSON(plain))])
            try c.run("INSERT INTO eval_webhooks (id, project_id, url, secret, events, enabled, created_unix_ms) VALUES ('wh_old', ?, 'http://127.0.0.1:9/h', ?, '[]', 1, 1)", [.text(Self.project), .text(Self.webhookSecret)])
            try c.run("INSERT INTO eval_experiments (id, project_id, name, dataset_id, target, evaluators, concurrency, created_unix_ms) VALUES ('exp_old', ?, 'e', 'ds', ?, '[]', 1, 1)",
                      [.text(Self.project), .text(encodeJSON(Target(type: "http", url: "http://127.0.0.1:9/a", headers: ["Authorization": Self.targetHeader])))])
        }
        db.close()
        #expect(Self.rawBytes(dir).range(of: Data(Self.apiKey.utf8)) != nil, "the old version's file has the key in it")

        r = try await Runner(dir: dir, settings: Self.settings(try Self.keyring(1)))
        #expect(try await r.service.repo.providers(Self.project).first?.apiKey == Self.apiKey)
        #expect(try await r.service.repo.webhooks(Self.project).first?.secret == Self.webhookSecret)
        #expect(try await r.service.repo.experiments(Self.project).first?.target.headers?["Authorization"] == Self.targetHeader)
        await r.stop()
        let raw = Self.rawBytes(dir)
        for secret in Self.all {
            #expect(raw.range(of: Data(secret.utf8)) == nil, "\(secret) is still in the metadata file")
        }
    }

    @Test("a wrong key stops the start with what to do; the old key given for rotation re-seals with the new one")
    func wrongKeyAndRotation() async throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Self.keyring(1), b = try Self.keyring(2)
        var r = try await Runner(dir: dir, settings: Self.settings(a))
        try await Self.storeEverySecret(r.service)
        await r.stop()

        // Key B alone: a clear error naming both keys and the row, not a crash, nothing changed.
        do {
            let wrong = try await Runner(dir: dir, settings: Self.settings(b))
            await wrong.stop()
            Issue.record("the start with the wrong key succeeded")
        } catch let e as SecretsError {
            #expect(e.isUnknownKey)
            #expect(e.message.contains("sealed with secrets key \(a.current.id)") && e.message.contains("configured key is \(b.current.id)"), "\(e.message)")
            #expect(e.message.contains("--secrets-old-key-file") && e.message.contains("provider 'judge'"), "\(e.message)")
            for secret in Self.all { #expect(!e.message.contains(secret)) }
        }
        // Damage (a sealed value altered): also an error naming the row.
        let db = try SQLiteDatabase(path: dir + "/meta.sqlite")
        let sealed = try #require(try await db.read { c in try c.scalar("SELECT secret FROM eval_webhooks")?.string })
        try await db.write { c in _ = try c.run("UPDATE eval_webhooks SET secret = ?", [.text(String(sealed.dropLast(6)) + "AAAAAA")]) }
        do {
            _ = try await Runner(dir: dir, settings: Self.settings(a))
            Issue.record("the start with a damaged secret succeeded")
        } catch let e as SecretsError {
            #expect(!e.isUnknownKey && e.message.contains("does not decrypt") && e.message.contains("webhook"), "\(e.message)")
        }
        try await db.write { c in _ = try c.run("UPDATE eval_webhooks SET secret = ?", [.text(sealed)]) }
        db.close()

        // Rotation: B current, A given as old: everything is re-sealed with B at start.
        r = try await Runner(dir: dir, settings: Self.settings(try Self.keyring(2, previous: [1])))
        let stored = try await r.metadata.read { c in
            try c.query("SELECT config FROM eval_providers UNION ALL SELECT secret FROM eval_webhooks UNION ALL SELECT target FROM eval_experiments UNION ALL SELECT config FROM eval_runs").map { $0[0].string ?? "" }
        }
        await r.stop()
        #expect(stored.count == 4)
        for text in stored {
            #expect(text.contains(SecretKeyring.prefix + b.current.id + ":") && !text.contains(SecretKeyring.prefix + a.current.id + ":"), "not re-sealed with the new key: \(text.prefix(200))")
        }
        // From now on B alone is enough.
        r = try await Runner(dir: dir, settings: Self.settings(b))
        #expect(try await r.service.repo.providers(Self.project).first?.apiKey == Self.apiKey)
        #expect(try await r.service.repo.webhooks(Self.project).first?.secret == Self.webhookSecret)
        await r.stop()
    }

    @Test("sealing: a fresh nonce per value, tampering detected, bad keys refused with what is expected")
    func keyringBasics() throws {
        let k = try Self.keyring(7)
        let x = try k.seal("secret"), y = try k.seal("secret")
        #expect(x != y && x.hasPrefix(SecretKeyring.prefix + k.current.id + ":"))
        #expect(try k.open(x) == "secret" && k.open("legacy plain") == "legacy plain" && k.seal("") == "")
        #expect(throws: SecretsError.self) { try k.open(SecretKeyring.prefix + k.current.id + ":not-base64!") }
        #expect(throws: SecretsError.self) { try SecretKeyring.decodeKey(base64: "c2hvcnQ=", source: "EVALFORGE_SECRETS_KEY") }
        #expect(throws: SecretsError.self) { try SecretKeyring(current: [1, 2, 3]) }
        let key = Data([UInt8](repeating: 9, count: 32)).base64EncodedString()
        #expect(try SecretKeyring.decodeKey(base64: key + "\n", source: "x") == [UInt8](repeating: 9, count: 32))
    }
}
