import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// `evalforge admin`: manage projects, keys and read the audit log through the backend's admin API
/// (docs/access-control.md), authenticated with the instance admin token.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage projects and API keys, read the audit log (talks to the backend's admin API).",
        discussion: """
            Authenticates with the instance admin token from EVALFORGE_ADMIN_TOKEN (or --admin-token-file); \
            the backend is --backend (or EVALFORGE_BACKEND_URL, default http://127.0.0.1:3000). Projects, keys, scopes \
            and the audit log are described in docs/access-control.md.
            """,
        subcommands: [AdminProjects.self, AdminKeys.self, AdminAudit.self, AdminTiers.self])
}

/// Where the backend is and the admin token, shared by every `admin` subcommand.
struct AdminConnection: ParsableArguments {
    @Option(help: "Backend base URL (env EVALFORGE_BACKEND_URL; default http://127.0.0.1:3000).")
    var backend: String?

    @Option(help: "File holding the admin token (default: env EVALFORGE_ADMIN_TOKEN).")
    var adminTokenFile: String?

    func client() throws -> AdminClient {
        let env = ProcessInfo.processInfo.environment
        let base = (backend ?? env["EVALFORGE_BACKEND_URL"] ?? "http://127.0.0.1:3000").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard let u = URL(string: base), let scheme = u.scheme, ["http", "https"].contains(scheme), u.host != nil else {
            throw ValidationError("--backend '\(base)': expected http(s)://host:port")
        }
        var token: String
        if let adminTokenFile {
            guard let text = try? String(contentsOfFile: adminTokenFile, encoding: .utf8) else { throw ValidationError("--admin-token-file \(adminTokenFile): cannot read the file") }
            token = text
        } else if let t = env["EVALFORGE_ADMIN_TOKEN"], !t.isEmpty {
            token = t
        } else {
            throw ValidationError("no admin token: set EVALFORGE_ADMIN_TOKEN or pass --admin-token-file (the backend printed the token at its first start)")
        }
        token = token.trimmingCharacters(in: .whitespacesAndNewlines)
        return AdminClient(baseURL: base, token: token)
    }
}

/// A failed admin call: the backend's message and status, or why it could not be reached.
struct AdminCLIError: Error, CustomStringConvertible {
    let description: String
}

/// JSON over HTTP to `/api/admin`.
struct AdminClient {
    let baseURL: String
    let token: String

    /// Sends `method path` with an optional JSON body; returns the decoded JSON answer, or throws
    /// with the backend's error message.
    func call(_ method: HTTPMethod, _ path: String, body: [String: Any]? = nil) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: baseURL + "/api/admin" + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            let data = try JSONSerialization.data(withJSONObject: body)
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        } catch {
            throw AdminCLIError(description: "cannot reach the backend at \(baseURL): \(error)")
        }
        let buffer = try await response.body.collect(upTo: 16 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any]
        guard (200..<300).contains(Int(response.status.code)) else {
            let message = (json?["error"] as? String) ?? ((json?["error"] as? [String: Any])?["message"] as? String) ?? String(buffer: buffer).prefix(300).description
            throw AdminCLIError(description: "\(message) (HTTP \(response.status.code))")
        }
        return json ?? [:]
    }

    /// The id of the project whose id or name is `nameOrID`.
    func projectID(_ nameOrID: String) async throws -> String {
        let list = try await call(.GET, "/projects")["projects"] as? [[String: Any]] ?? []
        if let p = list.first(where: { $0["id"] as? String == nameOrID }) ?? list.first(where: { $0["name"] as? String == nameOrID }), let id = p["id"] as? String { return id }
        throw AdminCLIError(description: "no project with id or name '\(nameOrID)' (evalforge admin projects list)")
    }

    static func path(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? s }
}

/// Prints rows as aligned columns under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    func line(_ r: [String]) -> String {
        r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }
    print(line(header))
    for r in rows { print(line(r)) }
}

