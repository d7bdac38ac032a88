import AsyncHTTPClient
import EvalForgeCore
import Foundation
import Logging
import Metrics
import NIOCore

/// A model provider the runner calls: a judge, or an experiment's target.
public struct ProviderConfig: Sendable, Codable, Hashable {
    public enum Kind: String, Sendable, Codable, Hashable { case openai, anthropic }
    public var name: String
    public var kind: Kind
    /// OpenAI-compatible: up to and including `/v1` (e.g. "https://api.openai.com/v1");
    /// Anthropic: the host (e.g. "https://api.anthropic.com").
    public var baseURL: String
    public var apiKey: String
    /// Default model.
    public var model: String
    /// Most requests in flight to this provider. Default 256.
    public var maxConcurrency: Int
    /// Requests per second (token bucket); 0 = unlimited. Default 0.
    public var requestsPerSecond: Double
    /// Per-attempt timeout, ms. Default 30,000.
    public var timeoutMs: Int
    /// Retries after the first attempt (429, 5xx, 529, timeouts, transport errors). Default 4.
    public var maxRetries: Int
    /// First backoff, ms (doubles per attempt, full jitter, capped at 20 s); `Retry-After` wins. Default 500.
    public var backoffMs: Int
    /// Extra request headers (e.g. an organization header; tests use `x-mock-fault`).
    public var headers: [String: String]

    public init(name: String, kind: Kind, baseURL: String, apiKey: String = "", model: String, maxConcurrency: Int = 256, requestsPerSecond: Double = 0, timeoutMs: Int = 30_000, maxRetries: Int = 4, backoffMs: Int = 500, headers: [String: String] = [:]) {
        self.headers = headers
        self.name = name
        self.kind = kind
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.model = model
        self.maxConcurrency = maxConcurrency
        self.requestsPerSecond = requestsPerSecond
        self.timeoutMs = timeoutMs
        self.maxRetries = maxRetries
        self.backoffMs = backoffMs
    }

    enum CodingKeys: String, CodingKey { case name, kind, baseURL, apiKey, model, maxConcurrency, requestsPerSecond, timeoutMs, maxRetries, backoffMs, headers }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        kind = try c.decode(Kind.self, forKey: .kind)
        baseURL = try c.decode(String.self, forKey: .baseURL)
        apiKey = try c.decodeIfPresent(String.self, forKey: .apiKey) ?? ""
        model = try c.decode(String.self, forKey: .model)
        maxConcurrency = try c.decodeIfPresent(Int.self, forKey: .maxConcurrency) ?? 256
        requestsPerSecond = try c.decodeIfPresent(Double.self, forKey: .requestsPerSecond) ?? 0
        timeoutMs = try c.decodeIfPresent(Int.self, forKey: .timeoutMs) ?? 30_000
        maxRetries = try c.decodeIfPresent(Int.self, forKey: .maxRetries) ?? 4
        backoffMs = try c.decodeIfPresent(Int.self, forKey: .backoffMs) ?? 500
        headers = try c.decodeIfPresent([String: String].self, forKey: .headers) ?? [:]
    }

    func validate() throws {
        guard !name.isEmpty else { throw EvaluationError.invalidArgument("provider.name: must not be empty") }
        guard let u = URL(string: baseURL), u.scheme == "http" || u.scheme == "https" else {
            throw EvaluationError.invalidArgument("provider.baseURL: '\(baseURL)' is not an http(s) URL")
        }
        guard !model.isEmpty else { throw EvaluationError.invalidArgument("provider.model: must not be empty") }
        guard (1...4096).contains(maxConcurrency) else { throw EvaluationError.invalidArgument("provider.maxConcurrency: expected 1…4096, got \(maxConcurrency)") }
        guard requestsPerSecond >= 0 else { throw EvaluationError.invalidArgument("provider.requestsPerSecond: expected ≥ 0") }
        guard (100...600_000).contains(timeoutMs) else { throw EvaluationError.invalidArgument("provider.timeoutMs: expected 100…600000") }
        guard (0...10).contains(maxRetries) else { throw EvaluationError.invalidArgument("provider.maxRetries: expected 0…10") }
    }

    /// The configuration with the API key hidden (for API answers).
    var redacted: ProviderConfig {
        var c = self
        c.apiKey = apiKey.isEmpty ? "" : "••••" + String(apiKey.suffix(4))
        return c
    }
}

/// One model call made by the runner (judge or target); stored as a span.
public struct ModelCall: Sendable, Hashable, Codable {
    public var provider: String
    public var model: String
    public var startUnixNanos: Int64
    public var durationNanos: Int64
    public var inputTokens: Int64
    public var outputTokens: Int64
    public var costUSD: Double?
    public var attempts: Int
    /// nil on success, else the reason.
    public var error: String?
    public var purpose: String
}

