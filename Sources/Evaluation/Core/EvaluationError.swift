/// A failure of the evaluation runner with a message a user can act on.
public struct EvaluationError: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Code: Sendable, Equatable {
        case invalidArgument
        case notFound
        case conflict
        case provider
        case timeout
        case malformedAnswer
        case circuitOpen
        case unavailable
        case limitExceeded
        case overloaded
        case tooLarge
    }

    private let code: Code
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// A request or configuration value is wrong; the message names it and what is expected.
    public static func invalidArgument(_ message: String) -> EvaluationError { .init(.invalidArgument, message) }
    /// The named dataset, run, evaluator, rule, provider or webhook does not exist in the project.
    public static func notFound(_ message: String) -> EvaluationError { .init(.notFound, message) }
    /// The object exists already or is in a state that does not allow the change.
    public static func conflict(_ message: String) -> EvaluationError { .init(.conflict, message) }
    /// The judge or target provider answered with an error status (after retries).
    public static func provider(_ message: String) -> EvaluationError { .init(.provider, message) }
    /// The provider, endpoint or receiver did not answer in time.
    public static func timeout(_ message: String) -> EvaluationError { .init(.timeout, message) }
    /// The judge answered, but not with the expected structure.
    public static func malformedAnswer(_ message: String) -> EvaluationError { .init(.malformedAnswer, message) }
    /// The provider's circuit breaker is open after repeated failures; retry after the cooldown.
    public static func circuitOpen(_ message: String) -> EvaluationError { .init(.circuitOpen, message) }
    /// Storage is unavailable.
    public static func unavailable(_ message: String) -> EvaluationError { .init(.unavailable, message) }

    /// The evaluation needed more than its bound (a regex's match limit, a deadline); the message
    /// says which bound and what to change.
    public static func limitExceeded(_ message: String) -> EvaluationError { .init(.limitExceeded, message) }
    /// Too much work is in flight already; retry later (HTTP 429/503 with Retry-After).
    public static func overloaded(_ message: String) -> EvaluationError { .init(.overloaded, message) }

    /// A request body or list is larger than its bound (HTTP 413); the message names the bound.
    public static func tooLarge(_ message: String) -> EvaluationError { .init(.tooLarge, message) }

    public var isInvalidArgument: Bool { code == .invalidArgument }
    public var isNotFound: Bool { code == .notFound }
    public var isConflict: Bool { code == .conflict }
    public var isOverloaded: Bool { code == .overloaded }
    public var isTooLarge: Bool { code == .tooLarge }
    /// Short, label-safe kind for metrics and stored error reasons.
    public var kind: String {
        switch code {
        case .invalidArgument: "invalid_argument"
        case .notFound: "not_found"
        case .conflict: "conflict"
        case .provider: "provider_error"
        case .timeout: "timeout"
        case .malformedAnswer: "malformed_answer"
        case .circuitOpen: "circuit_open"
        case .unavailable: "unavailable"
        case .limitExceeded: "limit_exceeded"
        case .overloaded: "overloaded"
        case .tooLarge: "too_large"
        }
    }

    public var description: String { "\(kind): \(message)" }
}
