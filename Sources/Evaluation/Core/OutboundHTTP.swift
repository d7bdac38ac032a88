import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization

/// The HTTP client of judge, target and webhook calls: every request passes `OutboundPolicy`
/// first and then goes to the address that was checked, never through a second DNS lookup.
/// - `http`: the URL is rewritten to the checked IP and the original `Host` header is sent, over
///   one shared client.
/// - `https`: AsyncHTTPClient has no per-request resolver, so each (host, checked address) pair gets
///   its own client whose `dnsOverride` maps the host to that address: the URL, the Host header, TLS
///   SNI and certificate validation keep the original name while the socket connects to the checked IP.
/// Redirects are never followed (a 3xx is the answer, so a checked host cannot bounce a call elsewhere).
/// The clients are process-wide (never shut down, like `HTTPClient.shared`; an evicted TLS client is
/// shut down when idle): the policy is per service, the connection pools are not.
final class OutboundHTTP: Sendable {
    let policy: OutboundPolicy
    private static let plain = makeClient(host: nil, address: nil)
    private static let clients = Mutex<[String: Entry]>([:])
    /// TLS clients kept for reuse (connection pools); idle ones beyond it are shut down.
    static let maxClients = 64

    private struct Entry {
        let client: HTTPClient
        var inFlight: Int
        var lastUsed: ContinuousClock.Instant
    }

    /// A collected answer.
    struct Response: Sendable {
        var status: Int
        /// The `Retry-After` header, if any.
        var retryAfter: String?
        var body: ByteBuffer
        /// The answer was longer than the bound: `body` holds its first bytes, the rest was not read.
        var truncated: Bool
    }

    init(policy: OutboundPolicy) {
        self.policy = policy
    }

    static func makeClient(host: String?, address: String?) -> HTTPClient {
        var config = HTTPClient.Configuration()
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 512)
        config.timeout = .init(connect: .seconds(5))
        config.httpVersion = .http1Only
        config.redirectConfiguration = .disallow
        if let host, let address { config.dnsOverride = [host: address] }
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    /// Checks `request.url` (naming `field` in errors), sends the request to the checked address and
    /// collects at most `maxBodyBytes` of the answer. Throws `OutboundError` when refused, else the
    /// client's errors (timeouts, transport errors, a body over the bound).
    func execute(_ request: HTTPClientRequest, field: String, timeout: TimeAmount, maxBodyBytes: Int) async throws -> Response {
        let checked = try await policy.check(url: request.url, field: field)
        if checked.scheme == "http" {
            var direct = request
            direct.url = try Self.rewrite(request.url, to: checked)
            if !direct.headers.contains(name: "host") { direct.headers.add(name: "Host", value: Self.hostHeader(checked)) }
            let response = try await Self.plain.execute(direct, timeout: timeout)
            return try await Self.collect(response, maxBodyBytes: maxBodyBytes)
        }
        let key = checked.host + "\u{0}" + checked.address
        let (client, pooled) = lease(key: key, host: checked.host, address: checked.address)
        defer { release(key: key, client: client, pooled: pooled) }
        let response = try await client.execute(request, timeout: timeout)
        return try await Self.collect(response, maxBodyBytes: maxBodyBytes)
    }

    /// `http://name:port/path?q` → `http://<checked IP>:port/path?q` (userinfo and fragment dropped).
    static func rewrite(_ url: String, to checked: OutboundPolicy.Checked) throws(OutboundError) -> String {
        guard let schemeEnd = url.range(of: "://") else { throw .invalidURL("'\(url.prefix(200))' is not an http(s) URL") }
        let afterScheme = url[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? afterScheme.endIndex
        var rest = String(afterScheme[authorityEnd...])
        if let hash = rest.firstIndex(of: "#") { rest = String(rest[..<hash]) }
        let ip = checked.address.contains(":") ? "[\(checked.address)]" : checked.address
        return "\(checked.scheme)://\(ip):\(checked.port)" + (rest.isEmpty ? "/" : rest)
    }

    /// The Host header of the original URL: the name (IPv6 literals in brackets), with a non-default port.
    static func hostHeader(_ checked: OutboundPolicy.Checked) -> String {
        let host = checked.host.contains(":") ? "[\(checked.host)]" : checked.host
        let defaultPort = checked.scheme == "https" ? 443 : 80
        return checked.port == defaultPort ? host : "\(host):\(checked.port)"
    }

    private static func collect(_ response: HTTPClientResponse, maxBodyBytes: Int) async throws -> Response {
        let limit = max(0, maxBodyBytes)
        var body = ByteBuffer()
        var truncated = false
        for try await var chunk in response.body {
            if body.readableBytes + chunk.readableBytes > limit {
                if let head = chunk.readSlice(length: limit - body.readableBytes) { body.writeImmutableBuffer(head) }
                truncated = true
                break
            }
            body.writeBuffer(&chunk)
        }
        return Response(status: Int(response.status.code), retryAfter: response.headers.first(name: "retry-after"), body: body, truncated: truncated)
    }

    private func lease(key: String, host: String, address: String) -> (HTTPClient, Bool) {
        var evicted: [HTTPClient] = []
        let result: (HTTPClient, Bool) = Self.clients.withLock { map in
            if var e = map[key] {
                e.inFlight += 1
                e.lastUsed = .now
                map[key] = e
                return (e.client, true)
            }
            if map.count >= Self.maxClients {
                // Shut down the least recently used idle clients; when all are busy, use a one-off client.
                let idle = map.filter { $0.value.inFlight == 0 }.sorted { $0.value.lastUsed < $1.value.lastUsed }
                for (k, e) in idle.prefix(max(1, map.count - Self.maxClients + 1)) {
                    map[k] = nil
                    evicted.append(e.client)
                }
                if map.count >= Self.maxClients { return (Self.makeClient(host: host, address: address), false) }
            }
            let c = Self.makeClient(host: host, address: address)
            map[key] = Entry(client: c, inFlight: 1, lastUsed: .now)
            return (c, true)
        }
        for c in evicted { Task { try? await c.shutdown() } }
        return result
    }

    private func release(key: String, client: HTTPClient, pooled: Bool) {
        guard pooled else {
            Task { try? await client.shutdown() }
            return
        }
        Self.clients.withLock { map in
            guard var e = map[key] else { return }
            e.inFlight = max(0, e.inFlight - 1)
            e.lastUsed = .now
            map[key] = e
        }
    }
}

/// At most `maxBytes` bytes of an answer for an error text, cut on a character boundary, with
/// control characters replaced: enough to diagnose, never the answer itself.
func excerpt(_ text: String, maxBytes: Int = 200) -> String {
    var out = ""
    var used = 0
    for ch in text.unicodeScalars {
        let c: Unicode.Scalar = ch.value < 0x20 || ch.value == 0x7F ? " " : ch
        let n = String(c).utf8.count
        if used + n > maxBytes { return out + "…" }
        out.unicodeScalars.append(c)
        used += n
    }
    return out
}
