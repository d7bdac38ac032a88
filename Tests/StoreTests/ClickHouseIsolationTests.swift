@testable import EvalForgeStore
import EvalForgeModel
import Foundation
import Logging
import Testing

/// Group commit puts several projects' batches in one ClickHouse insert; a batch the server refuses
/// for its own data must fail alone, never taking the others (or every later insert) with it.
@Suite("ClickHouse group commit isolation")
struct ClickHouseIsolationTests {
    typealias S = ClickHouseTestServers

    /// A store whose writer runs one insert at a time, so concurrent batches queue and travel together.
    static func groupingStore(_ server: S.Server) async throws -> ClickHouseStore {
        let url = try #require(server.url, "\(server == .legacy ? S.legacyVariable : S.modernVariable) is not set")
        let config = ClickHouseConfiguration(url: url, database: "evalforge_iso_\(UInt32.random(in: 0...UInt32.max))", batchRows: 100_000,
                                             flushIntervalMilliseconds: 200, maxAttempts: 2, retryBackoffMilliseconds: 50, maxConcurrentInserts: 1)
        let store = try await ClickHouseStore(configuration: config, logger: Logger(label: "test.clickhouse.isolation"))
        try await store.migrate()
        return store
    }

    /// Spans of one trace in `months` consecutive calendar months (one span per month from 2016).
    static func monthsBatch(_ months: Int, projectID: String) -> StoreBatch {
        let spans = (0..<months).map { i in
            SpanRow(projectID: projectID, traceID: String(format: "%032x", 0xfeed_0000 + i), spanID: String(format: "%016x", i + 1),
                    startUnixNanos: (1_451_606_400 + Int64(i) * 31 * 86_400) * 1_000_000_000, durationNanos: 1_000_000, name: "old \(i)")
        }
        return StoreBatch(projectID: projectID, batchID: "months-\(months)", spans: spans, rollups: [])
    }

    actor Outcomes {
        var stored: [String] = []
        var failed: [String: StoreError] = [:]
        func ok(_ id: String) { stored.append(id) }
        func fail(_ id: String, _ e: StoreError) { failed[id] = e }
    }

