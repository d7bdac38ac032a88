import EvalForgeCore

/// The compact, typed form of one finished span as it waits in the buffer. Attribute names and the
/// OTLP layout are applied only at export, off the calling thread.
///
/// Its plain fields (ids, times, figures: no reference counting) live in `plain`, read and written
/// as `record.traceID` etc. through dynamic member lookup; the strings and arrays sit beside it. An
/// ended span keeps `plain` and hands the rest to the buffer (`SpanBuffer.append(from:)`), so a new
/// plain field is kept after `end()` without being listed anywhere.
///
/// The record is kept small (`MemoryLayout<SpanRecord>.size`, checked by a test), because every
/// byte of it is moved into the buffer on the calling thread and the buffer's slots are cold: usage
/// and cost are stored without `Optional`'s padding, a single finish reason without an array, and
/// the fields few spans set (errors, content, explicit attributes) in one optional box.
@dynamicMemberLookup
struct SpanRecord: Sendable {
    /// OTLP span kinds (`Span.SpanKind` numbers).
    enum Kind: UInt8, Sendable { case `internal` = 1, server = 2, client = 3, producer = 4, consumer = 5 }

    /// Fields without references (a test checks it stays a POD): copying them costs no retain.
    struct Plain: Sendable {
        var traceID: TraceID
        var spanID: UInt64
        var parentSpanID: UInt64
        var startUnixNanos: UInt64
        var endUnixNanos: UInt64 = 0
        /// Nanoseconds from start to the first streamed chunk; 0 when none was seen.
        var firstChunkNanos: UInt64 = 0
        /// `usage` (see `SpanRecord.usage`) without `Int?`'s padding: 41 bytes instead of 80.
        var usageCounts = UsageCounts()
        /// `costUSD` when `hasCost` (a `Double?` would take 16 bytes).
        var costValue: Double = 0
        var kind: Kind
        /// Which of `usageCounts` are present (`UsageCounts.present`).
        var usagePresent: UInt8 = 0
        var hasCost = false
        var isError = false
        /// The incoming parent said `sampled=0` and the configuration respects it (`sampling.respectParentSampled`).
        var parentDeclined = false
        /// Set when the span ends (`LLMSpan.end()`), from `Sampler.decide`.
        var sampling: SamplingDecision = .sampled
        /// Rounds the size up to a multiple of 16 bytes (a test checks it): an odd size was copied with
        /// overlapping 16-byte moves, and reading back the overlap stalled `end()` on each span.
        private var reserved: UInt16 = 0

        init(traceID: TraceID, spanID: UInt64, parentSpanID: UInt64, kind: Kind, startUnixNanos: UInt64, parentDeclined: Bool = false) {
            self.traceID = traceID
            self.spanID = spanID
            self.parentSpanID = parentSpanID
            self.kind = kind
            self.startUnixNanos = startUnixNanos
            self.parentDeclined = parentDeclined
        }

        /// Cost in USD when the caller set one (`LLMSpan.costUSD`).
        var costUSD: Double? {
            @inline(__always) get { hasCost ? costValue : nil }
            @inline(__always) set {
                hasCost = newValue != nil
                costValue = newValue ?? 0
            }
        }

        /// Token counts, stored as `usageCounts` and `usagePresent`.
        var usage: TokenUsage {
            @inline(__always) get { usageCounts.usage(present: usagePresent) }
            @inline(__always) set { usagePresent = usageCounts.store(newValue) }
        }
    }

    /// `TokenUsage`'s five optional counts as plain integers; which are present is a bit each in
    /// `Plain.usagePresent`.
    struct UsageCounts: Sendable {
        var input = 0
        var output = 0
        var cacheRead = 0
        var cacheCreation = 0
        var reasoning = 0

        /// Stores `u`; returns the presence bits.
        @inline(__always) mutating func store(_ u: TokenUsage) -> UInt8 {
            var p: UInt8 = 0
            input = u.input ?? 0
            output = u.output ?? 0
            cacheRead = u.cacheRead ?? 0
            cacheCreation = u.cacheCreation ?? 0
            reasoning = u.reasoning ?? 0
            if u.input != nil { p |= 1 }
            if u.output != nil { p |= 2 }
            if u.cacheRead != nil { p |= 4 }
            if u.cacheCreation != nil { p |= 8 }
            if u.reasoning != nil { p |= 16 }
            return p
        }

        @inline(__always) func usage(present p: UInt8) -> TokenUsage {
            TokenUsage(
                input: p & 1 != 0 ? input : nil,
                output: p & 2 != 0 ? output : nil,
                cacheRead: p & 4 != 0 ? cacheRead : nil,
                cacheCreation: p & 8 != 0 ? cacheCreation : nil,
                reasoning: p & 16 != 0 ? reasoning : nil)
        }
    }

