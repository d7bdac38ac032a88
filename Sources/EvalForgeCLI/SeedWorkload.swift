import EvalForgeSDK
import Foundation

/// Realistic synthetic LLM traffic through the SDK against an OpenAI/Anthropic-compatible endpoint
/// (the mock LLM): multi-turn chat sessions, tool-using agents, retrieval-augmented answers, several
/// providers and models, streaming, injected errors and slow calls, users and tags. Deterministic
/// for a given seed: trace `i` always takes the same shape.
struct SeedWorkload: Sendable {
    let llmURL: String
    let seed: UInt64
    let users: Int

    struct Clients: Sendable {
        let openAI: LLMHTTPClient
        let anthropic: LLMHTTPClient
        let openAISlow: LLMHTTPClient
        let anthropicSlow: LLMHTTPClient
        let faults: [LLMHTTPClient]
    }

    let clients: Clients

    init(llmURL: String, seed: UInt64 = 42, users: Int = 40) throws {
        self.llmURL = llmURL
        self.seed = seed
        self.users = max(1, users)
        let base = llmURL.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        clients = Clients(
            openAI: try LLMHTTPClient(api: .openAIChatCompletions, baseURL: base + "/v1", apiKey: "seed-key"),
            anthropic: try LLMHTTPClient(api: .anthropicMessages, baseURL: base, apiKey: "seed-key"),
            openAISlow: try LLMHTTPClient(api: .openAIChatCompletions, baseURL: base + "/v1", apiKey: "seed-key", headers: ["x-mock-latency-ms": "1800"]),
            anthropicSlow: try LLMHTTPClient(api: .anthropicMessages, baseURL: base, apiKey: "seed-key", headers: ["x-mock-latency-ms": "2200"]),
            faults: try ["429", "500", "529"].map { try LLMHTTPClient(api: .openAIChatCompletions, baseURL: base + "/v1", apiKey: "seed-key", headers: ["x-mock-fault": $0]) }
        )
    }

    static let openAIModels = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o3-mini"]
    static let anthropicModels = ["claude-haiku-4-5", "claude-sonnet-4-5"]
    static let questions = [
        "How do I reset my password?", "Summarise this invoice for me.", "What is your refund policy for damaged items?",
        "Translate 'good morning' into French and German.", "Which plan includes SSO?", "Draft a polite reply declining the meeting.",
        "Why was my card charged twice?", "Explain rate limits in one paragraph.", "List three ways to reduce cloud costs.",
        "Is my order #48213 shipped yet?", "Write a SQL query counting orders per day.", "What's the weather like in Lisbon?",
    ]
    static let features = ["checkout", "support", "search", "onboarding", "billing"]

    /// What one trace does.
    enum Shape { case chatTurn, agent, rag, streamChat }

