import Foundation
import HTTPTypes
import Hummingbird

/// `POST /v1/responses` (OpenAI's Responses API), streaming and not: text answers only (tools are
/// accepted and ignored), rendered from the same `AnswerPlan` as chat completions, so the same
/// conversation gets the same text and usage through either API.
struct OpenAIResponsesHandler: Sendable {
    let configuration: MockLLMConfiguration
    let faults: FaultInjector

    func handle(body: [UInt8], headers: HTTPFields) async throws -> Response {
        let plan: AnswerPlan
        let instructions: String?
        do {
            let overrides = try RequestOverrides(headers: headers)
            let (request, inst) = try Self.parse(body)
            instructions = inst
            plan = try Planner.plan(request, overrides: overrides, configuration: configuration, faults: faults, idPrefix: "resp_")
        } catch let e as MockLLMError {
            return OpenAIChatHandler.error(e.status, e.message, type: "invalid_request_error", code: e.providerCode)
        }
        let retryAfter = configuration.retryAfterSeconds
        switch plan.fault {
        case .rateLimited:
            return OpenAIChatHandler.error(
                429, "Rate limit reached for requests (mock). Please try again in \(retryAfter)s.",
                type: "rate_limit_exceeded", code: "rate_limit_exceeded", retryAfter: retryAfter)
        case .serverError:
            return OpenAIChatHandler.error(500, "The server had an error while processing your request (mock).", type: "server_error", code: "server_error")
        case .overloaded:
            return OpenAIChatHandler.error(
                503, "The engine is currently overloaded, please try again later (mock).", type: "server_error", code: "overloaded", retryAfter: retryAfter)
        case .malformed:
            if plan.stream {
                return MockResponses.eventStream(["event: response.created\ndata: {\"type\": \"response.created\", \"response\": {\"id\": \n\n"], ttftMs: plan.ttftMs, gap: .zero)
            }
            try await MockResponses.delay(plan.ttftMs)
            return MockResponses.text(200, "{\"id\": \"\(plan.id)\", \"object\": \"response\", \"output\": [", contentType: "application/json")
        case .cut, nil:
            break
        }
        let created = Int(Date().timeIntervalSince1970)
        let messageID = "msg_" + String(plan.idSeed, radix: 16)
        if plan.stream { return stream(plan, created: created, messageID: messageID, instructions: instructions) }
        let body = Self.response(plan, created: created, messageID: messageID, instructions: instructions, completed: true).text
        if plan.fault == .cut { return MockResponses.cutBody(body, ttftMs: plan.ttftMs) }
        try await MockResponses.delay(plan.ttftMs)
        return MockResponses.text(200, body, contentType: "application/json", headers: OpenAIChatHandler.headers(plan))
    }

    /// The request as a `ChatRequest`: `input` a string or an array of message items (content a string
    /// or input_text parts); `instructions` becomes a system message.
    static func parse(_ body: [UInt8]) throws -> (ChatRequest, instructions: String?) {
        guard let object = JSONText.object(body) else {
            throw MockLLMError.notJSON(body.isEmpty ? "the body is empty" : "expected a JSON object")
        }
        let o = RequestFields(object)
        let model = try o.requiredString("model")
        guard !model.isEmpty else { throw MockLLMError.invalidValue("model", "''", expected: "a model name such as gpt-4o") }
        var messages: [ChatMessage] = []
        let instructions = try o.string("instructions")
        if let instructions { messages.append(ChatMessage(role: "system", text: instructions)) }
        if let s = object["input"] as? String {
            messages.append(ChatMessage(role: "user", text: s))
        } else if let items = try? o.objects("input") {
            for item in items ?? [] {
                let type = try item.string("type") ?? "message"
                switch type {
                case "message":
                    let role = try item.requiredString("role")
                    guard ["system", "developer", "user", "assistant"].contains(role) else {
                        throw MockLLMError.invalidValue(item.name("role"), "'\(role)'", expected: "system, developer, user or assistant")
                    }
                    messages.append(ChatMessage(role: role, text: try OpenAIChatHandler.text(item)))
                case "function_call_output":
                    messages.append(ChatMessage(role: "tool", text: try item.string("output") ?? ""))
                default:
                    messages.append(ChatMessage(role: "assistant", text: ""))
                }
            }
        } else {
            throw MockLLMError.wrongType("input", expected: "a string or an array of input items")
        }
        guard messages.contains(where: { $0.role != "system" }) else {
            throw MockLLMError.missingField("input", expected: "a string or a non-empty array of input items")
        }
        var request = ChatRequest(model: model, messages: messages)
        if let m = try o.int("max_output_tokens") {
            guard m >= 1 else { throw MockLLMError.invalidValue("max_output_tokens", "\(m)", expected: "an integer ≥ 1") }
            request.maxTokens = m
        }
        _ = try o.number("temperature", in: 0...2)
        _ = try o.number("top_p", in: 0...1)
        request.stream = try o.bool("stream") ?? false
        // The Responses API always reports usage in `response.completed`.
        request.includeUsage = true
        return (request, instructions)
    }

