@testable import Backend
import EvalForgeCore
import EvalForgeCrypto
@testable import Evaluation
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The backend's secrets key (docs/security.md, "The secrets key"): where it comes from, the errors
/// a bad one gives at start, and the API's hints over HTTP.
@Suite("Backend secrets key")
struct SecretsKeyTests {
    static let apiKey = "sk-proj-BACKENDSECRET-98765"

    @Test("no key configured: <data-dir>/secrets.key is generated owner-only and reused; the API answers hints")
    func generatedKeyAndMaskedAPI() async throws {
        let c = TestBackend.configuration()
        var services = try await BackendApp.makeServices(configuration: c, logger: TestBackend.logger)
        #expect(OwnerOnlyFiles.mode(c.defaultSecretsKeyPath) == 0o600)
        let key = try SecretKeyring.readKeyFile(c.defaultSecretsKeyPath)
        let app = Application(router: BackendApp.buildRouter(services: services), logger: TestBackend.logger)
        try await app.test(.router) { client in
            let body = #"{"name":"j","kind":"openai","baseURL":"http://127.0.0.1:9/v1","apiKey":"\#(Self.apiKey)","model":"m","headers":{"X-Org":"org-HEADER-0000000042"}}"#
            let put = try await client.execute(uri: "/api/providers", method: .post, headers: [.authorization: "Bearer \(TestBackend.apiKey)", .contentType: "application/json"], body: ByteBuffer(string: body)) { ($0.status, String(buffer: $0.body)) }
            #expect(put.0 == .created && !put.1.contains(Self.apiKey) && put.1.contains("8765"))
            let list = try await client.get("/api/providers", key: TestBackend.apiKey)
            #expect(list.status == .ok && !list.body.contains(Self.apiKey) && !list.body.contains("org-HEADER-0000000042"), "\(list.body)")
            #expect(list.body.contains("••••8765") && list.body.contains("••••0042"))
        }
        await services.store.shutdown()
        await services.metadata.shutdown()
        // A restart reads the same key file: the provider's key opens.
        services = try await BackendApp.makeServices(configuration: c, logger: TestBackend.logger)
        #expect(try SecretKeyring.readKeyFile(c.defaultSecretsKeyPath) == key)
        #expect(try await services.evaluation.repo.providers("default").first?.apiKey == Self.apiKey)
        await TestStore.tearDown(services)
    }

    @Test("a malformed key file or variable stops the start naming it; another key names both key ids")
    func badKeys() async throws {
        var c = TestBackend.configuration()
        defer { try? FileManager.default.removeItem(atPath: c.dataDirectory) }
        try OwnerOnlyFiles.createDirectory(c.dataDirectory)
        let file = c.dataDirectory + "/k"
        try OwnerOnlyFiles.write(Array("not a key\n".utf8), to: file)
        c.secretsKeyFile = file
        await #expect { try await BackendApp.makeServices(configuration: c, logger: TestBackend.logger) } throws: { e in
            (e as? SecretsError)?.message.contains("secrets key file \(file)") == true
        }
        c.secretsKeyFile = nil
        c.secretsKey = "c2hvcnQ="
        await #expect { try await BackendApp.makeServices(configuration: c, logger: TestBackend.logger) } throws: { e in
            (e as? SecretsError)?.message.contains("EVALFORGE_SECRETS_KEY") == true
        }
    }
}
