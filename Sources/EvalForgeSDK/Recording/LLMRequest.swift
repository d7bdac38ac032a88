/// What is known about an LLM call before it is sent: the `gen_ai.request.*` attributes and
/// EvalForge's user, session, tags and metadata.
public struct LLMRequest: Sendable {
    public var operation: GenAIOperation
    /// `gen_ai.provider.name`, e.g. "openai", "anthropic", "aws.bedrock".
    public var provider: String
    public var model: String
    public var temperature: Double?
    public var maxTokens: Int?
    public var topP: Double?
    public var topK: Int?
    public var frequencyPenalty: Double?
    public var presencePenalty: Double?
    public var stopSequences: [String] = []
    public var seed: Int?
    public var choiceCount: Int?
    public var stream: Bool = false
    public var serverAddress: String?
    public var serverPort: Int?
    /// `gen_ai.conversation.id`.
    public var conversationID: String?
    /// `user.id`.
    public var userID: String?
    /// `session.id`.
    public var sessionID: String?
    /// `evalforge.tags`.
    public var tags: [String] = []
    /// `evalforge.metadata.<key>`.
    public var metadata: [String: String] = [:]

    public init(operation: GenAIOperation = .chat, provider: String, model: String) {
        self.operation = operation
        self.provider = provider
        self.model = model
    }
}

/// Well-known `gen_ai.provider.name` values.
public enum LLMProvider {
    public static let openAI = "openai"
    public static let anthropic = "anthropic"
    public static let azureOpenAI = "azure.ai.openai"
    public static let awsBedrock = "aws.bedrock"
    public static let gcpVertexAI = "gcp.vertex_ai"
    public static let gcpGemini = "gcp.gemini"
    public static let mistral = "mistral_ai"
    public static let groq = "groq"
    public static let deepseek = "deepseek"
    public static let xAI = "x_ai"
}