    /// What few spans set: an error, captured content, explicit attributes, more than one finish
    /// reason. Allocated on the first such write; shared between copies of a record until one of them
    /// writes (copy on write, `rareForWriting`).
    final class Rare: @unchecked Sendable {
        // Written only while uniquely referenced (`rareForWriting`), never while another thread can read it.
        var errorType: String?
        var errorMessage: String?
        var input: String?
        var output: String?
        var systemInstructions: String?
        var attributes: [(String, AttributeValue)] = []
        /// The finish reasons when there are more than one (`SpanRecord.finishReasons`).
        var finishReasons: [String] = []

        init() {}

        init(copying o: Rare) {
            errorType = o.errorType
            errorMessage = o.errorMessage
            input = o.input
            output = o.output
            systemInstructions = o.systemInstructions
            attributes = o.attributes
            finishReasons = o.finishReasons
        }
    }

    var plain: Plain
    /// Explicit span name; nil means "{operation} {model}".
    var name: String?
    var request: LLMRequest
    var responseModel: String?
    var responseID: String?
    /// The finish reason when there is exactly one (the usual case: a short string, so setting it
    /// retains nothing); more than one live in `rare`. Read through `finishReasons`.
    var singleFinishReason: String?
    /// Read and written through the properties below (`errorType` … `attributes`, `finishReasons`).
    var rare: Rare?

    @inline(__always)
    subscript<T>(dynamicMember field: WritableKeyPath<Plain, T>) -> T {
        get { plain[keyPath: field] }
        set { plain[keyPath: field] = newValue }
    }

    var spanName: String {
        if let name { return name }
        return request.model.isEmpty ? request.operation.name : "\(request.operation.name) \(request.model)"
    }

    // Spelled out rather than reached through dynamic member lookup: computed, not stored, in `Plain`.
    var usage: TokenUsage {
        @inline(__always) get { plain.usage }
        @inline(__always) set { plain.usage = newValue }
    }
    var costUSD: Double? {
        @inline(__always) get { plain.costUSD }
        @inline(__always) set { plain.costUSD = newValue }
    }

    /// `gen_ai.response.finish_reasons`.
    var finishReasons: [String] {
        get {
            if let singleFinishReason { return [singleFinishReason] }
            return rare?.finishReasons ?? []
        }
        set {
            if newValue.count <= 1 {
                singleFinishReason = newValue.first
                if rare.map({ !$0.finishReasons.isEmpty }) == true { rareForWriting.finishReasons = [] }
            } else {
                singleFinishReason = nil
                rareForWriting.finishReasons = newValue
            }
        }
    }

    /// Whether there is any finish reason, without building the array.
    var hasFinishReasons: Bool { singleFinishReason != nil || rare.map { !$0.finishReasons.isEmpty } == true }

    var errorType: String? {
        get { rare?.errorType }
        set { if newValue != nil || rare != nil { rareForWriting.errorType = newValue } }
    }
    var errorMessage: String? {
        get { rare?.errorMessage }
        set { if newValue != nil || rare != nil { rareForWriting.errorMessage = newValue } }
    }
    var input: String? {
        get { rare?.input }
        set { if newValue != nil || rare != nil { rareForWriting.input = newValue } }
    }
    var output: String? {
        get { rare?.output }
        set { if newValue != nil || rare != nil { rareForWriting.output = newValue } }
    }
    var systemInstructions: String? {
        get { rare?.systemInstructions }
        set { if newValue != nil || rare != nil { rareForWriting.systemInstructions = newValue } }
    }
    var attributes: [(String, AttributeValue)] {
        get { rare?.attributes ?? [] }
        _modify { yield &rareForWriting.attributes }
    }

    /// `rare`, allocated if absent and copied first if another record shares it.
    private var rareForWriting: Rare {
        mutating get {
            if !isKnownUniquelyReferenced(&rare) { rare = rare.map(Rare.init(copying:)) ?? Rare() }
            if let rare { return rare }
            let fresh = Rare()  // not reached: set just above
            rare = fresh
            return fresh
        }
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
        self.init(
            plain: Plain(traceID: traceID, spanID: spanID, parentSpanID: parentSpanID, kind: kind, startUnixNanos: startUnixNanos, parentDeclined: parentDeclined),
            name: name, request: request)
    }

    /// A record with `plain` and nothing else (empty request, no strings): what an ended span keeps.
    init(keeping plain: Plain) {
        self.init(plain: plain, name: nil, request: .empty)
    }
}