/// A chat answer.
struct ChatAnswer: Sendable {
    var text: String
    var toolCalls: [EvaluationInput.ToolCall]
    var call: ModelCall
}

/// Calls one provider with its concurrency cap, rate limit, retries (exponential backoff with
/// jitter, honouring Retry-After) and circuit breaker.
final class ProviderClient: Sendable {
    let config: ProviderConfig
    private let http: HTTPClient
    private let semaphore: AsyncSemaphore
    private let bucket: TokenBucket?
    let breaker: CircuitBreaker
    private let logger: Logger
    private let retries: Counter
    private let failures: Counter

    init(config: ProviderConfig, http: HTTPClient, logger: Logger) {
        self.config = config
        self.http = http
        semaphore = AsyncSemaphore(limit: config.maxConcurrency)
        bucket = config.requestsPerSecond > 0 ? TokenBucket(rate: config.requestsPerSecond) : nil
        breaker = CircuitBreaker(threshold: 20, cooldown: .seconds(5))
        self.logger = logger
        retries = Counter(label: "evalforge_eval_provider_retries_total", dimensions: [("provider", config.name)])
        failures = Counter(label: "evalforge_eval_provider_failures_total", dimensions: [("provider", config.name)])
    }

    /// One chat completion. Throws `EvaluationError` after retries; the ModelCall of a failed call
    /// is attached to the error through `ProviderCallError`.
    func chat(system: String?, messages: [EvaluationInput.Message], model: String?, jsonMode: Bool, maxTokens: Int, temperature: Double?, purpose: String) async throws(ProviderCallError) -> ChatAnswer {
        let model = model ?? config.model
        let body = requestBody(system: system, messages: messages, model: model, jsonMode: jsonMode, maxTokens: maxTokens, temperature: temperature)
        let start = Date()
        let startClock = ContinuousClock.now
        var attempt = 0
        var lastError = EvaluationError.provider("no attempt made")
        func makeCall(_ inTok: Int64, _ outTok: Int64, _ err: String?) -> ModelCall {
            let d = startClock.duration(to: .now)
            let cost = PriceTable.builtIn.cost(model: model, usage: TokenUsage(input: Int(inTok), output: Int(outTok)))
            return ModelCall(provider: config.name, model: model, startUnixNanos: Int64(start.timeIntervalSince1970 * 1e9), durationNanos: d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000, inputTokens: inTok, outputTokens: outTok, costUSD: cost, attempts: attempt, error: err, purpose: purpose)
        }
        while attempt <= config.maxRetries {
            attempt += 1
            if Task.isCancelled { break }
            if let wait = breaker.check() {
                lastError = .circuitOpen("provider '\(config.name)' failed repeatedly; circuit open")
                if attempt > config.maxRetries { break }
                try? await Task.sleep(for: wait)
                continue
            }
            var retryAfter: Duration?
            do {
                guard await semaphore.acquire() else { break }
                if let bucket { let d = bucket.reserve(); if d > .zero { try? await Task.sleep(for: d) } }
                let result: Result<ChatAnswer, EvaluationError>
                do {
                    result = try await send(body: body, model: model)
                    semaphore.release()
                } catch {
                    semaphore.release()
                    throw error
                }
                switch result {
                case .success(var answer):
                    breaker.success()
                    answer.call = makeCall(answer.call.inputTokens, answer.call.outputTokens, nil)
                    return answer
                case .failure(let e):
                    // Not retryable (4xx other than 429, or a malformed answer on a 200).
                    failures.increment()
                    throw ProviderCallError(error: e, call: makeCall(0, 0, e.description))
                }
            } catch let e as RetryableFailure {
                lastError = e.error
                retryAfter = e.retryAfter
                breaker.failure()
            } catch let e as ProviderCallError {
                throw e
            } catch {
                lastError = .provider("\(config.name): \(error)")
                breaker.failure()
            }
            if attempt > config.maxRetries { break }
            retries.increment()
            let cap = min(20_000.0, Double(config.backoffMs) * pow(2, Double(attempt - 1)))
            var delay = Duration.milliseconds(Int64(Double.random(in: 0...cap)))
            if let retryAfter { delay = min(retryAfter, .seconds(30)) }
            logger.debug("provider call retry", metadata: ["provider": "\(config.name)", "attempt": "\(attempt)", "reason": "\(lastError)"])
            try? await Task.sleep(for: delay)
        }
        failures.increment()
        throw ProviderCallError(error: lastError, call: makeCall(0, 0, lastError.description))
    }

