import EvalForgeCore
import Foundation
import Synchronization

/// The provider wire APIs every EvalForge transport records (URLSession's `LLMHTTPClient`, the
/// AsyncHTTPClient and swift-openapi-runtime products): which adapter reads a body, where the
/// endpoint lives, and how a stream's text deltas are found. One home, so the transports agree.
public enum LLMAPI: Sendable, Hashable, CaseIterable {
    /// `POST {baseURL}/chat/completions`, `Authorization: Bearer`; baseURL like `https://api.openai.com/v1`.
    case openAIChatCompletions
    /// `POST {baseURL}/responses` (OpenAI's Responses API); baseURL like `https://api.openai.com/v1`.
    case openAIResponses
    /// `POST {baseURL}/embeddings`; never streams.
    case openAIEmbeddings
    /// `POST {baseURL}/v1/messages`, `x-api-key`, `anthropic-version`; baseURL like `https://api.anthropic.com`.
    case anthropicMessages

    /// The path appended to a client's base URL.
    public var path: String {
        switch self {
        case .openAIChatCompletions: "/chat/completions"
        case .openAIResponses: "/responses"
        case .openAIEmbeddings: "/embeddings"
        case .anthropicMessages: "/v1/messages"
        }
    }

    /// `gen_ai.provider.name` when the caller names none.
    public var defaultProvider: String { self == .anthropicMessages ? LLMProvider.anthropic : LLMProvider.openAI }

    /// Whether the API can answer with a stream of server-sent events.
    public var canStream: Bool { self != .openAIEmbeddings }

    /// The API a request path belongs to, recognised by its last segments (`/v1/chat/completions`,
    /// `/openai/deployments/x/chat/completions`, `/v1/responses`, `/v1/embeddings`, `/v1/messages`);
    /// nil for any other path (a query string is ignored), OpenAI Assistants' `/threads/{id}/messages`
    /// included.
    public init?(path: String) {
        var p = Substring(path)
        if let q = p.firstIndex(where: { $0 == "?" || $0 == "#" }) { p = p[..<q] }
        while p.hasSuffix("/") { p = p.dropLast() }
        if p.hasSuffix("/chat/completions") {
            self = .openAIChatCompletions
        } else if p.hasSuffix("/responses") {
            self = .openAIResponses
        } else if p.hasSuffix("/embeddings") {
            self = .openAIEmbeddings
        } else if p.hasSuffix("/messages"), !p.contains("/threads/") {  // not OpenAI's Assistants threads
            self = .anthropicMessages
        } else {
            return nil
        }
    }

    /// The request a body describes (model, parameters, `stream`).
    public func request(fromBody body: Data, provider: String? = nil) -> LLMRequest {
        let provider = provider ?? defaultProvider
        switch self {
        case .openAIChatCompletions: return OpenAIChatAdapter.request(fromBody: body, provider: provider)
        case .openAIResponses: return OpenAIResponsesAdapter.request(fromBody: body, provider: provider)
        case .openAIEmbeddings: return OpenAIEmbeddingsAdapter.request(fromBody: body, provider: provider)
        case .anthropicMessages: return AnthropicMessagesAdapter.request(fromBody: body, provider: provider)
        }
    }

    /// Records the request's messages (only when content capture is on).
    public func recordRequestContent(_ body: Data, into span: inout LLMSpan) {
        switch self {
        case .openAIChatCompletions: OpenAIChatAdapter.recordRequestContent(body, into: &span)
        case .openAIResponses: OpenAIResponsesAdapter.recordRequestContent(body, into: &span)
        case .openAIEmbeddings: OpenAIEmbeddingsAdapter.recordRequestContent(body, into: &span)
        case .anthropicMessages: AnthropicMessagesAdapter.recordRequestContent(body, into: &span)
        }
    }

