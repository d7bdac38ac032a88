import EvalForgeOpenAPI
import EvalForgeSDK
import Foundation
import HTTPTypes
import OpenAPIAsyncHTTPClient
import OpenAPIRuntime

// Usage: swift run OpenAPIClient [LLM base URL]   (default http://127.0.0.1:8080, `evalforge mock-llm`)
// Spans go to the collector at EVALFORGE_COLLECTOR_URL (default http://127.0.0.1:4318).
//
// `Client` and the `Components`/`Operations` types are generated from openapi.yaml into
// Sources/OpenAPIClient/Generated (see README.md); this file is all the hand-written code.
let base = CommandLine.arguments.dropFirst().first ?? "http://127.0.0.1:8080"
var configuration = EvalForge.Configuration.fromEnvironment()
configuration.serviceName = "openapi-client"
let pipeline = try EvalForge.bootstrap(configuration)

guard let serverURL = URL(string: base + "/v1"), serverURL.host != nil else {
    print("not an http(s) URL: \(base)")
    exit(2)
}
let apiKey = ProcessInfo.processInfo.environment["OPENAI_API_KEY"] ?? "mock"
// The middleware records every chat completion and response this client makes; the context's user,
// session and tags go on each span.
let recorder = EvalForgeOpenAPIMiddleware(
    context: LLMCallContext(userID: "openapi-user", sessionID: "openapi-\(Int.random(in: 1000...9999))", tags: ["openapi-example"]))
let client = Client(serverURL: serverURL, transport: AsyncHTTPClientTransport(), middlewares: [BearerToken(apiKey), recorder])

try await EvalForge.withStep(.invokeAgent, name: "openapi-client") { _ in
    // A chat completion, decoded by the generated types.
    let completion = try await client.createChatCompletion(body: .json(.init(
        model: "gpt-4o-mini", messages: [.init(role: .user, content: "Name a prime number.")])))
    let answer = try completion.ok.body.json
    print("chat:", answer.choices.first?.message.content ?? "", "| tokens", answer.usage?.promptTokens ?? 0, "→", answer.usage?.completionTokens ?? 0)

    // The same, streamed: the middleware tees the events (time to first token) while this loop reads
    // them. `include_usage` makes OpenAI send token usage in a last chunk (no usage, no cost).
    let streamed = try await client.createChatCompletion(body: .json(.init(
        model: "gpt-4o-mini", messages: [.init(role: .user, content: "Say hello.")],
        stream: true, streamOptions: .init(includeUsage: true))))
    let events = try streamed.ok.body.textEventStream.asDecodedServerSentEventsWithJSONData(
        of: Components.Schemas.CreateChatCompletionStreamResponse.self,
        while: { $0 != ArraySlice("[DONE]".utf8) })
    var text = ""
    for try await event in events {
        text += event.data?.choices.first?.delta.content ?? ""
    }
    print("stream:", text)

    // The Responses API.
    let response = try await client.createResponse(body: .json(.init(model: "gpt-4.1-mini", input: "Name a colour.")))
    let output = try response.ok.body.json
    print("responses:", output.output.flatMap { $0.content ?? [] }.compactMap(\.text).joined(), "| tokens", output.usage?.inputTokens ?? 0, "→", output.usage?.outputTokens ?? 0)
}
await pipeline.forceFlush(timeout: .seconds(3))
let s = pipeline.statistics
print("spans recorded \(s.recorded), exported \(s.exported), export failed \(s.exportFailed) → \(configuration.exporter.endpoint)")
await EvalForge.shutdown()

/// Adds `Authorization: Bearer …` to every request (the generated client leaves authentication to middleware).
struct BearerToken: ClientMiddleware {
    let token: String
    init(_ token: String) { self.token = token }

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        request.headerFields[.authorization] = "Bearer \(token)"
        return try await next(request, body, baseURL)
    }
}
