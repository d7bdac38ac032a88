import Backend
import EvalForgeCore
import EvalForgeOTLP
@testable import EvalForgeStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

/// A telemetry store the backend tests run on: SQLite always; ClickHouse 18.16 and a current
/// ClickHouse (chdb behind tests/clickhouse/chdb_http.py) when scripts/test has started them and set
/// their URLs. Parameterized tests take `TestStore.available`; the Query API suite has one test per
/// ClickHouse server that is skipped, with the variable to set, when its URL is missing.
enum TestStore: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case clickHouseLegacy
    case clickHouse

    static let legacyVariable = "EVALFORGE_TEST_CLICKHOUSE_LEGACY_URL"
    static let currentVariable = "EVALFORGE_TEST_CLICKHOUSE_URL"

    /// The stores configured for this run, SQLite first.
    static var available: [TestStore] { allCases.filter(\.isAvailable) }

    var testDescription: String {
        switch self {
        case .sqlite: "SQLite"
        case .clickHouseLegacy: "ClickHouse 18.16"
        case .clickHouse: "chdb (current ClickHouse)"
        }
    }

    /// The server's URL from the environment; nil for SQLite or when the variable is unset.
    var url: String? {
        let variable: String
        switch self {
        case .sqlite: return nil
        case .clickHouseLegacy: variable = Self.legacyVariable
        case .clickHouse: variable = Self.currentVariable
        }
        return ProcessInfo.processInfo.environment[variable].flatMap { $0.isEmpty ? nil : $0 }
    }

    var isAvailable: Bool { self == .sqlite || url != nil }

    /// The store the older, unparameterized tests use: the current ClickHouse when its URL is set,
    /// else SQLite.
    static var `default`: TestStore { TestStore.clickHouse.isAvailable ? .clickHouse : .sqlite }

    /// Why this store is not under test (the variable to set); nil when it is available.
    var unavailableReason: Comment? {
        guard !isAvailable else { return nil }
        let (variable, script) = self == .clickHouseLegacy ? (Self.legacyVariable, "legacy-server.sh") : (Self.currentVariable, "chdb-server.sh")
        return "\(variable) not set (scripts/test starts tests/clickhouse/\(script) and sets it): the backend tests do not cover \(testDescription)"
    }

    /// Fails the test when this store's server is not configured.
    func requireAvailable(sourceLocation: SourceLocation = #_sourceLocation) throws {
        try #require(isAvailable, unavailableReason, sourceLocation: sourceLocation)
    }

    /// A fresh database on this store's server (nil for SQLite). Small batches and a short flush
    /// interval: tests insert little and wait for every acknowledgement.
    func clickHouseConfiguration(prefix: String) -> ClickHouseConfiguration? {
        guard let url else { return nil }
        return ClickHouseConfiguration(url: url, database: prefix + UUID().uuidString.prefix(8).lowercased(), batchRows: 1, flushIntervalMilliseconds: 10)
    }

    /// Checks that `store` is this kind of store, so a misconfigured URL cannot pass as another one.
    func expectIsStore(_ store: any SpanStore, sourceLocation: SourceLocation = #_sourceLocation) {
        let d = store.description
        switch self {
        case .sqlite: #expect(d.hasPrefix("sqlite"), "expected SQLite, got \(d)", sourceLocation: sourceLocation)
        case .clickHouseLegacy: #expect(d.hasPrefix("clickhouse 18.16") && d.hasSuffix("(legacy schema)"), "expected ClickHouse 18.16, got \(d)", sourceLocation: sourceLocation)
        case .clickHouse: #expect(d.hasPrefix("clickhouse") && d.hasSuffix("(modern schema)"), "expected a current ClickHouse, got \(d)", sourceLocation: sourceLocation)
        }
    }

    /// Drops the test's ClickHouse database and Postgres schema (if any), shuts the stores down and
    /// removes the data directory.
    static func tearDown(_ services: BackendServices) async {
        if let ch = services.store as? ClickHouseStore {
            try? await ch.http.execute("DROP DATABASE IF EXISTS \(ch.db)")
        }
        await TestMetadata.tearDown(services.metadata)
        await services.store.shutdown()
        try? FileManager.default.removeItem(atPath: services.configuration.dataDirectory)
    }
}

/// A backend on a fresh temporary data directory, its telemetry on `store`.
enum TestBackend {
    static let apiKey = "ef_test_key_project_default"

    static func configuration(store: TestStore = .sqlite) -> BackendConfiguration {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-backend-\(UUID().uuidString)").path
        // The experiment pages' mock LLM listens on loopback: the operator allow-list lets it through.
        var c = BackendConfiguration(host: "127.0.0.1", port: 0, dataDirectory: dir, bootstrapAPIKey: apiKey, outboundAllowList: "127.0.0.0/8,::1,localhost")
        c.clickHouse = store.clickHouseConfiguration(prefix: "evalforge_test_")
        // The page tests sign in through /login for each page: the sign-in limits are the rate limit tests' concern.
        c.signInPerClientPerMinute = 100_000
        c.signInPerMinute = 100_000
        return c
    }

    static var logger: Logger {
        var l = Logger(label: "test.backend")
        l.logLevel = .warning
        return l
    }
}