struct AdminProjects: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "projects", abstract: "Create, list, rename and delete projects.",
                                                    subcommands: [Create.self, List.self, Rename.self, Delete.self, SetTier.self, SetRetention.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a project (its id is derived from the name unless --id is given).")
        @OptionGroup var connection: AdminConnection
        @Argument(help: "Project name.") var name: String
        @Option(help: "Project id: lower-case letters, digits, '-' and '_'.") var id: String?

        func run() async throws {
            var body: [String: Any] = ["name": name]
            if let id { body["id"] = id }
            let p = try await connection.client().call(.POST, "/projects", body: body)
            print("created project \(p["id"] as? String ?? "?") (\(p["name"] as? String ?? name))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List projects.")
        @OptionGroup var connection: AdminConnection

        func run() async throws {
            let list = try await connection.client().call(.GET, "/projects")["projects"] as? [[String: Any]] ?? []
            printTable(["ID", "NAME", "RETENTION", "CREATED"], list.map { p in
                [p["id"] as? String ?? "", p["name"] as? String ?? "", AdminProjects.retentionText(p["retention_days"] as? Int ?? 0), p["created_at"] as? String ?? ""]
            })
        }
    }

    struct Rename: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a project (its id stays).")
        @OptionGroup var connection: AdminConnection
        @Argument(help: "Project id or name.") var project: String
        @Argument(help: "New name.") var newName: String

        func run() async throws {
            let client = try connection.client()
            let id = try await client.projectID(project)
            let p = try await client.call(.PATCH, "/projects/" + AdminClient.path(id), body: ["name": newName])
            print("renamed project \(id) to \(p["name"] as? String ?? newName)")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a project with its keys, telemetry, scores and evaluation data.")
        @OptionGroup var connection: AdminConnection
        @Argument(help: "Project id or name.") var project: String
        @Flag(help: "Confirm: the project's data is deleted for good.") var yes = false

        func run() async throws {
            guard yes else { throw ValidationError("deleting '\(project)' removes all its data; repeat with --yes to confirm") }
            let client = try connection.client()
            let id = try await client.projectID(project)
            _ = try await client.call(.DELETE, "/projects/" + AdminClient.path(id))
            print("deleted project \(id)")
        }
    }
}

extension AdminProjects {
    static func retentionText(_ days: Int) -> String { days == 0 ? "forever" : "\(days)d" }

    struct SetRetention: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-retention",
            abstract: "Set how many days of a project's telemetry are kept (older whole days are deleted).",
            discussion: "DAYS: 1…3650, 'forever' (or 0) to keep everything, 'default' to follow the backend's --retention-days. docs/storage.md, \"Retention\".")
        @OptionGroup var connection: AdminConnection
        @Argument(help: "Project id or name.") var project: String
        @Argument(help: "Days (1…3650), 'forever' or 'default'.") var days: String

        /// The `retention_days` value to send: a number, 0 for forever, NSNull for the default.
        func value() throws -> Any {
            switch days.lowercased() {
            case "forever": return 0
            case "default": return NSNull()
            default:
                guard let d = Int(days), d == 0 || (1...3650).contains(d) else {
                    throw ValidationError("DAYS '\(days.prefix(32))': expected 1…3650, 'forever' (or 0) or 'default'")
                }
                return d
            }
        }

        func validate() throws { _ = try value() }

        func run() async throws {
            let client = try connection.client()
            let id = try await client.projectID(project)
            let r = try await client.call(.PUT, "/projects/" + AdminClient.path(id) + "/retention", body: ["retention_days": try value()])
            let kept = AdminProjects.retentionText(r["retention_days"] as? Int ?? 0)
            print("project \(id) keeps \(kept == "forever" ? "its telemetry forever" : kept + " of telemetry")\((r["source"] as? String) == "default" ? " (the backend's default)" : "")")
        }
    }
}

