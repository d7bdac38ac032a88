/// How the mock provider behaves. Start from `.default`; `evalforge mock-llm` maps its flags and
/// `EVALFORGE_MOCK_*` environment variables onto these fields.
public struct MockLLMConfiguration: Sendable {
    /// Listen host. Flag `--host`, env `EVALFORGE_MOCK_HOST`. Default "127.0.0.1".
    public var host: String = "127.0.0.1"
    /// Listen port; 0 picks a free one (read it back with ``onServerRunning``). Flag `--port`,
    /// env `EVALFORGE_MOCK_PORT`. Default 8080.
    public var port: Int = 8080
    /// Seed of every generated text, id, latency sample and fault decision; a request can override it
    /// with `x-mock-seed`. Flag `--seed`, env `EVALFORGE_MOCK_SEED`. Default 42.
    public var seed: UInt64 = 42
    /// Time to first token (the whole latency of a non-streaming answer); a request can override it
    /// with `x-mock-latency-ms`. Flag `--latency`, env `EVALFORGE_MOCK_LATENCY`. Default `.none`.
    public var latency: LatencyModel = .none
    /// Delay between streamed chunks (per-token latency). Flag `--inter-token-ms`,
    /// env `EVALFORGE_MOCK_INTER_TOKEN_MS`. Default zero.
    public var interChunkDelay: Duration = .zero
    /// Fractions of requests that fail, decided per request from the seed; a request can force one
    /// with `x-mock-fault`. Flags `--fault-429`, `--fault-500`, `--fault-529`, `--fault-cut`,
    /// env `EVALFORGE_MOCK_FAULT_429` … Default: no faults.
    public var faults = FaultRates()
    /// `Retry-After` seconds sent with 429 and 529 (503 on the OpenAI route). Flag `--retry-after`,
    /// env `EVALFORGE_MOCK_RETRY_AFTER`. Default 1.
    public var retryAfterSeconds: Int = 1
    /// Largest accepted request body in bytes; larger gets 413. Flag `--max-body-bytes`,
    /// env `EVALFORGE_MOCK_MAX_BODY_BYTES`. Default 4 MiB.
    public var maxBodyBytes: Int = 4 << 20
    /// Pending-connection queue of the listening socket, so a benchmark opening thousands of
    /// connections at once is not refused (the kernel caps it at `net.core.somaxconn`). No flag. Default 4096.
    public var backlog: Int = 4096
    /// Called once the server listens, with the port it bound (the real one when `port` is 0).
    /// No flag. Default: does nothing.
    public var onServerRunning: @Sendable (_ port: Int) async -> Void = { _ in }

    public init() {}

    /// 127.0.0.1:8080, seed 42, no latency, no faults.
    public static let `default` = MockLLMConfiguration()

    /// Fractions (0…1) of requests answered with each fault; together at most 1.
    public struct FaultRates: Sendable, Equatable {
        /// 429 with `Retry-After`. Flag `--fault-429`, env `EVALFORGE_MOCK_FAULT_429`. Default 0.
        public var rate429: Double = 0
        /// 500. Flag `--fault-500`, env `EVALFORGE_MOCK_FAULT_500`. Default 0.
        public var rate500: Double = 0
        /// Anthropic's 529 `overloaded_error` (503 on the OpenAI route) with `Retry-After`.
        /// Flag `--fault-529`, env `EVALFORGE_MOCK_FAULT_529`. Default 0.
        public var rate529: Double = 0
        /// The response stops half-way and the connection closes (no final events).
        /// Flag `--fault-cut`, env `EVALFORGE_MOCK_FAULT_CUT`. Default 0.
        public var rateStreamCut: Double = 0

        public init() {}

        public init(rate429: Double = 0, rate500: Double = 0, rate529: Double = 0, rateStreamCut: Double = 0) {
            self.rate429 = rate429
            self.rate500 = rate500
            self.rate529 = rate529
            self.rateStreamCut = rateStreamCut
        }

        /// Sum of all rates.
        public var total: Double { rate429 + rate500 + rate529 + rateStreamCut }
    }
}
