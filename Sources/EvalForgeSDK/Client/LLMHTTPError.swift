import Foundation

/// A failed LLM HTTP call: the provider's status and error type, or a transport failure.
public struct LLMHTTPError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable { case status, transport, malformed, invalidRequest }
    private let code: Code
    /// HTTP status, when the provider answered.
    public let status: Int?
    /// The span's `error.type`: the HTTP status code ("429"), "timeout", "connection_error", …
    public let errorType: String
    /// The provider's error message, or what went wrong.
    public let message: String
    /// The provider's `Retry-After`, when given.
    public let retryAfter: Duration?

    public var description: String {
        if let status { return "LLM provider answered \(status): \(message)" }
        return "LLM call failed (\(errorType)): \(message)"
    }

    package static func status(_ status: Int, message: String, retryAfter: Duration?) -> LLMHTTPError {
        LLMHTTPError(code: .status, status: status, errorType: String(status), message: message, retryAfter: retryAfter)
    }

    package static func transport(_ type: String, _ message: String) -> LLMHTTPError {
        LLMHTTPError(code: .transport, status: nil, errorType: type, message: message, retryAfter: nil)
    }

    package static func malformed(_ message: String) -> LLMHTTPError {
        LLMHTTPError(code: .malformed, status: nil, errorType: "malformed_response", message: message, retryAfter: nil)
    }

    /// The request cannot be sent as it is (nothing was sent, no span recorded): `errorType`
    /// "invalid_request".
    package static func invalidRequest(_ message: String) -> LLMHTTPError {
        LLMHTTPError(code: .invalidRequest, status: nil, errorType: "invalid_request", message: message, retryAfter: nil)
    }

    /// The provider's error message from an OpenAI or Anthropic error body.
    package static func message(fromErrorBody body: Data) -> String {
        if let o = JSON.object(body), let e = o["error"] as? [String: Any], let m = e["message"] as? String { return m }
        let text = String(decoding: body.prefix(500), as: UTF8.self)
        return text.isEmpty ? "no error body" : text
    }
}
