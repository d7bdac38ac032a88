import EvalForgeCore

/// The compact, typed form of one finished span as it waits in the buffer. Attribute names and the
/// OTLP layout are applied only at export, off the calling thread.
struct SpanRecord: Sendable {
    /// OTLP span kinds (`Span.SpanKind` numbers).
    enum Kind: UInt8, Sendable { case `internal` = 1, server = 2, client = 3, producer = 4, consumer = 5 }

    var traceID: TraceID
    var spanID: UInt64
    var parentSpanID: UInt64
    var kind: Kind
    /// Explicit span name; nil means "{operation} {model}".
    var name: String?
    var request: LLMRequest
    var startUnixNanos: UInt64
    var endUnixNanos: UInt64 = 0
    /// Nanoseconds from start to the first streamed chunk; 0 when none was seen.
    var firstChunkNanos: UInt64 = 0
    var responseModel: String?
    var responseID: String?
    var finishReasons: [String] = []
    var usage: TokenUsage = TokenUsage()
    var costUSD: Double?
    var isError = false
    /// The incoming parent said `sampled=0` and the configuration respects it (`sampling.respectParentSampled`).
    var parentDeclined = false
    /// Set when the span ends (`LLMSpan.end()`), from `Sampler.decide`.
    var sampling: SamplingDecision = .sampled
    var errorType: String?
    var errorMessage: String?
    var input: String?
    var output: String?
    var systemInstructions: String?
    var attributes: [(String, AttributeValue)] = []

    var spanName: String {
        if let name { return name }
        return request.model.isEmpty ? request.operation.name : "\(request.operation.name) \(request.model)"
    }
}
