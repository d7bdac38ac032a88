import EvalForgeIngest
import EvalForgeOTLP
import Foundation
import FuzzSupport

@testable import Collector

/// The libFuzzer entry point of the `collector` surface (scripts/fuzz collector): one input is an OTLP
/// request body as a client sends it to `POST /v1/traces` — JSON when it starts with `{`, else
/// protobuf — and runs through everything the collector does with it: decode and normalize,
/// dedup (ingested twice), rollups and tail sampling, WAL append, sealing and encoding the
/// forwarded batch; then a second pipeline replays the same WAL directory (a restart) and seals
/// and encodes again. Errors are expected answers (4xx); only a trap, hang or leak is a finding.
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    CollectorFuzz.run(Fuzz.bytes(data, size))
    return 0
}

enum CollectorFuzz {
    static func configuration(directory: String) -> CollectorConfiguration {
        var c = CollectorConfiguration.default
        c.queueDirectory = directory
        c.fsync = "never"
        c.collectorID = "fuzz"
        c.dedupMaxIDs = 4096  // small tables: two pipelines are opened per input
        c.queueSegmentBytes = 16 << 10  // small segments: larger inputs rotate them
        c.sampling.decisionWait = .milliseconds(1)
        c.sampling.rootGrace = .milliseconds(0)
        return c
    }

    static func run(_ input: [UInt8]) {
        let body: [UInt8]
        if input.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x09 && $0 != 0x0D }) == UInt8(ascii: "{") {
            guard let b = try? OTLPRequestDecoder.protobufBytes(input, format: .json) else { return }
            body = b
        } else {
            body = input
        }
        let directory = Fuzz.scratchDirectory("collector")
        let c = configuration(directory: directory)
        guard let first = try? CollectorPipeline(configuration: c) else { fatalError("fuzz setup: cannot open the WAL in \(directory)") }
        let once = Fuzz.blocking { try await first.ingest(protobuf: body) }
        let twice = Fuzz.blocking { try await first.ingest(protobuf: body) }  // every span again: the dedup path
        Fuzz.verbose("ingest: \(once), again: \(twice)")
        drain(first)
        first.wal.close()

        // A restart: the records were never acknowledged, so all of them are processed again.
        guard let second = try? CollectorPipeline(configuration: c) else { fatalError("fuzz setup: cannot reopen the WAL in \(directory)") }
        let replayed = Result { try second.replay(skipThrough: 0) }
        Fuzz.verbose("replayed: \(replayed)")
        drain(second)
        second.wal.close()
    }

    /// Seals every pending record (deciding every trace now) and encodes each batch as the
    /// forwarder would (uncompressed: compression is not under test here).
    static func drain(_ p: CollectorPipeline) {
        while let batch = p.seal(force: true) {
            let bytes = Result { try BatchEncoder.encode(batch, collectorID: "fuzz", epoch: p.instanceEpoch, coding: .identity, level: 0) }
            Fuzz.verbose("batch \(batch.firstSeq)-\(batch.lastSeq): \(batch.accepted) accepted, \(batch.kept.count) kept, \(batch.rollups.rows.count) rollups, \((try? bytes.get())?.count ?? -1) bytes")
        }
    }
}
