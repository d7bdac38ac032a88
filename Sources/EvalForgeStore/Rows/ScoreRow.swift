/// An evaluation result or a piece of feedback, attached to a trace, a span or a session.
public struct ScoreRow: Sendable, Hashable, Codable {
    /// Unique id (client-supplied or generated); storing the same id twice keeps one.
    public var id: String
    public var projectID: String
    /// Trace the score belongs to, or "" for a session-level score.
    public var traceID: String
    /// Span the score belongs to, or "" for a trace- or session-level score.
    public var spanID: String
    /// Session the score belongs to, or "".
    public var sessionID: String
    /// Metric name, e.g. "relevance", "user_feedback", "json_valid".
    public var name: String
    /// Numeric value (booleans as 0/1); nil for purely categorical scores.
    public var value: Double?
    /// Categorical label ("pass", "fail", "thumbs_up", …) or "".
    public var label: String
    public var dataType: ScoreDataType
    /// Where the score came from.
    public var source: ScoreSource
    public var comment: String
    /// Evaluator name and version, or "" for feedback.
    public var evaluator: String
    /// Evaluation run or online rule that produced the score, or "".
    public var runID: String
    public var createdUnixNanos: Int64

    public init(id: String, projectID: String, traceID: String = "", spanID: String = "", sessionID: String = "", name: String, value: Double? = nil, label: String = "", dataType: ScoreDataType = .numeric, source: ScoreSource = .api, comment: String = "", evaluator: String = "", runID: String = "", createdUnixNanos: Int64) {
        self.id = id
        self.projectID = projectID
        self.traceID = traceID
        self.spanID = spanID
        self.sessionID = sessionID
        self.name = name
        self.value = value
        self.label = label
        self.dataType = dataType
        self.source = source
        self.comment = comment
        self.evaluator = evaluator
        self.runID = runID
        self.createdUnixNanos = createdUnixNanos
    }
}

public enum ScoreDataType: String, Sendable, Hashable, Codable, CaseIterable {
    case numeric, categorical, boolean
}

public enum ScoreSource: String, Sendable, Hashable, Codable, CaseIterable {
    /// Human or application feedback through the scores API.
    case api
    /// An online evaluation rule.
    case online
    /// An experiment run over a dataset.
    case experiment
    /// Annotated by a person in the UI.
    case annotation
}
