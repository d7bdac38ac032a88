import AsyncHTTPClient
import EvalForgeSDK
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The instrumented LLM client over AsyncHTTPClient, for Swift servers that already run one
/// `HTTPClient`: the same API, adapters and spans as URLSession's `LLMHTTPClient` (Chat Completions,
/// the Responses API, embeddings, Anthropic Messages; streams with time to first token; transport
/// faults, timeouts and cancellation as span errors). A separate product, so the core
/// `EvalForgeSDK` pulls in no networking stack.
///
/// ```swift
/// let llm = try LLMAsyncHTTPClient(api: .openAIChatCompletions, baseURL: "https://api.openai.com/v1", apiKey: key)
/// let answer = try await llm.send(OpenAIChat.Request(model: "gpt-4o-mini", messages: [.user("Hi")]), as: OpenAIChat.Response.self)
/// for try await text in llm.stream(OpenAIChat.Request(model: "gpt-4o-mini", messages: [.user("Hi")])).text { print(text, terminator: "") }
/// ```
public final class LLMAsyncHTTPClient: LLMClient {
    public let api: LLMAPI
    public let provider: String
    private let url: String
    private let host: String?
    private let port: Int
    private let headers: HTTPHeaders
    private let maxCallDuration: Duration
    private let pipeline: EvalForge.Pipeline?
    private let httpClient: HTTPClient

    /// - Parameters:
    ///   - baseURL: like `https://api.openai.com/v1` (OpenAI APIs) or `https://api.anthropic.com`.
    ///   - provider: `gen_ai.provider.name`; defaults to "openai" or "anthropic" by `api`.
    ///   - maxCallDuration: longest a call may take in all, streams included (their deadline), pinned
    ///     to 1 ms...24 h ("timeout"). Connect and read timeouts are the `HTTPClient`'s configuration.
    ///   - httpClient: the application's client; by default `LLMAsyncHTTPClient.sharedHTTPClient`.
    ///     With your own, set `connectionPool.retryConnectionEstablishment = false`: AsyncHTTPClient
    ///     otherwise retries a refused connection until the call's deadline, so an unreachable
    ///     provider holds the caller for `maxCallDuration` instead of failing at once.
    ///   - pipeline: where spans go; nil uses `EvalForge.pipeline` at each call.
    public init(
        api: LLMAPI, baseURL: String, apiKey: String? = nil, provider: String? = nil, maxCallDuration: Duration = .seconds(600),
        headers: [String: String] = [:], httpClient: HTTPClient = LLMAsyncHTTPClient.sharedHTTPClient, pipeline: EvalForge.Pipeline? = nil
    ) throws {
        let trimmed = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        guard let parsed = URL(string: trimmed + api.path), parsed.scheme == "http" || parsed.scheme == "https", let host = parsed.host else {
            throw LLMAsyncHTTPClientError.invalidURL(baseURL)
        }
        self.api = api
        self.url = trimmed + api.path
        self.host = host
        self.port = parsed.port ?? (parsed.scheme == "https" ? 443 : 80)
        self.provider = provider ?? api.defaultProvider
        var h = HTTPHeaders()
        for (k, v) in LLMHTTPHeaders.make(api: api, apiKey: apiKey, extra: headers) { h.replaceOrAdd(name: k, value: v) }
        self.headers = h
        self.maxCallDuration = min(max(maxCallDuration, .milliseconds(1)), .seconds(86_400))
        self.pipeline = pipeline
        self.httpClient = httpClient
    }