    static func usage(_ p: AnswerPlan) -> JSONValue {
        [
            "input_tokens": .int(p.inputTokens), "input_tokens_details": ["cached_tokens": .int(p.cachedTokens)],
            "output_tokens": .int(p.outputTokens), "output_tokens_details": ["reasoning_tokens": .int(p.reasoningTokens)],
            "total_tokens": .int(p.inputTokens + p.outputTokens),
        ]
    }

    static func message(_ plan: AnswerPlan, messageID: String, text: String, completed: Bool) -> JSONValue {
        [
            "id": .string(messageID), "type": "message", "status": completed ? "completed" : "in_progress", "role": "assistant",
            "content": completed ? [["type": "output_text", "text": .string(text), "annotations": [], "logprobs": []]] : [],
        ]
    }

    /// The `response` object; in progress it has no output and no usage.
    static func response(_ plan: AnswerPlan, created: Int, messageID: String, instructions: String?, completed: Bool) -> JSONValue {
        let incomplete = completed && plan.finish == .length
        return [
            "id": .string(plan.id), "object": "response", "created_at": .int(created),
            "status": completed ? (incomplete ? "incomplete" : "completed") : "in_progress",
            "error": nil, "incomplete_details": incomplete ? ["reason": "max_output_tokens"] : nil,
            "instructions": instructions.map { .string($0) } ?? nil, "max_output_tokens": nil, "model": .string(plan.model),
            "output": completed ? [message(plan, messageID: messageID, text: plan.text, completed: true)] : [],
            "parallel_tool_calls": true, "previous_response_id": nil, "store": false, "temperature": .double(1),
            "text": ["format": ["type": "text"]], "tool_choice": "auto", "tools": [], "top_p": .double(1), "truncation": "disabled",
            "usage": completed ? usage(plan) : nil, "user": nil, "metadata": [:],
        ]
    }

    private func stream(_ plan: AnswerPlan, created: Int, messageID: String, instructions: String?) -> Response {
        var sequence = 0
        var events: [String] = []
        func add(_ type: String, _ fields: [(String, JSONValue)]) {
            events.append(MockResponses.sse(.object([("type", .string(type)), ("sequence_number", .int(sequence))] + fields), event: type))
            sequence += 1
        }
        let inProgress = Self.response(plan, created: created, messageID: messageID, instructions: instructions, completed: false)
        add("response.created", [("response", inProgress)])
        add("response.in_progress", [("response", inProgress)])
        add("response.output_item.added", [("output_index", 0), ("item", Self.message(plan, messageID: messageID, text: "", completed: false))])
        let emptyPart: JSONValue = ["type": "output_text", "text": "", "annotations": [], "logprobs": []]
        add("response.content_part.added", [("item_id", .string(messageID)), ("output_index", 0), ("content_index", 0), ("part", emptyPart)])
        if case .text(let chunks) = plan.content {
            for c in chunks {
                add("response.output_text.delta", [("item_id", .string(messageID)), ("output_index", 0), ("content_index", 0), ("delta", .string(c)), ("logprobs", [])])
            }
        }
        let text = plan.text
        add("response.output_text.done", [("item_id", .string(messageID)), ("output_index", 0), ("content_index", 0), ("text", .string(text)), ("logprobs", [])])
        let part: JSONValue = ["type": "output_text", "text": .string(text), "annotations": [], "logprobs": []]
        add("response.content_part.done", [("item_id", .string(messageID)), ("output_index", 0), ("content_index", 0), ("part", part)])
        add("response.output_item.done", [("output_index", 0), ("item", Self.message(plan, messageID: messageID, text: text, completed: true))])
        let final = Self.response(plan, created: created, messageID: messageID, instructions: instructions, completed: true)
        add(plan.finish == .length ? "response.incomplete" : "response.completed", [("response", final)])
        let cut = plan.fault == .cut ? max(1, events.count / 2) : nil
        return MockResponses.eventStream(events, ttftMs: plan.ttftMs, gap: plan.interChunkDelay, cutAfter: cut, headers: OpenAIChatHandler.headers(plan))
    }
}

