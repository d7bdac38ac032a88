/// What is known about an LLM call before it is sent: the `gen_ai.request.*` attributes and
/// EvalForge's user, session, tags and metadata.
///
/// A value type whose fields live behind one copy-on-write reference: starting a span takes the
/// request with one retain instead of a retain per string and array, and the span's record stays
/// small to move. Mutating a shared request copies its fields first (value semantics as before).
public struct LLMRequest: Sendable {
    /// The stored fields (one home: the properties below only forward to them).
    struct Fields: Sendable {
        var operation: GenAIOperation
        var provider: String
        var model: String
        var temperature: Double?
        var maxTokens: Int?
        var topP: Double?
        var topK: Int?
        var frequencyPenalty: Double?
        var presencePenalty: Double?
        var stopSequences: [String] = []
        var seed: Int?
        var choiceCount: Int?
        var stream: Bool = false
        var serverAddress: String?
        var serverPort: Int?
        var conversationID: String?
        var userID: String?
        var sessionID: String?
        var tags: [String] = []
        var metadata: [String: String] = [:]
    }

    /// Mutated only while uniquely referenced (`fields`' `_modify` copies a shared one first), so it
    /// is never written while another thread can read it; hence unchecked Sendable and no dynamic
    /// exclusivity check on each field access.
    ///
    /// The fields start a cache line after the object's reference count (`padding`): a request
    /// reused for many calls is retained by the recording thread at each span start while the export
    /// loop reads its fields, and sharing one line made every such retain wait for the line to come
    /// back from the other core.
    final class Storage: @unchecked Sendable {
        private let padding: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        @exclusivity(unchecked) var fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var storage: Storage

    private var fields: Fields {
        @inline(__always) _read { yield storage.fields }
        @inline(__always) _modify {
            if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.fields) }
            yield &storage.fields
        }
    }

    public init(operation: GenAIOperation = .chat, provider: String, model: String) {
        storage = Storage(Fields(operation: operation, provider: provider, model: model))
    }

    /// An empty request (no operation, provider or model), shared: what an ended span reads.
    static let empty = LLMRequest(operation: .none, provider: "", model: "")

    public var operation: GenAIOperation {
        get { fields.operation }
        _modify { yield &fields.operation }
    }
    /// `gen_ai.provider.name`, e.g. "openai", "anthropic", "aws.bedrock".
    public var provider: String {
        get { fields.provider }
        _modify { yield &fields.provider }
    }
    public var model: String {
        get { fields.model }
        _modify { yield &fields.model }
    }
    public var temperature: Double? {
        get { fields.temperature }
        _modify { yield &fields.temperature }
    }
    public var maxTokens: Int? {
        get { fields.maxTokens }
        _modify { yield &fields.maxTokens }
    }
    public var topP: Double? {
        get { fields.topP }
        _modify { yield &fields.topP }
    }
    public var topK: Int? {
        get { fields.topK }
        _modify { yield &fields.topK }
    }
    public var frequencyPenalty: Double? {
        get { fields.frequencyPenalty }
        _modify { yield &fields.frequencyPenalty }
    }
    public var presencePenalty: Double? {
        get { fields.presencePenalty }
        _modify { yield &fields.presencePenalty }
    }
    public var stopSequences: [String] {
        get { fields.stopSequences }
        _modify { yield &fields.stopSequences }
    }
    public var seed: Int? {
        get { fields.seed }
        _modify { yield &fields.seed }
    }
    public var choiceCount: Int? {
        get { fields.choiceCount }
        _modify { yield &fields.choiceCount }
    }
    public var stream: Bool {
        get { fields.stream }
        _modify { yield &fields.stream }
    }
    public var serverAddress: String? {
        get { fields.serverAddress }
        _modify { yield &fields.serverAddress }
    }
    public var serverPort: Int? {
        get { fields.serverPort }
        _modify { yield &fields.serverPort }
    }
    /// `gen_ai.conversation.id`.
    public var conversationID: String? {
        get { fields.conversationID }
        _modify { yield &fields.conversationID }
    }
    /// `user.id`.
    public var userID: String? {
        get { fields.userID }
        _modify { yield &fields.userID }
    }
    /// `session.id`.
    public var sessionID: String? {
        get { fields.sessionID }
        _modify { yield &fields.sessionID }
    }
    /// `evalforge.tags`.
    public var tags: [String] {
        get { fields.tags }
        _modify { yield &fields.tags }
    }
    /// `evalforge.metadata.<key>`.
    public var metadata: [String: String] {
        get { fields.metadata }
        _modify { yield &fields.metadata }
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
