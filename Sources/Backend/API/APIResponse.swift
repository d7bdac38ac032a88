import EvalForgeStore
import Foundation
import Hummingbird
import NIOCore

enum APIResponse {
    /// A JSON response encoded with the API's snake_case encoder.
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONEncoder.api.encode(value)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Runs a store call, turning the store's argument errors into 400 (with the store's reason) and
/// outages into 503.
func storeCall<T: Sendable>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let e as StoreError {
        if e.isInvalidArgument { throw HTTPError(.badRequest, message: e.message) }
        if e.isTransient { throw HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"], message: "storage unavailable: \(e.message)") }
        throw HTTPError(.internalServerError, message: "storage error: \(e.message)")
    }
}

enum IDFormat {
    /// 32 lowercase hex digits (upper case accepted and lowered); anything else is a 400.
    static func traceID(_ s: String) throws -> String {
        let lower = s.lowercased()
        guard lower.utf8.count == 32, lower.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw HTTPError(.badRequest, message: "trace id must be 32 hex digits, got '\(s.prefix(64))'")
        }
        return lower
    }

    static func pathValue(_ context: BackendRequestContext, _ name: String) throws -> String {
        guard let v = context.parameters.get(name), !v.isEmpty, v.utf8.count <= 512 else {
            throw HTTPError(.badRequest, message: "missing or over-long '\(name)' in the path")
        }
        return v.removingPercentEncoding ?? v
    }
}
