import EvalForgeCore
import Synchronization
import Tracing

extension EvalForge {
    /// A lightweight swift-distributed-tracing tracer for processes that bootstrap no other: `withSpan`
    /// spans (yours, Hummingbird's `TracingMiddleware`, any instrumented library) are recorded through
    /// an EvalForge pipeline — the same buffer, sampling and exporter as LLM spans — and LLM calls and
    /// steps started inside them are their children, as are `withSpan` spans started inside a step.
    ///
    /// Install it with `EvalForge.bootstrap(_:installTracer: true)`, which does so only when no tracer
    /// is bootstrapped yet: with swift-otel bootstrapped first, EvalForge defers to it (its spans are
    /// swift-otel's, LLM spans nest under them through W3C propagation). Or scope it with
    /// `withTracer(EvalForge.Tracer(pipeline:)) { … }`.
    ///
    /// What it records: name, kind, start and end, parent, attributes (arrays of numbers as strings),
    /// error status and the last recorded error's type and message. Events and links are not
    /// recorded. Propagation is W3C `traceparent`.
    public struct Tracer: Tracing.Tracer {
        public typealias Span = TracerSpan
        public let pipeline: Pipeline

        public init(pipeline: Pipeline) { self.pipeline = pipeline }

        public func startSpan<Instant: TracerInstant>(
            _ operationName: String,
            context: @autoclosure () -> ServiceContext,
            ofKind kind: SpanKind,
            at instant: @autoclosure () -> Instant,
            function: String,
            file fileID: String,
            line: UInt
        ) -> TracerSpan {
            var context = context()
            let span = pipeline.startServiceSpan(operationName, kind: SpanRecord.Kind(kind), parent: context[EvalForgeParentKey.self], startUnixNanos: instant().nanosecondsSinceEpoch)
            context[EvalForgeParentKey.self] = span.traceParent
            return TracerSpan(span, context: context)
        }

        /// Nothing to do: the pipeline's export loop flushes (`Pipeline.forceFlush()` waits for it).
        public func forceFlush() {}

        /// Reads a W3C `traceparent` (malformed values are ignored).
        public func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract) where Extract.Carrier == Carrier {
            guard let header = extractor.extract(key: "traceparent", from: carrier), let parent = TraceParent(header: header) else { return }
            context[EvalForgeParentKey.self] = parent
        }

        /// Writes the current span or step as a W3C `traceparent`.
        public func inject<Carrier, Inject: Injector>(_ context: ServiceContext, into carrier: inout Carrier, using injector: Inject) where Inject.Carrier == Carrier {
            guard let parent = context[EvalForgeParentKey.self] else { return }
            injector.inject(parent.header, forKey: "traceparent", into: &carrier)
        }
    }

    /// A span of `EvalForge.Tracer`: an `LLMSpan` without GenAI attributes, behind a lock because
    /// swift-distributed-tracing spans are shared references.
    public final class TracerSpan: Tracing.Span {
        private struct State {
            var span: LLMSpan
            var attributes: SpanAttributes = [:]
            var ended = false
        }

        private let state: Mutex<State>
        public let context: ServiceContext

        init(_ span: LLMSpan, context: ServiceContext) {
            state = Mutex(State(span: span))
            self.context = context
        }

        public var operationName: String {
            get { state.withLock { $0.span.record.name ?? "" } }
            set { state.withLock { $0.span.record.name = newValue } }
        }

        public var attributes: SpanAttributes {
            get { state.withLock { $0.attributes } }
            set { state.withLock { $0.attributes = newValue } }
        }

        public var isRecording: Bool { state.withLock { !$0.ended } }

        public func setStatus(_ status: SpanStatus) {
            state.withLock { s in
                switch status.code {
                case .error:
                    s.span.record.isError = true
                    if let m = status.message { s.span.record.errorMessage = m }
                case .ok:
                    s.span.record.isError = false
                }
            }
        }

        public func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {
            let (type, message) = ErrorClassifier.classify(error)
            state.withLock { s in
                s.span.record.errorType = type
                s.span.record.errorMessage = message
            }
        }

        /// Not recorded.
        public func addEvent(_ event: SpanEvent) {}
        /// Not recorded.
        public func addLink(_ link: SpanLink) {}

        public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
            let end = instant().nanosecondsSinceEpoch
            state.withLock { s in
                guard !s.ended else { return }
                s.ended = true
                s.attributes.forEach { key, value in s.span.record.attributes.append((key, AttributeValue(value))) }
                s.span.end(atUnixNanos: end)
            }
        }
    }
}

extension EvalForge.Pipeline {
    /// Starts a span for `EvalForge.Tracer`: no GenAI operation, a caller-given start time.
    func startServiceSpan(_ name: String, kind: SpanRecord.Kind, parent: TraceParent?, startUnixNanos: UInt64) -> LLMSpan {
        let request = LLMRequest(operation: .none, provider: "", model: "")
        var record = SpanRecord(
            traceID: parent?.traceID ?? IDGenerator.traceID(),
            spanID: IDGenerator.spanID(),
            parentSpanID: parent?.spanID.value ?? 0,
            kind: kind,
            name: name,
            request: request,
            startUnixNanos: startUnixNanos)
        if let parent, !parent.sampled, sampler.respectParent { record.parentDeclined = true }
        return LLMSpan(record: record, startMonotonic: Clocks.monotonicNanos(), pipeline: self)
    }
}

extension SpanRecord.Kind {
    init(_ kind: SpanKind) {
        switch kind {
        case .server: self = .server
        case .client: self = .client
        case .producer: self = .producer
        case .consumer: self = .consumer
        case .internal: self = .internal
        }
    }
}

extension AttributeValue {
    init(_ a: SpanAttribute) {
        switch a {
        case .int32(let v): self = .int(Int(v))
        case .int64(let v): self = Int(exactly: v).map { .int($0) } ?? .string(String(v))
        case .double(let v): self = .double(v)
        case .bool(let v): self = .bool(v)
        case .string(let v): self = .string(v)
        case .stringArray(let v): self = .stringArray(v)
        case .int32Array(let v): self = .stringArray(v.map { String($0) })
        case .int64Array(let v): self = .stringArray(v.map { String($0) })
        case .doubleArray(let v): self = .stringArray(v.map { String($0) })
        case .boolArray(let v): self = .stringArray(v.map { String($0) })
        default: self = .string(String(describing: a))
        }
    }
}
