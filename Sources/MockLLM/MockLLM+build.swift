import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The mock OpenAI / Anthropic provider as a Hummingbird application.
public func buildMockLLMApplication(configuration: MockLLMConfiguration = .default, logger: Logger = Logger(label: "evalforge.mock-llm")) -> some ApplicationProtocol {
    Application(
        router: buildMockLLMRouter(configuration: configuration),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "evalforge-mock-llm"),
        logger: logger)
}

/// Routes: `POST /v1/chat/completions`, `POST /v1/messages`, `GET /v1/models`, `GET /healthz`.
public func buildMockLLMRouter(configuration: MockLLMConfiguration) -> Router<BasicRequestContext> {
    let router = Router()
    let counter = RequestCounter()
    let openAI = OpenAIChatHandler(configuration: configuration, requests: counter)
    let anthropic = AnthropicMessagesHandler(configuration: configuration, requests: counter)
    router.post("/v1/chat/completions") { request, _ -> Response in
        guard let body = try await readBody(request, limit: configuration.maxBodyBytes) else {
            return OpenAIChatHandler.error(413, "request body exceeds \(configuration.maxBodyBytes) bytes", type: "invalid_request_error", code: "request_too_large")
        }
        let headers = request.headers
        return try await openAI.handle(body: body) { name in HTTPField.Name(name).flatMap { headers[$0] } }
    }
    router.post("/v1/messages") { request, _ -> Response in
        guard let body = try await readBody(request, limit: configuration.maxBodyBytes) else {
            return AnthropicMessagesHandler.error(413, "request_too_large", "request body exceeds \(configuration.maxBodyBytes) bytes")
        }
        let headers = request.headers
        return try await anthropic.handle(body: body) { name in HTTPField.Name(name).flatMap { headers[$0] } }
    }
    router.get("/v1/models") { _, _ -> Response in
        let models = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini", "gpt-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
        return MockResponses.json(200, ["object": "list", "data": models.map { ["id": $0, "object": "model", "created": 1_700_000_000, "owned_by": "evalforge-mock"] }])
    }
    router.get("/healthz") { _, _ in "ok" }
    return router
}

/// The body, or nil when it is larger than `limit` (it is drained so the client reads the 413).
private func readBody(_ request: Request, limit: Int) async throws -> [UInt8]? {
    var out: [UInt8] = []
    var tooLarge = false
    for try await chunk in request.body {
        if tooLarge || out.count + chunk.readableBytes > limit {
            tooLarge = true
            continue
        }
        out.append(contentsOf: chunk.readableBytesView)
    }
    return tooLarge ? nil : out
}

/// Numbers requests in arrival order (fault draws use it).
final class RequestCounter: Sendable {
    private let value = Atomic<UInt64>(0)
    func next() -> UInt64 { value.add(1, ordering: .relaxed).newValue }
}
