/// Which sessions or users a list selects. Times are Unix nanoseconds on the last activity.
public struct SessionFilter: Sendable, Hashable, Codable {
    public var projectID: String
    public var from: Int64?
    public var to: Int64?
    public var userID: String?

    public init(projectID: String, from: Int64? = nil, to: Int64? = nil, userID: String? = nil) {
        self.projectID = projectID
        self.from = from
        self.to = to
        self.userID = userID
    }
}

/// One conversation: the traces that carry the same `session.id`.
public struct SessionSummary: Sendable, Hashable, Codable {
    public var sessionID: String
    public var userID: String
    public var firstUnixNanos: Int64
    public var lastUnixNanos: Int64
    public var traceCount: Int
    public var llmCalls: Int
    public var errorCount: Int
    public var inputTokens: Int64
    public var outputTokens: Int64
    public var costUSD: Double

    public init(sessionID: String, userID: String, firstUnixNanos: Int64, lastUnixNanos: Int64, traceCount: Int, llmCalls: Int, errorCount: Int, inputTokens: Int64, outputTokens: Int64, costUSD: Double) {
        self.sessionID = sessionID
        self.userID = userID
        self.firstUnixNanos = firstUnixNanos
        self.lastUnixNanos = lastUnixNanos
        self.traceCount = traceCount
        self.llmCalls = llmCalls
        self.errorCount = errorCount
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.costUSD = costUSD
    }
}

/// Activity of one end user (`user.id`).
public struct UserSummary: Sendable, Hashable, Codable {
    public var userID: String
    public var firstUnixNanos: Int64
    public var lastUnixNanos: Int64
    public var traceCount: Int
    public var sessionCount: Int
    public var llmCalls: Int
    public var errorCount: Int
    public var inputTokens: Int64
    public var outputTokens: Int64
    public var costUSD: Double

    public init(userID: String, firstUnixNanos: Int64, lastUnixNanos: Int64, traceCount: Int, sessionCount: Int, llmCalls: Int, errorCount: Int, inputTokens: Int64, outputTokens: Int64, costUSD: Double) {
        self.userID = userID
        self.firstUnixNanos = firstUnixNanos
        self.lastUnixNanos = lastUnixNanos
        self.traceCount = traceCount
        self.sessionCount = sessionCount
        self.llmCalls = llmCalls
        self.errorCount = errorCount
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.costUSD = costUSD
    }
}
