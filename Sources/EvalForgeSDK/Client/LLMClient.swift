import Foundation

/// What every instrumented LLM client offers, whatever carries its HTTP (URLSession's
/// `LLMHTTPClient`, `EvalForgeAsyncHTTPClient`'s `LLMAsyncHTTPClient`): raw bodies, and on top of
/// them typed `Encodable` requests and `Decodable` answers, so no JSON is written by hand.
public protocol LLMClient: Sendable {
    /// The wire API the endpoint speaks.
    var api: LLMAPI { get }
    /// Sends a non-streaming body; returns the provider's answer body (see `LLMHTTPClient.send`).
    func send(_ body: Data, context: LLMCallContext) async throws -> Data
    /// Sends a body with `"stream": true`; returns its events (see `LLMHTTPClient.stream`).
    func stream(_ body: Data, context: LLMCallContext) -> LLMEventStream
}

extension LLMClient {
    /// Sends `request` encoded as JSON and decodes the answer as `Response` (e.g.
    /// `OpenAIChat.Request` → `OpenAIChat.Response`). An answer that does not decode throws
    /// "malformed_response" naming the field; the span was recorded from the raw body either way.
    public func send<Request: Encodable, Response: Decodable>(
        _ request: Request, as: Response.Type = Response.self, context: LLMCallContext = LLMCallContext()
    ) async throws -> Response {
        let data = try await send(try LLMJSONCoding.encode(request), context: context)
        return try LLMJSONCoding.decode(Response.self, from: data)
    }

    /// Streams a typed request; `"stream": true` is set for you.
    public func stream<Request: LLMStreamableRequest>(_ request: Request, context: LLMCallContext = LLMCallContext()) -> LLMEventStream {
        var request = request
        request.stream = true
        do {
            return stream(try LLMJSONCoding.encode(request), context: context)
        } catch {
            return .failing(api: api, error)
        }
    }
}

/// A typed request body that can ask for a stream (`"stream": true`).
public protocol LLMStreamableRequest: Encodable, Sendable {
    var stream: Bool? { get set }
}

