import EvalForgeCore
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A small instrumented HTTP client for OpenAI-compatible Chat Completions and Anthropic Messages:
/// every call is recorded as an LLM span (model, tokens, cost, latency, time to first chunk, errors)
/// and carries the span's `traceparent`. Request and response bodies are the providers' own JSON.
public final class LLMHTTPClient: Sendable {
    /// The wire API the endpoint speaks.
    public enum API: Sendable {
        /// `POST {baseURL}/chat/completions`, `Authorization: Bearer`; baseURL like `https://api.openai.com/v1`.
        case openAIChatCompletions
        /// `POST {baseURL}/v1/messages`, `x-api-key`, `anthropic-version`; baseURL like `https://api.anthropic.com`.
        case anthropicMessages
    }

    /// Who and what a call belongs to, recorded on its span.
    public struct CallContext: Sendable {
        public var userID: String?
        public var sessionID: String?
        public var conversationID: String?
        public var tags: [String]
        public var metadata: [String: String]
        public init(userID: String? = nil, sessionID: String? = nil, conversationID: String? = nil, tags: [String] = [], metadata: [String: String] = [:]) {
            self.userID = userID
            self.sessionID = sessionID
            self.conversationID = conversationID
            self.tags = tags
            self.metadata = metadata
        }
    }

    public let api: API
    public let provider: String
    private let url: URL
    private let headers: [String: String]
    private let timeout: Duration
    private let maxCallDuration: Duration
    private let pipeline: EvalForge.Pipeline?
    private let session: URLSession
    private let streamingSession: URLSession
    private let streamDelegate: StreamingDelegate

    /// - Parameters:
    ///   - provider: `gen_ai.provider.name`; defaults to "openai" or "anthropic" by `api`.
    ///   - timeout: longest wait for the provider's next bytes, pinned to 1 ms...24 h.
    ///   - maxCallDuration: longest a non-streaming `send` may take in all, pinned to 1 ms...24 h: a
    ///     provider that trickles its answer a byte at a time cannot hold the caller past it ("timeout").
    ///   - pipeline: where spans go; nil uses `EvalForge.pipeline` at each call.
    public init(api: API, baseURL: String, apiKey: String? = nil, provider: String? = nil, timeout: Duration = .seconds(120), maxCallDuration: Duration = .seconds(600), headers: [String: String] = [:], pipeline: EvalForge.Pipeline? = nil) throws {
        let trimmed = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        let path = api == .openAIChatCompletions ? "/chat/completions" : "/v1/messages"
        guard let url = URL(string: trimmed + path), url.scheme == "http" || url.scheme == "https" else {
            throw LLMHTTPError.transport("invalid_url", "baseURL '\(baseURL)' is not an http(s) URL")
        }
        self.api = api
        self.url = url
        self.provider = provider ?? (api == .openAIChatCompletions ? LLMProvider.openAI : LLMProvider.anthropic)
        var h = headers
        h["Content-Type"] = "application/json"
        switch api {
        case .openAIChatCompletions:
            if let apiKey { h["Authorization"] = "Bearer \(apiKey)" }
        case .anthropicMessages:
            if let apiKey { h["x-api-key"] = apiKey }
            if h["anthropic-version"] == nil { h["anthropic-version"] = "2023-06-01" }
        }
        self.headers = h
        let timeout = timeout.clamped(to: .milliseconds(1) ... .seconds(86_400))
        self.timeout = timeout
        self.maxCallDuration = maxCallDuration.clamped(to: .milliseconds(1) ... .seconds(86_400))
        self.pipeline = pipeline
        let cfg = URLSessionConfiguration.ephemeral
        cfg.httpMaximumConnectionsPerHost = 64
        cfg.timeoutIntervalForRequest = timeout.seconds
        cfg.urlCache = nil
        session = URLSession(configuration: cfg)
        streamDelegate = StreamingDelegate()
        streamingSession = URLSession(configuration: cfg, delegate: streamDelegate, delegateQueue: nil)
    }

