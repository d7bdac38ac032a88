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
        maxConcurrency = try c.decodeCheckedInt(.maxConcurrency, field: "provider.maxConcurrency") ?? 256
        requestsPerSecond = try c.decodeIfPresent(Double.self, forKey: .requestsPerSecond) ?? 0
        timeoutMs = try c.decodeCheckedInt(.timeoutMs, field: "provider.timeoutMs") ?? 30_000
        maxRetries = try c.decodeCheckedInt(.maxRetries, field: "provider.maxRetries") ?? 4
        backoffMs = try c.decodeCheckedInt(.backoffMs, field: "provider.backoffMs") ?? 500
        headers = try c.decodeIfPresent([String: String].self, forKey: .headers) ?? [:]
    }

    /// Bounds of the settings, checked when the provider is stored.
    static let maxRequestsPerSecond = 100_000.0
    static let minRequestsPerSecond = 0.001
    static let maxBackoffMs = 60_000
    static let maxHeaders = 32

    func validate() throws(EvaluationError) {
        guard !name.isEmpty, name.count <= 100 else { throw .invalidArgument("provider.name: 1–100 characters expected") }
        guard baseURL.utf8.count <= 2048, let u = URL(string: baseURL), u.scheme == "http" || u.scheme == "https", u.host != nil else {
            throw .invalidArgument("provider.baseURL: '\(baseURL.prefix(200))' is not an http(s) URL")
        }
        guard !model.isEmpty, model.count <= 200 else { throw .invalidArgument("provider.model: 1–200 characters expected") }
        guard apiKey.utf8.count <= 4096, Self.isHeaderValue(apiKey) else { throw .invalidArgument("provider.apiKey: at most 4096 bytes without control characters") }
        guard (1...4096).contains(maxConcurrency) else { throw .invalidArgument("provider.maxConcurrency: expected 1…4096, got \(maxConcurrency)") }
        guard requestsPerSecond == 0 || (requestsPerSecond.isFinite && (Self.minRequestsPerSecond...Self.maxRequestsPerSecond).contains(requestsPerSecond)) else {
            throw .invalidArgument("provider.requestsPerSecond: expected 0 (unlimited) or \(Self.minRequestsPerSecond)…\(Checked.text(Self.maxRequestsPerSecond)), got \(Checked.text(requestsPerSecond))")
        }
        guard (100...600_000).contains(timeoutMs) else { throw .invalidArgument("provider.timeoutMs: expected 100…600000, got \(timeoutMs)") }
        guard (0...10).contains(maxRetries) else { throw .invalidArgument("provider.maxRetries: expected 0…10, got \(maxRetries)") }
        guard (0...Self.maxBackoffMs).contains(backoffMs) else { throw .invalidArgument("provider.backoffMs: expected 0…\(Self.maxBackoffMs), got \(backoffMs)") }
        try Self.checkHeaders(headers, field: "provider.headers")
    }

    /// Extra request headers: at most 32, names are HTTP tokens, values have no control characters.
    static func checkHeaders(_ headers: [String: String], field: String) throws(EvaluationError) {
        guard headers.count <= maxHeaders else { throw .invalidArgument("\(field): at most \(maxHeaders) headers, got \(headers.count)") }
        for (k, v) in headers {
            let token = !k.isEmpty && k.utf8.count <= 256 && k.utf8.allSatisfy { c in
                (0x21...0x7E).contains(c) && !"()<>@,;:\\\"/[]?={}".utf8.contains(c)
            }
            guard token else { throw .invalidArgument("\(field): '\(k.prefix(60))' is not a valid header name") }
            guard v.utf8.count <= 8192, isHeaderValue(v) else { throw .invalidArgument("\(field).\(k): the value must be at most 8192 bytes without control characters") }
        }
    }

    static func isHeaderValue(_ v: String) -> Bool { v.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) } }

    /// The configuration with the API key and the header values hidden (for API answers): headers
    /// carry credentials too (organization keys, proxy tokens). A hint shows the last 4 characters
    /// of a value of at least 12, so a short secret is never shown whole.
    var redacted: ProviderConfig {
        var c = self
        c.apiKey = Self.hint(apiKey)
        c.headers = headers.mapValues(Self.hint)
        return c
    }

    static func hint(_ secret: String) -> String {
        secret.isEmpty ? "" : (secret.count >= 12 ? "••••" + String(secret.suffix(4)) : "••••")
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
    /// Prices the calls (`EvaluationSettings.priceTable`).
    let priceTable: PriceTable
    private let http: OutboundHTTP
    private let semaphore: AsyncSemaphore
    private let bucket: TokenBucket?
    let breaker: CircuitBreaker
    private let logger: Logger
    private let retries: Counter
    private let failures: Counter

    init(config: ProviderConfig, http: OutboundHTTP, priceTable: PriceTable = .builtIn, logger: Logger) {
        self.config = config
        self.priceTable = priceTable
        self.http = http
        // The stored configuration was validated when written, but is read back, not trusted.
        semaphore = AsyncSemaphore(limit: Swift.min(Swift.max(config.maxConcurrency, 1), 4096))
        let rate = config.requestsPerSecond
        bucket = rate.isFinite && rate > 0 ? TokenBucket(rate: Swift.min(Swift.max(rate, ProviderConfig.minRequestsPerSecond), ProviderConfig.maxRequestsPerSecond)) : nil
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
            let cost = priceTable.cost(model: model, usage: TokenUsage(input: Int(inTok), output: Int(outTok)))
            return ModelCall(provider: config.name, model: model, startUnixNanos: unixNanos(start), durationNanos: Checked.nanoseconds(d), inputTokens: inTok, outputTokens: outTok,
                             costUSD: cost.flatMap { $0.isFinite ? $0 : nil }, attempts: attempt, error: err, purpose: purpose)
        }
        let maxRetries = Swift.min(Swift.max(config.maxRetries, 0), 10)
        while attempt <= maxRetries {
            attempt += 1
            if Task.isCancelled { break }
            if let wait = breaker.check() {
                lastError = .circuitOpen("provider '\(config.name)' failed repeatedly; circuit open")
                if attempt > maxRetries { break }
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
            if attempt > maxRetries { break }
            retries.increment()
            let cap = Swift.min(20_000.0, Double(Swift.max(config.backoffMs, 0)) * pow(2, Double(attempt - 1)))
            var delay = Duration.milliseconds(Int64(Double.random(in: 0...Swift.max(cap, 0))))
            if let retryAfter { delay = Swift.min(retryAfter, Self.maxRetryAfter) }
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
        let response: OutboundHTTP.Response
        let timeoutMs = Swift.min(Swift.max(config.timeoutMs, 100), 600_000)
        do {
            response = try await http.execute(request, field: "provider '\(config.name)' baseURL", timeout: .milliseconds(Int64(timeoutMs)), maxBodyBytes: Self.maxAnswerBytes)
        } catch let e as OutboundError {
            // A refused address is a configuration matter, not worth retrying; a name that does not resolve may.
            if e.isTransient { throw RetryableFailure(error: .provider(e.message), retryAfter: nil) }
            return .failure(.invalidArgument("refused by the outbound policy: \(e.message)"))
        } catch let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout {
            throw RetryableFailure(error: .timeout("\(config.name) did not answer within \(timeoutMs) ms"), retryAfter: nil)
        } catch {
            throw RetryableFailure(error: .provider("\(config.name): transport error \(excerpt(String(describing: error)))"), retryAfter: nil)
        }
        let status = response.status
        let text = String(buffer: response.body)
        if status == 429 || status >= 500 {
            let ra = RetryAfter.parse(response.retryAfter, maximum: Self.maxRetryAfter)
            throw RetryableFailure(error: .provider("\(config.name) answered \(status): \(excerpt(text))"), retryAfter: ra)
        }
        guard (200..<300).contains(status) else {
            let note = (300..<400).contains(status) ? " (redirects are not followed)" : ""
            return .failure(.provider("\(config.name) answered \(status)\(note): \(excerpt(text))"))
        }
        guard !response.truncated else {
            return .failure(.malformedAnswer("\(config.name) answered more than \(Self.maxAnswerBytes >> 20) MiB"))
        }
        guard let json = JSON.parse(text) else {
            // A cut or malformed body: the provider's fault, worth a retry.
            throw RetryableFailure(error: .malformedAnswer("\(config.name) sent a body that is not JSON (\(text.count) bytes)"), retryAfter: nil)
        }
        var answer = ChatAnswer(text: "", toolCalls: [], call: ModelCall(provider: config.name, model: model, startUnixNanos: 0, durationNanos: 0, inputTokens: 0, outputTokens: 0, costUSD: nil, attempts: 0, error: nil, purpose: ""))
        switch config.kind {
        case .openai:
            guard let message = json["choices"]?.arrayValue?.first?["message"], message.objectValue != nil else {
                return .failure(.malformedAnswer("\(config.name): the answer has no choices[0].message"))
            }
            let content = message["content"]
            switch content {
            case .string(let t)?: answer.text = t
            case .array(let parts)?: answer.text = parts.compactMap { $0["text"]?.stringValue }.joined()
            case nil, .null?: break
            default: return .failure(.malformedAnswer("\(config.name): choices[0].message.content is a \(content?.typeName ?? "?"), not text"))
            }
            for tc in message["tool_calls"]?.arrayValue ?? [] {
                answer.toolCalls.append(.init(name: tc["function"]?["name"]?.stringValue ?? "", arguments: tc["function"]?["arguments"]?.stringValue ?? ""))
            }
            if (content == nil || content == .null), answer.toolCalls.isEmpty {
                return .failure(.malformedAnswer("\(config.name): choices[0].message has neither content nor tool calls"))
            }
            switch Self.tokens(json["usage"], ["prompt_tokens"], ["completion_tokens"]) {
            case .success(let t): (answer.call.inputTokens, answer.call.outputTokens) = t
            case .failure(let e): return .failure(.malformedAnswer("\(config.name): \(e.message)"))
            }
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
            switch Self.tokens(json["usage"], ["input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"], ["output_tokens"]) {
            case .success(let t): (answer.call.inputTokens, answer.call.outputTokens) = t
            case .failure(let e): return .failure(.malformedAnswer("\(config.name): \(e.message)"))
            }
        }
        return .success(answer)
    }
}

extension ProviderClient {
    /// Longest wait a provider's `Retry-After` can impose on one retry.
    static let maxRetryAfter: Duration = .seconds(30)
    /// Largest provider answer read.
    static let maxAnswerBytes = 8 << 20

    /// Input and output token counts from a usage object (input = the sum of `inputKeys`). A missing
    /// usage or key counts 0 (some compatible servers omit it); a present value that is not a
    /// whole number in 0…2^40 (negative, fractional, 1e300, a string) makes the answer malformed.
    static func tokens(_ usage: JSON?, _ inputKeys: [String], _ outputKeys: [String]) -> Result<(Int64, Int64), EvaluationError> {
        guard let usage, usage != .null else { return .success((0, 0)) }
        guard usage.objectValue != nil else { return .failure(.malformedAnswer("usage is a \(usage.typeName), not an object")) }
        func sum(_ keys: [String]) -> Result<Int64, EvaluationError> {
            var total: Int64 = 0
            for k in keys {
                guard let v = usage[k], v != .null else { continue }
                guard let n = Checked.tokenCount(v) else { return .failure(.malformedAnswer("usage.\(k) is \(v.text.prefix(40)), not a token count (a whole number in 0…\(Checked.maxTokens))")) }
                total = total.addingSaturated(n)
            }
            return .success(total)
        }
        switch (sum(inputKeys), sum(outputKeys)) {
        case (.success(let i), .success(let o)): return .success((i, o))
        case (.failure(let e), _), (_, .failure(let e)): return .failure(e)
        }
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
