import EvalForgeCore
import EvalForgeModel

/// What an attribute key means to the normalizer: every GenAI key it understands (current OTel
/// names, deprecated names, OpenLLMetry and OpenInference aliases), looked up by name for decoded
/// spans and by bytes for spans read straight from the wire.
package enum GenAIAttributeRole: UInt8, CaseIterable {
    case providerName, system, llmProvider, llmSystem
    case requestModel, modelAlias, responseModel, responseModelAlias
    case operationName, llmRequestType, openInferenceKind
    case inputTokens, promptTokensAlias, outputTokens, completionTokensAlias, totalTokens
    case cacheRead, cacheReadAlias, cacheCreation, cacheCreationAlias, reasoning, reasoningAlias
    case costUSD, costAlias, timeToFirstChunk
    case userID, userAlias, sessionID, sessionAlias
    case inputMessages, outputMessages, errorType

    /// Canonical names: when the span has one, the normalizer does not add it again.
    var isCanonical: Bool {
        switch self {
        case .providerName, .requestModel, .responseModel, .operationName, .inputTokens, .outputTokens,
            .cacheRead, .cacheCreation, .reasoning, .costUSD, .userID, .sessionID, .inputMessages, .outputMessages:
            return true
        default: return false
        }
    }

    @inline(__always) var bit: UInt64 { 1 << UInt64(rawValue) }

    package struct Entry: Sendable {
        package var role: GenAIAttributeRole
        /// Deprecated names removed from the span once their canonical replacement is written.
        package var removed: Bool
    }

    /// Every understood key, in the order the normalizer gives them precedence.
    package static let names: [(String, GenAIAttributeRole)] = [
        (GenAIKeys.providerName, .providerName),
        (GenAIKeys.system, .system),
        ("llm.provider", .llmProvider),
        ("llm.system", .llmSystem), ("llm.vendor", .llmSystem),
        (GenAIKeys.requestModel, .requestModel),
        ("llm.model_name", .modelAlias), ("llm.request.model", .modelAlias),
        (GenAIKeys.responseModel, .responseModel),
        ("llm.response.model", .responseModelAlias),
        (GenAIKeys.operationName, .operationName),
        ("llm.request.type", .llmRequestType),
        ("openinference.span.kind", .openInferenceKind),
        (GenAIKeys.usageInputTokens, .inputTokens),
        (GenAIKeys.usagePromptTokens, .promptTokensAlias), ("llm.token_count.prompt", .promptTokensAlias), ("llm.usage.prompt_tokens", .promptTokensAlias),
        (GenAIKeys.usageOutputTokens, .outputTokens),
        (GenAIKeys.usageCompletionTokens, .completionTokensAlias), ("llm.token_count.completion", .completionTokensAlias), ("llm.usage.completion_tokens", .completionTokensAlias),
        ("llm.usage.total_tokens", .totalTokens), ("llm.token_count.total", .totalTokens), ("gen_ai.usage.total_tokens", .totalTokens),
        (GenAIKeys.usageCacheReadInputTokens, .cacheRead),
        ("gen_ai.usage.cache_read_input_tokens", .cacheReadAlias), ("llm.token_count.prompt_details.cache_read", .cacheReadAlias),
        (GenAIKeys.usageCacheCreationInputTokens, .cacheCreation),
        ("gen_ai.usage.cache_creation_input_tokens", .cacheCreationAlias), ("llm.token_count.prompt_details.cache_write", .cacheCreationAlias),
        (GenAIKeys.usageReasoningOutputTokens, .reasoning),
        ("llm.token_count.completion_details.reasoning", .reasoningAlias), ("gen_ai.usage.reasoning_tokens", .reasoningAlias),
        (GenAIKeys.costUSD, .costUSD),
        ("gen_ai.usage.cost", .costAlias), ("llm.cost.total", .costAlias),
        (GenAIKeys.timeToFirstChunk, .timeToFirstChunk),
        (GenAIKeys.userID, .userID),
        ("llm.user", .userAlias), ("enduser.id", .userAlias),
        (GenAIKeys.sessionID, .sessionID),
        ("gen_ai.conversation.id", .sessionAlias),
        (GenAIKeys.inputMessages, .inputMessages), (GenAIKeys.outputMessages, .outputMessages),
        (GenAIKeys.errorType, .errorType),
    ]

    static let removedNames: Set<String> = [GenAIKeys.system, GenAIKeys.usagePromptTokens, GenAIKeys.usageCompletionTokens]

    package static let byName: [String: Entry] = {
        var d: [String: Entry] = [:]
        for (name, role) in names where d[name] == nil { d[name] = Entry(role: role, removed: removedNames.contains(name)) }
        return d
    }()

    static let byBytes = WireKeyTable(byName.map { ($0.key, $0.value) })
}
