import EvalForgeModel
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Counts every authenticated `/api` and ingest request against its budget (`RateLimiter`) and puts
/// `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until the window
/// starts over) on the answer; over the limit the answer is 429 with `Retry-After`. One concern:
/// runs after authentication (it needs the project and key), before the scope check. The ingest
/// routes count spans against the same subject through `RateLimitRequest`.
public struct RateLimitMiddleware: RouterMiddleware {
    public typealias Context = BackendRequestContext
    let limiter: RateLimiter

    public init(limiter: RateLimiter) {
        self.limiter = limiter
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard limiter.enabled, let access = context.access else { return try await next(request, context) }
        let keyID: String? = if case .key(let id) = access.principal { id } else if let s = context.session { s.keyID } else { nil }
        guard let subject = await limiter.subject(projectID: context.project?.id, keyID: keyID, isInstanceAdmin: access.isInstanceAdmin) else {
            return try await next(request, context)
        }
        let decision = await limiter.consume(subject, .requests, 1)
        guard decision.allowed else { return RateLimitRequest.tooManyRequests(decision) }
        do {
            var response = try await RateLimitRequest.$current.withValue(RateLimitRequest(limiter: limiter, subject: subject)) {
                try await next(request, context)
            }
            RateLimitRequest.addHeaders(decision, to: &response.headers)
            return response
        } catch var e as HTTPError {
            RateLimitRequest.addHeaders(decision, to: &e.headers)
            throw e
        }
    }
}

/// The budget of the request being handled (set by `RateLimitMiddleware` around the handler), so
/// the ingest routes count a batch's spans against it without threading it through every route.
public struct RateLimitRequest: Sendable {
    let limiter: RateLimiter
    let subject: RateLimitSubject

    @TaskLocal static var current: RateLimitRequest?

    static let limitHeader = HTTPField.Name("X-RateLimit-Limit")!
    static let remainingHeader = HTTPField.Name("X-RateLimit-Remaining")!
    static let resetHeader = HTTPField.Name("X-RateLimit-Reset")!

    /// Counts `spans` spans of an ingest request: nil when admitted (or no limits apply), else the
    /// answer to send: 429 with Retry-After, or 413 when the batch alone is larger than the tier's
    /// per-minute span capacity (resending it cannot succeed: send smaller batches).
    static func admitSpans(_ spans: Int) async -> Response? {
        guard let current, spans > 0 else { return nil }
        let d = await current.limiter.consume(current.subject, .spans, Int64(clamping: spans))
        guard !d.allowed else { return nil }
        if d.exceedsCapacity {
            return errorResponse(d, status: .contentTooLarge, message: "a batch of \(spans) spans is larger than the \(d.window) span limit of tier '\(d.tier)' (\(d.limit)); send smaller batches or raise the tier")
        }
        return tooManyRequests(d)
    }

    /// 429 naming the tier, dimension and window, with `Retry-After` (the window's reset).
    static func tooManyRequests(_ d: RateLimitDecision) -> Response {
        errorResponse(d, status: .tooManyRequests, message: "rate limit: tier '\(d.tier)' allows \(d.limit) \(d.dimension.rawValue) per \(d.window); retry after \(d.resetSeconds) s")
    }

    static func errorResponse(_ d: RateLimitDecision, status: HTTPResponse.Status, message: String) -> Response {
        var headers: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store"]
        if status == .tooManyRequests { headers[.retryAfter] = String(d.resetSeconds) }
        addHeaders(d, to: &headers)
        let body = "{\"error\":{\"message\":" + JSONString.quote(message) + "},\"rate_limit\":{\"tier\":" + JSONString.quote(d.tier)
            + ",\"dimension\":" + JSONString.quote(d.dimension.rawValue) + ",\"window\":" + JSONString.quote(d.window)
            + ",\"limit\":\(d.limit),\"remaining\":\(d.remaining),\"reset_seconds\":\(d.resetSeconds)}}"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// Sets the three headers unless a handler already set them (a span refusal's figures win).
    static func addHeaders(_ d: RateLimitDecision, to headers: inout HTTPFields) {
        guard headers[limitHeader] == nil else { return }
        headers[limitHeader] = String(d.limit)
        headers[remainingHeader] = String(max(0, d.remaining))
        headers[resetHeader] = String(d.resetSeconds)
    }
}