/// Builds OTLP requests with GenAI spans for ingest tests.
enum OTLPFixtures {
    static func kv(_ k: String, _ v: String) -> Opentelemetry_Proto_Common_V1_KeyValue {
        var kv = Opentelemetry_Proto_Common_V1_KeyValue()
        kv.key = k
        kv.value.stringValue = v
        return kv
    }

    static func kv(_ k: String, _ v: Int) -> Opentelemetry_Proto_Common_V1_KeyValue {
        kv(k, int: Int64(v))
    }

    static func kv(_ k: String, int v: Int64) -> Opentelemetry_Proto_Common_V1_KeyValue {
        var kv = Opentelemetry_Proto_Common_V1_KeyValue()
        kv.key = k
        kv.value.intValue = v
        return kv
    }

    static func kv(_ k: String, double v: Double) -> Opentelemetry_Proto_Common_V1_KeyValue {
        var kv = Opentelemetry_Proto_Common_V1_KeyValue()
        kv.key = k
        kv.value.doubleValue = v
        return kv
    }

    static let counter = Atomic<UInt64>(1)

    static func traceID() -> TraceID {
        let n = counter.add(1, ordering: .relaxed).newValue
        return TraceID(high: n &* 0x9E37_79B9_7F4A_7C15 | 1, low: (n &* 0xBF58_476D_1CE4_E5B9) ^ 0x1234_5678)
    }

    static func bytes(_ t: TraceID) -> Data { Data(withUnsafeBytes(of: (t.high.bigEndian, t.low.bigEndian)) { Array($0) }) }
    static func bytes(_ id: UInt64) -> Data { Data(withUnsafeBytes(of: id.bigEndian) { Array($0) }) }

    /// An LLM span using the deprecated GenAI names (normalization must map them).
    static func legacySpan(trace: TraceID, id: UInt64, model: String = "gpt-4o-mini", input: Int = 1000, output: Int = 200, error: Bool = false) -> Opentelemetry_Proto_Trace_V1_Span {
        var s = Opentelemetry_Proto_Trace_V1_Span()
        s.traceID = bytes(trace)
        s.spanID = bytes(id)
        s.name = "chat \(model)"
        s.kind = .client
        s.startTimeUnixNano = 1_767_225_600_000_000_000 + id * 1_000_000
        s.endTimeUnixNano = s.startTimeUnixNano + 400_000_000
        s.attributes = [
            kv("gen_ai.system", "openai"), kv("gen_ai.request.model", model), kv("gen_ai.operation.name", "chat"),
            kv("gen_ai.usage.prompt_tokens", input), kv("gen_ai.usage.completion_tokens", output),
            kv("user.id", "alice"), kv("session.id", "s-1"),
            kv("gen_ai.input.messages", "[{\"role\":\"user\",\"content\":\"hello\"}]"),
        ]
        if error { s.status.code = .error }
        return s
    }

    static func request(_ spans: [Opentelemetry_Proto_Trace_V1_Span], service: String = "checkout", project: String? = nil) -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
        var r = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        var rs = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        rs.resource.attributes = [kv("service.name", service)]
        if let project { rs.resource.attributes.append(kv("evalforge.project", project)) }
        var ss = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        ss.spans = spans
        rs.scopeSpans = [ss]
        r.resourceSpans = [rs]
        return r
    }
}

/// The metadata database a backend test runs on: the SQLite file always; Postgres when scripts/test
/// has started one (`scripts/cluster postgres-up`) and set EVALFORGE_TEST_POSTGRES_URL, each test in
/// a fresh schema. (The conformance suite itself is Tests/EvaluationTests/MetadataConformanceTests.swift.)
enum TestMetadata: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static var postgresURL: String? { ProcessInfo.processInfo.environment["EVALFORGE_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 } }
    /// The databases configured for this run, SQLite first.
    static var available: [TestMetadata] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }
    var testDescription: String { self == .sqlite ? "SQLite metadata" : "Postgres metadata" }

    /// `c` with its metadata on this database: unchanged for SQLite; a new schema for Postgres.
    func configure(_ c: BackendConfiguration) async throws -> BackendConfiguration {
        guard self == .postgres else { return c }
        let url = try #require(Self.postgresURL, "EVALFORGE_TEST_POSTGRES_URL not set")
        let base = try PostgresMetadataConfiguration(url: url)
        let admin = try await PostgresMetadataDatabase(configuration: base)
        let schema = "evalforge_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        try await admin.write { db in try db.execute("CREATE SCHEMA \(schema)") }
        await admin.shutdown()
        var c = c
        c.postgres = base
        c.postgres?.searchPath = schema
        c.postgres?.poolSize = 4
        return c
    }

    /// Closes a test's Postgres metadata database and drops its schema; nothing for SQLite.
    static func tearDown(_ metadata: any MetadataDatabase) async {
        guard let pg = metadata as? PostgresMetadataDatabase, let schema = pg.configuration.searchPath else { return }
        await pg.shutdown()
        var base = pg.configuration
        base.searchPath = nil
        guard let admin = try? await PostgresMetadataDatabase(configuration: base) else { return }
        _ = try? await admin.write { db in try db.execute("DROP SCHEMA IF EXISTS \(schema) CASCADE") }
        await admin.shutdown()
    }
}
