/// The kind of work a span records: `gen_ai.operation.name`.
public struct GenAIOperation: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }
    public var description: String { name }

    public static let chat = GenAIOperation("chat")
    public static let textCompletion = GenAIOperation("text_completion")
    public static let generateContent = GenAIOperation("generate_content")
    public static let embeddings = GenAIOperation("embeddings")
    public static let invokeAgent = GenAIOperation("invoke_agent")
    public static let createAgent = GenAIOperation("create_agent")
    public static let executeTool = GenAIOperation("execute_tool")
    /// Retrieval of context (a vector search, a document fetch).
    public static let retrieval = GenAIOperation("retrieval")
    /// Any other named step of an agent or workflow.
    public static let step = GenAIOperation("step")

    /// A span of `EvalForge.Tracer` (a service's own `withSpan`): no `gen_ai.operation.name`.
    static let none = GenAIOperation("")

    var isModelCall: Bool { self == .chat || self == .textCompletion || self == .generateContent || self == .embeddings }
}
