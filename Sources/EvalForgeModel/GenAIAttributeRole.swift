import EvalForgeCore

/// What an attribute key means to the normalizer: every GenAI key it understands (current OTel
/// names, deprecated names, OpenLLMetry and OpenInference aliases), looked up by name for decoded
/// spans and by bytes for spans read straight from the wire.
enum GenAIAttributeRole: UInt8, CaseIterable {
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

    struct Entry {
        var role: GenAIAttributeRole
        /// Deprecated names removed from the span once their canonical replacement is written.
        var removed: Bool
    }

    /// Every understood key, in the order the normalizer gives them precedence.
    static let names: [(String, GenAIAttributeRole)] = [
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

    static let byName: [String: Entry] = {
        var d: [String: Entry] = [:]
        for (name, role) in names where d[name] == nil { d[name] = Entry(role: role, removed: removedNames.contains(name)) }
        return d
    }()

    static let byBytes = WireKeyTable(byName)
}

/// Open-addressing table from attribute key bytes to their role: hashes the length and the first
/// and last eight bytes, then compares the whole key.
struct WireKeyTable: Sendable {
    private struct Slot: Sendable {
        var hash: UInt64
        var key: [UInt8]
        var role: GenAIAttributeRole
        var removed: Bool
    }

    private let slots: [Slot?]
    private let mask: Int

    init(_ entries: [String: GenAIAttributeRole.Entry]) {
        var size = 16
        while size < entries.count * 4 { size <<= 1 }
        var slots = [Slot?](repeating: nil, count: size)
        for (name, e) in entries {
            let key = Array(name.utf8)
            let h = key.withUnsafeBytes { Self.hash($0, 0..<$0.count) }
            var i = Int(truncatingIfNeeded: h) & (size - 1)
            while slots[i] != nil { i = (i + 1) & (size - 1) }
            slots[i] = Slot(hash: h, key: key, role: e.role, removed: e.removed)
        }
        self.slots = slots
        mask = size - 1
    }

    @inline(__always) static func hash(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> UInt64 {
        let n = r.count
        var h = UInt64(truncatingIfNeeded: n) &* 0x9E37_79B9_7F4A_7C15
        if n >= 8 {
            h ^= b.loadUnaligned(fromByteOffset: r.lowerBound, as: UInt64.self)
            h = (h ^ (h >> 29)) &* 0xBF58_476D_1CE4_E5B9
            h ^= b.loadUnaligned(fromByteOffset: r.upperBound - 8, as: UInt64.self)
        } else {
            var v: UInt64 = 0
            for i in r { v = v << 8 | UInt64(b[i]) }
            h ^= v
        }
        h = (h ^ (h >> 32)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 29)
    }

    /// The entry for the key at `range` of `buffer`, if it is one the normalizer understands.
    @inline(__always) func lookup(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) -> GenAIAttributeRole.Entry? {
        guard range.count >= 4, range.count <= 64 else { return nil }
        let h = Self.hash(buffer, range)
        var i = Int(truncatingIfNeeded: h) & mask
        while let s = slots[i] {
            if s.hash == h, s.key.count == range.count {
                let equal = s.key.withUnsafeBytes { k in
                    ProtobufWireCursor(buffer, range).equals(range, k)
                }
                if equal { return GenAIAttributeRole.Entry(role: s.role, removed: s.removed) }
            }
            i = (i + 1) & mask
        }
        return nil
    }
}
