import EvalForgeCore
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// An instrumented HTTP client over URLSession for OpenAI-compatible Chat Completions, the
/// Responses API, embeddings and Anthropic Messages: every call is recorded as an LLM span (model,
/// tokens, cost, latency, time to first chunk, errors) and carries the span's `traceparent`. Request
/// and response bodies are the providers' own JSON (or `Encodable` / `Decodable` values); the
/// AsyncHTTPClient product (`EvalForgeAsyncHTTPClient`) offers the same API over AsyncHTTPClient.
public final class LLMHTTPClient: LLMClient {
    /// The wire API the endpoint speaks.
    public typealias API = LLMAPI
    /// Who and what a call belongs to, recorded on its span (over the task-local `EvalForge.withContext`).
    public typealias CallContext = LLMCallContext

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
        guard let url = URL(string: trimmed + api.path), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw LLMHTTPError.transport("invalid_url", "baseURL '\(baseURL)' is not an http(s) URL")
        }
        self.api = api
        self.url = url
        self.provider = provider ?? api.defaultProvider
        self.headers = LLMHTTPHeaders.make(api: api, apiKey: apiKey, extra: headers)
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
        LLMCallRecording.start(
            api: api, body: body, provider: provider, host: url.host, port: url.port ?? (url.scheme == "https" ? 443 : 80),
            context: context, pipeline: pipeline ?? EvalForge.pipeline)
    }

    /// Sends a non-streaming request body and returns the response body. Non-2xx answers throw
    /// `LLMHTTPError` with the provider's message (the span records the status as `error.type`), and
    /// so does a 2xx body that is not a valid answer ("malformed_response"). A body with
    /// `"stream": true` throws "invalid_request" before anything is sent: use `stream(_:context:)`.
    public func send(_ body: Data, context: CallContext = CallContext()) async throws -> Data {
        if let problem = LLMCallRecording.streamFlagProblem(api: api, body: body, streaming: false) { throw problem }
        var span = startSpan(body, context: context)
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await withCallDeadline(makeRequest(body, span: span))
        } catch {
            LLMCallRecording.fail(error, span: &span)
            throw error
        }
        let http = response as? HTTPURLResponse
        return try LLMCallRecording.finish(
            api: api, status: http?.statusCode ?? 0, retryAfter: http?.value(forHTTPHeaderField: "retry-after"), body: data, span: &span)
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

    /// Sends a streaming request body (it must set `"stream": true`, else the stream fails at once
    /// with "invalid_request") and returns its events as they arrive; `.text` gives the decoded text
    /// deltas. The span ends when the stream ends or fails, and at once, as "cancelled", when the
    /// consumer stops iterating or its task is cancelled (which also cancels the HTTP request).
    /// For OpenAI Chat Completions, `stream_options.include_usage` is added unless the body sets it
    /// (`configuration.cost.requestStreamUsage`), so the span gets token usage and cost.
    public func stream(_ body: Data, context: CallContext = CallContext()) -> LLMEventStream {
        if let problem = LLMCallRecording.streamFlagProblem(api: api, body: body, streaming: true) { return .failing(api: api, problem) }
        let body = LLMCallRecording.streamBody(api: api, body: body, pipeline: pipeline ?? EvalForge.pipeline)
        let span = startSpan(body, context: context)
        let request = makeRequest(body, span: span)
        let (stream, continuation) = AsyncThrowingStream<ServerSentEvent, any Error>.makeStream()
        let task = streamingSession.dataTask(with: request)
        let recording = LLMStreamRecording(span: span, api: api)
        streamDelegate.register(StreamHandler(recording: recording, continuation: continuation), for: task.taskIdentifier)
        let cancel: @Sendable () -> Void = {
            guard !recording.isEnded else { return }
            recording.cancel()
            task.cancel()
        }
        continuation.onTermination = { termination in
            if case .cancelled = termination { cancel() }
        }
        task.resume()
        return LLMEventStream(api: api, base: stream, onCancel: cancel)
    }
}

/// The headers every transport sends: JSON content type and the API's authentication.
package enum LLMHTTPHeaders {
    package static func make(api: LLMAPI, apiKey: String?, extra: [String: String]) -> [String: String] {
        var h = extra
        h["Content-Type"] = "application/json"
        switch api {
        case .openAIChatCompletions, .openAIResponses, .openAIEmbeddings:
            if let apiKey { h["Authorization"] = "Bearer \(apiKey)" }
        case .anthropicMessages:
            if let apiKey { h["x-api-key"] = apiKey }
            if h["anthropic-version"] == nil { h["anthropic-version"] = "2023-06-01" }
        }
        return h
    }
}

/// Routes URLSession delegate callbacks to the handler of each streaming task.
final class StreamingDelegate: NSObject, URLSessionDataDelegate, Sendable {
    private let handlers = Mutex<[Int: StreamHandler]>([:])

    func register(_ handler: StreamHandler, for id: Int) { handlers.withLock { $0[id] = handler } }
    private func handler(_ id: Int) -> StreamHandler? { handlers.withLock { $0[id] } }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse, completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void) {
        let http = response as? HTTPURLResponse
        handler(dataTask.taskIdentifier)?.recording.receive(status: http?.statusCode ?? 0, retryAfter: http?.value(forHTTPHeaderField: "retry-after"))
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard let h = handler(dataTask.taskIdentifier) else { return }
        for e in h.recording.feed(data) { h.continuation.yield(e) }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        guard let h = handlers.withLock({ $0.removeValue(forKey: task.taskIdentifier) }) else { return }
        let (trailing, failure) = h.recording.complete(error: error)
        if let trailing { h.continuation.yield(trailing) }
        h.continuation.finish(throwing: failure)
    }
}

/// One streaming URLSession task: its recording and the consumer's continuation.
struct StreamHandler: Sendable {
    let recording: LLMStreamRecording
    let continuation: AsyncThrowingStream<ServerSentEvent, any Error>.Continuation
}
