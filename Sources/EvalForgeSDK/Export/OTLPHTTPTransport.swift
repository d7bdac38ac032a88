import EvalForgeCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The outcome of one export request.
enum ExportOutcome: Sendable {
    /// Accepted; `rejected` spans were refused through `partial_success`.
    case accepted(rejected: Int)
    /// Retry later; `retryAfter` when the collector said how long to wait.
    case retryable(reason: String, retryAfter: Duration?)
    /// The collector refused the batch; retrying will not help.
    case rejected(reason: String)
}

/// POSTs OTLP protobuf bodies to the collector over URLSession (no NIO in the SDK's dependency graph).
final class OTLPHTTPTransport: Sendable {
    private let url: URL?
    private let headers: [String: String]
    private let gzip: Bool
    private let session: URLSession

    init(configuration c: EvalForge.Configuration.Exporter) {
        url = URL(string: c.endpoint)
        headers = c.headers
        gzip = c.gzip
        let cfg = URLSessionConfiguration.ephemeral
        cfg.httpMaximumConnectionsPerHost = max(2, c.maxConcurrentExports)
        cfg.timeoutIntervalForRequest = c.timeout.seconds
        cfg.urlCache = nil
        session = URLSession(configuration: cfg)
    }

    var endpointDescription: String { url?.absoluteString ?? "<invalid URL>" }

    func send(_ body: [UInt8], timeout: Duration) async -> ExportOutcome {
        guard let url else { return .rejected(reason: "the exporter endpoint is not a valid URL") }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.timeoutInterval = max(0.05, timeout.seconds)
        request.setValue("application/x-protobuf", forHTTPHeaderField: "Content-Type")
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        var payload = body
        if gzip, let compressed = try? Gzip.compress(body) {
            payload = compressed
            request.setValue("gzip", forHTTPHeaderField: "Content-Encoding")
        }
        do {
            let (data, response) = try await session.upload(for: request, from: Data(payload))
            guard let http = response as? HTTPURLResponse else { return .retryable(reason: "no HTTP response", retryAfter: nil) }
            switch http.statusCode {
            case 200..<300:
                return .accepted(rejected: Self.rejectedSpans(in: data))
            case 429, 502, 503, 504:
                return .retryable(
                    reason: "collector answered \(http.statusCode)",
                    retryAfter: Self.retryAfter(http.value(forHTTPHeaderField: "Retry-After")))
            default:
                let text = String(decoding: data.prefix(300), as: UTF8.self)
                return .rejected(reason: "collector answered \(http.statusCode): \(text)")
            }
        } catch {
            return .retryable(reason: "\(error)", retryAfter: nil)
        }
    }

    /// A peer's `Retry-After` (seconds or HTTP date), bounded by `RetryAfter.maximum`; nil when absent
    /// or not valid (negative, `inf`, garbage).
    static func retryAfter(_ value: String?) -> Duration? {
        RetryAfter.parse(value, nowUnixSeconds: Int64(clamping: Clocks.unixNanos() / 1_000_000_000))
    }

    /// Reads `partial_success.rejected_spans` (field 1 → field 1) from an ExportTraceServiceResponse,
    /// as 0...Int.max (a negative int64 on the wire reads as huge, and the caller caps it at the batch).
    static func rejectedSpans(in data: Data) -> Int {
        var reader = ProtobufWireReader(Array(data))
        while let (field, wire) = reader.nextTag() {
            if field == 1, wire == 2, let inner = reader.lengthDelimited() {
                var r = ProtobufWireReader(Array(inner))
                while let (f, w) = r.nextTag() {
                    if f == 1, w == 0, let v = r.varint() { return Int(clamping: v) }
                    if !r.skip(wireType: w) { return 0 }
                }
                return 0
            }
            if !reader.skip(wireType: wire) { return 0 }
        }
        return 0
    }
}

extension Duration {
    var seconds: Double {
        let (s, a) = components
        return Double(s) + Double(a) / 1e18
    }
}
