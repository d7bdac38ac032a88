/// A storage failure with a message a user can act on.
public struct StoreError: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Code: Sendable, Equatable {
        case unavailable
        case invalidCursor
        case invalidArgument
        case schema
        case rejected
        case io
    }

    private let code: Code
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The storage server is down, unreachable or overloaded: retry later; the batch was not stored.
    public static func unavailable(_ message: String) -> StoreError { .init(.unavailable, message) }
    /// A pagination cursor that this store did not produce or that belongs to another query.
    public static func invalidCursor(_ message: String) -> StoreError { .init(.invalidCursor, message) }
    /// A query argument out of range (limit, interval, time range).
    public static func invalidArgument(_ message: String) -> StoreError { .init(.invalidArgument, message) }
    /// A migration failed or the schema is not what this version expects.
    public static func schema(_ message: String) -> StoreError { .init(.schema, message) }
    /// The server refused the data itself (a retry would fail the same way).
    public static func rejected(_ message: String) -> StoreError { .init(.rejected, message) }
    /// Local file or database error.
    public static func io(_ message: String) -> StoreError { .init(.io, message) }

    /// True when retrying later may succeed (the caller should not acknowledge and should retry).
    public var isTransient: Bool { code == .unavailable || code == .io }
    public var isInvalidCursor: Bool { code == .invalidCursor }
    public var isInvalidArgument: Bool { code == .invalidArgument || code == .invalidCursor }

    public var description: String { message }
}
