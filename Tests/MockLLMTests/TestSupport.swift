import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import MockLLM

/// Shared helpers of the mock LLM tests.
enum Mock {
    static let openAI = "/v1/chat/completions"
    static let anthropic = "/v1/messages"

    static func header(_ name: String) -> HTTPField.Name {
        guard let n = HTTPField.Name(name) else { preconditionFailure("bad header name \(name)") }
        return n
    }

    static func headers(_ pairs: [String: String] = [:]) -> HTTPFields {
        var h: HTTPFields = [.contentType: "application/json"]
        for (k, v) in pairs { h[header(k)] = v }
        return h
    }

    static func body(_ object: [String: Any]) -> ByteBuffer {
        ByteBuffer(bytes: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }

    static func object(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] ?? [:]
    }

    static func object(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    /// JSON text with sorted keys, to compare decoded objects.
    static func canonical(_ object: Any) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }

    /// Server-sent events of a body: (event name, data).
    static func events(_ buffer: ByteBuffer) -> [(event: String?, data: String)] {
        String(buffer: buffer).components(separatedBy: "\n\n").compactMap { block in
            var event: String?
            var data: String?
            for line in block.split(separator: "\n") {
                if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
            }
            return data.map { (event, $0) }
        }
    }

    static func openAIRequest(_ content: String = "Hello there", model: String = "gpt-4o", extra: [String: Any] = [:]) -> [String: Any] {
        var o: [String: Any] = ["model": model, "messages": [["role": "user", "content": content]]]
        for (k, v) in extra { o[k] = v }
        return o
    }

    static func anthropicRequest(_ content: String = "Hello there", model: String = "claude-haiku-4-5", maxTokens: Int = 200, extra: [String: Any] = [:]) -> [String: Any] {
        var o: [String: Any] = ["model": model, "max_tokens": maxTokens, "messages": [["role": "user", "content": content]]]
        for (k, v) in extra { o[k] = v }
        return o
    }

    static var weatherSchema: [String: Any] {
        [
            "type": "object",
            "properties": [
                "city": ["type": "string"], "days": ["type": "integer"], "unit": ["type": "string", "enum": ["celsius", "fahrenheit"]],
                "detailed": ["type": "boolean"], "note": ["type": "string"],
            ],
            "required": ["city", "days", "unit", "detailed"],
        ]
    }
    static var openAITools: [[String: Any]] {
        [
            ["type": "function", "function": ["name": "get_weather", "parameters": weatherSchema]],
            ["type": "function", "function": ["name": "get_time", "parameters": ["type": "object", "properties": ["zone": ["type": "string"]], "required": ["zone"]]]],
        ]
    }
    static var anthropicTools: [[String: Any]] {
        [
            ["name": "get_weather", "description": "Weather", "input_schema": weatherSchema],
            ["name": "get_time", "description": "Time", "input_schema": ["type": "object", "properties": ["zone": ["type": "string"]], "required": ["zone"]]],
        ]
    }

    /// Runs `body` against the mock through the router (no sockets).
    static func withApp(
        _ edit: (inout MockLLMConfiguration) -> Void = { _ in },
        _ body: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        var c = MockLLMConfiguration.default
        c.port = 0
        edit(&c)
        try await buildMockLLMApplication(configuration: c).test(.router, body)
    }

    /// Runs `body` against the mock listening on a loopback port.
    static func withLiveApp(
        _ edit: (inout MockLLMConfiguration) -> Void = { _ in },
        _ body: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        var c = MockLLMConfiguration.default
        c.port = 0
        edit(&c)
        try await buildMockLLMApplication(configuration: c).test(.live, body)
    }

    /// POSTs `object` and returns the response.
    static func post(
        _ client: any TestClientProtocol, _ path: String, _ object: [String: Any], headers: [String: String] = [:]
    ) async throws -> TestResponse {
        try await client.execute(uri: path, method: .post, headers: Self.headers(headers), body: body(object))
    }
}
