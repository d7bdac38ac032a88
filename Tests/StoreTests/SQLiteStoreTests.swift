import EvalForgeStore
import Foundation
import Logging
import Testing

@Suite("SQLite store conformance")
struct SQLiteStoreTests {
    static func makeStore() async throws -> (SQLiteStore, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-sqlite-\(UUID().uuidString)").path
        let store = try SQLiteStore(path: dir + "/telemetry.sqlite", logger: Logger(label: "test"))
        try await store.migrate()
        return (store, dir)
    }

    @Test func conformance() async throws {
        let (store, dir) = try await Self.makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await StoreConformance.runAll(store)
        await store.shutdown()
    }

    @Test func migrationsAreIdempotentAndDataSurvivesReopen() async throws {
        let (store, dir) = try await Self.makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try await store.insert(StoreFixtures.batch(0..<3, projectID: "p", batchID: "b"))
        await store.shutdown()
        let again = try SQLiteStore(path: dir + "/telemetry.sqlite", logger: Logger(label: "test"))
        try await again.migrate()
        #expect(try await again.insert(StoreFixtures.batch(0..<3, projectID: "p", batchID: "b")) == .duplicate)
        #expect(try await again.trace(projectID: "p", traceID: StoreFixtures.traceID(2)).count == 4)
        await again.shutdown()
    }

    @Test func retentionDeletesOnlyOldData() async throws {
        let (store, dir) = try await Self.makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try await store.insert(StoreFixtures.batch(0..<10, projectID: "p", batchID: "b"))
        _ = try await store.insert(StoreFixtures.batch(0..<10, projectID: "q", batchID: "b"))
        let cutoff = (StoreFixtures.baseUnix + 5 * 60) * 1_000_000_000
        let deleted = try await store.deleteExpired(projectID: "p", beforeUnixNanos: cutoff)
        #expect(deleted > 0)
        let left = try await StoreConformance.allPages(store, TraceFilter(projectID: "p"), sort: .startAsc, limit: 100)
        #expect(left.map(\.traceID) == (5..<10).map(StoreFixtures.traceID))
        #expect(try await StoreConformance.allPages(store, TraceFilter(projectID: "q"), sort: .startAsc, limit: 100).count == 10)
        await store.shutdown()
    }

    @Test func retentionOfSeveralProjects() async throws {
        let (store, dir) = try await Self.makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await RetentionConformance.run(store)
        await store.shutdown()
    }

    @Test func concurrentInsertsAndReads() async throws {
        let (store, dir) = try await Self.makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask { _ = try await store.insert(StoreFixtures.batch(i * 10..<(i * 10 + 10), projectID: "p", batchID: "b\(i)")) }
                group.addTask { _ = try await store.listTraces(TraceFilter(projectID: "p"), sort: .startDesc, limit: 20, cursor: nil) }
            }
            try await group.waitForAll()
        }
        #expect(try await StoreConformance.allPages(store, TraceFilter(projectID: "p"), sort: .startDesc, limit: 1000).count == 80)
        await store.shutdown()
    }
}