    /// The process-wide client used when none is given: `HTTPClient.shared`'s settings with a 10 s
    /// connect and 120 s read timeout, and no retry of failed connection attempts (a provider that is
    /// down fails the call with "connection_error" at once). Never shut down, like `HTTPClient.shared`.
    public static let sharedHTTPClient: HTTPClient = {
        var c = HTTPClient.Configuration.singletonConfiguration
        c.timeout = .init(connect: .seconds(10), read: .seconds(120))
        c.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: c)
    }()

    private func makeRequest(_ body: Data, span: LLMSpan) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers = headers
        request.headers.replaceOrAdd(name: "traceparent", value: span.traceParent.header)
        request.body = .bytes(ByteBuffer(bytes: body))
        return request
    }

    private func startSpan(_ body: Data, context: LLMCallContext) -> LLMSpan {
        LLMCallRecording.start(api: api, body: body, provider: provider, host: host, port: port, context: context, pipeline: pipeline ?? EvalForge.pipeline)
    }

    private var timeout: TimeAmount { .nanoseconds(Int64(clamping: maxCallDuration.components.seconds) &* 1_000_000_000 &+ maxCallDuration.components.attoseconds / 1_000_000_000) }

    /// Sends a non-streaming request body and returns the response body; errors as
    /// `LLMHTTPClient.send` (provider status, "malformed_response", "timeout", "connection_error",
    /// "invalid_request" for a body with `"stream": true`).
    public func send(_ body: Data, context: LLMCallContext = LLMCallContext()) async throws -> Data {
        if let problem = LLMCallRecording.streamFlagProblem(api: api, body: body, streaming: false) { throw problem }
        var span = startSpan(body, context: context)
        let status: Int
        let retryAfter: String?
        var data = Data()
        do {
            let response = try await httpClient.execute(makeRequest(body, span: span), timeout: timeout)
            status = Int(response.status.code)
            retryAfter = response.headers.first(name: "retry-after")
            let limit = (200..<300).contains(status) ? LLMCallRecording.maxResponseBytes : LLMCallRecording.maxErrorBodyBytes
            for try await chunk in response.body {
                guard data.count < limit else { continue }
                data.append(contentsOf: chunk.readableBytesView.prefix(limit - data.count))
            }
            if data.count >= LLMCallRecording.maxResponseBytes {
                throw LLMHTTPError.malformed("the answer is larger than \(LLMCallRecording.maxResponseBytes) bytes")
            }
        } catch {
            let mapped = LLMAsyncHTTPClientError.map(error)
            LLMCallRecording.fail(mapped, span: &span)
            throw mapped
        }
        return try LLMCallRecording.finish(api: api, status: status, retryAfter: retryAfter, body: data, span: &span)
    }

    /// Sends a streaming request body (it must set `"stream": true`) and returns its events as they
    /// arrive; `.text` gives the decoded text deltas. As `LLMHTTPClient.stream`: stopping early
    /// cancels the request and ends the span at once as "cancelled".
    public func stream(_ body: Data, context: LLMCallContext = LLMCallContext()) -> LLMEventStream {
        if let problem = LLMCallRecording.streamFlagProblem(api: api, body: body, streaming: true) { return .failing(api: api, problem) }
        let body = LLMCallRecording.streamBody(api: api, body: body, pipeline: pipeline ?? EvalForge.pipeline)
        let span = startSpan(body, context: context)
        let request = makeRequest(body, span: span)
        let recording = LLMStreamRecording(span: span, api: api)
        let (stream, continuation) = AsyncThrowingStream<ServerSentEvent, any Error>.makeStream()
        let httpClient = self.httpClient
        let timeout = self.timeout
        let task = Task {
            do {
                let response = try await httpClient.execute(request, timeout: timeout)
                recording.receive(status: Int(response.status.code), retryAfter: response.headers.first(name: "retry-after"))
                for try await chunk in response.body {
                    for e in recording.feed(chunk.readableBytesView) { continuation.yield(e) }
                    if recording.isEnded { break }
                }
                let (trailing, failure) = recording.complete(error: nil)
                if let trailing { continuation.yield(trailing) }
                continuation.finish(throwing: failure)
            } catch {
                let (_, failure) = recording.complete(error: LLMAsyncHTTPClientError.map(error))
                continuation.finish(throwing: failure ?? LLMAsyncHTTPClientError.map(error))
            }
        }
        let cancel: @Sendable () -> Void = {
            guard !recording.isEnded else { return }
            recording.cancel()
            task.cancel()
        }
        continuation.onTermination = { termination in
            if case .cancelled = termination { cancel() }
        }
        return LLMEventStream(api: api, base: stream, onCancel: cancel)
    }
}

/// Maps AsyncHTTPClient's and NIO's errors to the span's `error.type` ("timeout",
/// "connection_error", "cancelled"), keeping the original text.
public enum LLMAsyncHTTPClientError {
    static func invalidURL(_ baseURL: String) -> LLMHTTPError {
        LLMHTTPError.transport("invalid_url", "baseURL '\(baseURL)' is not an http(s) URL")
    }

    static func map(_ error: any Error) -> any Error {
        if error is LLMHTTPError || error is CancellationError { return error }
        if let e = error as? HTTPClientError {
            switch e {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout, .getConnectionFromPoolTimeout:
                return LLMHTTPError.transport("timeout", "\(e)")
            case .cancelled:
                return CancellationError()
            case .remoteConnectionClosed:
                return LLMHTTPError.transport("connection_error", "\(e)")
            default:
                return LLMHTTPError.transport("http_client_error", "\(e)")
            }
        }
        if error is NIOConnectionError || error is ChannelError || error is IOError {
            return LLMHTTPError.transport("connection_error", "\(error)")
        }
        if Task.isCancelled { return CancellationError() }
        return error
    }
}
