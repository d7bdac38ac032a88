import ArgumentParser
import Foundation

/// `evalforge admin projects set-tier`, `admin keys set-tier` and `admin tiers`: rate-limit tiers
/// through the admin API (docs/access-control.md, "Rate limits"). Only the instance admin token
/// may set tiers.
extension AdminProjects {
    struct SetTier: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-tier", abstract: "Set a project's rate-limit tier (free, basic, premium, enterprise or one from the tier file).")
        @OptionGroup var connection: AdminConnection
        @Argument(help: "Project id or name.") var project: String
        @Argument(help: "Tier name.") var tier: String

        func run() async throws {
            let client = try connection.client()
            let id = try await client.projectID(project)
            let r = try await client.call(.PUT, "/projects/" + AdminClient.path(id) + "/tier", body: ["tier": tier])
            print("project \(id) now has tier \(r["tier"] as? String ?? tier)")
        }
    }
}

extension AdminKeys {
    struct SetTier: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-tier", abstract: "Give a key its own rate-limit tier and budget (--clear: back to its project's).")
        @OptionGroup var connection: AdminConnection
        @Argument(help: "Key id (from keys list).") var id: String
        @Argument(help: "Tier name.") var tier: String?
        @Flag(help: "Remove the key's override: it counts against its project's tier again.") var clear = false

        func validate() throws {
            guard (tier == nil) == clear else { throw ValidationError("give a tier name, or --clear to remove the key's override") }
        }

        func run() async throws {
            let body: [String: Any] = ["tier": tier.map { $0 as Any } ?? NSNull()]
            let r = try await connection.client().call(.PUT, "/keys/" + AdminClient.path(id) + "/tier", body: body)
            if let t = r["tier"] as? String {
                print("key \(id) (project \(r["project"] as? String ?? "?")) now has its own tier \(t)")
            } else {
                print("key \(id) (project \(r["project"] as? String ?? "?")) counts against its project's tier again")
            }
        }
    }
}

struct AdminTiers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tiers", abstract: "List the configured rate-limit tiers and their limits.")
    @OptionGroup var connection: AdminConnection

    func run() async throws {
        let r = try await connection.client().call(.GET, "/tiers")
        print("default tier: \(r["default_tier"] as? String ?? "?")\((r["enabled"] as? Bool) == false ? " (rate limits are off)" : "")")
        var rows: [[String]] = []
        for t in r["tiers"] as? [[String: Any]] ?? [] {
            let limits = t["limits"] as? [String: Any] ?? [:]
            for d in limits.keys.sorted() {
                let l = limits[d] as? [String: Any] ?? [:]
                func n(_ k: String) -> String { (l[k] as? NSNumber).map { "\($0)" } ?? "?" }
                rows.append([t["name"] as? String ?? "", d, n("per_minute"), n("per_day"), n("burst")])
            }
        }
        printTable(["TIER", "DIMENSION", "PER MINUTE", "PER DAY", "BURST"], rows)
    }
}
