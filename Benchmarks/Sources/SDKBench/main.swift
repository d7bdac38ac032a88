// `scripts/bench sdk`: the calling-thread cost of recording one instrumented chat call through
// EvalForgeSDK and through swift-otel (tracer + batch span processor + OTLP/HTTP protobuf exporter),
// the SDK's OTLP encode cost, and the fraction of spans each delivers to a live OTLP/HTTP receiver at
// 10,000 spans/s with default settings. Progress goes to stderr; a summary and, last, one JSON line
// go to stdout.
//
// Options: --quick (fewer samples, 2 s delivery runs; for checking the harness, not for figures);
// --profile=record|encode (only loop on EvalForgeSDK's recording or OTLP encoding for ~10 s, to run
// under `perf record -g`).

import EvalForgeSDK
import Foundation

let quick = CommandLine.arguments.contains("--quick")

func note(_ s: String) { FileHandle.standardError.write(Data("[bench sdk] \(s)\n".utf8)) }
func warnIfMalformed(_ c: OTLPSink.Counts, _ who: String) {
    if c.malformed > 0 { note("WARNING: \(c.malformed) of \(who)'s \(c.requests) requests did not decode as OTLP protobuf") }
}
func f(_ v: Double, _ digits: Int = 1) -> String { v.isFinite ? String(format: "%.\(digits)f", v) : "null" }

let plan: TimingPlan = {
    var p = TimingPlan()
    if quick {
        p.batches = 400
        p.warmupSpans = 5_000
    }
    return p
}()
let deliverySeconds = quick ? 2 : 5
let deliveryRate = 10_000

let sink = try OTLPSink()
let sinkBase = "http://127.0.0.1:\(sink.port)"
note("OTLP/HTTP receiver on \(sinkBase)")

if let mode = CommandLine.arguments.first(where: { $0.hasPrefix("--profile=") })?.dropFirst("--profile=".count) {
    switch mode {
    case "record":
        let r = OursRecorder(sinkBase: sinkBase, path: "/profile/v1/traces")
        let end = monotonicNanos() + 10_000_000_000
        let n = await onDedicatedThread { () -> Int in
            var n = 0
            while monotonicNanos() < end {
                for _ in 0..<20_000 { r.record() }
                n += 20_000
                r.waitForDrain()
            }
            return n
        }
        await r.shutdown()
        note("profile record: \(n) spans, \(r.pipeline.statistics)")
    case "encode":
        let r = await onDedicatedThread { EvalForge._measureEncode(spans: 2_000_000) }
        note("profile encode: \(r)")
    default:
        note("unknown profile mode \(mode); use record or encode")
        exit(2)
    }
    exit(0)
}

// MARK: EvalForgeSDK, calling-thread cost

note("EvalForgeSDK: timing \(plan.batches) batches of \(plan.spansPerBatch) spans")
let ours = OursRecorder(sinkBase: sinkBase, path: "/ours/v1/traces")
let oursCost = await onDedicatedThread { measureSpanCost(plan, drain: ours.waitForDrain) { ours.record() } }
await ours.pipeline.forceFlush()
await ours.shutdown()
let oursStats = ours.pipeline.statistics
let oursReceived = await sink.settle(path: ours.path)
warnIfMalformed(oursReceived, "EvalForgeSDK")
note("EvalForgeSDK: p50 \(f(oursCost.perSpanNanos.p50)) ns/span (p10 \(f(oursCost.perSpanNanos.p10)), p90 \(f(oursCost.perSpanNanos.p90)), p99 \(f(oursCost.perSpanNanos.p99))), \(f(oursCost.allocationsPerSpan, 2)) allocs/span; recorded \(oursStats.recorded), exported \(oursStats.exported), receiver got \(oursReceived.spans), droppedBufferFull \(oursStats.droppedBufferFull)")

// MARK: swift-otel, calling-thread cost

