/// When a trace is kept whole. Everything else is kept at `ratio`, decided deterministically from the
/// trace id (the same function as the SDK's head sampler, so a trace the SDK kept at a ratio
/// ≥ this one is kept here too). Dropped traces are still counted in the rollups.
public struct TailSamplingPolicy: Sendable, Equatable {
    /// Fraction of uninteresting traces kept (0…1). Config `sampling.ratio`, env `EVALFORGE_COLLECTOR_SAMPLING_RATIO`. Default 1.0 (keep all; edge mode uses about 0.1).
    public var ratio: Double = 1.0
    /// Keep traces with an errored span. Config `sampling.keep_errors`. Default true.
    public var keepErrors: Bool = true
    /// Keep traces with a span slower than this (ms); nil disables. Config `sampling.latency_threshold_ms`. Default 10,000.
    public var latencyThresholdMs: Double? = 10_000
    /// Keep traces whose spans cost more than this in total (USD); nil disables. Config `sampling.cost_threshold_usd`. Default 0.05.
    public var costThresholdUSD: Double? = 0.05
    /// Keep traces with a span whose attribute matches a rule. Config `sampling.rules` (list of "key=value" or "key=prefix*"). Default none.
    public var rules: [AttributeRule] = []
    /// Longest a trace waits for its decision after its first span. Config `sampling.decision_wait_ms`. Default 5,000.
    public var decisionWait: Duration = .seconds(5)
    /// Wait after a trace's root span before deciding (children of slow roots may trail). Config `sampling.root_grace_ms`. Default 500.
    public var rootGrace: Duration = .milliseconds(500)
    /// Spans held awaiting decisions at most; past it the oldest traces are decided early. Config `sampling.max_buffered_spans`. Default 500,000.
    public var maxBufferedSpans: Int = 500_000

    public init() {}
    public static let `default` = TailSamplingPolicy()

    /// An attribute match: exact value, or a prefix when the pattern ends with `*`.
    public struct AttributeRule: Sendable, Equatable {
        public var key: String
        public var value: String
        public var isPrefix: Bool

        /// Parses "key=value" or "key=prefix*"; nil when there is no "=" or the key is empty.
        public init?(_ text: String) {
            guard let eq = text.firstIndex(of: "=") else { return nil }
            let k = String(text[..<eq]).trimmingCharacters(in: .whitespaces)
            var v = String(text[text.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
            guard !k.isEmpty else { return nil }
            isPrefix = v.hasSuffix("*")
            if isPrefix { v.removeLast() }
            key = k
            value = v
        }

        func matches(_ s: String) -> Bool { isPrefix ? s.hasPrefix(value) : s == value }
    }
}

import Foundation
