/// Why the mock refused a request: the HTTP status and a message that names what was wrong and what
/// is expected instead. Each handler renders it in its provider's error format.
struct MockLLMError: Error, CustomStringConvertible {
    private enum Code {
        case notJSON
        case missingField
        case wrongType
        case invalidValue
        case invalidHeader
        case bodyTooLarge
    }

    private let code: Code
    let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// 413 for a body over the limit, 400 for everything else.
    var status: Int { code == .bodyTooLarge ? 413 : 400 }
    /// The provider error code (OpenAI's `code`), when there is one.
    var providerCode: String? { code == .bodyTooLarge ? "request_too_large" : nil }
    var description: String { message }

    static func notJSON(_ detail: String) -> Self {
        .init(.notJSON, "The request body is not valid JSON (\(detail)). Send a JSON object with Content-Type: application/json.")
    }
    static func missingField(_ path: String, expected: String) -> Self {
        .init(.missingField, "\(path): field required; expected \(expected).")
    }
    static func wrongType(_ path: String, expected: String) -> Self {
        .init(.wrongType, "\(path): invalid type; expected \(expected).")
    }
    static func invalidValue(_ path: String, _ value: String, expected: String) -> Self {
        .init(.invalidValue, "\(path): invalid value \(value); expected \(expected).")
    }
    static func invalidHeader(_ name: String, _ value: String, expected: String) -> Self {
        .init(.invalidHeader, "header \(name): invalid value '\(value)'; expected \(expected).")
    }
    static func bodyTooLarge(limit: Int) -> Self {
        .init(.bodyTooLarge, "The request body exceeds the limit of \(limit) bytes (--max-body-bytes).")
    }
}