    /// Records a 2xx non-streaming response body; one that is not what the API answers marks the
    /// span failed ("malformed_response").
    public func recordResponse(_ body: Data, into span: inout LLMSpan) {
        switch self {
        case .openAIChatCompletions: OpenAIChatAdapter.recordResponse(body, into: &span)
        case .openAIResponses: OpenAIResponsesAdapter.recordResponse(body, into: &span)
        case .openAIEmbeddings: OpenAIEmbeddingsAdapter.recordResponse(body, into: &span)
        case .anthropicMessages: AnthropicMessagesAdapter.recordResponse(body, into: &span)
        }
    }

    /// The text a stream event adds to the answer, decoded: Chat Completions' `delta.content`,
    /// the Responses API's `response.output_text.delta`, Anthropic's `text_delta`; nil for events
    /// that carry no text (role, usage, tool-call, lifecycle events).
    public func textDelta(_ event: ServerSentEvent) -> String? {
        switch self {
        case .openAIChatCompletions:
            guard event.data != "[DONE]", let o = JSON.object(event.data),
                let choices = o["choices"] as? [[String: Any]], let delta = choices.first?["delta"] as? [String: Any],
                let t = delta["content"] as? String, !t.isEmpty
            else { return nil }
            return t
        case .openAIResponses:
            return OpenAIResponsesAdapter.textDelta(event)
        case .openAIEmbeddings:
            return nil
        case .anthropicMessages:
            guard let o = JSON.object(event.data), JSON.string(o["type"]) == "content_block_delta",
                let d = o["delta"] as? [String: Any], JSON.string(d["type"]) == "text_delta"
            else { return nil }
            return JSON.string(d["text"])
        }
    }

    /// Whether a request body asks for a stream (`"stream": true`).
    public static func bodyRequestsStream(_ body: Data) -> Bool {
        guard let o = JSON.object(body) else { return false }
        return (o["stream"] as? Bool) == true
    }
}

/// Who and what a call belongs to: user, session, conversation, tags and metadata, recorded on its
/// span. Set it for a whole block with `EvalForge.withContext(_:_:)` (or `withStep(…, context:)`):
/// every LLM call and step started inside, however deeply nested, carries it.
public struct LLMCallContext: Sendable, Hashable {
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

    var isEmpty: Bool { userID == nil && sessionID == nil && conversationID == nil && tags.isEmpty && metadata.isEmpty }

    /// `self` with `inner` laid over it: inner's ids win where set, tags are joined (without
    /// repeats), metadata merged with inner's values winning.
    func merging(_ inner: LLMCallContext) -> LLMCallContext {
        var out = self
        if let v = inner.userID { out.userID = v }
        if let v = inner.sessionID { out.sessionID = v }
        if let v = inner.conversationID { out.conversationID = v }
        for t in inner.tags where !out.tags.contains(t) { out.tags.append(t) }
        out.metadata.merge(inner.metadata) { _, new in new }
        return out
    }

    /// Fills what `request` leaves unset (its own values win; tags are joined).
    func apply(to request: inout LLMRequest) {
        if request.userID == nil { request.userID = userID }
        if request.sessionID == nil { request.sessionID = sessionID }
        if request.conversationID == nil { request.conversationID = conversationID ?? request.sessionID }
        for t in tags where !request.tags.contains(t) { request.tags.append(t) }
        for (k, v) in metadata where request.metadata[k] == nil { request.metadata[k] = v }
    }

    /// The context of the enclosing `EvalForge.withContext` / `withStep(…, context:)` blocks.
    @TaskLocal static var current: LLMCallContext?

    /// How many `withContext` blocks are running in the process. While none is, `current` is nil
    /// everywhere, so a span start skips the task-local lookup (`currentIfAny`).
    static let openScopes = Atomic<Int>(0)

    /// `current`, looked up only when some block set one: a span start outside any `withContext`
    /// (the common case) costs one relaxed load instead of a task-local search. A task inside a
    /// block counted the block before its body ran, so it always sees a non-zero count.
    @inline(__always) static var currentIfAny: LLMCallContext? {
        openScopes.load(ordering: .relaxed) == 0 ? nil : current
    }
}

