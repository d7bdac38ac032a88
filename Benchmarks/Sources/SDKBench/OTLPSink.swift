import EvalForgeCompression  // gzip bodies from the SDK (EvalForgeCore keeps its codecs package-internal)
import EvalForgeSDK
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A live OTLP/HTTP receiver on 127.0.0.1 for the benchmark: it accepts any POST, gunzips bodies sent
/// with `Content-Encoding: gzip`, counts the spans in each ExportTraceServiceRequest with a minimal
/// protobuf walk and answers 200 with an empty ExportTraceServiceResponse. Counts are kept per path,
/// so each exporter under test posts to its own path.
final class OTLPSink: Sendable {
    struct Counts: Sendable {
        var spans = 0
        var requests = 0
        var bodyBytes = 0
        var malformed = 0
    }

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let counts = NIOLockedValueBox<[String: Counts]>([:])
    let port: Int

    init() throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let counts = self.counts
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(counts: counts))
                }
            }
        channel = try bootstrap.bind(host: "127.0.0.1", port: 0).wait()
        port = channel.localAddress?.port ?? 0
    }

    func counts(path: String) -> Counts { counts.withLockedValue { $0[path] ?? Counts() } }

    /// Waits until the span count on `path` has not changed for `quiet`, or `limit` passes.
    func settle(path: String, quiet: Duration = .milliseconds(600), limit: Duration = .seconds(15)) async -> Counts {
        let clock = ContinuousClock()
        let end = clock.now + limit
        var last = counts(path: path)
        var lastChange = clock.now
        while clock.now < end {
            try? await Task.sleep(for: .milliseconds(50))
            let c = counts(path: path)
            if c.spans != last.spans || c.requests != last.requests {
                last = c
                lastChange = clock.now
            } else if clock.now - lastChange >= quiet {
                break
            }
        }
        return last
    }

    func close() throws {
        try channel.close().wait()
        try group.syncShutdownGracefully()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let counts: NIOLockedValueBox<[String: Counts]>
        private var head: HTTPRequestHead?
        private var body = ByteBuffer()

        init(counts: NIOLockedValueBox<[String: Counts]>) { self.counts = counts }

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
                if head.uri.hasSuffix("/chat/completions") {
                    answerChatCompletion(context: context, head: head)
                    return
                }
                record(head: head)
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

        /// The LLM stand-in of the AsyncHTTPClient transport figures: one fixed chat completion.
        private func answerChatCompletion(context: ChannelHandlerContext, head: HTTPRequestHead) {
            var responseHead = HTTPResponseHead(version: head.version, status: .ok)
            responseHead.headers.add(name: "Content-Type", value: "application/json")
            responseHead.headers.add(name: "Content-Length", value: String(Self.chatCompletion.readableBytes))
            context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(Self.chatCompletion))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }

        static let chatCompletion = ByteBuffer(string: #"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":6,"total_tokens":18}}"#)

        private func record(head: HTTPRequestHead) {
            let raw = Array(body.readableBytesView)
            var spans: Int?
            if head.headers["Content-Encoding"].contains(where: { $0.lowercased() == "gzip" }) {
                if let plain = try? ContentCoding.gzip.decode(raw, limit: 256 << 20) { spans = ProtobufSpanCounter.count(plain) }
            } else {
                spans = ProtobufSpanCounter.count(raw)
            }
            let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
            counts.withLockedValue { all in
                var c = all[path] ?? Counts()
                c.requests += 1
                c.bodyBytes += raw.count
                if let spans { c.spans += spans } else { c.malformed += 1 }
                all[path] = c
            }
        }
    }
}

/// Counts ExportTraceServiceRequest.resource_spans(1).scope_spans(2).spans(2); nil when malformed.
enum ProtobufSpanCounter {
    static func count(_ bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBufferPointer { buf in
            var total = 0
            let ok = walk(buf, 0, buf.count, field: 1) { rs, re in      // resource_spans
                walk(buf, rs, re, field: 2) { ss, se in                    // scope_spans
                    walk(buf, ss, se, field: 2) { _, _ in                  // spans
                        total += 1
                        return true
                    }
                }
            }
            return ok ? total : nil
        }
    }

    /// Calls `body` with the bounds of every length-delimited occurrence of `field` in [start, end).
    private static func walk(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, field: UInt64,
                             _ body: (Int, Int) -> Bool) -> Bool {
        var i = start
        while i < end {
            guard let tag = varint(b, &i, end) else { return false }
            let f = tag >> 3
            switch tag & 7 {
            case 0: guard varint(b, &i, end) != nil else { return false }
            case 1: i += 8
            case 5: i += 4
            case 2:
                guard let n = varint(b, &i, end), n <= UInt64(end - i) else { return false }
                let s = i
                i += Int(n)
                if f == field, !body(s, i) { return false }
            default: return false
            }
        }
        return i == end
    }

    private static func varint(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int, _ end: Int) -> UInt64? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while i < end, shift < 64 {
            let byte = b[i]
            i += 1
            v |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return v }
            shift += 7
        }
        return nil
    }
}