    private func makeRequest(_ body: Data, span: LLMSpan) -> URLRequest {
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = body
        request.timeoutInterval = timeout.seconds
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        request.setValue(span.traceParent.header, forHTTPHeaderField: "traceparent")
        return request
    }

    private func startSpan(_ body: Data, context: CallContext) -> LLMSpan {
        var request: LLMRequest
        switch api {
        case .openAIChatCompletions: request = OpenAIChatAdapter.request(fromBody: body, provider: provider)
        case .anthropicMessages: request = AnthropicMessagesAdapter.request(fromBody: body, provider: provider)
        }
        request.serverAddress = url.host
        request.serverPort = url.port ?? (url.scheme == "https" ? 443 : 80)
        if let v = context.userID { request.userID = v }
        request.sessionID = context.sessionID
        request.conversationID = context.conversationID ?? context.sessionID
        request.tags = context.tags
        request.metadata = context.metadata
        var span = (pipeline ?? EvalForge.pipeline).startLLMCall(request)
        switch api {
        case .openAIChatCompletions: OpenAIChatAdapter.recordRequestContent(body, into: &span)
        case .anthropicMessages: AnthropicMessagesAdapter.recordRequestContent(body, into: &span)
        }
        return span
    }

    /// Sends a non-streaming request body and returns the response body. Non-2xx answers throw
    /// `LLMHTTPError` with the provider's message (the span records the status as `error.type`), and
    /// so does a 2xx body that is not a valid completion ("malformed_response").
    public func send(_ body: Data, context: CallContext = CallContext()) async throws -> Data {
        var span = startSpan(body, context: context)
        do {
            let (data, response) = try await withCallDeadline(makeRequest(body, span: span))
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            guard (200..<300).contains(status) else {
                let retryAfter = OTLPHTTPTransport.retryAfter((response as? HTTPURLResponse)?.value(forHTTPHeaderField: "retry-after"))
                let error = LLMHTTPError.status(status, message: LLMHTTPError.message(fromErrorBody: data), retryAfter: retryAfter)
                span.recordError(error)
                span.end()
                throw error
            }
            switch api {
            case .openAIChatCompletions: OpenAIChatAdapter.recordResponse(data, into: &span)
            case .anthropicMessages: AnthropicMessagesAdapter.recordResponse(data, into: &span)
            }
            let malformed = span.record.errorType == "malformed_response"
            let reason = span.record.errorMessage ?? "the response is not a valid completion"
            span.end()
            if malformed { throw LLMHTTPError.malformed(reason) }
            return data
        } catch let error as LLMHTTPError {
            throw error
        } catch {
            span.recordError(error)
            span.end()
            throw error
        }
    }

    /// `session.data(for:)`, cancelled with a "timeout" error when `maxCallDuration` passes first.
    private func withCallDeadline(_ request: URLRequest) async throws -> (Data, URLResponse) {
        let session = self.session
        let limit = maxCallDuration
        return try await withThrowingTaskGroup(of: (Data, URLResponse)?.self) { group in
            group.addTask { try await session.data(for: request) }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else {
                throw URLError(.timedOut)
            }
            return result
        }
    }

    /// Sends a streaming request body (it should set `"stream": true`) and returns its events as they
    /// arrive. The span ends when the stream ends, fails, or the consumer stops iterating ("cancelled").
    /// For OpenAI, `stream_options.include_usage` is added unless the body sets it
    /// (`configuration.cost.requestStreamUsage`), so the span gets token usage and cost.
    public func stream(_ body: Data, context: CallContext = CallContext()) -> AsyncThrowingStream<ServerSentEvent, any Error> {
        var body = body
        if api == .openAIChatCompletions, (pipeline ?? EvalForge.pipeline).configuration.cost.requestStreamUsage {
            body = OpenAIChatAdapter.requestingStreamUsage(body)
        }
        let span = startSpan(body, context: context)
        let request = makeRequest(body, span: span)
        let (stream, continuation) = AsyncThrowingStream<ServerSentEvent, any Error>.makeStream()
        let task = streamingSession.dataTask(with: request)
        let handler = StreamHandler(span: span, api: api, continuation: continuation)
        streamDelegate.register(handler, for: task.taskIdentifier)
        continuation.onTermination = { termination in
            if case .cancelled = termination { task.cancel() }
        }
        task.resume()
        return stream
    }
}

