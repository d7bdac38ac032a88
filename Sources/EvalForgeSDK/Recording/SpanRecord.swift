import EvalForgeCore

/// The compact, typed form of one finished span as it waits in the buffer. Attribute names and the
/// OTLP layout are applied only at export, off the calling thread.
///
/// Its plain fields (ids, times, figures: no reference counting) live in `plain`, read and written
/// as `record.traceID` etc. through dynamic member lookup; the strings and arrays sit beside it. An
/// ended span keeps `plain` and hands the rest to the buffer (`SpanBuffer.append(from:)`), so a new
/// plain field is kept after `end()` without being listed anywhere.
@dynamicMemberLookup
struct SpanRecord: Sendable {
    /// OTLP span kinds (`Span.SpanKind` numbers).
    enum Kind: UInt8, Sendable { case `internal` = 1, server = 2, client = 3, producer = 4, consumer = 5 }

    /// Fields without references (a test checks it stays a POD): copying them costs no retain.
    struct Plain: Sendable {
        var traceID: TraceID
        var spanID: UInt64
        var parentSpanID: UInt64
        var kind: Kind
        var startUnixNanos: UInt64
        var endUnixNanos: UInt64 = 0
        /// Nanoseconds from start to the first streamed chunk; 0 when none was seen.
        var firstChunkNanos: UInt64 = 0
        var usage: TokenUsage = TokenUsage()
        var costUSD: Double?
        var isError = false
        /// The incoming parent said `sampled=0` and the configuration respects it (`sampling.respectParentSampled`).
        var parentDeclined = false
        /// Set when the span ends (`LLMSpan.end()`), from `Sampler.decide`.
        var sampling: SamplingDecision = .sampled
    }

    var plain: Plain
    /// Explicit span name; nil means "{operation} {model}".
    var name: String?
    var request: LLMRequest
    var responseModel: String?
    var responseID: String?
    var finishReasons: [String] = []
    var errorType: String?
    var errorMessage: String?
    var input: String?
    var output: String?
    var systemInstructions: String?
    var attributes: [(String, AttributeValue)] = []

    @inline(__always)
    subscript<T>(dynamicMember field: WritableKeyPath<Plain, T>) -> T {
        get { plain[keyPath: field] }
        set { plain[keyPath: field] = newValue }
    }

    var spanName: String {
        if let name { return name }
        return request.model.isEmpty ? request.operation.name : "\(request.operation.name) \(request.model)"
    }
}

// The inits live in an extension so the struct keeps its memberwise init: built through it (as
// `Pipeline.start` does), the record is written straight into its destination; built through an init
// of the struct's body, the optimizer made it on the stack, then copied it (a retain per field) and
// destroyed the original.
extension SpanRecord {
    init(
        traceID: TraceID, spanID: UInt64, parentSpanID: UInt64, kind: Kind, name: String?, request: consuming LLMRequest, startUnixNanos: UInt64,
        parentDeclined: Bool = false
    ) {
        plain = Plain(traceID: traceID, spanID: spanID, parentSpanID: parentSpanID, kind: kind, startUnixNanos: startUnixNanos, parentDeclined: parentDeclined)
        self.name = name
        self.request = consume request
    }

    /// A record with `plain` and nothing else (empty request, no strings): what an ended span keeps.
    init(keeping plain: Plain) {
        self.plain = plain
        request = .empty
    }
}