struct AdminKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "Create, list, revoke and rotate a project's API keys.",
                                                    subcommands: [Create.self, List.self, Revoke.self, Rotate.self, SetTier.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; prints the key (shown this once) alone on the last line.")
        @OptionGroup var connection: AdminConnection
        @Option(help: "Project id or name.") var project: String
        @Option(help: "Scope: ingest, read, evaluate or admin (repeat for several).") var scope: [String] = []
        @Option(help: "Key name, to tell keys apart.") var name: String = "key"
        @Option(help: "Days until the key expires (default: never).") var expiresIn: Int?

        func validate() throws {
            guard !scope.isEmpty else { throw ValidationError("give at least one --scope (ingest, read, evaluate, admin)") }
            if let expiresIn, !(1...3660).contains(expiresIn) { throw ValidationError("--expires-in \(expiresIn): expected 1…3660 days") }
        }

        func run() async throws {
            let client = try connection.client()
            let id = try await client.projectID(project)
            var body: [String: Any] = ["name": name, "scopes": scope]
            if let expiresIn { body["expires_in_days"] = expiresIn }
            let r = try await client.call(.POST, "/projects/" + AdminClient.path(id) + "/keys", body: body)
            let rec = r["record"] as? [String: Any] ?? [:]
            print("created key \(rec["id"] as? String ?? "?") for project \(id), scopes \((rec["scopes"] as? [String] ?? []).joined(separator: ","))\(rec["expires_at"].flatMap { $0 as? String }.map { ", expires \($0)" } ?? ""); it is shown only now:")
            print(r["key"] as? String ?? "")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a project's keys (never their secrets).")
        @OptionGroup var connection: AdminConnection
        @Option(help: "Project id or name.") var project: String

        func run() async throws {
            let client = try connection.client()
            let id = try await client.projectID(project)
            let keys = try await client.call(.GET, "/projects/" + AdminClient.path(id) + "/keys")["keys"] as? [[String: Any]] ?? []
            printTable(["ID", "NAME", "PREFIX", "SCOPES", "STATUS", "CREATED", "LAST USED", "EXPIRES"], keys.map { k in
                [k["id"] as? String ?? "", k["name"] as? String ?? "", k["prefix"] as? String ?? "", (k["scopes"] as? [String] ?? []).joined(separator: ","),
                 k["status"] as? String ?? "", k["created_at"] as? String ?? "", k["last_used_at"] as? String ?? "-", k["expires_at"] as? String ?? "never"]
            })
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key: it stops working at once.")
        @OptionGroup var connection: AdminConnection
        @Argument(help: "Key id (from keys list).") var id: String

        func run() async throws {
            let k = try await connection.client().call(.POST, "/keys/" + AdminClient.path(id) + "/revoke", body: [:])
            print("revoked key \(k["id"] as? String ?? id) of project \(k["project"] as? String ?? "?")")
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace a key; the old one keeps working for --overlap hours. Prints the new key alone on the last line.")
        @OptionGroup var connection: AdminConnection
        @Argument(help: "Key id (from keys list).") var id: String
        @Option(help: "Hours the old key keeps working (0: stops now).") var overlap: Int = 24

        func validate() throws {
            guard (0...87_600).contains(overlap) else { throw ValidationError("--overlap \(overlap): expected 0…87600 hours") }
        }

        func run() async throws {
            let r = try await connection.client().call(.POST, "/keys/" + AdminClient.path(id) + "/rotate", body: ["overlap_hours": overlap])
            let new = r["record"] as? [String: Any] ?? [:]
            let old = r["old"] as? [String: Any] ?? [:]
            let until = (old["status"] as? String) == "revoked" ? "stopped now" : "works until \(old["expires_at"] as? String ?? "?")"
            print("rotated key \(id) (\(until)); new key \(new["id"] as? String ?? "?"), shown only now:")
            print(r["key"] as? String ?? "")
        }
    }
}

struct AdminAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "List audit log entries, newest first.")
    @OptionGroup var connection: AdminConnection
    @Option(help: "Only this project (id or name).") var project: String?
    @Option(help: "Entries to show (1…1000).") var limit: Int = 100

    func validate() throws {
        guard (1...1000).contains(limit) else { throw ValidationError("--limit \(limit): expected 1…1000") }
    }

    func run() async throws {
        let client = try connection.client()
        var query = "?limit=\(limit)"
        if let project {
            // A deleted project's entries stay: use the id as given when no project matches.
            let id = (try? await client.projectID(project)) ?? project
            query += "&project=" + AdminClient.path(id)
        }
        let entries = try await client.call(.GET, "/audit" + query)["entries"] as? [[String: Any]] ?? []
        printTable(["WHEN", "WHO", "ACTION", "PROJECT", "TARGET", "DETAIL"], entries.map { e in
            [e["at"] as? String ?? "", e["actor"] as? String ?? "", e["action"] as? String ?? "", e["project"] as? String ?? "", e["target"] as? String ?? "", e["detail"] as? String ?? ""]
        })
    }
}
