import EvalForgeSDK
import Foundation
import HTTPTypes
import OpenAPIRuntime

/// A swift-openapi-runtime `ClientMiddleware` that records the LLM calls of a generated client as
/// EvalForge spans, whatever its transport (URLSession, AsyncHTTPClient):
///
/// ```swift
/// let client = Client(serverURL: url, transport: AsyncHTTPClientTransport(), middlewares: [EvalForgeOpenAPIMiddleware()])
/// ```
///
/// `POST` operations are recognised by path (`LLMAPI(path:)`): `…/chat/completions`,
/// `…/responses`, `…/embeddings` (OpenAI-shaped) and `…/messages` (Anthropic-shaped); anything else
/// passes through untouched. A recognised request body is read (up to `maxRequestBytes`) and
/// recorded through the same adapters as `LLMHTTPClient`, the span's `traceparent` is added, and the
/// answer is recorded: a JSON answer once read, a stream as the client reads it (the body is teed,
/// never buffered), with time to first token. OpenAI Chat Completions streams get
/// `stream_options.include_usage` unless the request sets it, as with `LLMHTTPClient`. The span ends when the stream ends, fails, or the
/// client stops reading it ("cancelled"). Transport failures and non-2xx statuses are span errors;
/// the client sees the same answer or error it would without the middleware.
public struct EvalForgeOpenAPIMiddleware: ClientMiddleware {
    /// Most request bytes read to record a call; a body declared larger passes through unrecorded.
    public static let maxRequestBytes = 32 << 20

    private let provider: String?
    private let context: LLMCallContext
    private let pipeline: EvalForge.Pipeline?
    private let recognize: @Sendable (HTTPRequest, String) -> LLMAPI?

    /// - Parameters:
    ///   - provider: `gen_ai.provider.name`; by default "openai" or "anthropic" by the recognised API.
    ///   - context: user, session, tags and metadata for every call (the task-local
    ///     `EvalForge.withContext` is applied too).
    ///   - pipeline: where spans go; nil uses `EvalForge.pipeline` at each call.
    ///   - recognize: which API a request speaks; by default `LLMAPI(path:)` for `POST` requests.
    ///     Given the request and the operation id.
    public init(
        provider: String? = nil, context: LLMCallContext = LLMCallContext(), pipeline: EvalForge.Pipeline? = nil,
        recognize: (@Sendable (HTTPRequest, String) -> LLMAPI?)? = nil
    ) {
        self.provider = provider
        self.context = context
        self.pipeline = pipeline
        self.recognize = recognize ?? { request, _ in
            guard request.method == .post, let path = request.path else { return nil }
            return LLMAPI(path: path)
        }
    }

    public func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard let api = recognize(request, operationID) else { return try await next(request, body, baseURL) }
        if let body, case .known(let n) = body.length, n > Int64(Self.maxRequestBytes) { return try await next(request, body, baseURL) }
        var requestBytes: Data
        if let body {
            requestBytes = try await Data(collecting: body, upTo: Self.maxRequestBytes)
        } else {
            requestBytes = Data()
        }
        let pipeline = self.pipeline ?? EvalForge.pipeline
        // An OpenAI Chat Completions stream reports usage (and so cost) only when asked: the same
        // `stream_options.include_usage` as LLMHTTPClient adds, unless the caller set it
        // (`configuration.cost.requestStreamUsage`).
        if LLMAPI.bodyRequestsStream(requestBytes) {
            requestBytes = LLMCallRecording.streamBody(api: api, body: requestBytes, pipeline: pipeline)
        }
        var span = LLMCallRecording.start(
            api: api, body: requestBytes, provider: provider ?? api.defaultProvider, host: baseURL.host,
            port: baseURL.port ?? (baseURL.scheme == "https" ? 443 : 80), context: context, pipeline: pipeline)
        var request = request
        if let name = HTTPField.Name("traceparent") { request.headerFields[name] = span.traceParent.header }
        if body != nil, request.headerFields[.contentLength] != nil { request.headerFields[.contentLength] = String(requestBytes.count) }
        let response: HTTPResponse
        let responseBody: HTTPBody?
        do {
            (response, responseBody) = try await next(request, body == nil ? nil : HTTPBody(requestBytes), baseURL)
        } catch {
            LLMCallRecording.fail(error, span: &span)
            throw error
        }
        let status = response.status.code
        let retryAfter = response.headerFields[.retryAfter]
        let isEventStream = response.headerFields[.contentType]?.lowercased().hasPrefix("text/event-stream") ?? false
        if (200..<300).contains(status), isEventStream || LLMAPI.bodyRequestsStream(requestBytes), let responseBody {
            // Teed: the client reads the events as they come; the recording sees each chunk on the way.
            let recording = LLMStreamRecording(span: span, api: api)
            recording.receive(status: status, retryAfter: retryAfter)
            let teed = RecordingBody(base: responseBody, recording: recording, lifetime: Lifetime(recording))
            return (response, HTTPBody(teed, length: responseBody.length, iterationBehavior: .single))
        }
        let limit = (200..<300).contains(status) ? LLMCallRecording.maxResponseBytes : LLMCallRecording.maxErrorBodyBytes
        var data = Data()
        if let responseBody {
            do {
                for try await chunk in responseBody {
                    guard data.count < limit else { continue }
                    data.append(contentsOf: chunk.prefix(limit - data.count))
                }
            } catch {
                LLMCallRecording.fail(error, span: &span)
                throw error
            }
        }
        // The span records the answer; the generated client decodes (and reports) it as usual.
        _ = try? LLMCallRecording.finish(api: api, status: status, retryAfter: retryAfter, body: data, span: &span)
        return (response, responseBody == nil ? nil : HTTPBody(data))
    }
}

/// Ends a stream's span as "cancelled" when the last holder lets go before it ended.
final class Lifetime: Sendable {
    let recording: LLMStreamRecording
    init(_ recording: LLMStreamRecording) { self.recording = recording }
    deinit { recording.cancel() }
}

/// A streamed answer body seen on its way to the client.
struct RecordingBody: AsyncSequence, Sendable {
    typealias Element = HTTPBody.ByteChunk
    let base: HTTPBody
    let recording: LLMStreamRecording
    /// Held by the body: dropping it unread ends the span.
    let lifetime: Lifetime

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: HTTPBody.AsyncIterator
        let recording: LLMStreamRecording
        /// Held by the reader: stopping early ends the span.
        let lifetime: Lifetime

        mutating func next() async throws -> HTTPBody.ByteChunk? {
            do {
                guard let chunk = try await base.next() else {
                    _ = recording.complete(error: nil)
                    return nil
                }
                recording.feed(chunk, collect: false)
                return chunk
            } catch {
                if error is CancellationError || Task.isCancelled {
                    recording.cancel()
                } else {
                    _ = recording.complete(error: error)
                }
                throw error
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), recording: recording, lifetime: Lifetime(recording))
    }
}
