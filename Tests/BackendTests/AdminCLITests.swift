import AsyncHTTPClient
import Foundation
import HTTPTypes
import NIOCore
import TestProcesses
import Testing

/// `evalforge admin …` against a real `evalforge backend` process (issue 15 §1): the admin token the
/// backend generates and prints once, projects, keys (the new key alone on the last line), rotation,
/// revocation, the audit log, refusals with the backend's reason and a non-zero exit.
@Suite("evalforge admin CLI against a real backend", .serialized)
struct AdminCLITests {
    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
        var lastLine: String { stdout.split(separator: "\n").last.map(String.init) ?? "" }
    }

    /// Runs the evalforge binary with `arguments`, waiting for it to exit (at most 60 s).
    static func evalforge(_ arguments: [String], token: String?, port: Int) async throws -> Run {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
        p.arguments = arguments + ["--backend", "http://127.0.0.1:\(port)"]
        var env = ProcessInfo.processInfo.environment
        env["EVALFORGE_ADMIN_TOKEN"] = token
        p.environment = env
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both pipes off the cooperative pool (they block until the process closes them).
        let (o, e) = await Task.detached {
            let o = out.fileHandleForReading.readDataToEndOfFile()
            let e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (o, e)
        }.value
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    static func startBackend(port: Int, dir: String, log: String) throws -> ChildProcess {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
        p.arguments = ["backend", "--operator-port", "0", "--port", "\(port)", "--data-dir", dir, "--log-level", "error"]
        var env = ProcessInfo.processInfo.environment
        env["EVALFORGE_CLICKHOUSE_URL"] = nil
        env["EVALFORGE_ADMIN_TOKEN"] = nil
        env["EVALFORGE_API_KEY"] = nil
        p.environment = env
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: log)
        try p.run()
        return p
    }

    static func status(_ path: String, key: String, port: Int) async throws -> HTTPResponse.Status {
        var r = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        r.headers.add(name: "Authorization", value: "Bearer \(key)")
        let response = try await HTTPClient.shared.execute(r, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return HTTPResponse.Status(code: Int(response.status.code))
    }

    @Test("projects and keys through the CLI: create, list, rotate, revoke, rename, delete, audit", .timeLimit(.minutes(3)))
    func cliRoundTrip() async throws {
        try #require(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-admin-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = TestProcesses.freeLoopbackPort()
        var backend = try Self.startBackend(port: port, dir: dir, log: dir + "/out-1.txt")
        defer { if backend.isRunning { backend.terminate(); backend.waitUntilExit() } }
        #expect(await TestProcesses.waitHealthy(port))

        // The generated admin token, printed once on stdout.
        let printed = (try? String(contentsOfFile: dir + "/out-1.txt", encoding: .utf8)) ?? ""
        let lines = printed.split(separator: "\n").map(String.init)
        let at = try #require(lines.firstIndex { $0.contains("generated the instance admin token") }, "stdout: \(printed)")
        let token = try #require(lines.count > at + 1 ? lines[at + 1].trimmingCharacters(in: .whitespaces) : nil)
        #expect(token.hasPrefix("efadmin_"))

        let created = try await Self.evalforge(["admin", "projects", "create", "CLI Team"], token: token, port: port)
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.stdout.contains("cli-team"))
        let list = try await Self.evalforge(["admin", "projects", "list"], token: token, port: port)
        #expect(list.stdout.contains("cli-team") && list.stdout.contains("CLI Team") && list.stdout.contains("default"))

        let key = try await Self.evalforge(["admin", "keys", "create", "--project", "CLI Team", "--scope", "ingest", "--scope", "read", "--name", "ci", "--expires-in", "7"], token: token, port: port)
        #expect(key.status == 0, "\(key.stderr)")
        let secret = key.lastLine
        #expect(secret.hasPrefix("ef_") && !secret.contains(" "), "the key alone on the last line: \(key.stdout)")
        let keyID = try #require(key.stdout.split(separator: " ").first { $0.hasPrefix("key_") }.map(String.init))
        #expect(try await Self.status("/api/traces", key: secret, port: port) == .ok)
        #expect(try await Self.status("/api/datasets", key: secret, port: port) == .forbidden, "no evaluate scope")

        let unknown = try await Self.evalforge(["admin", "keys", "create", "--project", "cli-team", "--scope", "root"], token: token, port: port)
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("'root'"), "\(unknown.stderr)")
        let noProject = try await Self.evalforge(["admin", "keys", "list", "--project", "ghost"], token: token, port: port)
        #expect(noProject.status != 0 && noProject.stderr.contains("ghost"))
        let wrongToken = try await Self.evalforge(["admin", "projects", "list"], token: "efadmin_not_the_right_token", port: port)
        #expect(wrongToken.status != 0 && wrongToken.stderr.contains("401"), "\(wrongToken.stderr)")

        let keys = try await Self.evalforge(["admin", "keys", "list", "--project", "cli-team"], token: token, port: port)
        #expect(keys.stdout.contains(keyID) && keys.stdout.contains("ingest,read") && !keys.stdout.contains(secret))

        let rotated = try await Self.evalforge(["admin", "keys", "rotate", keyID, "--overlap", "1"], token: token, port: port)
        #expect(rotated.status == 0, "\(rotated.stderr)")
        let newSecret = rotated.lastLine
        #expect(newSecret.hasPrefix("ef_") && newSecret != secret)
        #expect(try await Self.status("/api/traces", key: newSecret, port: port) == .ok)
        #expect(try await Self.status("/api/traces", key: secret, port: port) == .ok, "the old key works during the overlap")

        let revoked = try await Self.evalforge(["admin", "keys", "revoke", keyID], token: token, port: port)
        #expect(revoked.status == 0, "\(revoked.stderr)")
        #expect(try await Self.status("/api/traces", key: secret, port: port) == .unauthorized)

        let renamed = try await Self.evalforge(["admin", "projects", "rename", "cli-team", "CLI Team 2"], token: token, port: port)
        #expect(renamed.status == 0, "\(renamed.stderr)")

        // A restart does not print the token again, and it still works.
        backend.terminate()
        backend.waitUntilExit()
        backend = try Self.startBackend(port: port, dir: dir, log: dir + "/out-2.txt")
        #expect(await TestProcesses.waitHealthy(port))
        #expect(!((try? String(contentsOfFile: dir + "/out-2.txt", encoding: .utf8)) ?? "").contains("admin token"))

        let audit = try await Self.evalforge(["admin", "audit", "--project", "cli-team"], token: token, port: port)
        #expect(audit.status == 0, "\(audit.stderr)")
        for action in ["project.create", "key.create", "key.rotate", "key.revoke", "project.rename"] {
            #expect(audit.stdout.contains(action), "audit lacks \(action): \(audit.stdout)")
        }
        let refused = try await Self.evalforge(["admin", "projects", "delete", "cli-team"], token: token, port: port)
        #expect(refused.status != 0, "delete needs --yes")
        let deleted = try await Self.evalforge(["admin", "projects", "delete", "cli-team", "--yes"], token: token, port: port)
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(try await Self.status("/api/traces", key: newSecret, port: port) == .unauthorized)
        let after = try await Self.evalforge(["admin", "projects", "list"], token: token, port: port)
        #expect(!after.stdout.contains("cli-team"))
    }
}
