import EvalForgeCompression
import EvalForgeCore
import EvalForgeIngest
import EvalForgeModel
import EvalForgeOTLP
import EvalForgeStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwiftProtobuf

/// `POST /v1/batches`: the collector's forwarded batches (`ForwardBatch` protobuf; `Content-Encoding`
/// zstd, gzip or none). Stored at most once per batch id; answered with a `ForwardResponse` only
/// after the data is durable. The project is the API key's: a resource whose `evalforge.project`
/// names another project refuses the batch with 400 (a collector dead-letters a 400 with the answer,
/// counted; a 403 would hold its whole queue behind the batch).
struct BatchIngestController: Sendable {
    let ingest: IngestService
    let maxBodyBytes: Int

    func addRoutes(to router: some RouterMethods<BackendRequestContext>) {
        router.post("/v1/batches", use: receive)
    }

    static let batchIDHeader = HTTPField.Name("X-EvalForge-Batch-Id")!

    func receive(_ request: Request, context: BackendRequestContext) async throws -> Response {
        let project = try context.requireProject()
        do {
            let body = try await IngestBody.read(request, limit: maxBodyBytes)
            let batch = try Self.decode(body, headerBatchID: request.headers[Self.batchIDHeader], projectID: project.id, projectName: project.name)
            if let refused = await RateLimitRequest.admitSpans(batch.spans.count) { return refused }
            let outcome = try await ingest.ingest(batch)
            var response = Evalforge_V1_ForwardResponse()
            response.batchID = batch.batchID
            response.duplicate = outcome == .duplicate
            let bytes: [UInt8] = try response.serializedBytes()
            return Response(status: .ok, headers: [.contentType: "application/x-protobuf"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        } catch let e as IngestError {
            return IngestBody.errorResponse(e)
        }
    }

    /// Decodes and validates a forwarded batch into rows for `projectID`, reading the protobuf bytes
    /// in place (`ForwardBatchWire`: no OTLP messages are built).
    static func decode(_ body: [UInt8], headerBatchID: String?, projectID: String, projectName: String? = nil, nowUnixNanos: Int64 = IngestClock.nowUnixNanos()) throws -> StoreBatch {
        var batch: StoreBatch
        do {
            batch = try ForwardBatchWire.decode(body, projectID: projectID, acceptingProjects: [projectID, projectName ?? projectID])
        } catch let e as ForeignProjectError {
            throw IngestError.badRequest("batch refused: " + e.message(projectID: projectID, projectName: projectName ?? projectID))
        } catch let e as WireFormatError {
            throw IngestError.badRequest("body is not a valid evalforge.v1.ForwardBatch protobuf: \(e.message)")
        }
        let id = batch.batchID
        guard !id.isEmpty, id.utf8.count <= 256 else { throw IngestError.badRequest("batch_id is missing or longer than 256 bytes") }
        if let header = headerBatchID, header != id {
            throw IngestError.badRequest("X-EvalForge-Batch-Id '\(header)' does not match the body's batch_id '\(id)'")
        }
        // Nothing poisonous is stored: absurd times, too many months, unmergeable sketches refuse the
        // batch (naming the span or rollup); out-of-range rollup figures are clamped in place.
        if let problem = IngestBounds.check(&batch, nowUnixNanos: nowUnixNanos) {
            throw IngestError.badRequest("batch '\(id.prefix(256))' refused: \(problem)")
        }
        return batch
    }
}

/// The backend's clock for the ingest time window (`IngestBounds`).
enum IngestClock {
    static func nowUnixNanos() -> Int64 { CheckedNumbers.clampedInt64(Date().timeIntervalSince1970 * 1e9) }
}

/// Reading bodies and writing error responses, shared by the ingest routes.
enum IngestBody {
    /// The request body, inflated when `Content-Encoding` is zstd or gzip; 413 past `limit` either
    /// way, 415 for any other encoding.
    static func read(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw IngestError.tooLarge("body of \(length) bytes exceeds the \(limit)-byte limit")
        }
        var buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch {
            throw IngestError.tooLarge("body exceeds the \(limit)-byte limit")
        }
        let raw = buffer.readBytes(length: buffer.readableBytes) ?? []
        let header = request.headers[.contentEncoding]
        guard let coding = ContentCoding(header: header) else {
            throw IngestError.unsupportedMediaType("unsupported Content-Encoding '\(header ?? "")': send \(ContentCoding.acceptedList)")
        }
        do { return try coding.decode(raw, limit: limit) } catch {
            if error.isTooLarge { throw IngestError.tooLarge(error.message) }
            throw IngestError.badRequest(error.message)
        }
    }

    static func errorResponse(_ e: IngestError) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if e.isRetryable { headers[.retryAfter] = "5" }
        let body = "{\"error\":" + JSONString.quote(e.message) + "}"
        return Response(status: .init(code: e.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