/// Routes URLSession delegate callbacks to the handler of each streaming task.
final class StreamingDelegate: NSObject, URLSessionDataDelegate, Sendable {
    private let handlers = Mutex<[Int: StreamHandler]>([:])

    func register(_ handler: StreamHandler, for id: Int) { handlers.withLock { $0[id] = handler } }
    private func handler(_ id: Int) -> StreamHandler? { handlers.withLock { $0[id] } }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse, completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void) {
        handler(dataTask.taskIdentifier)?.receive(response: response)
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        handler(dataTask.taskIdentifier)?.receive(data: data)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        let h = handlers.withLock { $0.removeValue(forKey: task.taskIdentifier) }
        h?.complete(error: error)
    }
}

/// State of one streaming call: SSE parsing, the provider's stream recorder and the span.
final class StreamHandler: Sendable {
    private enum Recorder {
        case openAI(OpenAIChatAdapter.StreamRecorder)
        case anthropic(AnthropicMessagesAdapter.StreamRecorder)
    }

    private struct State {
        var span: LLMSpan
        var parser = ServerSentEventParser()
        var recorder: Recorder
        var status = 0
        var retryAfter: Duration?
        var errorBody = Data()
    }

    private let state: Mutex<State>
    private let continuation: AsyncThrowingStream<ServerSentEvent, any Error>.Continuation

    init(span: LLMSpan, api: LLMHTTPClient.API, continuation: AsyncThrowingStream<ServerSentEvent, any Error>.Continuation) {
        let recorder: Recorder = api == .openAIChatCompletions ? .openAI(.init()) : .anthropic(.init())
        state = Mutex(State(span: span, recorder: recorder))
        self.continuation = continuation
    }

    func receive(response: URLResponse) {
        let http = response as? HTTPURLResponse
        state.withLock { s in
            s.status = http?.statusCode ?? 0
            s.retryAfter = OTLPHTTPTransport.retryAfter(http?.value(forHTTPHeaderField: "retry-after"))
        }
    }

    func receive(data: Data) {
        let events = state.withLock { s -> [ServerSentEvent] in
            guard (200..<300).contains(s.status) else {
                if s.errorBody.count < 64 * 1024 { s.errorBody.append(data) }
                return []
            }
            let events = s.parser.feed(data)
            for e in events { Self.observe(e, state: &s) }
            return events
        }
        for e in events { continuation.yield(e) }
    }

    private static func observe(_ e: ServerSentEvent, state s: inout State) {
        switch s.recorder {
        case .openAI(var r):
            r.observe(e.data, into: &s.span)
            s.recorder = .openAI(r)
        case .anthropic(var r):
            r.observe(e, into: &s.span)
            s.recorder = .anthropic(r)
        }
    }

    func complete(error: (any Error)?) {
        let (failure, trailing) = state.withLock { s -> ((any Error)?, ServerSentEvent?) in
            var trailing: ServerSentEvent?
            if (200..<300).contains(s.status), let last = s.parser.finish() {
                Self.observe(last, state: &s)
                trailing = last
            }
            var failure: (any Error)?
            if let error {
                s.span.recordError(error)
                failure = error
            } else if !(200..<300).contains(s.status) {
                let e = LLMHTTPError.status(s.status, message: LLMHTTPError.message(fromErrorBody: s.errorBody), retryAfter: s.retryAfter)
                s.span.recordError(e)
                failure = e
            }
            if failure == nil || (200..<300).contains(s.status) {
                switch s.recorder {
                case .openAI(let r): r.finish(into: &s.span)
                case .anthropic(let r): r.finish(into: &s.span)
                }
            }
            if failure == nil, s.span.isError {
                failure = LLMHTTPError.malformed("stream ended without its final event")
            }
            s.span.end()
            return (failure, trailing)
        }
        if let trailing { continuation.yield(trailing) }
        continuation.finish(throwing: failure)
    }
}
