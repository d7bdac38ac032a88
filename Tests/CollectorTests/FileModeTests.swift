import EvalForgeCore
import Foundation
import Testing
@testable import Collector

/// The collector's files hold prompts and answers: the WAL directory is created 0700 and every
/// file in it (segments, checkpoint, instance epoch, dead letters, outbox batches) 0600.
@Suite("Collector data files are owner-only")
struct CollectorFileModeTests {
    @Test func walEpochDeadLetterAndOutboxFilesAreOwnerOnly() throws {
        let root = NSTemporaryDirectory() + "evalforge-modes-\(UInt64.random(in: 0..<UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "/nested/wal"
        let wal = try WriteAheadLog(directory: dir, policy: .always)
        let seq = try wal.append(Array("span".utf8))
        try wal.release(upTo: seq)
        wal.close()
        _ = try InstanceEpoch.load(directory: dir, walIsEmpty: true)
        try DeadLetterFile(directory: dir).append(.walRecord, seq: 1, lastSeq: 1, reason: "test", payload: [1, 2, 3])
        let outbox = try Outbox(directory: dir + "/outbox")
        try outbox.write(Outbox.Entry(firstSeq: 1, lastSeq: 2, body: [1, 2], coding: .identity))

        for d in [root + "/nested", dir, dir + "/outbox"] {
            #expect(OwnerOnlyFiles.mode(d) == 0o700, "\(d)")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0 != "outbox" }.map { dir + "/" + $0 }
            + FileManager.default.contentsOfDirectory(atPath: dir + "/outbox").map { dir + "/outbox/" + $0 }
        #expect(files.contains { $0.hasSuffix(".log") } && files.contains { $0.hasSuffix("/checkpoint") } && files.contains { $0.hasSuffix(InstanceEpoch.fileName) })
        #expect(files.contains { $0.hasSuffix(DeadLetterFile.fileName) } && files.contains { $0.hasSuffix(".pb") })
        for f in files {
            #expect(OwnerOnlyFiles.mode(f) == 0o600, "\(f)")
        }
    }
}
