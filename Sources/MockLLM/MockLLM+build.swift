import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The mock OpenAI / Anthropic provider as a Hummingbird application. Run it with `runService()`, or in
/// tests with HummingbirdTesting's `.test(.router)` / `.test(.live)`. With `port` 0, set
/// ``MockLLMConfiguration/onServerRunning`` to learn the bound port.
public func buildMockLLMApplication(
    configuration: MockLLMConfiguration = .default,
    logger: Logger = Logger(label: "evalforge.mock-llm")
) -> some ApplicationProtocol {
    let onServerRunning = configuration.onServerRunning
    return Application(
        router: buildMockLLMRouter(configuration: configuration),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "evalforge-mock-llm",
            backlog: configuration.backlog),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger)
}

/// Routes: `POST /v1/chat/completions`, `POST /v1/responses`, `POST /v1/embeddings`, `POST /v1/messages`, `GET /v1/models`, `GET /healthz`.
public func buildMockLLMRouter(configuration: MockLLMConfiguration) -> Router<BasicRequestContext> {
    let router = Router()
    let faults = FaultInjector(rates: configuration.faults)
    let openAI = OpenAIChatHandler(configuration: configuration, faults: faults)
    let anthropic = AnthropicMessagesHandler(configuration: configuration, faults: faults)
    let responses = OpenAIResponsesHandler(configuration: configuration, faults: faults)
    let embeddings = OpenAIEmbeddingsHandler(configuration: configuration, faults: faults)
    let limit = configuration.maxBodyBytes
    router.post("/v1/chat/completions") { request, _ -> Response in
        guard let body = try await readBody(request, limit: limit) else {
            let e = MockLLMError.bodyTooLarge(limit: limit)
            return OpenAIChatHandler.error(e.status, e.message, type: "invalid_request_error", code: e.providerCode)
        }
        return try await openAI.handle(body: body, headers: request.headers)
    }
    for (path, handle) in [
        ("/v1/responses", responses.handle), ("/v1/embeddings", embeddings.handle),
    ] as [(String, @Sendable ([UInt8], HTTPFields) async throws -> Response)] {
        router.post(RouterPath(path)) { request, _ -> Response in
            guard let body = try await readBody(request, limit: limit) else {
                let e = MockLLMError.bodyTooLarge(limit: limit)
                return OpenAIChatHandler.error(e.status, e.message, type: "invalid_request_error", code: e.providerCode)
            }
            return try await handle(body, request.headers)
        }
    }
    router.post("/v1/messages") { request, _ -> Response in
        guard let body = try await readBody(request, limit: limit) else {
            let e = MockLLMError.bodyTooLarge(limit: limit)
            return AnthropicMessagesHandler.error(e.status, "request_too_large", e.message)
        }
        return try await anthropic.handle(body: body, headers: request.headers)
    }
    let models = [
        "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini",
        "text-embedding-3-small", "text-embedding-3-large", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1",
    ]
    let modelList = JSONValue.object([
        ("object", "list"),
        ("data", .array(models.map { ["id": .string($0), "object": "model", "created": 1_700_000_000, "owned_by": "evalforge-mock"] })),
    ]).text
    router.get("/v1/models") { _, _ -> Response in
        MockResponses.text(200, modelList, contentType: "application/json")
    }
    router.get("/healthz") { _, _ in "ok" }
    return router
}

/// The body, or nil when it is larger than `limit`. A declared Content-Length over the limit is
/// refused before reading; otherwise the rest is drained so the client reads the 413.
private func readBody(_ request: Request, limit: Int) async throws -> [UInt8]? {
    var out: [UInt8] = []
    if let length = request.headers[.contentLength].flatMap(Int.init) {
        if length <= limit { out.reserveCapacity(length) }
    }
    var tooLarge = false
    for try await chunk in request.body {
        if tooLarge || out.count + chunk.readableBytes > limit {
            tooLarge = true
            out = []
            continue
        }
        out.append(contentsOf: chunk.readableBytesView)
    }
    return tooLarge ? nil : out
}
