import HTTPTypes

/// Per-request behaviour forced through `x-mock-*` headers, so tests and benchmarks get a given
/// fault, latency, seed or cache hit without reconfiguring the server.
struct RequestOverrides {
    /// `x-mock-fault: 429|500|529|cut|malformed`.
    var fault: MockFault?
    /// `x-mock-latency-ms: N`: time to first token.
    var latencyMs: Double?
    /// `x-mock-inter-token-ms: N`: delay between streamed chunks.
    var interTokenMs: Double?
    /// `x-mock-seed: N`.
    var seed: UInt64?
    /// `x-mock-cached-tokens: N`: cached prompt tokens to report (capped at the prompt size).
    var cachedTokens: Int?

    static let faultHeader = HTTPField.Name("x-mock-fault")!
    static let latencyHeader = HTTPField.Name("x-mock-latency-ms")!
    static let interTokenHeader = HTTPField.Name("x-mock-inter-token-ms")!
    static let seedHeader = HTTPField.Name("x-mock-seed")!
    static let cachedTokensHeader = HTTPField.Name("x-mock-cached-tokens")!

    init() {}

    init(headers: HTTPFields) throws {
        if let v = headers[Self.faultHeader] {
            guard let f = MockFault(rawValue: v.lowercased()) else {
                throw MockLLMError.invalidHeader("x-mock-fault", v, expected: "429, 500, 529, cut or malformed")
            }
            fault = f
        }
        if let v = headers[Self.latencyHeader] {
            guard let ms = Double(v), ms.isFinite, ms >= 0, ms <= 600_000 else {
                throw MockLLMError.invalidHeader("x-mock-latency-ms", v, expected: "milliseconds between 0 and 600000")
            }
            latencyMs = ms
        }
        if let v = headers[Self.interTokenHeader] {
            guard let ms = Double(v), ms.isFinite, ms >= 0, ms <= 60_000 else {
                throw MockLLMError.invalidHeader("x-mock-inter-token-ms", v, expected: "milliseconds between 0 and 60000")
            }
            interTokenMs = ms
        }
        if let v = headers[Self.seedHeader] {
            guard let s = UInt64(v) else { throw MockLLMError.invalidHeader("x-mock-seed", v, expected: "an unsigned 64-bit integer") }
            seed = s
        }
        if let v = headers[Self.cachedTokensHeader] {
            guard let n = Int(v), n >= 0 else { throw MockLLMError.invalidHeader("x-mock-cached-tokens", v, expected: "a non-negative integer") }
            cachedTokens = n
        }
    }
}
