import EvalForgeStore
import Foundation
import Testing

/// The metadata databases the tests run on: SQLite always; Postgres when scripts/test has started
/// one (`scripts/cluster postgres-up`) and set EVALFORGE_TEST_POSTGRES_URL. Each Postgres test gets
/// its own fresh schema (`search_path`), dropped when it ends.
enum TestMetadata: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static let variable = "EVALFORGE_TEST_POSTGRES_URL"
    static var postgresURL: String? { ProcessInfo.processInfo.environment[variable].flatMap { $0.isEmpty ? nil : $0 } }
    static let skipReason: Comment = "EVALFORGE_TEST_POSTGRES_URL not set (scripts/test starts Postgres 15 with `scripts/cluster postgres-up` and sets it): Postgres metadata is not under test"

    /// The databases configured for this run, SQLite first.
    static var available: [TestMetadata] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }

    var testDescription: String { self == .sqlite ? "SQLite metadata" : "Postgres metadata" }

    /// A configuration for a fresh, empty schema on the test server (created here).
    static func freshPostgres(localDirectory: String?) async throws -> PostgresMetadataConfiguration {
        let url = try #require(postgresURL, skipReason)
        let base = try PostgresMetadataConfiguration(url: url)
        let admin = try await PostgresMetadataDatabase(configuration: base)
        let schema = "evalforge_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        try await admin.write { c in try c.execute("CREATE SCHEMA \(schema)") }
        await admin.shutdown()
        var c = base
        c.searchPath = schema
        c.localDirectory = localDirectory
        c.poolSize = 4
        return c
    }

    /// Drops the schema of `configuration` (best effort: a test's leftovers must not fail it).
    static func drop(_ configuration: PostgresMetadataConfiguration) async {
        guard let schema = configuration.searchPath else { return }
        var base = configuration
        base.searchPath = nil
        guard let admin = try? await PostgresMetadataDatabase(configuration: base) else { return }
        _ = try? await admin.write { c in try c.execute("DROP SCHEMA IF EXISTS \(schema) CASCADE") }
        await admin.shutdown()
    }

    /// A fresh metadata database of this kind: a SQLite file in `dir`, or a new Postgres schema.
    func open(dir: String) async throws -> any MetadataDatabase {
        switch self {
        case .sqlite: return try SQLiteDatabase(path: dir + "/meta.sqlite")
        case .postgres: return try await PostgresMetadataDatabase(configuration: try await Self.freshPostgres(localDirectory: dir))
        }
    }

    /// Closes `db` and drops its schema when it is a test's Postgres database.
    static func close(_ db: any MetadataDatabase) async {
        await db.shutdown()
        if let pg = db as? PostgresMetadataDatabase { await drop(pg.configuration) }
    }
}
