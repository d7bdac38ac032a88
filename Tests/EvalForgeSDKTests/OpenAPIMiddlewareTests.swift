import EvalForgeAsyncHTTPClient
import EvalForgeCore
import EvalForgeOpenAPI
import Foundation
import HTTPTypes
import OpenAPIAsyncHTTPClient
import OpenAPIRuntime
import OpenAPIURLSession
import Testing

@testable import EvalForgeSDK

/// The swift-openapi-runtime transports the middleware is checked with.
enum OpenAPITransportKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case urlSession
    case asyncHTTPClient

    var testDescription: String { rawValue }

    var transport: any ClientTransport {
        switch self {
        case .urlSession: URLSessionTransport()
        // No retry of refused connections (see LLMAsyncHTTPClient.sharedHTTPClient).
        case .asyncHTTPClient: AsyncHTTPClientTransport(configuration: .init(client: LLMAsyncHTTPClient.sharedHTTPClient))
        }
    }
}

@Suite("EvalForgeOpenAPIMiddleware with the URLSession and AsyncHTTPClient transports against the mock LLM")
struct OpenAPIMiddlewareTests {
    /// One operation as a generated client runs it: middleware, then the transport.
    static func call(
        _ kind: OpenAPITransportKind, _ middleware: EvalForgeOpenAPIMiddleware, baseURL: String, path: String, headers: [String: String] = [:], body: [String: Any]
    ) async throws -> (HTTPResponse, Data) {
        var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: path)
        request.headerFields[.contentType] = "application/json"
        for (k, v) in headers { request.headerFields[HTTPField.Name(k)!] = v }
        let transport = kind.transport
        let (response, responseBody) = try await middleware.intercept(
            request, body: HTTPBody(SDKAgainstMockLLMTests.body(body)), baseURL: URL(string: baseURL)!, operationID: "op"
        ) { request, body, url in
            try await transport.send(request, body: body, baseURL: url, operationID: "op")
        }
        var data = Data()
        if let responseBody { for try await chunk in responseBody { data.append(contentsOf: chunk) } }
        return (response, data)
    }

    @Test("chat completions, Responses API (streamed, teed), embeddings and messages are recorded; other paths pass through", arguments: OpenAPITransportKind.allCases)
    func recorded(_ kind: OpenAPITransportKind) async throws {
        try await SDKAgainstMockLLMTests.withStack { llm, pipeline, receiver in
            let m = EvalForgeOpenAPIMiddleware(context: LLMCallContext(userID: "api-user"), pipeline: pipeline)
            let (r1, chat) = try await Self.call(kind, m, baseURL: llm + "/v1", path: "/chat/completions", body: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "hi"]]])
            #expect(r1.status == .ok && String(decoding: chat, as: UTF8.self).contains("chat.completion"))
            let (_, events) = try await Self.call(kind, m, baseURL: llm + "/v1", path: "/responses", body: ["model": "gpt-4.1", "input": "hi", "stream": true])
            let sse = String(decoding: events, as: UTF8.self)
            #expect(sse.contains("response.output_text.delta") && sse.contains("response.completed"))
            _ = try await Self.call(kind, m, baseURL: llm + "/v1", path: "/embeddings", body: ["model": "text-embedding-3-small", "input": "hi"])
            _ = try await Self.call(kind, m, baseURL: llm, path: "/v1/messages", body: ["model": "claude-haiku-4-5", "max_tokens": 30, "messages": [["role": "user", "content": "hi"]]])
            // A Chat Completions stream that does not ask for usage: the middleware asks for it.
            let (_, chatEvents) = try await Self.call(kind, m, baseURL: llm + "/v1", path: "/chat/completions", body: ["model": "gpt-4o", "stream": true, "messages": [["role": "user", "content": "hi"]]])
            #expect(String(decoding: chatEvents, as: UTF8.self).contains("\"usage\""))
            let (r5, _) = try await Self.call(kind, m, baseURL: llm + "/v1", path: "/models", body: [:])
            #expect(r5.status.code == 404 || r5.status.code == 405)
            let (r6, _) = try await Self.call(kind, m, baseURL: llm + "/v1", path: "/chat/completions", headers: ["x-mock-fault": "429"], body: ["model": "gpt-4o", "messages": [["role": "user", "content": "hi"]]])
            #expect(r6.status.code == 429)

            await pipeline.forceFlush()
            let spans = receiver.spans.map(\.span)
            #expect(spans.count == 6)
            let cs = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4o" && $0.string(GenAIKeys.errorType) == nil })
            #expect((cs.int(GenAIKeys.usageOutputTokens) ?? 0) > 0 && (cs.double(GenAIKeys.costUSD) ?? 0) > 0 && cs.double(GenAIKeys.timeToFirstChunk) != nil)
            let c = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4o-mini" })
            #expect((c.int(GenAIKeys.usageInputTokens) ?? 0) > 0 && (c.double(GenAIKeys.costUSD) ?? 0) > 0 && c.string(GenAIKeys.userID) == "api-user")
            let s = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4.1" })
            #expect(s.double(GenAIKeys.timeToFirstChunk) != nil && (s.int(GenAIKeys.usageOutputTokens) ?? 0) > 0 && s.status.code == .unset)
            #expect(spans.contains { $0.string(GenAIKeys.operationName) == "embeddings" && $0.int(GenAIKeys.usageInputTokens) != nil })
            #expect(spans.contains { $0.string(GenAIKeys.providerName) == "anthropic" && $0.int(GenAIKeys.usageOutputTokens) != nil })
            #expect(spans.contains { $0.string(GenAIKeys.errorType) == "429" })
        }
    }

    @Test("a client that stops reading a stream ends its span as cancelled; faults are span errors", arguments: OpenAPITransportKind.allCases)
    func cancelAndFaults(_ kind: OpenAPITransportKind) async throws {
        try await SDKAgainstMockLLMTests.withStack { llm, pipeline, receiver in
            let m = EvalForgeOpenAPIMiddleware(pipeline: pipeline)
            let transport = kind.transport
            var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/responses")
            request.headerFields[.contentType] = "application/json"
            request.headerFields[HTTPField.Name("x-mock-inter-token-ms")!] = "200"
            do {
                let (_, body) = try await m.intercept(
                    request, body: HTTPBody(SDKAgainstMockLLMTests.body(["model": "gpt-4.1", "input": "x", "stream": true])),
                    baseURL: URL(string: llm + "/v1")!, operationID: "createResponse"
                ) { r, b, u in try await transport.send(r, body: b, baseURL: u, operationID: "createResponse") }
                if let body {
                    for try await _ in body { break }
                }
            }
            for fault in ["cut", "malformed"] {
                _ = try? await Self.call(kind, m, baseURL: llm + "/v1", path: "/responses", headers: ["x-mock-fault": fault], body: ["model": "gpt-4.1-\(fault)", "input": "x", "stream": true])
            }
            await #expect(throws: (any Error).self) {
                _ = try await Self.call(kind, m, baseURL: "http://127.0.0.1:9/v1", path: "/chat/completions", body: ["model": "gpt-4o-down", "messages": []])
            }
            await pipeline.forceFlush()
            let spans = receiver.spans.map(\.span)
            let cancelled = try #require(spans.first { $0.string(GenAIKeys.requestModel) == "gpt-4.1" })
            switch kind {
            case .asyncHTTPClient:
                // The body is teed live: stopping after the first chunk cancels the call.
                #expect(cancelled.string(GenAIKeys.errorType) == "cancelled")
            case .urlSession:
                // swift-openapi-urlsession on Linux may hand over the whole answer at once; when that
                // first chunk already holds the final event the call did complete, and a success is
                // the right record. Either way the span is ended and says which.
                let type = cancelled.string(GenAIKeys.errorType)
                #expect(type == "cancelled" || (type == nil && cancelled.status.code != .error), "\(String(describing: type))")
            }
            for model in ["gpt-4.1-cut", "gpt-4.1-malformed", "gpt-4o-down"] {
                let s = try #require(spans.first { $0.string(GenAIKeys.requestModel) == model }, "\(model)")
                #expect(s.status.code == .error, "\(model)")
            }
        }
    }
}
