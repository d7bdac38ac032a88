import EvalForgeIngest
import EvalForgeOTLP
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /v1/traces`: OTLP/HTTP protobuf or JSON, optionally gzip, with spec-correct answers:
/// 200 with an ExportTraceServiceResponse (partial_success for rejected spans), 400 for
/// undecodable bodies, 413 above the size limit, 415 for unsupported types, 503 with Retry-After
/// when the queue is full. Before the body is read the key is checked (`KeyChecker`): 401 for a
/// missing or unknown key, 403 for a key without `ingest` or of another project, 503 with
/// Retry-After when the backend cannot confirm it.
struct OTLPTraceController: Sendable {
    let pipeline: CollectorPipeline
    let keys: KeyChecker

    func addRoutes(to router: some RouterMethods<BasicRequestContext>) {
        router.post("/v1/traces") { request, context in
            try await self.export(request, context: context)
        }
    }

    func export(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let limit = pipeline.configuration.maxBodyBytes
        let project: KeyProject?
        switch await keys.authorize(key: Self.key(from: request)) {
        case .accept(let p): project = p
        case .refuse(let status, let message, let retryAfter):
            pipeline.metrics.requestsRefusedAuth.increment()
            // The body is not read: the connection is closed after the answer.
            var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8", .connection: "close"]
            if status == 401 { headers[.wwwAuthenticate] = "Bearer" }
            if let retryAfter { headers[.retryAfter] = String(retryAfter) }
            return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: message + "\n")))
        }
        do {
            let raw = try await Self.readBody(request, limit: limit)
            let format: OTLPRequestDecoder.Format
            let bytes: [UInt8]
            do {
                (bytes, format) = try OTLPTraceRequestDecoding.protobufBytes(body: raw, contentType: request.headers[.contentType], contentEncoding: request.headers[.contentEncoding], limit: limit)
            } catch {
                throw CollectorError(error)
            }
            let result = try await pipeline.ingest(protobuf: bytes, project: project)
            var response = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse()
            if result.rejected > 0 {
                response.partialSuccess.rejectedSpans = Int64(result.rejected)
                response.partialSuccess.errorMessage = result.rejectionReason ?? "spans rejected"
            }
            return try Self.encode(response, format: format)
        } catch let e as CollectorError {
            var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
            if e.httpStatus == 503 { headers[.retryAfter] = "2" }
            if e.httpStatus == 413, e.message.hasPrefix("body of") { headers[.connection] = "close" }
            return Response(status: .init(code: e.httpStatus), headers: headers, body: .init(byteBuffer: ByteBuffer(string: e.message + "\n")))
        }
    }

    static let apiKeyHeader = HTTPField.Name("X-API-Key")

    /// The key a request carries: `Authorization: Bearer <key>` or `X-API-Key: <key>` (as the backend reads them).
    static func key(from request: Request) -> String? {
        if let auth = request.headers[.authorization] {
            let parts = auth.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let k = parts[1].trimmingCharacters(in: .whitespaces)
                return k.isEmpty ? nil : k
            }
        }
        if let name = apiKeyHeader, let k = request.headers[name], !k.isEmpty { return k }
        return nil
    }

    /// Reads the body up to `limit` bytes. A larger body is drained (up to 8× the limit, so the
    /// client can read the 413 instead of blocking on a full socket) or, beyond that, refused with
    /// `Connection: close`.
    static func readBody(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            if length <= limit * 8 {
                for try await _ in request.body {}
                throw CollectorError.tooLarge("body exceeds the \(limit)-byte limit (\(length) bytes)")
            }
            throw CollectorError.tooLarge("body of \(length) bytes exceeds the \(limit)-byte limit")
        }
        var out: [UInt8] = []
        // One allocation for a body of declared length (growing by doubling copies it ~twice).
        if let length = request.headers[.contentLength].flatMap(Int.init), length > 0 { out.reserveCapacity(length) }
        var seen = 0
        for try await chunk in request.body {
            seen += chunk.readableBytes
            if seen <= limit {
                out.append(contentsOf: chunk.readableBytesView)
            } else if seen > limit * 8 {
                throw CollectorError.tooLarge("body of \(seen)+ bytes exceeds the \(limit)-byte limit")
            }
        }
        if seen > limit { throw CollectorError.tooLarge("body exceeds the \(limit)-byte limit (\(seen) bytes)") }
        return out
    }

    static func encode(_ r: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse, format: OTLPRequestDecoder.Format) throws -> Response {
        switch format {
        case .protobuf:
            let bytes: [UInt8] = try r.serializedBytes()
            return Response(status: .ok, headers: [.contentType: "application/x-protobuf"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        case .json:
            let text = try r.jsonString()
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }
}
