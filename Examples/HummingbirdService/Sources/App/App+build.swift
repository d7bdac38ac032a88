import EvalForgeSDK
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Tracing

/// The body of `POST /chat`.
struct ChatRequest: Decodable, Sendable {
    var message: String
    var userId: String?
    var sessionId: String?
    /// Stream the LLM answer (records time to first chunk) instead of waiting for the whole body.
    var stream: Bool?
}

/// The answer of `POST /chat`.
struct ChatResponse: ResponseEncodable, Sendable {
    var reply: String
    var model: String
    /// The trace this request belongs to: look it up in the EvalForge UI or with the collector tools.
    var traceId: String?
}

func buildApplication(settings: Settings, llm: LLMHTTPClient, services: [any Service], logger: Logger) -> some ApplicationProtocol {
    Application(
        router: buildRouter(settings: settings, llm: llm),
        configuration: .init(address: .hostname("127.0.0.1", port: settings.port), serverName: "hummingbird-service"),
        services: services,
        logger: logger
    )
}

func buildRouter(settings: Settings, llm: LLMHTTPClient) -> Router<BasicRequestContext> {
    let router = Router()
    // One server span per request, continuing an incoming `traceparent`. Handlers run with the span
    // in `ServiceContext.current`, which is where the SDK looks for its parent.
    router.add(middleware: TracingMiddleware())
    router.add(middleware: LogRequestsMiddleware(.info))

    router.get("/health") { _, _ in "ok" }

    router.post("/chat") { request, context -> ChatResponse in
        let chat = try await request.decode(as: ChatRequest.self, context: context)
        guard !chat.message.isEmpty else { throw HTTPError(.badRequest, message: "message: expected a non-empty string") }

        // Any swift-distributed-tracing span made here is a child of the request span too.
        let messages = withSpan("build prompt") { span -> [[String: String]] in
            span.attributes["prompt.chars"] = chat.message.count
            return [
                ["role": "system", "content": "You are a concise support assistant."],
                ["role": "user", "content": chat.message],
            ]
        }
        var body: [String: Any] = ["model": settings.model, "messages": messages, "max_tokens": 120]
        let who = LLMHTTPClient.CallContext(userID: chat.userId, sessionID: chat.sessionId, tags: ["hummingbird-example"])

        // The LLM call: recorded by the SDK as a `chat <model>` span whose parent is the request span.
        let reply: String
        do {
            if chat.stream == true {
                body["stream"] = true
                body["stream_options"] = ["include_usage": true]
                var text = ""
                for try await event in llm.stream(try JSONSerialization.data(withJSONObject: body), context: who) {
                    text += OpenAIText.delta(event.data)
                }
                reply = text
            } else {
                let data = try await llm.send(try JSONSerialization.data(withJSONObject: body), context: who)
                reply = OpenAIText.message(data)
            }
        } catch let error as LLMHTTPError {
            // The SDK already recorded the failure on the LLM span; tell the caller what happened.
            throw HTTPError(.badGateway, message: "LLM call failed: \(error)")
        }
        return ChatResponse(reply: reply, model: settings.model, traceId: EvalForge.currentTraceParent()?.traceID.hexString)
    }
    return router
}

/// Reads the text out of OpenAI Chat Completions bodies.
enum OpenAIText {
    static func message(_ data: Data) -> String {
        guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let choices = o["choices"] as? [[String: Any]],
              let message = choices.first?["message"] as? [String: Any] else { return "" }
        return message["content"] as? String ?? ""
    }

    static func delta(_ eventData: String) -> String {
        guard eventData != "[DONE]",
              let o = try? JSONSerialization.jsonObject(with: Data(eventData.utf8)) as? [String: Any],
              let choices = o["choices"] as? [[String: Any]],
              let delta = choices.first?["delta"] as? [String: Any] else { return "" }
        return delta["content"] as? String ?? ""
    }
}
