import Foundation
import HTTPTypes
import Hummingbird
import Metrics
import NIOCore

/// Which `Host` and `Origin` the collector answers, so a web page cannot reach it through DNS
/// rebinding (a name of the attacker's that resolves to 127.0.0.1 carries that name in `Host`).
/// Allowed hosts: IP literals (a rebinding needs a name), `localhost`, the configured listen host,
/// this machine's host name and `receiver.allowed_hosts` (`*` turns the check off). An `Origin`,
/// when present, must name one of those names or a loopback address; `Origin: null` is refused.
struct HostAllowList: Sendable {
    let any: Bool
    let names: Set<String>

    init(configuration c: CollectorConfiguration) {
        var names: Set<String> = ["localhost"]
        let listen = Self.normalized(c.host)
        if !listen.isEmpty, !["0.0.0.0", "::", "*"].contains(listen) { names.insert(listen) }
        let hostName = Self.normalized(ProcessInfo.processInfo.hostName)
        if !hostName.isEmpty { names.insert(hostName) }
        for n in c.allowedHosts { names.insert(Self.normalized(n)) }
        any = names.contains("*")
        self.names = names
    }

    /// Lower-cased, without a trailing dot or IPv6 brackets.
    static func normalized(_ host: some StringProtocol) -> String {
        var h = host.lowercased()
        if h.hasPrefix("["), h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        while h.hasSuffix(".") { h.removeLast() }
        return h
    }

    /// The host of an `authority` (`name`, `name:port`, `[v6]:port`).
    static func host(ofAuthority a: String) -> String {
        if a.hasPrefix("["), let end = a.firstIndex(of: "]") { return normalized(a[a.index(after: a.startIndex)..<end]) }
        if let colon = a.lastIndex(of: ":"), a[a.index(after: colon)...].allSatisfy(\.isNumber) { return normalized(a[..<colon]) }
        return normalized(a)
    }

    /// A dotted-quad IPv4 or an IPv6 literal (already without brackets).
    static func isIPLiteral(_ h: String) -> Bool {
        if h.contains(":") { return h.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isNumber) && (Int(p) ?? 256) <= 255 }
    }

    static func isLoopbackIP(_ h: String) -> Bool {
        h == "::1" || (isIPLiteral(h) && !h.contains(":") && h.hasPrefix("127."))
    }

    /// Why the request must be refused, nil when it may go on.
    func problem(authority: String?, origin: String?) -> String? {
        if any { return nil }
        if let authority, !authority.isEmpty {
            let h = Self.host(ofAuthority: authority)
            if !Self.isIPLiteral(h), !names.contains(h) {
                return "Host '\(authority.prefix(100))' is not one this collector answers (DNS rebinding protection); allowed: IP addresses, \(names.sorted().joined(separator: ", ")); add the name to receiver.allowed_hosts"
            }
        }
        if let origin {
            guard origin != "null", let u = URL(string: origin), let raw = u.host else {
                return "Origin '\(origin.prefix(100))' is not allowed (DNS rebinding protection); browsers may send from \(names.sorted().joined(separator: ", ")) or a loopback address (receiver.allowed_hosts)"
            }
            let h = Self.normalized(raw)
            if !names.contains(h), !Self.isLoopbackIP(h) {
                return "Origin '\(origin.prefix(100))' is not allowed (DNS rebinding protection); browsers may send from \(names.sorted().joined(separator: ", ")) or a loopback address (receiver.allowed_hosts)"
            }
        }
        return nil
    }
}

/// Refuses requests whose `Host` or `Origin` `HostAllowList` does not allow, with 403 naming it.
struct HostCheckMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let allow: HostAllowList
    let refused: Counter

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let problem = allow.problem(authority: request.head.authority, origin: request.headers[.origin]) {
            refused.increment()
            return Response(status: .forbidden, headers: [.contentType: "text/plain; charset=utf-8", .connection: "close"], body: .init(byteBuffer: ByteBuffer(string: problem + "\n")))
        }
        return try await next(request, context)
    }
}
