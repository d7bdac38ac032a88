import EvalForgeCore
import Synchronization
import Tracing

/// A minimal W3C-propagating tracer standing in for swift-otel (which this package does not build):
/// its span context is a `traceparent`, `extract` reads one as a remote parent, `inject` writes the
/// current span. Finished spans are kept for assertions.
final class W3CTestTracer: Tracing.Tracer, Sendable {
    enum Key: ServiceContextKey { typealias Value = TraceParent }

    final class Span: Tracing.Span {
        let context: ServiceContext
        let parent: TraceParent?
        private let tracer: W3CTestTracer
        private let name: Mutex<String>

        init(name: String, context: ServiceContext, parent: TraceParent?, tracer: W3CTestTracer) {
            self.name = Mutex(name)
            self.context = context
            self.parent = parent
            self.tracer = tracer
        }

        var traceParent: TraceParent? { context[Key.self] }
        var operationName: String {
            get { name.withLock { $0 } }
            set { name.withLock { $0 = newValue } }
        }
        var attributes: SpanAttributes {
            get { [:] }
            set {}
        }
        var isRecording: Bool { true }
        func setStatus(_ status: SpanStatus) {}
        func addEvent(_ event: SpanEvent) {}
        func addLink(_ link: SpanLink) {}
        func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {}
        func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) { tracer.finished.withLock { $0.append(self) } }
    }

    let finished = Mutex<[Span]>([])

    func span(named name: String) -> Span? { finished.withLock { $0.first { $0.operationName == name } } }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> Span {
        var context = context()
        let parent = context[Key.self]
        let id = TraceParent(
            traceID: parent?.traceID ?? TraceID(high: .random(in: 1...UInt64.max), low: .random(in: 1...UInt64.max)),
            spanID: SpanID(.random(in: 1...UInt64.max)))
        context[Key.self] = id
        return Span(name: operationName, context: context, parent: parent, tracer: self)
    }

    func forceFlush() {}

    func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract) where Extract.Carrier == Carrier {
        if let h = extractor.extract(key: "traceparent", from: carrier), let p = TraceParent(header: h) { context[Key.self] = p }
    }

    func inject<Carrier, Inject: Injector>(_ context: ServiceContext, into carrier: inout Carrier, using injector: Inject) where Inject.Carrier == Carrier {
        if let p = context[Key.self] { injector.inject(p.header, forKey: "traceparent", into: &carrier) }
    }
}
