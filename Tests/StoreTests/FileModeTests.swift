import EvalForgeCore
import EvalForgeStore
import Foundation
import Logging
import Testing

/// SQLite files hold spans, prompts and keys' hashes: created 0600 (with their -wal and -shm), in a
/// 0700 directory; a file an older version left world-readable is narrowed when opened.
@Suite("SQLite files are owner-only")
struct SQLiteFileModeTests {
    @Test func databaseWalAndShmAreOwnerOnly() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("evalforge-modes-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let path = root + "/data/telemetry.sqlite"
        let store = try SQLiteStore(path: path, logger: Logger(label: "test"))
        try await store.migrate()
        _ = try await store.insert(StoreFixtures.batch(0..<3, projectID: "p", batchID: "b"))
        #expect(OwnerOnlyFiles.mode(root + "/data") == 0o700)
        for f in [path, path + "-wal", path + "-shm"] {
            #expect(OwnerOnlyFiles.mode(f) == 0o600, "\(f)")
        }
        await store.shutdown()

        // A metadata file an older version created 0644 is narrowed when opened again.
        let meta = root + "/data/meta.sqlite"
        _ = try SQLiteDatabase(path: meta)
        #expect(chmod(meta, 0o644) == 0)
        let db = try SQLiteDatabase(path: meta)
        #expect(OwnerOnlyFiles.mode(meta) == 0o600)
        db.close()
    }
}