note("swift-otel: timing \(plan.batches) batches of \(plan.spansPerBatch) spans, attribute setters")
let peer = try PeerRecorder(sinkBase: sinkBase, path: "/peer/v1/traces")
let peerDrain: @Sendable () -> Void = { sleepMillis(50) }
let peerSetters = await onDedicatedThread { measureSpanCost(plan, drain: peerDrain) { peer.recordWithSetters() } }
note("swift-otel (setters): p50 \(f(peerSetters.perSpanNanos.p50)) ns/span (p10 \(f(peerSetters.perSpanNanos.p10)), p90 \(f(peerSetters.perSpanNanos.p90))), \(f(peerSetters.allocationsPerSpan, 2)) allocs/span")
note("swift-otel: timing with one updateAttributes per span")
let peerUpdate = await onDedicatedThread { measureSpanCost(plan, drain: peerDrain) { peer.recordWithUpdateAttributes() } }
note("swift-otel (updateAttributes): p50 \(f(peerUpdate.perSpanNanos.p50)) ns/span (p10 \(f(peerUpdate.perSpanNanos.p10)), p90 \(f(peerUpdate.perSpanNanos.p90))), \(f(peerUpdate.allocationsPerSpan, 2)) allocs/span")
await peer.shutdown()
// The peer's figure is its cheaper form, so the ratio is not flattered by the API style.
let peerCost = peerUpdate.perSpanNanos.p50 < peerSetters.perSpanNanos.p50 ? peerUpdate : peerSetters

// MARK: OTLP encode

note("EvalForgeSDK: OTLP encode cost")
let encodeRuns = await onDedicatedThread { () -> [Double] in
    _ = EvalForge._measureEncode(spans: 20_000)  // warm-up
    return (0..<3).map { _ in EvalForge._measureEncode(spans: quick ? 50_000 : 200_000).nsPerSpan }
}
let encodeBytes = EvalForge._measureEncode(spans: 10_000).bytesPerSpan
let encodeNs = encodeRuns.sorted()[1]
note("EvalForgeSDK: encode \(f(encodeNs)) ns/span (runs \(encodeRuns.map { f($0) }.joined(separator: ", "))), \(f(encodeBytes)) bytes/span before gzip")

// MARK: Delivery at 10,000 spans/s

struct Delivery {
    var recorded: Int
    var receivedBeforeShutdown: Int
    var received: Int
    var fraction: Double { recorded > 0 ? Double(received) / Double(recorded) : .nan }
}

note("EvalForgeSDK: \(deliveryRate) spans/s for \(deliverySeconds) s, default configuration")
let ours10k = OursRecorder(sinkBase: sinkBase, path: "/ours-10k/v1/traces")
let oursRecorded = await onDedicatedThread { recordAtFixedRate(spansPerSecond: deliveryRate, seconds: deliverySeconds) { ours10k.record() } }
let oursBefore = sink.counts(path: ours10k.path).spans
await ours10k.shutdown()
let ours10kStats = ours10k.pipeline.statistics
let ours10kReceived = await sink.settle(path: ours10k.path)
warnIfMalformed(ours10kReceived, "EvalForgeSDK")
let oursDelivery = Delivery(recorded: oursRecorded, receivedBeforeShutdown: oursBefore, received: ours10kReceived.spans)
note("EvalForgeSDK: recorded \(oursRecorded) (SDK counted \(ours10kStats.recorded)), received \(oursDelivery.received) (\(oursBefore) before shutdown) in \(ours10kReceived.requests) requests; SDK exported \(ours10kStats.exported), droppedBufferFull \(ours10kStats.droppedBufferFull), exportFailed \(ours10kStats.exportFailed)")
if ours10kStats.exported != ours10kReceived.spans {
    note("WARNING: SDK exported count \(ours10kStats.exported) != receiver count \(ours10kReceived.spans)")
}

note("swift-otel: \(deliveryRate) spans/s for \(deliverySeconds) s, default configuration")
let peer10k = try PeerRecorder(sinkBase: sinkBase, path: "/peer-10k/v1/traces")
let peerRecorded = await onDedicatedThread { recordAtFixedRate(spansPerSecond: deliveryRate, seconds: deliverySeconds) { peer10k.recordWithSetters() } }
let peerBefore = sink.counts(path: peer10k.path).spans
await peer10k.shutdown()
let peer10kReceived = await sink.settle(path: peer10k.path)
warnIfMalformed(peer10kReceived, "swift-otel")
let peerDelivery = Delivery(recorded: peerRecorded, receivedBeforeShutdown: peerBefore, received: peer10kReceived.spans)
note("swift-otel: recorded \(peerRecorded), received \(peerDelivery.received) (\(peerBefore) before shutdown) in \(peer10kReceived.requests) requests (the rest were dropped by its batch processor's full queue; OTEL_LOG_LEVEL=warning shows its warnings)")

// MARK: AsyncHTTPClient transport

