import EvalForgeCore
import EvalForgeModel
import EvalForgeStore
import Evaluation
import Foundation
import Synchronization

/// `/healthz` and `/readyz`, each naming the backend's roles (`--role`). `/healthz` is liveness: the process serves HTTP (no I/O, always 200).
/// `/readyz` is readiness: the telemetry store (ClickHouse or SQLite) and the metadata database (SQLite file or Postgres) can take
/// writes now — 503 naming the cause otherwise, so load balancers and collectors stop sending here
/// at once instead of waiting out the store's retries (~9 s) on every request. Both carry the
/// release and the schema versions (this binary's, and on `/readyz` the database's: they differ
/// during a rolling upgrade, docs/deployment.md).
public final class BackendReadiness: Sendable {
    /// One readiness check's outcome.
    public struct Report: Sendable, Equatable {
        /// What cannot take writes, e.g. "telemetry store: ClickHouse at … is unreachable …"; empty when ready.
        public var problems: [String]
        /// Schema versions the databases are at (nil when the check failed before reading them).
        public var telemetrySchema: Int?
        public var metadataSchema: Int?
        public var ready: Bool { problems.isEmpty }
    }

    /// Each store's check is bounded by this (a hung server must not hang the probe).
    static let checkTimeout: Duration = .seconds(2)
    /// A result is reused this long: many load balancers and collectors probing cost one check.
    static let reuseFor: Duration = .seconds(1)

    let store: any SpanStore
    let metadata: any MetadataDatabase
    let storeDescription: String
    /// What this backend serves and runs (`--role`), in both answers.
    public let roles: BackendRoles
    /// This binary's schema versions.
    public let telemetrySchema: Int
    public let metadataSchema: Int

    private struct State {
        var last: (report: Report, at: ContinuousClock.Instant)?
        var inflight: Task<Report, Never>?
    }
    private let state = Mutex(State())

    public init(store: any SpanStore, metadata: any MetadataDatabase, roles: BackendRoles = .all) {
        self.store = store
        self.metadata = metadata
        self.roles = roles
        storeDescription = store.description
        telemetrySchema = store.schemaVersion
        metadataSchema = Self.metadataSchemaVersion
    }

    /// The metadata file's schema version this build migrates to (store tables and the evaluation runner's).
    public static var metadataSchemaVersion: Int { StoreSchemaVersions.metadataStore + EvaluationService.metadataMigrations }

    /// The latest readiness: a fresh check at most once per `reuseFor`, one at a time (callers
    /// meanwhile share it).
    public func check() async -> Report {
        enum Next { case cached(Report), wait(Task<Report, Never>) }
        let next = state.withLock { s -> Next in
            if let last = s.last, ContinuousClock.now - last.at < Self.reuseFor { return .cached(last.report) }
            if let t = s.inflight { return .wait(t) }
            let t = Task { await self.probe() }
            s.inflight = t
            return .wait(t)
        }
        switch next {
        case .cached(let r): return r
        case .wait(let t):
            let r = await t.value
            state.withLock { s in
                s.inflight = nil
                s.last = (r, .now)
            }
            return r
        }
    }

    private func probe() async -> Report {
        async let telemetry = Self.capture { try await self.store.checkReady(timeout: Self.checkTimeout) }
        async let meta = Self.capture { try await self.metadata.checkWritable(timeout: Self.checkTimeout) }
        var report = Report(problems: [])
        switch await telemetry {
        case .success(let v): report.telemetrySchema = v
        case .failure(let e): report.problems.append("telemetry store (\(storeDescription)) cannot take writes: \(Self.message(e))")
        }
        switch await meta {
        case .success(let v): report.metadataSchema = v
        case .failure(let e): report.problems.append("metadata store (\(metadata.location)) cannot take writes: \(Self.message(e))")
        }
        return report
    }

    private static func capture(_ body: @Sendable () async throws -> Int) async -> Result<Int, any Error> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    private static func message(_ e: any Error) -> String { (e as? StoreError)?.message ?? "\(e)" }

    /// `/healthz`'s body.
    public func livenessJSON(includingStore: Bool) -> String {
        "{\"status\":\"ok\",\"version\":" + JSONString.quote(EvalForgeVersion.release) + ",\"roles\":" + roles.json
            + (includingStore ? ",\"store\":" + JSONString.quote(storeDescription) : "")
            + ",\"schema\":" + schemaJSON(telemetrySchema, metadataSchema) + "}"
    }

    /// `/readyz`'s body for `report`.
    public func readinessJSON(_ report: Report, includingStore: Bool) -> String {
        var s = "{\"status\":" + (report.ready ? "\"ready\"" : "\"not ready\"")
        if !report.ready { s += ",\"reason\":" + JSONString.quote(report.problems.joined(separator: "; ")) }
        s += ",\"version\":" + JSONString.quote(EvalForgeVersion.release) + ",\"roles\":" + roles.json
        if includingStore { s += ",\"store\":" + JSONString.quote(storeDescription) }
        s += ",\"schema\":" + schemaJSON(telemetrySchema, metadataSchema)
        s += ",\"database_schema\":" + schemaJSON(report.telemetrySchema, report.metadataSchema, binary: false) + "}"
        return s
    }

    /// This binary's versions also name the batch protocol it accepts; the databases' have none.
    private func schemaJSON(_ telemetry: Int?, _ metadata: Int?, binary: Bool = true) -> String {
        "{\"telemetry\":" + (telemetry.map(String.init) ?? "null") + ",\"metadata\":" + (metadata.map(String.init) ?? "null")
            + (binary ? ",\"forward_protocol\":\(EvalForgeVersion.forwardProtocol)}" : "}")
    }
}
