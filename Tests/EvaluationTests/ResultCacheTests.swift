@testable import Evaluation
import EvalForgeStore
import Foundation
import Testing

/// A provider target's answer kept for a re-claim of its item (paid once): stored and read back
/// through the metadata database, and a stored row is not trusted.
@Suite struct ResultCacheTests {
    @Test func targetAnswersRoundTripAndHostileRowsAreCleaned() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-cache-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try SQLiteDatabase(path: dir + "/meta.sqlite")
        defer { db.close() }
        try await EvalSchema.migrator.apply(to: db)
        let cache = ResultCache(db: db)

        let key = ResultCache.targetKey(runID: "run_1", itemID: "item_1")
        #expect(key != ResultCache.targetKey(runID: "run_2", itemID: "item_1"), "the key is per run")
        #expect(await cache.target(key) == nil)
        let answer = ResultCache.TargetAnswer(text: "Paris", toolCalls: [.init(name: "lookup", arguments: #"{"q":"capital"}"#)], costUSD: 0.0012, latencyMs: .infinity)
        await cache.putTarget(key, answer)
        let kept = try #require(await cache.target(key))
        #expect(kept.text == "Paris" && kept.toolCalls == answer.toolCalls && kept.costUSD == 0.0012)
        #expect(kept.latencyMs == nil, "a non-finite latency is not stored")

        // A row written by something else: a negative cost is dropped, not used.
        try await db.write { c in
            try c.run("UPDATE eval_cache SET result = ? WHERE key = ?", [.text(#"{"text":"x","toolCalls":[],"costUSD":-5,"latencyMs":12}"#), .text(key)])
        }
        let hostile = try #require(await cache.target(key))
        #expect(hostile.costUSD == nil && hostile.latencyMs == 12)
        try await db.write { c in try c.run("UPDATE eval_cache SET result = 'not json' WHERE key = ?", [.text(key)]) }
        #expect(await cache.target(key) == nil)
    }
}