    /// Runs trace `index`; returns true when one of its calls failed (an injected fault).
    func run(_ index: Int) async -> Bool {
        var rng = SplitMix(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        // Sessions of four consecutive turns, each session belonging to one user.
        let sessionIndex = index / 4
        var sessionRNG = SplitMix(seed: seed ^ UInt64(sessionIndex) &* 0xD1B5_4A32_D192_ED03)
        let user = "user-\(sessionRNG.next() % UInt64(users))"
        let session = "sess-\(String(sessionRNG.next() % 0xFFFF_FFFF, radix: 16))-\(sessionIndex)"
        let env = rng.next() % 4 == 0 ? "beta" : "prod"
        let feature = Self.features[Int(rng.next() % UInt64(Self.features.count))]
        let context = LLMHTTPClient.CallContext(userID: user, sessionID: session, tags: [env, feature])
        let shapeRoll = rng.next() % 100
        let shape: Shape = shapeRoll < 35 ? .chatTurn : shapeRoll < 65 ? .agent : shapeRoll < 80 ? .rag : .streamChat
        let useAnthropic = rng.next() % 3 == 0
        let faultRoll = rng.next() % 100
        let slow = rng.next() % 100 < 4
        let question = Self.questions[Int(rng.next() % UInt64(Self.questions.count))]
        let model = useAnthropic ? Self.anthropicModels[Int(rng.next() % 2)] : Self.openAIModels[Int(rng.next() % 4)]
        var client = useAnthropic ? clients.anthropic : clients.openAI
        if slow { client = useAnthropic ? clients.anthropicSlow : clients.openAISlow }
        if faultRoll < 4, !useAnthropic { client = clients.faults[Int(faultRoll) % clients.faults.count] }
        let messages: [[String: Any]] = [["role": "system", "content": "You are the \(feature) assistant of Acme."], ["role": "user", "content": question]]

        do {
            switch shape {
            case .chatTurn:
                _ = try await client.send(body(model: model, messages: messages, anthropic: useAnthropic), context: context)
            case .streamChat:
                for try await _ in client.stream(body(model: model, messages: messages, anthropic: useAnthropic, stream: true), context: context) {}
            case .agent:
                try await EvalForge.withStep(.invokeAgent, name: "\(feature)-agent") { _ in
                    let tools: [[String: Any]] = useAnthropic
                        ? [["name": "lookup_order", "description": "Find an order", "input_schema": ["type": "object", "properties": ["order_id": ["type": "string"]], "required": ["order_id"]]]]
                        : [["type": "function", "function": ["name": "lookup_order", "parameters": ["type": "object", "properties": ["order_id": ["type": "string"]], "required": ["order_id"]]]]]
                    var first = bodyObject(model: model, messages: messages, anthropic: useAnthropic)
                    first["tools"] = tools
                    _ = try await client.send(json(first), context: context)
                    let toolCalls = 1 + Int(index % 2)
                    for t in 0..<toolCalls {
                        try await EvalForge.withStep(.executeTool, name: t == 0 ? "lookup_order" : "search_kb") { _ in
                            try await Task.sleep(for: .milliseconds(2 + index % 7))
                        }
                    }
                    var followUp = messages
                    followUp.append(["role": "assistant", "content": "Looking that up."])
                    followUp.append(["role": "user", "content": "Tool result: order 48213 shipped yesterday."])
                    _ = try await client.send(body(model: model, messages: followUp, anthropic: useAnthropic), context: context)
                }
            case .rag:
                try await EvalForge.withStep(.step, name: "rag-answer") { _ in
                    try await EvalForge.withStep(.retrieval, name: "vector-search") { _ in try await Task.sleep(for: .milliseconds(3)) }
                    var withContext = messages
                    withContext.insert(["role": "system", "content": "Context: Refunds are accepted within 30 days with a receipt."], at: 1)
                    _ = try await client.send(body(model: model, messages: withContext, anthropic: useAnthropic), context: context)
                }
            }
            return false
        } catch {
            return true
        }
    }

    func body(model: String, messages: [[String: Any]], anthropic: Bool, stream: Bool = false) -> Data {
        json(bodyObject(model: model, messages: messages, anthropic: anthropic, stream: stream))
    }

    func bodyObject(model: String, messages: [[String: Any]], anthropic: Bool, stream: Bool = false) -> [String: Any] {
        var b: [String: Any] = ["model": model, "max_tokens": 256]
        if anthropic {
            b["system"] = messages.first?["content"] ?? ""
            b["messages"] = Array(messages.dropFirst()).map { m -> [String: Any] in
                var m = m
                if (m["role"] as? String) == "system" { m["role"] = "user" }
                return m
            }
        } else {
            b["messages"] = messages
        }
        if stream {
            b["stream"] = true
            if !anthropic { b["stream_options"] = ["include_usage": true] }
        }
        return b
    }

    func json(_ object: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
    }
}

/// SplitMix64: a tiny deterministic generator, so a seed reproduces the same traffic.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs `count` workload traces with bounded concurrency, printing progress.
enum SeedRunner {
    static func run(_ workload: SeedWorkload, count: Int, concurrency: Int, progress: Bool, label: String = "seed") async -> (errors: Int, seconds: Double) {
        let start = ContinuousClock.now
        var errors = 0
        var done = 0
        var lastPrint = ContinuousClock.now
        await withTaskGroup(of: Bool.self) { group in
            var next = 0
            while next < min(count, concurrency) {
                let i = next
                group.addTask { await workload.run(i) }
                next += 1
            }
            while let failed = await group.next() {
                done += 1
                if failed { errors += 1 }
                if next < count {
                    let i = next
                    group.addTask { await workload.run(i) }
                    next += 1
                }
                if progress, ContinuousClock.now - lastPrint > .seconds(1) || done == count {
                    lastPrint = ContinuousClock.now
                    let secs = max(0.001, Double((ContinuousClock.now - start).components.attoseconds) / 1e18 + Double((ContinuousClock.now - start).components.seconds))
                    let bar = String(repeating: "█", count: done * 30 / max(1, count)) + String(repeating: "░", count: 30 - done * 30 / max(1, count))
                    say("\(label): \(bar) \(done)/\(count) traces  \(Int(Double(done) / secs))/s  failed calls \(errors)")
                }
            }
        }
        let d = ContinuousClock.now - start
        return (errors, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }
}

/// Prints a line and flushes it at once, so progress shows when stdout is a file or a pipe.
func say(_ line: String) {
    print(line)
    fflush(nil)
}