/// `POST /v1/embeddings`: deterministic unit vectors (from the seed and each input), `float` or
/// `base64` (little-endian float32, the official Python client's default) encoding.
struct OpenAIEmbeddingsHandler: Sendable {
    let configuration: MockLLMConfiguration
    let faults: FaultInjector
    /// Most inputs per request (OpenAI's limit).
    static let maxInputs = 2048
    /// Dimensions when the request names none.
    static let defaultDimensions = 256
    static let maxDimensions = 4096

    func handle(body: [UInt8], headers: HTTPFields) async throws -> Response {
        do {
            let overrides = try RequestOverrides(headers: headers)
            guard let object = JSONText.object(body) else {
                throw MockLLMError.notJSON(body.isEmpty ? "the body is empty" : "expected a JSON object")
            }
            let o = RequestFields(object)
            let model = try o.requiredString("model")
            guard !model.isEmpty else { throw MockLLMError.invalidValue("model", "''", expected: "an embedding model such as text-embedding-3-small") }
            let inputs = try Self.inputs(object["input"])
            let dimensions = try o.int("dimensions") ?? Self.defaultDimensions
            guard (1...Self.maxDimensions).contains(dimensions) else {
                throw MockLLMError.invalidValue("dimensions", "\(dimensions)", expected: "an integer in 1...\(Self.maxDimensions)")
            }
            let format = try o.string("encoding_format") ?? "float"
            guard format == "float" || format == "base64" else {
                throw MockLLMError.invalidValue("encoding_format", "'\(format)'", expected: "float or base64")
            }
            let seed = overrides.seed ?? configuration.seed
            let request = ChatRequest(model: model, messages: inputs.map { ChatMessage(role: "user", text: $0) })
            let fault = faults.fault(forced: overrides.fault, seed: seed, requestHash: request.contentHash)
            switch fault {
            case .rateLimited:
                return OpenAIChatHandler.error(429, "Rate limit reached for requests (mock).", type: "rate_limit_exceeded", code: "rate_limit_exceeded", retryAfter: configuration.retryAfterSeconds)
            case .serverError, .overloaded:
                return OpenAIChatHandler.error(500, "The server had an error while processing your request (mock).", type: "server_error", code: "server_error")
            case .malformed:
                return MockResponses.text(200, "{\"object\": \"list\", \"data\": [", contentType: "application/json")
            case .cut, nil:
                break
            }
            var data: [JSONValue] = []
            var tokens = 0
            for (i, text) in inputs.enumerated() {
                tokens += TokenCounter.tokens(text)
                let vector = Self.vector(text, seed: seed, dimensions: dimensions)
                let embedding: JSONValue = format == "base64" ? .string(Self.base64(vector)) : .array(vector.map { .double(Double($0)) })
                data.append(["object": "embedding", "index": .int(i), "embedding": embedding])
            }
            let body: JSONValue = ["object": "list", "data": .array(data), "model": .string(model), "usage": ["prompt_tokens": .int(tokens), "total_tokens": .int(tokens)]]
            if fault == .cut { return MockResponses.cutBody(body.text, ttftMs: 0) }
            return MockResponses.json(200, body)
        } catch let e as MockLLMError {
            return OpenAIChatHandler.error(e.status, e.message, type: "invalid_request_error", code: e.providerCode)
        }
    }

    /// `input`: a string, an array of strings, or token arrays (counted as text of their numbers).
    static func inputs(_ v: Any?) throws -> [String] {
        let out: [String]
        if let s = v as? String {
            out = [s]
        } else if let a = v as? [String] {
            out = a
        } else if let a = v as? [NSNumber] {
            out = [a.map { $0.stringValue }.joined(separator: " ")]
        } else if let a = v as? [[NSNumber]] {
            out = a.map { $0.map { $0.stringValue }.joined(separator: " ") }
        } else {
            throw MockLLMError.wrongType("input", expected: "a string, an array of strings or an array of token arrays")
        }
        guard !out.isEmpty, out.count <= maxInputs else {
            throw MockLLMError.invalidValue("input", "\(out.count) inputs", expected: "1...\(maxInputs) inputs")
        }
        return out
    }

    /// A unit vector from (seed, text).
    static func vector(_ text: String, seed: UInt64, dimensions: Int) -> [Float] {
        var rng = MockRNG(seed: seed, body: Array(text.utf8))
        var v = (0..<dimensions).map { _ in Float(rng.unit() * 2 - 1) }
        let norm = v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { v = v.map { $0 / norm } }
        return v
    }

    static func base64(_ v: [Float]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(v.count * 4)
        for f in v { withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        return Data(bytes).base64EncodedString()
    }
}
