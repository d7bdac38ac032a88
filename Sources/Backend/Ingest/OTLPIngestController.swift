import Collector
import EvalForgeCrypto
import EvalForgeModel
import EvalForgeOTLP
import EvalForgeStore
import Foundation
import Hummingbird
import NIOCore
import SwiftProtobuf

/// `POST /v1/traces` on the backend: plain OTLP/HTTP (protobuf or JSON, gzip) from apps without a
/// sidecar. Decoded and normalized exactly as the collector does; every span is kept and counted in
/// the rollups. The batch id is the SHA-256 of the body, so an exporter's retry of the same request
/// is stored once. Spans with invalid ids are rejected through `partial_success`.
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
            let decoded: ExportTraceRequest
            do {
                decoded = try OTLPTraceRequestDecoding.decode(body: raw, contentType: contentType, contentEncoding: request.headers[.contentEncoding], limit: maxBodyBytes)
            } catch let e as CollectorError {
                switch e.statusCode {
                case 413: throw IngestError.tooLarge(e.message)
                case 415: throw IngestError.unsupportedMediaType(e.message)
                default: throw IngestError.badRequest(e.message)
                }
            }
            let (batch, rejected) = Self.rows(decoded, projectID: project.id, batchID: "otlp-" + Digest.hex(Digest.sha256(raw)).prefix(40), normalizer: normalizer)
            if !batch.spans.isEmpty || !batch.rollups.isEmpty {
                _ = try await ingest.ingest(batch)
            }
            var response = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse()
            if rejected > 0 {
                response.partialSuccess.rejectedSpans = Int64(rejected)
                response.partialSuccess.errorMessage = "\(rejected) span(s) rejected: trace_id must be 16 bytes and span_id 8 bytes, not all zero"
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

    /// Normalizes every span, builds rows and exact rollups; returns the batch and the number of
    /// spans rejected for invalid ids.
    static func rows(_ request: ExportTraceRequest, projectID: String, batchID: some StringProtocol, normalizer: GenAINormalizer) -> (StoreBatch, Int) {
        var spans: [SpanRow] = []
        var rollups = RollupTable()
        var rejected = 0
        var prices = GenAINormalizer.PriceCache()
        for rs in request.resourceSpans {
            let resource = ResourceInfo(rs.resource, defaultProject: projectID)
            for scope in rs.scopeSpans {
                for var span in scope.spans {
                    guard let facts = normalizer.normalize(&span, resource: resource, prices: &prices),
                          let row = SpanRow(span: span, service: resource.service, projectID: projectID) else {
                        rejected += 1
                        continue
                    }
                    if facts.isLLMCall {
                        var f = facts
                        f.project = projectID
                        rollups.add(f)
                    }
                    spans.append(row)
                }
            }
        }
        let rows = rollups.rows.map { RollupRow(key: $0.key, value: $0.value) }
        return (StoreBatch(projectID: projectID, batchID: String(batchID), spans: spans, rollups: rows), rejected)
    }
}