extension EvalForge {
    /// Runs `body` with `context` (user, session, tags, metadata) applied to every span started inside
    /// it, nested steps, tools and LLM calls of every transport included; nested blocks add to it.
    public static func withContext<T>(
        _ context: LLMCallContext,
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> T
    ) async rethrows -> T {
        let merged = LLMCallContext.current.map { $0.merging(context) } ?? context
        LLMCallContext.openScopes.add(1, ordering: .relaxed)
        defer { LLMCallContext.openScopes.subtract(1, ordering: .relaxed) }
        return try await LLMCallContext.$current.withValue(merged, operation: body, isolation: isolation)
    }
}

/// What the transports share around one call: starting its span from the body, the stream flag
/// checks, and recording a non-streaming answer.
package enum LLMCallRecording {
    /// Most bytes of a non-2xx answer read for its error message.
    package static let maxErrorBodyBytes = 64 * 1024
    /// Most bytes of a non-streaming answer read (a provider answer is kilobytes; 64 MiB is absurd).
    package static let maxResponseBytes = 64 << 20

    /// Starts the span of a call to `api` with `body`, at `host`:`port`, with `context` over the
    /// task-local one.
    package static func start(
        api: LLMAPI, body: Data, provider: String, host: String?, port: Int?, context: LLMCallContext, pipeline: EvalForge.Pipeline
    ) -> LLMSpan {
        var request = api.request(fromBody: body, provider: provider)
        request.serverAddress = host
        request.serverPort = port
        context.apply(to: &request)
        var span = pipeline.startLLMCall(request)
        api.recordRequestContent(body, into: &span)
        return span
    }

    /// Why a body cannot be sent by `send` (`stream: false`) or `stream` (`stream: true`): the
    /// caller forgot or added `"stream": true`. Nil when it fits.
    package static func streamFlagProblem(api: LLMAPI, body: Data, streaming: Bool) -> LLMHTTPError? {
        let asks = LLMAPI.bodyRequestsStream(body)
        if streaming {
            guard api.canStream else { return .invalidRequest("\(api) does not stream; call send(_:) instead of stream(_:)") }
            if !asks { return .invalidRequest("stream(_:) needs \"stream\": true in the request body (it is missing or false); set it, or call send(_:) for a single answer") }
        } else if asks {
            return .invalidRequest("the request body sets \"stream\": true, so the provider answers with events, not one JSON body; call stream(_:) instead of send(_:), or remove \"stream\"")
        }
        return nil
    }

    /// The body to send on a stream: for OpenAI Chat Completions, `stream_options.include_usage`
    /// added unless the caller set it (`configuration.cost.requestStreamUsage`).
    package static func streamBody(api: LLMAPI, body: Data, pipeline: EvalForge.Pipeline) -> Data {
        guard api == .openAIChatCompletions, pipeline.configuration.cost.requestStreamUsage else { return body }
        return OpenAIChatAdapter.requestingStreamUsage(body)
    }

    /// Records a complete non-streaming answer and ends the span: a non-2xx status throws the
    /// provider's message, a 2xx body the API does not answer throws "malformed_response".
    package static func finish(api: LLMAPI, status: Int, retryAfter: String?, body: Data, span: inout LLMSpan) throws(LLMHTTPError) -> Data {
        guard (200..<300).contains(status) else {
            let error = LLMHTTPError.status(status, message: LLMHTTPError.message(fromErrorBody: body), retryAfter: OTLPHTTPTransport.retryAfter(retryAfter))
            span.recordError(error)
            span.end()
            throw error
        }
        api.recordResponse(body, into: &span)
        let malformed = span.record.errorType == "malformed_response"
        let reason = span.record.errorMessage ?? "the response is not a valid answer"
        span.end()
        if malformed { throw LLMHTTPError.malformed(reason) }
        return body
    }

    /// Records a transport failure (after `LLMHTTPError`-mapping by the transport) and ends the span.
    package static func fail(_ error: any Error, span: inout LLMSpan) {
        span.recordError(error)
        span.end()
    }
}

