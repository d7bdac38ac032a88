import ArgumentParser
import Collector
import EvalForgeCompression
import EvalForgeCore
import EvalForgeModel
import EvalForgeOTLP
import Foundation

/// `evalforge inspect FILE`: decodes an OTLP ExportTraceServiceRequest (or a collector batch) with
/// EvalForge's Protos and prints its spans as JSON lines — for debugging exporters, and the proof
/// in tests that third-party OTLP output decodes with our Protos.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Decode an OTLP protobuf request body (or a collector→backend batch, or the collector's dead-letter file) and print it as JSON lines.")

    @Argument(help: "File holding the body; gzip, zstd and lz4 are detected.")
    var file: String

    @Flag(help: "The file is an evalforge.v1.ForwardBatch (collector → backend).")
    var batch = false

    @Flag(help: "The file is the collector's dead-letter file (dead-letter.log beside its WAL): print each entry's kind, sequences, time, reason and size.")
    var deadLetter = false

    func run() throws {
        if deadLetter { return try printDeadLetters() }
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
        var bytes = [UInt8](data)
        if Gzip.isGzip(bytes) {
            bytes = try Gzip.decompress(bytes, limit: 1 << 30)
        } else if Zstd.isZstd(bytes) {
            bytes = try Zstd.decompress(bytes, limit: 1 << 30)
        } else if Lz4.isLz4(bytes) {
            bytes = try Lz4.decompress(bytes, limit: 1 << 30)
        }
        let resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans]
        do {
            if batch {
                let b = try Evalforge_V1_ForwardBatch(serializedBytes: bytes)
                resourceSpans = b.resourceSpans
                for r in b.rollups {
                    let line: [String: Any] = [
                        "rollup": ["minute": r.minuteUnix, "project": r.project, "service": r.service, "provider": r.provider, "model": r.model,
                                   "error": r.error, "requests": r.requests, "input_tokens": r.inputTokens, "output_tokens": r.outputTokens,
                                   "cost_usd": r.costUsd],
                    ]
                    print(Self.json(line))
                }
            } else {
                resourceSpans = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: bytes).resourceSpans
            }
        } catch {
            throw ValidationError("\(file) is not a valid \(batch ? "ForwardBatch" : "ExportTraceServiceRequest") protobuf: \(error)")
        }
        for rs in resourceSpans {
            var resource: [String: Any] = [:]
            for kv in rs.resource.attributes { resource[kv.key] = Self.value(kv.value) }
            for ss in rs.scopeSpans {
                for s in ss.spans {
                    var attrs: [String: Any] = [:]
                    for kv in s.attributes { attrs[kv.key] = Self.value(kv.value) }
                    let line: [String: Any] = [
                        "trace_id": Hex.encode(bytes: s.traceID), "span_id": Hex.encode(bytes: s.spanID),
                        "parent_span_id": Hex.encode(bytes: s.parentSpanID), "name": s.name, "kind": s.kind.rawValue,
                        "start": s.startTimeUnixNano, "end": s.endTimeUnixNano, "status": s.status.code.rawValue,
                        "scope": ss.scope.name, "resource": resource, "attributes": attrs,
                    ]
                    print(Self.json(line))
                }
            }
        }
    }

    static func value(_ v: Opentelemetry_Proto_Common_V1_AnyValue) -> Any {
        switch v.value {
        case .stringValue(let s)?: return s
        case .boolValue(let b)?: return b
        case .intValue(let i)?: return i
        case .doubleValue(let d)?: return d.isFinite ? d : String(d)
        case .arrayValue(let a)?: return a.values.map(value)
        case .kvlistValue(let l)?: return Dictionary(l.values.map { ($0.key, value($0.value)) }, uniquingKeysWith: { a, _ in a })
        case .bytesValue(let b)?: return Hex.encode(bytes: b)
        case nil: return NSNull()
        }
    }

    /// One JSON line per dead-letter entry; the payload (a WAL record, a batch body, damaged bytes)
    /// is summarised by its size and first bytes.
    func printDeadLetters() throws {
        let (entries, damaged) = try DeadLetterFile.read(path: file)
        for e in entries {
            let line: [String: Any] = [
                "kind": "\(e.kind)", "seq": e.seq, "last_seq": e.lastSeq, "unix_ms": e.unixMillis,
                "reason": e.reason, "payload_bytes": e.payload.count, "payload_head": Hex.encode(bytes: Array(e.payload.prefix(32))),
            ]
            print(Self.json(line))
        }
        if damaged { throw ValidationError("\(file): the entries after the \(entries.count) above are damaged") }
    }

    static func json(_ o: Any) -> String {
        guard let d = try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: d, as: UTF8.self)
    }
}
