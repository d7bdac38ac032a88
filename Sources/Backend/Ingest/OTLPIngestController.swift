import EvalForgeCrypto
import EvalForgeIngest
import EvalForgeModel
import EvalForgeOTLP
import EvalForgeStore
import Foundation
import Hummingbird
import NIOCore
import SwiftProtobuf

/// `POST /v1/traces` on the backend: plain OTLP/HTTP (protobuf or JSON, gzip) from apps without a
/// sidecar. Decoded, normalized and read into rows on the one ingest path (EvalForgeIngest): the
/// collector's request decoding and byte-level normalizer, then the span-row reader forwarded batches
/// go through (an OTLP/JSON body is re-encoded as protobuf first). Every span is kept and counted in
/// the rollups. The batch id is the SHA-256 of the body, so an exporter's retry of the same request
/// is stored once. Spans with invalid ids are rejected through `partial_success`. A resource whose
/// `evalforge.project` names another project than the key's refuses the request with 403.
struct OTLPIngestController: Sendable {
    let ingest: IngestService
    let normalizer: GenAINormalizer
    let maxBodyBytes: Int

    func addRoutes(to router: some RouterMethods<BackendRequestContext>) {
        router.post("/v1/traces", use: receive)
    }

    func receive(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        let contentType = request.headers[.contentType]
        let json = OTLPTraceRequestDecoding.isJSON(contentType: contentType)
        do {
            var buffer: ByteBuffer
            do { buffer = try await request.body.collect(upTo: maxBodyBytes) } catch {
                throw IngestError.tooLarge("body exceeds the \(maxBodyBytes)-byte limit")
            }
            let raw = buffer.readBytes(length: buffer.readableBytes) ?? []
            let normalized: NormalizedOTLPRequest
            do {
                let bytes = try OTLPTraceRequestDecoding.protobufBytes(body: raw, contentType: contentType, contentEncoding: request.headers[.contentEncoding], limit: maxBodyBytes).bytes
                normalized = try NormalizedOTLPRequest.normalize(bytes, normalizer: normalizer, defaultProject: project.id)
            } catch let e as OTLPRequestError {
                switch e.httpStatus {
                case 413: throw IngestError.tooLarge(e.message)
                case 415: throw IngestError.unsupportedMediaType(e.message)
                default: throw IngestError.badRequest(e.message)
                }
            }
            // The project comes from the key: a resource naming another one refuses the request.
            if let foreign = normalized.foreignProject(accepts: { ForeignProjectError.accepts($0, projectID: project.id, projectName: project.name) }) {
                throw IngestError.foreignProject(foreign.message(projectID: project.id, projectName: project.name))
            }
            let (batch, rejected) = try Self.rows(normalized, projectID: project.id, batchID: "otlp-" + Digest.hex(Digest.sha256(raw)).prefix(40), nowUnixNanos: IngestClock.nowUnixNanos())
            var months = Set<Int32>()
            for s in batch.spans { months.insert(IngestBounds.monthIndex(unixSeconds: s.startUnixNanos / 1_000_000_000)) }
            guard months.count <= IngestBounds.maxMonthsPerBatch else {
                throw IngestError.badRequest("the request's spans fall in \(months.count) calendar months; at most \(IngestBounds.maxMonthsPerBatch) per request (send older spans in separate requests)")
            }
            if let refused = await RateLimitRequest.admitSpans(batch.spans.count) { return refused }
            if !batch.spans.isEmpty || !batch.rollups.isEmpty {
                _ = try await ingest.ingest(batch)
            }
            var response = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse()
            if rejected.count > 0 {
                response.partialSuccess.rejectedSpans = Int64(rejected.count)
                response.partialSuccess.errorMessage = "\(rejected.count) span(s) rejected: " + rejected.reasons.joined(separator: "; ")
            }
            if json {
                let text = try response.jsonString()
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
            }
            let bytes: [UInt8] = try response.serializedBytes()
            return Response(status: .ok, headers: [.contentType: "application/x-protobuf"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        } catch let e as IngestError {
            return IngestBody.errorResponse(e)
        }
    }

    /// Spans refused by `rows`: how many, and the first few reasons (each naming the span and field).
    struct Rejected: Sendable {
        var count = 0
        var reasons: [String] = []

        mutating func add(_ reason: @autoclosure () -> String) {
            count += 1
            if reasons.count < 5 { reasons.append(reason()) }
        }
    }

    /// Builds rows and exact rollups of a normalized request; returns the batch and the spans rejected
    /// (invalid ids, or times outside `IngestBounds`). Rollups count the rows as stored: token counts
    /// and costs bounded the same way. Bytes the span-row reader refuses are a 400.
    static func rows(_ request: NormalizedOTLPRequest, projectID: String, batchID: some StringProtocol, nowUnixNanos: Int64) throws -> (StoreBatch, Rejected) {
        var spans: [SpanRow] = []
        spans.reserveCapacity(request.spans.count)
        var rollups = RollupTable()
        var rejected = Rejected()
        do {
            try request.rows(projectID: projectID) { place, facts, row in
                guard let facts, let row else {
                    rejected.add("\(place): trace_id must be 16 bytes and span_id 8 bytes, not all zero")
                    return
                }
                if let problem = row.timeProblem(nowUnixNanos: nowUnixNanos) {
                    rejected.add("\(place): \(problem)")
                    return
                }
                if facts.isLLMCall {
                    var f = facts
                    f.project = projectID
                    f.usage.input = f.usage.input.map { Int(IngestBounds.tokens(Int64($0))) }
                    f.usage.output = f.usage.output.map { Int(IngestBounds.tokens(Int64($0))) }
                    f.usage.cacheRead = f.usage.cacheRead.map { Int(IngestBounds.tokens(Int64($0))) }
                    f.usage.cacheCreation = f.usage.cacheCreation.map { Int(IngestBounds.tokens(Int64($0))) }
                    f.usage.reasoning = f.usage.reasoning.map { Int(IngestBounds.tokens(Int64($0))) }
                    f.costUSD = IngestBounds.cost(f.costUSD)
                    if let t = f.timeToFirstChunkSeconds, !(t.isFinite && t >= 0) { f.timeToFirstChunkSeconds = nil }
                    rollups.add(f)
                }
                spans.append(row)
            }
        } catch let e as WireFormatError {
            throw IngestError.badRequest("body is not a valid OTLP ExportTraceServiceRequest protobuf: \(e.message)")
        }
        let rows = rollups.rows.map { RollupRow(key: $0.key, value: $0.value) }
        return (StoreBatch(projectID: projectID, batchID: String(batchID), spans: spans, rollups: rows), rejected)
    }
}