/// One streaming call being recorded, whatever transport carries it: feed it the status and the
/// body bytes as they arrive; it parses server-sent events, follows them with the API's stream
/// recorder and ends the span exactly once — at the end of the body, on a failure, or at once when
/// the consumer stops (`cancel()`, recorded as "cancelled").
package final class LLMStreamRecording: Sendable {
    private enum Recorder {
        case openAIChat(OpenAIChatAdapter.StreamRecorder)
        case openAIResponses(OpenAIResponsesAdapter.StreamRecorder)
        case anthropic(AnthropicMessagesAdapter.StreamRecorder)
    }

    private struct State {
        var span: LLMSpan
        var parser = ServerSentEventParser()
        var recorder: Recorder
        var status = 200
        var retryAfter: Duration?
        var errorBody = Data()
        var ended = false
    }

    private let state: Mutex<State>

    package init(span: LLMSpan, api: LLMAPI) {
        let recorder: Recorder
        switch api {
        case .openAIResponses: recorder = .openAIResponses(.init())
        case .anthropicMessages: recorder = .anthropic(.init())
        case .openAIChatCompletions, .openAIEmbeddings: recorder = .openAIChat(.init())
        }
        state = Mutex(State(span: span, recorder: recorder))
    }

    /// The response head: status and `Retry-After`.
    package func receive(status: Int, retryAfter: String?) {
        let retry = OTLPHTTPTransport.retryAfter(retryAfter)
        state.withLock { s in
            s.status = status
            s.retryAfter = retry
        }
    }

    /// Body bytes; returns the complete events they finish (none when `collect` is false, or after
    /// the span ended).
    @discardableResult
    package func feed(_ bytes: some Sequence<UInt8>, collect: Bool = true) -> [ServerSentEvent] {
        state.withLock { s -> [ServerSentEvent] in
            guard !s.ended else { return [] }
            guard (200..<300).contains(s.status) else {
                if s.errorBody.count < LLMCallRecording.maxErrorBodyBytes { s.errorBody.append(contentsOf: bytes.prefix(LLMCallRecording.maxErrorBodyBytes - s.errorBody.count)) }
                return []
            }
            let events = s.parser.feed(bytes)
            for e in events { Self.observe(e, state: &s) }
            return collect ? events : []
        }
    }

    private static func observe(_ e: ServerSentEvent, state s: inout State) {
        switch s.recorder {
        case .openAIChat(var r):
            r.observe(e.data, into: &s.span)
            s.recorder = .openAIChat(r)
        case .openAIResponses(var r):
            r.observe(e, into: &s.span)
            s.recorder = .openAIResponses(r)
        case .anthropic(var r):
            r.observe(e, into: &s.span)
            s.recorder = .anthropic(r)
        }
    }

    /// The body ended (`error` nil) or the transport failed: ends the span and returns a final event
    /// left in the parser and the error the consumer should see (the transport's, the provider's
    /// status, or a truncated/malformed stream). After `cancel()` it returns (nil, nil).
    package func complete(error: (any Error)?) -> (trailing: ServerSentEvent?, failure: (any Error)?) {
        state.withLock { s -> (ServerSentEvent?, (any Error)?) in
            guard !s.ended else { return (nil, nil) }
            s.ended = true
            var trailing: ServerSentEvent?
            let ok = (200..<300).contains(s.status)
            if ok, let last = s.parser.finish() {
                Self.observe(last, state: &s)
                trailing = last
            }
            var failure: (any Error)?
            if let error {
                s.span.recordError(error)
                failure = error
            } else if !ok {
                let e = LLMHTTPError.status(s.status, message: LLMHTTPError.message(fromErrorBody: s.errorBody), retryAfter: s.retryAfter)
                s.span.recordError(e)
                failure = e
            }
            if ok {
                switch s.recorder {
                case .openAIChat(let r): r.finish(into: &s.span)
                case .openAIResponses(let r): r.finish(into: &s.span)
                case .anthropic(let r): r.finish(into: &s.span)
                }
            }
            if failure == nil, s.span.isError {
                let type = s.span.record.errorType ?? "malformed_response"
                let message = s.span.record.errorMessage ?? "the stream ended without its final event"
                failure = LLMHTTPError.transport(type, message)
            }
            s.span.end()
            return (trailing, failure)
        }
    }

    /// The consumer stopped iterating or its task was cancelled: the span ends now, recorded as
    /// "cancelled" with what was seen so far (as a success when the final event had arrived). Does
    /// nothing once the span ended.
    package func cancel() {
        state.withLock { s in
            guard !s.ended else { return }
            s.ended = true
            var complete = false
            if (200..<300).contains(s.status) {
                switch s.recorder {
                case .openAIChat(let r):
                    r.finish(into: &s.span)
                    complete = r.isComplete
                case .openAIResponses(let r):
                    r.finish(into: &s.span)
                    complete = r.isComplete
                case .anthropic(let r):
                    r.finish(into: &s.span)
                    complete = r.isComplete
                }
            }
            // A consumer that stops at the final event ([DONE], message_stop, response.completed)
            // read the whole answer: that is a success, not a cancellation.
            if !complete {
                s.span.recordError(type: "cancelled", message: "the consumer stopped reading the stream before it ended")
            }
            s.span.end()
        }
    }

    /// Whether the span has ended.
    package var isEnded: Bool { state.withLock { $0.ended } }
}