    private func requestBody(system: String?, messages: [EvaluationInput.Message], model: String, jsonMode: Bool, maxTokens: Int, temperature: Double?) -> String {
        var o: [String: JSON] = ["model": .string(model), "max_tokens": .number(Double(maxTokens))]
        if let temperature { o["temperature"] = .number(temperature) }
        switch config.kind {
        case .openai:
            var msgs: [JSON] = []
            if let system { msgs.append(["role": "system", "content": .string(system)]) }
            for m in messages { msgs.append(["role": .string(m.role), "content": .string(m.content)]) }
            o["messages"] = .array(msgs)
            if jsonMode { o["response_format"] = ["type": "json_object"] }
        case .anthropic:
            if let system { o["system"] = .string(system) }
            o["messages"] = .array(messages.map { ["role": .string($0.role == "assistant" ? "assistant" : "user"), "content": .string($0.content)] })
        }
        return JSON.object(o).text
    }

    private func send(body: String, model: String) async throws -> Result<ChatAnswer, EvaluationError> {
        let url: String
        var request: HTTPClientRequest
        switch config.kind {
        case .openai:
            url = config.baseURL.trimmingSuffix("/") + "/chat/completions"
            request = HTTPClientRequest(url: url)
            if !config.apiKey.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(config.apiKey)") }
        case .anthropic:
            url = config.baseURL.trimmingSuffix("/") + "/v1/messages"
            request = HTTPClientRequest(url: url)
            request.headers.add(name: "x-api-key", value: config.apiKey)
            request.headers.add(name: "anthropic-version", value: "2023-06-01")
        }
        request.method = .POST
        for (k, v) in config.headers { request.headers.add(name: k, value: v) }
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let response: HTTPClientResponse
        let buffer: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .milliseconds(Int64(config.timeoutMs)))
            buffer = try await response.body.collect(upTo: 8 << 20)
        } catch let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout {
            throw RetryableFailure(error: .timeout("\(config.name) did not answer within \(config.timeoutMs) ms"), retryAfter: nil)
        } catch {
            throw RetryableFailure(error: .provider("\(config.name): transport error \(error)"), retryAfter: nil)
        }
        let status = Int(response.status.code)
        let text = String(buffer: buffer)
        if status == 429 || status >= 500 {
            let ra = response.headers.first(name: "retry-after").flatMap(Double.init).map { Duration.milliseconds(Int64($0 * 1000)) }
            throw RetryableFailure(error: .provider("\(config.name) answered \(status): \(text.prefix(200))"), retryAfter: ra)
        }
        guard (200..<300).contains(status) else {
            return .failure(.provider("\(config.name) answered \(status): \(text.prefix(300))"))
        }
        guard let json = JSON.parse(text) else {
            // A cut or malformed body: the provider's fault, worth a retry.
            throw RetryableFailure(error: .malformedAnswer("\(config.name) sent a body that is not JSON (\(text.count) bytes)"), retryAfter: nil)
        }
        var answer = ChatAnswer(text: "", toolCalls: [], call: ModelCall(provider: config.name, model: model, startUnixNanos: 0, durationNanos: 0, inputTokens: 0, outputTokens: 0, costUSD: nil, attempts: 0, error: nil, purpose: ""))
        switch config.kind {
        case .openai:
            guard let message = json["choices"]?.arrayValue?.first?["message"] else {
                return .failure(.malformedAnswer("\(config.name): the answer has no choices[0].message"))
            }
            answer.text = message["content"]?.stringValue ?? ""
            for tc in message["tool_calls"]?.arrayValue ?? [] {
                answer.toolCalls.append(.init(name: tc["function"]?["name"]?.stringValue ?? "", arguments: tc["function"]?["arguments"]?.stringValue ?? ""))
            }
            answer.call.inputTokens = Int64(json["usage"]?["prompt_tokens"]?.doubleValue ?? 0)
            answer.call.outputTokens = Int64(json["usage"]?["completion_tokens"]?.doubleValue ?? 0)
        case .anthropic:
            guard let blocks = json["content"]?.arrayValue else {
                return .failure(.malformedAnswer("\(config.name): the answer has no content blocks"))
            }
            for b in blocks {
                if b["type"]?.stringValue == "text" { answer.text += b["text"]?.stringValue ?? "" }
                if b["type"]?.stringValue == "tool_use" {
                    answer.toolCalls.append(.init(name: b["name"]?.stringValue ?? "", arguments: b["input"]?.text ?? "{}"))
                }
            }
            let u = json["usage"]
            answer.call.inputTokens = Int64((u?["input_tokens"]?.doubleValue ?? 0) + (u?["cache_read_input_tokens"]?.doubleValue ?? 0) + (u?["cache_creation_input_tokens"]?.doubleValue ?? 0))
            answer.call.outputTokens = Int64(u?["output_tokens"]?.doubleValue ?? 0)
        }
        return .success(answer)
    }
}

struct RetryableFailure: Error {
    let error: EvaluationError
    let retryAfter: Duration?
}

/// A failed provider call: the reason and the call record (attempts, duration).
struct ProviderCallError: Error {
    let error: EvaluationError
    let call: ModelCall
}

extension String {
    func trimmingSuffix(_ s: String) -> String { hasSuffix(s) ? String(dropLast(s.count)) : self }
}
