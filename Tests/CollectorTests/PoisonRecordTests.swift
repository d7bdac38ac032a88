import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import Foundation
import Testing

@testable import Collector

#if canImport(FoundationNetworking)
import FoundationNetworking
import TestProcesses
#endif

/// A WAL the collector cannot fully apply — a record that no longer decodes, a gap in the
/// sequence, a corrupt tail — must not stop it: it starts, serves, forwards the rest, and puts the
/// rest aside in the dead-letter file with reasons and counts.
@Suite("Poisoned WAL records: dead-lettered with a reason, never a crash loop")
struct PoisonRecordTests {
    /// A WAL record's payload for `request` (nothing excluded).
    static func payload(_ r: ExportTraceRequest) throws -> [UInt8] {
        WALRecord.prefix(excluded: []) + (try r.serializedBytes() as [UInt8])
    }

    /// A record in the WAL's on-disk format (see `WriteAheadLog`), for writing damage by hand.
    static func record(seq: UInt64, _ payload: [UInt8]) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 16)
        WriteAheadLog.put32(&h, 0, UInt32(payload.count))
        WriteAheadLog.put32(&h, 4, WriteAheadLog.checksum(seq: seq, payload))
        WriteAheadLog.put64(&h, 8, seq)
        return h + payload
    }

    @Test("a poisoned record, a sequence gap and a corrupt tail: the pipeline starts, serves, forwards the rest, dead-letters each with its reason")
    func poisonedWAL() async throws {
        let queue = CollectorPipelineTests.tempDir()
        let good1 = SpanFactory.request((1...3).map { SpanFactory.span(trace: SpanFactory.traceID(), id: UInt64($0)) })
        let good2 = SpanFactory.request((1...2).map { SpanFactory.span(trace: SpanFactory.traceID(), id: UInt64($0)) })
        let good3 = SpanFactory.request([SpanFactory.span(trace: SpanFactory.traceID(), id: 7)])
        // Valid as a WAL record (its checksum verifies) but not as a request: what a disk fault
        // after checksumming, or a build with looser validation, leaves behind.
        let poison = WALRecord.prefix(excluded: []) + [0x0a, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff, 0x12]
        do {
            let wal = try WriteAheadLog(directory: queue, policy: .never)
            try wal.replay { _, _, _ in }
            #expect(try wal.append(try Self.payload(good1)) == 1)
            #expect(try wal.append(poison) == 2)
            #expect(try wal.append(try Self.payload(good2)) == 3)
            wal.close()
        }
        // Records 4…6 missing, then record 7, then bytes that do not verify.
        var segment = Self.record(seq: 7, try Self.payload(good3))
        segment += [0x20, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]
        #expect(FileManager.default.createFile(atPath: queue + "/wal-00000000000000000007.log", contents: Data(segment)))

        let backend = BackendStandIn()
        try await ForwardingTests.withStack(backend: backend, ForwardingSafetyTests.queue(queue)) { (url: String, pipeline: CollectorPipeline) async throws in
            #expect(await backend.waitFor(spans: 6) == 6)
            // It serves new requests.
            #expect(try await OTLPClient(url: url).post(SpanFactory.request([SpanFactory.span(trace: SpanFactory.traceID(), id: 1)])) == 200)
            #expect(await backend.waitFor(spans: 7) == 7)
            let stats = pipeline.statistics
            #expect(stats.deadLetters == 3)
            #expect(stats.walMissingRecords == 3)
            #expect(pipeline.statistics.deadLetters == 3)
        }
        #expect(backend.uniqueSpanIDs.count == 7)

        let (entries, damaged) = try DeadLetterFile.read(path: queue + "/" + DeadLetterFile.fileName)
        #expect(!damaged)
        #expect(entries.count == 3)
        let record = try #require(entries.first { $0.kind == .walRecord })
        #expect(record.seq == 2)
        #expect(record.payload == poison)
        #expect(record.reason.contains("WAL record 2 cannot be applied"))
        let gap = try #require(entries.first { $0.kind == .walGap })
        #expect(gap.seq == 4 && gap.lastSeq == 6 && gap.reason.contains("missing"))
        let corrupt = try #require(entries.first { $0.kind == .walCorruption })
        #expect(corrupt.seq == 7 && corrupt.payload.count == 19)

        // A second start finds nothing more to dead-letter: the damage was cut off and accounted once.
        let again = try CollectorPipeline(configuration: CollectorPipelineTests.config { $0.queueDirectory = queue })
        _ = try again.replay(skipThrough: 0)
        #expect(again.statistics.deadLetters == 0)

        // `evalforge inspect --dead-letter` lists the entries with their reasons.
        if FileManager.default.isExecutableFile(atPath: TestProcesses.evalforge) {
            let p = ChildProcess()
            p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
            p.arguments = ["inspect", "--dead-letter", queue + "/" + DeadLetterFile.fileName]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            #expect(text.contains("\"kind\":\"wal_record\"") && text.contains("cannot be applied"))
            #expect(text.split(separator: "\n").count == 3)
        }
    }
}