note("LLMAsyncHTTPClient vs bare AsyncHTTPClient: one chat completion from a loopback stand-in, interleaved; then \(deliveryRate) calls/s for \(deliverySeconds) s")
let ahc = try await measureAsyncHTTPClientTransport(sinkBase: sinkBase, rounds: quick ? 500 : 5_000, rate: deliveryRate, seconds: deliverySeconds)
let ahcReceived = await sink.settle(path: "/ahc/v1/traces")
warnIfMalformed(ahcReceived, "LLMAsyncHTTPClient")
let ahcFraction = ahc.recorded > 0 ? Double(ahcReceived.spans) / Double(ahc.recorded) : .nan
note("LLMAsyncHTTPClient: p50 \(f(ahc.instrumentedMicros)) µs/call vs bare \(f(ahc.bareMicros)) µs/call; rate run achieved \(f(ahc.achievedRate, 0)) calls/s; received \(ahcReceived.spans) of \(ahc.recorded) spans")

try? sink.close()

// MARK: Report

let ratio = peerCost.perSpanNanos.p50 / oursCost.perSpanNanos.p50
print("""
EvalForgeSDK   p50 \(f(oursCost.perSpanNanos.p50)) ns/span  p90 \(f(oursCost.perSpanNanos.p90)) ns/span  \(f(oursCost.allocationsPerSpan, 2)) allocs/span  (target ≤ 1000 ns, ≤ 3 allocs)
swift-otel     p50 \(f(peerCost.perSpanNanos.p50)) ns/span  p90 \(f(peerCost.perSpanNanos.p90)) ns/span  \(f(peerCost.allocationsPerSpan, 2)) allocs/span  (setters p50 \(f(peerSetters.perSpanNanos.p50)), updateAttributes p50 \(f(peerUpdate.perSpanNanos.p50)))
ratio          \(f(ratio)) (target ≥ 15)
encode         \(f(encodeNs)) ns/span, \(f(encodeBytes)) bytes/span before gzip
ahc transport  p50 \(f(ahc.instrumentedMicros)) µs/call vs bare AsyncHTTPClient \(f(ahc.bareMicros)) µs/call: overhead \(f(ahc.overheadMicros)) µs; delivered \(f(ahcFraction, 4)) at \(f(ahc.achievedRate, 0)) calls/s (asked \(deliveryRate)/s)
delivered      EvalForgeSDK \(oursDelivery.received)/\(oursDelivery.recorded) = \(f(oursDelivery.fraction, 4)); swift-otel \(peerDelivery.received)/\(peerDelivery.recorded) = \(f(peerDelivery.fraction, 4))  (\(deliveryRate)/s for \(deliverySeconds) s)
""")

let fields: [(String, String)] = [
    ("bench", "\"sdk\""),
    ("ns_per_span_p50", f(oursCost.perSpanNanos.p50)),
    ("allocs_per_span", f(oursCost.allocationsPerSpan, 2)),
    ("encode_ns_per_span", f(encodeNs)),
    ("delivered_fraction_10k", f(oursDelivery.fraction, 4)),
    ("peer", "\"swift-otel\""),
    ("peer_ns_per_span_p50", f(peerCost.perSpanNanos.p50)),
    ("ratio", f(ratio)),
    ("ns_per_span_p90", f(oursCost.perSpanNanos.p90)),
    ("peer_ns_per_span_p90", f(peerCost.perSpanNanos.p90)),
    ("peer_allocs_per_span", f(peerCost.allocationsPerSpan, 2)),
    ("peer_ns_per_span_p50_setters", f(peerSetters.perSpanNanos.p50)),
    ("peer_ns_per_span_p50_update_attributes", f(peerUpdate.perSpanNanos.p50)),
    ("peer_delivered_fraction_10k", f(peerDelivery.fraction, 4)),
    ("encode_bytes_per_span", f(encodeBytes)),
    ("dropped_buffer_full", "\(oursStats.droppedBufferFull + ours10kStats.droppedBufferFull)"),
    ("ahc_call_us_p50", f(ahc.instrumentedMicros)),
    ("ahc_bare_call_us_p50", f(ahc.bareMicros)),
    ("ahc_overhead_us_per_call", f(ahc.overheadMicros)),
    ("ahc_delivered_fraction_10k", f(ahcFraction, 4)),
    ("ahc_achieved_calls_per_s", f(ahc.achievedRate, 0)),
    ("quick", quick ? "true" : "false"),
]
print("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
