import EvalForgeCore

/// An LLM call, agent step, tool execution or retrieval being recorded.
///
/// Obtain one from `EvalForge.withLLMCall` / `EvalForge.withStep` (which end it for you) or
/// `Pipeline.startLLMCall` / `Pipeline.startStep`, fill in what you learn, then `end()` it.
/// Ending hands a compact record to the pipeline's buffer: no network, no waiting, no attribute strings.
public struct LLMSpan: Sendable {
    var record: SpanRecord
    let startMonotonic: UInt64
    let pipeline: EvalForge.Pipeline
    private(set) var ended = false

    /// `startMonotonic` is the monotonic reading `record.startUnixNanos` was derived from: durations
    /// (end, time to first chunk) are monotonic, so a stepped wall clock cannot make them negative.
    init(record: consuming SpanRecord, startMonotonic: UInt64, pipeline: EvalForge.Pipeline) {
        self.record = consume record
        self.startMonotonic = startMonotonic
        self.pipeline = pipeline
    }

    /// This span as a W3C `traceparent`, for outgoing requests and children in other processes.
    /// Its `sampled` flag is 0 when an incoming parent declined the trace, so children and downstream
    /// services follow that decision too.
    public var traceParent: TraceParent { TraceParent(traceID: record.traceID, spanID: SpanID(record.spanID), sampled: !record.parentDeclined) }

    /// The request as recorded; changes before `end()` are kept (e.g. a model chosen late).
    public var request: LLMRequest {
        get { record.request }
        _modify { yield &record.request }
    }

    /// `gen_ai.response.model`.
    public var responseModel: String? {
        get { record.responseModel }
        set { record.responseModel = newValue }
    }

    /// `gen_ai.response.id`.
    public var responseID: String? {
        get { record.responseID }
        set { record.responseID = newValue }
    }

    /// `gen_ai.response.finish_reasons`.
    public var finishReasons: [String] {
        get { record.finishReasons }
        set { record.finishReasons = newValue }
    }

    /// Token counts (see `TokenUsage` for the accounting).
    public var usage: TokenUsage {
        get { record.usage }
        set { record.usage = newValue }
    }

    /// Cost in USD when you know it better than the price table; otherwise it is computed from usage.
    public var costUSD: Double? {
        get { record.costUSD }
        set { record.costUSD = newValue }
    }

    /// Marks the arrival of the first streamed chunk (`gen_ai.response.time_to_first_chunk`); later calls are ignored.
    public mutating func markFirstChunk() {
        if record.firstChunkNanos == 0 {
            record.firstChunkNanos = max(1, Clocks.monotonicNanos() &- startMonotonic)
        }
    }

    /// Marks the span failed: status ERROR and `error.type` (an HTTP status code, "timeout",
    /// "cancelled", an exception type), with an optional human-readable message.
    public mutating func recordError(type: String, message: String? = nil) {
        record.isError = true
        record.errorType = type
        if let message { record.errorMessage = message }
    }

    /// Records a thrown error: cancellation, URL timeouts and `LLMHTTPError` map to their `error.type`.
    public mutating func recordError(_ error: any Error) {
        let (type, message) = ErrorClassifier.classify(error)
        recordError(type: type, message: message)
    }

    /// Prompt messages as JSON (`gen_ai.input.messages`); kept only when content capture is on.
    public mutating func setInput(_ messagesJSON: String) {
        if pipeline.capturesContent { record.input = messagesJSON }
    }

    /// Completion messages as JSON (`gen_ai.output.messages`); kept only when content capture is on.
    public mutating func setOutput(_ messagesJSON: String) {
        if pipeline.capturesContent { record.output = messagesJSON }
    }

    /// System instructions as JSON (`gen_ai.system_instructions`); kept only when content capture is on.
    public mutating func setSystemInstructions(_ json: String) {
        if pipeline.capturesContent { record.systemInstructions = json }
    }

    /// Any other attribute.
    public mutating func setAttribute(_ key: String, _ value: AttributeValue) {
        record.attributes.append((key, value))
    }

    /// Ends the span and hands it to the pipeline. Calling it again does nothing.
    ///
    /// The recorded strings and arrays move to the pipeline's buffer rather than being copied; after
    /// `end()` the span keeps its ids (`traceParent`), times, usage and cost, and reads the rest as empty.
    public mutating func end() {
        guard !ended else { return }
        ended = true
        let elapsed = Clocks.monotonicNanos() &- startMonotonic
        record.endUnixNanos = record.startUnixNanos &+ elapsed
        record.sampling = pipeline.sampler.decide(traceID: record.traceID, isError: record.isError, durationNanos: elapsed, parentDeclined: record.parentDeclined)
        pipeline.submit(from: &record)
    }
}

extension LLMSpan {
    /// Ends the span at a wall-clock time given by a swift-distributed-tracing caller (`EvalForge.Tracer`).
    mutating func end(atUnixNanos end: UInt64) {
        guard !ended else { return }
        ended = true
        record.endUnixNanos = max(end, record.startUnixNanos)
        let elapsed = record.endUnixNanos &- record.startUnixNanos
        record.sampling = pipeline.sampler.decide(traceID: record.traceID, isError: record.isError, durationNanos: elapsed, parentDeclined: record.parentDeclined)
        pipeline.submit(from: &record)
    }

    /// Notes what could not be used in the provider's answer (`evalforge.response.problem`), beside
    /// what could; repeated problems are kept once and the text is bounded.
    mutating func noteResponseProblem(_ problem: String) {
        if let i = record.attributes.firstIndex(where: { $0.0 == GenAIKeys.responseProblem }) {
            guard case .string(let s) = record.attributes[i].1, s.utf8.count < 1024, !s.contains(problem) else { return }
            record.attributes[i].1 = .string(s + "; " + problem)
        } else {
            record.attributes.append((GenAIKeys.responseProblem, .string(problem)))
        }
    }

    /// A write-only list for `JSON.tokenCount(_:field:problems:)`: what is appended is noted on the span.
    var problemSink: [String] {
        get { [] }
        set { for p in newValue { noteResponseProblem(p) } }
    }
}

/// Bounds on what a streamed answer can make the SDK hold, whatever the provider sends.
enum StreamLimits {
    /// Distinct choice, tool-call or content-block indexes followed per stream.
    static let maxIndexes = 128
    /// Text accumulated per captured output or tool-call argument (export caps it further).
    static let maxTextBytes = 4 << 20
}
