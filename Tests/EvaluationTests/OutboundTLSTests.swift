import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization
import TestProcesses
import Testing
@testable import Evaluation

/// HTTPS through the outbound policy (issue 15 §5): an allow-listed name is resolved once, and the TLS
/// connection goes to the checked address while TLS keeps the name (SNI, certificate validation).
/// The server is `openssl s_server` on 127.0.0.1 with a self-signed certificate for `localhost`,
/// created in the test; `-tlsextdebug` prints the ClientHello's extensions, so the test sees which
/// name the client asked for on the socket the checked address led to.
///
/// The request cannot complete: `OutboundHTTP` validates certificates against the system trust
/// roots (NIOSSL reads fixed CA paths, no environment variable) and has no way to add one, which is
/// right for production; and against s_server the client's handshake stalls after the ClientHello.
/// So the test asserts what the server on the checked address saw (the ClientHello, with the
/// original name as SNI), that no answer was accepted, and that refused URLs open no connection.
@Suite(.serialized) struct OutboundTLSTests {
    static let openssl = "/usr/bin/openssl"

    /// Runs `openssl arguments` to completion; returns its exit status.
    static func run(_ arguments: [String], in dir: String) throws -> Int32 {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: openssl)
        p.arguments = arguments
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// Polls `path` until it contains `text` (at most `seconds`).
    static func wait(for text: String, in path: String, seconds: Int = 15) async -> String {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            let s = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if s.contains(text) { return s }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    @Test("https to an allow-listed name: the TLS connection reaches the checked address with the name as SNI",
          .enabled(if: FileManager.default.isExecutableFile(atPath: openssl), "needs the openssl CLI (\(openssl)) for the TLS server"))
    func httpsGoesToTheCheckedAddress() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-outbound-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let made = try Self.run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
                                 "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"], in: dir)
        try #require(made == 0, "openssl req failed")

        let port = TestProcesses.freeLoopbackPort()
        let log = dir + "/server.txt"
        FileManager.default.createFile(atPath: log, contents: nil)
        let server = ChildProcess()
        server.executableURL = URL(fileURLWithPath: Self.openssl)
        // Bound to 127.0.0.1 only: a connection it sees went to that address.
        server.arguments = ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", "cert.pem", "-key", "key.pem", "-tlsextdebug", "-www"]
        server.currentDirectoryURL = URL(fileURLWithPath: dir)
        server.standardOutput = FileHandle(forWritingAtPath: log)
        server.standardError = FileHandle.nullDevice
        try server.run()
        // s_server does not exit on SIGTERM while a handshake is pending: SIGKILL.
        defer { if server.isRunning { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() } }
        try #require(await Self.wait(for: "ACCEPT", in: log).contains("ACCEPT"), "s_server did not start")

        let policy = try OutboundPolicy(allowList: "localhost:\(port)")
        let url = "https://localhost:\(port)/answer"
        // The name resolves once, to the loopback address the allow-list lets through.
        let checked = try await policy.check(url: url, field: "target.url")
        #expect(checked.host == "localhost" && checked.address == "127.0.0.1" && checked.port == port && checked.scheme == "https")

        let http = OutboundHTTP(policy: policy)
        // The call runs on its own task: against s_server the handshake stalls after the ClientHello
        // (no answer is ever accepted), so the test reads what the server saw, then stops it.
        let outcome = Mutex<String?>(nil)
        let call = Task {
            do {
                let r = try await http.execute(HTTPClientRequest(url: url), field: "target.url", timeout: .seconds(20), maxBodyBytes: 10_000)
                outcome.withLock { $0 = "answered \(r.status)" }
            } catch {
                outcome.withLock { $0 = "failed: \(error)" }
            }
        }
        // The server on the checked address got the ClientHello, with the original name as SNI.
        let seen = await Self.wait(for: ".localhost", in: log)
        #expect(seen.contains("TLS client extension \"server name\"") && seen.contains(".localhost"), "\(seen)")
        let hellos = seen.components(separatedBy: "\"server name\"").count - 1
        #expect(hellos >= 1)
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        // With the server gone the call ends without an answer (a self-signed certificate is never accepted).
        let deadline = ContinuousClock.now + .seconds(15)
        while outcome.withLock({ $0 }) == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        call.cancel()
        let result = outcome.withLock { $0 } ?? "still running"
        #expect(!result.hasPrefix("answered") && !result.contains("outbound policy"), "\(result)")

        // Not allow-listed: refused before any connection (the server sees no new ClientHello).
        let other = TestProcesses.freeLoopbackPort()
        await #expect(throws: OutboundError.self) {
            _ = try await http.execute(HTTPClientRequest(url: "https://localhost:\(other)/"), field: "target.url", timeout: .seconds(5), maxBodyBytes: 10)
        }
        await #expect(throws: OutboundError.self) {
            _ = try await http.execute(HTTPClientRequest(url: "https://127.0.0.1:\(port)/"), field: "target.url", timeout: .seconds(5), maxBodyBytes: 10)
        }
        let after = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").components(separatedBy: "\"server name\"").count - 1
        #expect(after == hellos, "refused calls opened no TLS connection")
    }
}