/// The events of a streaming LLM call. Stopping early — `break`, a thrown error, the consuming
/// task's cancellation — cancels the HTTP request and ends the span at once as "cancelled".
/// `text` gives the answer's text deltas, decoded.
public struct LLMEventStream: AsyncSequence, Sendable {
    public typealias Element = ServerSentEvent
    public typealias Failure = any Error

    private let base: AsyncThrowingStream<ServerSentEvent, any Error>
    private let onCancel: @Sendable () -> Void
    /// The API the events are in.
    public let api: LLMAPI

    package init(api: LLMAPI, base: AsyncThrowingStream<ServerSentEvent, any Error>, onCancel: @escaping @Sendable () -> Void) {
        self.api = api
        self.base = base
        self.onCancel = onCancel
    }

    /// A stream that fails at once with `error` (nothing was sent).
    package static func failing(api: LLMAPI, _ error: any Error) -> LLMEventStream {
        LLMEventStream(api: api, base: AsyncThrowingStream { throw error }, onCancel: {})
    }

    /// Cancels when the last copy of an iterator goes away before the stream ended.
    final class Lifetime: Sendable {
        let onCancel: @Sendable () -> Void
        init(_ onCancel: @escaping @Sendable () -> Void) { self.onCancel = onCancel }
        deinit { onCancel() }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<ServerSentEvent, any Error>.AsyncIterator
        let lifetime: Lifetime

        public mutating func next() async throws -> ServerSentEvent? {
            do {
                let e = try await base.next()
                if e == nil, Task.isCancelled { lifetime.onCancel() }
                return e
            } catch {
                if Task.isCancelled { lifetime.onCancel() }
                throw error
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), lifetime: Lifetime(onCancel))
    }

    /// The answer's text as it streams, one decoded delta per element (`LLMAPI.textDelta`).
    public var text: LLMTextStream { LLMTextStream(events: self) }
}

/// The text deltas of an `LLMEventStream`, decoded; stopping early cancels the call as the events do.
public struct LLMTextStream: AsyncSequence, Sendable {
    public typealias Element = String
    public typealias Failure = any Error
    let events: LLMEventStream

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: LLMEventStream.AsyncIterator
        let api: LLMAPI

        public mutating func next() async throws -> String? {
            while let e = try await base.next() {
                if let t = api.textDelta(e) { return t }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: events.makeAsyncIterator(), api: events.api) }
}
