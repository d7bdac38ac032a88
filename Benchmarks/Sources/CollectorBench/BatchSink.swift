import EvalForgeCompression
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The backend stand-in: a SwiftNIO HTTP/1.1 server on 127.0.0.1 (ephemeral port, one event-loop
/// thread) that answers 200 to every `POST /v1/batches` and keeps the bodies. `tally()` inflates the
/// bodies by their `Content-Encoding` (zstd, gzip or none, as the collector's `forward.compression`
/// chose) and reads each `evalforge.v1.ForwardBatch` (spans_accepted, spans_kept, the spans present,
/// rollup request counts).
///
/// By default bodies are only stored while the load runs and inflated afterwards, so the sink's
/// inflating (a real backend's work, on another machine) does not take CPU from the collector on
/// this 2-core machine; `live: true` inflates each batch as it arrives.
final class BatchSink: Sendable {
    struct Totals: Sendable {
        var batches = 0
        var bodyBytes = 0
        var inflatedBytes = 0
        var malformed = 0
        var otherRequests = 0
        var accepted: UInt64 = 0
        var kept: UInt64 = 0
        var spansPresent = 0
        var rollupRows = 0
        var rollupRequests: UInt64 = 0
        /// Batches whose id was seen before (a resend after a timeout); a backend stores them once,
        /// so their spans are not counted again.
        var resentBatches = 0
        /// (arrival on CLOCK_MONOTONIC in ns, spans_accepted) of every batch counted.
        var arrivals: [(nanos: UInt64, accepted: UInt64)] = []

        /// spans_accepted of the batches that arrived in [from, to).
        func accepted(from: UInt64, to: UInt64) -> UInt64 {
            arrivals.reduce(0) { $0 + ($1.nanos >= from && $1.nanos < to ? $1.accepted : 0) }
        }
    }

    private struct State {
        var pending: [(id: String, body: [UInt8], coding: ContentCoding?, nanos: UInt64)] = []
        var seen = Set<String>()
        var totals = Totals()
    }

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let state = NIOLockedValueBox(State())
    let live: Bool
    let port: Int

    init(live: Bool) throws {
        self.live = live
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let state = self.state
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(state: state, live: live))
                }
            }
        channel = try bootstrap.bind(host: "127.0.0.1", port: 0).wait()
        port = channel.localAddress?.port ?? 0
    }

    /// Forgets everything received (between runs).
    func reset() { state.withLockedValue { $0 = State() } }

    /// Batches received so far (cheap; no inflating).
    var batchesReceived: Int { state.withLockedValue { $0.totals.batches + $0.pending.count } }

    /// Inflates and reads every stored body, then returns the totals.
    func tally() -> Totals {
        state.withLockedValue { s in
            for p in s.pending { Self.read(p.id, p.body, coding: p.coding, arrival: p.nanos, seen: &s.seen, into: &s.totals) }
            s.pending = []
            return s.totals
        }
    }

    func close() throws {
        try channel.close().wait()
        try group.syncShutdownGracefully()
    }

    /// `coding` nil: a `Content-Encoding` the sink does not know (counted as malformed).
    static func read(_ id: String, _ body: [UInt8], coding: ContentCoding?, arrival: UInt64, seen: inout Set<String>, into t: inout Totals) {
        t.batches += 1
        t.bodyBytes += body.count
        if !id.isEmpty, !seen.insert(id).inserted {
            t.resentBatches += 1
            return
        }
        guard let coding, let plain = try? coding.decode(body, limit: 1 << 30) else {
            t.malformed += 1
            return
        }
        t.inflatedBytes += plain.count
        guard let s = ForwardBatchSummary.read(plain) else {
            t.malformed += 1
            return
        }
        t.accepted += s.accepted
        t.arrivals.append((arrival, s.accepted))
        t.kept += s.kept
        t.spansPresent += s.spansPresent
        t.rollupRows += s.rollupRows
        t.rollupRequests += s.rollupRequests
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let state: NIOLockedValueBox<State>
        private let live: Bool
        private var head: HTTPRequestHead?
        private var body = ByteBuffer()

        init(state: NIOLockedValueBox<State>, live: Bool) {
            self.state = state
            self.live = live
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                body.clear()
            case .body(var chunk):
                body.writeBuffer(&chunk)
            case .end:
                guard let head else { return }
                self.head = nil
                record(head)
                var responseHead = HTTPResponseHead(version: head.version, status: .ok)
                responseHead.headers.add(name: "Content-Type", value: "application/x-protobuf")
                responseHead.headers.add(name: "Content-Length", value: "0")
                if !head.isKeepAlive { responseHead.headers.add(name: "Connection", value: "close") }
                context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
                let keepAlive = head.isKeepAlive
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                    if !keepAlive { channel.close(promise: nil) }
                }
            }
        }

        private func record(_ head: HTTPRequestHead) {
            guard head.method == .POST, head.uri.hasPrefix("/v1/batches") else {
                state.withLockedValue { $0.totals.otherRequests += 1 }
                return
            }
            let raw = Array(body.readableBytesView)
            let coding = ContentCoding(header: head.headers["Content-Encoding"].first)
            let id = head.headers["X-EvalForge-Batch-Id"].first ?? ""
            let now = monotonicNanos()
            if live {
                state.withLockedValue { BatchSink.read(id, raw, coding: coding, arrival: now, seen: &$0.seen, into: &$0.totals) }
            } else {
                state.withLockedValue { $0.pending.append((id, raw, coding, now)) }
            }
        }
    }
}