/// JSON coding of typed bodies: snake_case keys, nils left out, failures as `LLMHTTPError`.
enum LLMJSONCoding {
    static func encode(_ value: some Encodable) throws -> Data {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        do {
            return try e.encode(value)
        } catch {
            throw LLMHTTPError.invalidRequest("the request value cannot be encoded as JSON: \(error)")
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try d.decode(type, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw LLMHTTPError.malformed("the answer has no '\(path(ctx.codingPath + [key]))' (decoding \(T.self))")
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            throw LLMHTTPError.malformed("the answer's '\(path(ctx.codingPath))' has the wrong type (decoding \(T.self))")
        } catch {
            throw LLMHTTPError.malformed("the answer is not \(T.self): \(error)")
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }
}

/// Typed OpenAI Chat Completions bodies (the common fields; send raw `Data` for the rest).
public enum OpenAIChat {
    public struct Message: Codable, Sendable, Hashable {
        public var role: String
        public var content: String?
        public init(role: String, content: String?) {
            self.role = role
            self.content = content
        }
        public static func system(_ text: String) -> Message { Message(role: "system", content: text) }
        public static func user(_ text: String) -> Message { Message(role: "user", content: text) }
        public static func assistant(_ text: String) -> Message { Message(role: "assistant", content: text) }
    }

    public struct Request: LLMStreamableRequest, Hashable {
        public var model: String
        public var messages: [Message]
        public var maxCompletionTokens: Int?
        public var temperature: Double?
        public var user: String?
        public var stream: Bool?
        public init(model: String, messages: [Message], maxCompletionTokens: Int? = nil, temperature: Double? = nil, user: String? = nil) {
            self.model = model
            self.messages = messages
            self.maxCompletionTokens = maxCompletionTokens
            self.temperature = temperature
            self.user = user
        }
    }

    public struct Usage: Decodable, Sendable, Hashable {
        public var promptTokens: Int?
        public var completionTokens: Int?
        public var totalTokens: Int?
    }

    public struct Choice: Decodable, Sendable, Hashable {
        public var index: Int?
        public var message: Message
        public var finishReason: String?
    }

    public struct Response: Decodable, Sendable, Hashable {
        public var id: String?
        public var model: String?
        public var choices: [Choice]
        public var usage: Usage?
        /// The first choice's text ("" when it has none).
        public var text: String { choices.first?.message.content ?? "" }
    }
}

/// Typed OpenAI Responses API bodies (text input and output).
public enum OpenAIResponses {
    public struct Request: LLMStreamableRequest, Hashable {
        public var model: String
        public var input: String
        public var instructions: String?
        public var maxOutputTokens: Int?
        public var temperature: Double?
        public var user: String?
        public var stream: Bool?
        public init(model: String, input: String, instructions: String? = nil, maxOutputTokens: Int? = nil, temperature: Double? = nil, user: String? = nil) {
            self.model = model
            self.input = input
            self.instructions = instructions
            self.maxOutputTokens = maxOutputTokens
            self.temperature = temperature
            self.user = user
        }
    }

    public struct Content: Decodable, Sendable, Hashable {
        public var type: String
        public var text: String?
    }

    public struct OutputItem: Decodable, Sendable, Hashable {
        public var type: String
        public var role: String?
        public var content: [Content]?
    }

    public struct Usage: Decodable, Sendable, Hashable {
        public var inputTokens: Int?
        public var outputTokens: Int?
        public var totalTokens: Int?
    }

    public struct Response: Decodable, Sendable, Hashable {
        public var id: String?
        public var model: String?
        public var status: String?
        public var output: [OutputItem]
        public var usage: Usage?
        /// The output text, joined (`output_text` of OpenAI's clients).
        public var text: String {
            output.filter { $0.type == "message" }.flatMap { $0.content ?? [] }.filter { $0.type == "output_text" }.compactMap(\.text).joined()
        }
    }
}

/// Typed OpenAI embeddings bodies.
public enum OpenAIEmbeddings {
    public struct Request: Encodable, Sendable, Hashable {
        public var model: String
        public var input: [String]
        public var dimensions: Int?
        public var user: String?
        public init(model: String, input: [String], dimensions: Int? = nil, user: String? = nil) {
            self.model = model
            self.input = input
            self.dimensions = dimensions
            self.user = user
        }
    }

    public struct Embedding: Decodable, Sendable, Hashable {
        public var index: Int
        public var embedding: [Double]
    }

    public struct Usage: Decodable, Sendable, Hashable {
        public var promptTokens: Int?
        public var totalTokens: Int?
    }

    public struct Response: Decodable, Sendable, Hashable {
        public var model: String?
        public var data: [Embedding]
        public var usage: Usage?
    }
}

/// Typed Anthropic Messages bodies (text blocks).
public enum AnthropicMessages {
    public struct Message: Codable, Sendable, Hashable {
        public var role: String
        public var content: String
        public init(role: String, content: String) {
            self.role = role
            self.content = content
        }
        public static func user(_ text: String) -> Message { Message(role: "user", content: text) }
        public static func assistant(_ text: String) -> Message { Message(role: "assistant", content: text) }
    }

    public struct Request: LLMStreamableRequest, Hashable {
        public var model: String
        public var maxTokens: Int
        public var system: String?
        public var messages: [Message]
        public var temperature: Double?
        public var stream: Bool?
        public init(model: String, maxTokens: Int, system: String? = nil, messages: [Message], temperature: Double? = nil) {
            self.model = model
            self.maxTokens = maxTokens
            self.system = system
            self.messages = messages
            self.temperature = temperature
        }
    }

    public struct Block: Decodable, Sendable, Hashable {
        public var type: String
        public var text: String?
    }

    public struct Usage: Decodable, Sendable, Hashable {
        public var inputTokens: Int?
        public var outputTokens: Int?
    }

    public struct Response: Decodable, Sendable, Hashable {
        public var id: String?
        public var model: String?
        public var content: [Block]
        public var stopReason: String?
        public var usage: Usage?
        /// The text blocks, joined.
        public var text: String { content.filter { $0.type == "text" }.compactMap(\.text).joined() }
    }
}