    @Test("a batch in more than 100 monthly partitions fails alone (permanent, not retried as transient); the batches grouped with it are stored",
          arguments: S.Server.allCases)
    func tooManyPartitions(_ server: S.Server) async throws {
        try #require(server.url != nil, "\(server == .legacy ? S.legacyVariable : S.modernVariable) is not set")
        let store = try await Self.groupingStore(server)
        let outcomes = Outcomes()
        let good = (0..<6).map { i in StoreFixtures.batch(i * 2..<(i * 2 + 2), projectID: "good-\(i)", batchID: "good-\(i)") }
        let bad = Self.monthsBatch(110, projectID: "bad")
        await withTaskGroup(of: Void.self) { group in
            for (i, b) in ([good[0], bad] + good.dropFirst()).enumerated() {
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(5 * i))
                    do { _ = try await store.insert(b); await outcomes.ok(b.batchID) } catch let e as StoreError { await outcomes.fail(b.batchID, e) } catch {}
                }
            }
        }
        let stored = Set(await outcomes.stored), failed = await outcomes.failed
        #expect(Set(good.map(\.batchID)).isSubset(of: stored), "failed: \(failed)")
        for b in good {
            let n = try await S.count(store, "SELECT count() FROM \(store.db).spans WHERE project_id = '\(b.projectID)'")
            #expect(n == UInt64(b.spans.count))
        }
        if server == .modern {
            // The current server refuses more than 100 partitions per insert block (18.16 has no limit).
            let e = try #require(failed["months-110"])
            #expect(!e.isTransient, "\(e.message)")
            #expect(e.message.contains("partitions"))
        } else {
            #expect(stored.contains("months-110"), "failed: \(failed)")
        }
        // The writer keeps serving: a new batch after the refusal is stored.
        let after = StoreFixtures.batch(40..<41, projectID: "after", batchID: "after")
        #expect(try await store.insert(after) == .stored)
        await S.drop(store)
    }

    @Test("a grouped insert refused for one batch's rows is retried batch by batch: only that batch fails", arguments: S.Server.allCases)
    func groupedInsertIsolatesARefusedBatch(_ server: S.Server) async throws {
        try #require(server.url != nil, "\(server == .legacy ? S.legacyVariable : S.modernVariable) is not set")
        let store = try await Self.groupingStore(server)
        let outcomes = Outcomes()
        var entries = (0..<5).map { i in (id: "good-\(i)", entry: store.encode(StoreFixtures.batch(i..<(i + 1), projectID: "g\(i)", batchID: "good-\(i)"))) }
        // RowBinary the server cannot parse: a permanent refusal of this entry's rows.
        var poison = store.encode(StoreFixtures.batch(9..<10, projectID: "poison", batchID: "poison"))
        poison.spans = Array(poison.spans.prefix(7))
        entries.insert((id: "poison", entry: poison), at: 2)
        await withTaskGroup(of: Void.self) { group in
            for (i, e) in entries.enumerated() {
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(5 * i))
                    do { try await store.writer.write(e.entry); await outcomes.ok(e.id) } catch let err as StoreError { await outcomes.fail(e.id, err) } catch {}
                }
            }
        }
        let stored = Set(await outcomes.stored), failed = await outcomes.failed
        #expect(stored == Set((0..<5).map { "good-\($0)" }), "failed: \(failed)")
        let e = try #require(failed["poison"])
        #expect(!e.isTransient, "\(e.message)")
        #expect(await store.writer.flushes >= 2)
        for i in 0..<5 {
            #expect(try await S.count(store, "SELECT count() FROM \(store.db).spans WHERE project_id = 'g\(i)'") == 4)
        }
        await S.drop(store)
    }

    @Test("ClickHouse error classification: too many partitions is the batch's fault; too many parts is transient")
    func classification() {
        let partitions = ClickHouseHTTP.classify(statusCode: 500, body: "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). (TOO_MANY_PARTS)", base: "x", what: "insert")
        #expect(!partitions.isTransient)
        let parts = ClickHouseHTTP.classify(statusCode: 500, body: "Code: 252, e.displayText() = DB::Exception: Too many parts (300). Merges are processing significantly slower than inserts.", base: "x", what: "insert")
        #expect(parts.isTransient)
    }

    /// Regression: in cluster mode a shard's node restarting made the insert fail with code 32 while
    /// receiving from it; the backend called it malformed (400) and the collector dead-lettered 48
    /// acknowledged spans (tests/python/test_cluster_faults.py). Network errors between nodes are
    /// transient; a syntax error stays permanent.
    @Test("ClickHouse error classification: a peer node's cut connection, unreachable shard or lost ZooKeeper is transient")
    func clusterNetworkErrorsAreTransient() {
        let transient = [
            "Code: 32, e.displayText() = DB::Exception: Attempt to read after eof: while receiving packet from 127.0.0.1:19231, e.what() = DB::Exception",
            "Code: 33, e.displayText() = DB::Exception: Cannot read all data. Bytes read: 0. Bytes expected: 8.: while receiving packet from 127.0.0.1:19221",
            "Code: 24, e.displayText() = DB::Exception: Cannot write to ostream at offset 0",
            "Code: 279, e.displayText() = DB::NetException: All connection tries failed. Log: Code: 210, Connection refused (127.0.0.1:19231)",
            "Code: 225, e.displayText() = DB::Exception: Cannot use ZooKeeper: no ZooKeeper",
            "Code: 1000, e.displayText() = Connection reset by peer, e.what() = Connection reset by peer",
        ]
        for body in transient {
            #expect(ClickHouseHTTP.classify(statusCode: 500, body: body, base: "x", what: "insert").isTransient, "\(body)")
        }
        // The same codes for a body ClickHouse cannot parse are the batch's fault.
        let permanent = [
            "Code: 62, e.displayText() = DB::Exception: Syntax error",
            "Code: 33. DB::Exception: Cannot read all data. Bytes read: 2028. Bytes expected: 259465961: (at row 5)",
            "Code: 32, e.displayText() = DB::Exception: Attempt to read after eof: (at row 3)",
            "Code: 1000, e.displayText() = Invalid argument",
        ]
        for body in permanent {
            #expect(!ClickHouseHTTP.classify(statusCode: 500, body: body, base: "x", what: "insert").isTransient, "\(body)")
        }
    }
}
