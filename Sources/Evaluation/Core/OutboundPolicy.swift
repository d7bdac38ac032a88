import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a URL a project chose (webhook, `http` target, provider base URL) may not be called, with
/// a message saying what to change.
public struct OutboundError: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Code: Sendable, Equatable {
        case invalidURL
        case unresolvable
        case refusedAddress
        case protectedEndpoint
        case invalidAllowList
    }

    private let code: Code
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    static func invalidURL(_ m: String) -> OutboundError { .init(.invalidURL, m) }
    static func unresolvable(_ m: String) -> OutboundError { .init(.unresolvable, m) }
    static func refusedAddress(_ m: String) -> OutboundError { .init(.refusedAddress, m) }
    static func protectedEndpoint(_ m: String) -> OutboundError { .init(.protectedEndpoint, m) }
    static func invalidAllowList(_ m: String) -> OutboundError { .init(.invalidAllowList, m) }

    /// The name did not resolve: DNS may answer later, so a call may be retried (a refusal may not).
    public var isTransient: Bool { code == .unresolvable }
    /// The URL is refused by the policy (not a transient DNS failure).
    public var isRefused: Bool { code == .refusedAddress || code == .protectedEndpoint || code == .invalidURL }

    public var description: String { message }
}

/// An IPv4 or IPv6 address (network byte order held as integers).
struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    enum Value: Hashable, Sendable {
        case v4(UInt32)
        case v6(hi: UInt64, lo: UInt64)
    }

    let value: Value

    init(v4: UInt32) { value = .v4(v4) }
    init(v6 bytes: [UInt8]) {
        var hi: UInt64 = 0, lo: UInt64 = 0
        let bytes = bytes.count == 16 ? bytes : [UInt8](repeating: 0, count: 16)
        for i in 0..<8 { hi = hi << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { lo = lo << 8 | UInt64(bytes[i]) }
        value = .v6(hi: hi, lo: lo)
    }

    /// Strict textual forms only (inet_pton): `127.0.0.1`, `::1`. URL hosts are resolved with
    /// getaddrinfo instead, which also reads `2130706433`, `0177.0.0.1` and `0x7f.1` as inet_aton does.
    init?(strict text: String) {
        var a4 = in_addr()
        if inet_pton(AF_INET, text, &a4) == 1 { self.init(v4: UInt32(bigEndian: a4.s_addr)); return }
        var a6 = in6_addr()
        if inet_pton(AF_INET6, text, &a6) == 1 { self.init(v6: withUnsafeBytes(of: &a6) { Array($0) }); return }
        return nil
    }

    var isV4: Bool { if case .v4 = value { true } else { false } }
    /// 0.0.0.0 or :: (a listener bound there answers on every local address).
    var isUnspecified: Bool { value == .v4(0) || value == .v6(hi: 0, lo: 0) }

    var description: String {
        switch value {
        case .v4(let v):
            return "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
        case .v6:
            var a = in6_addr()
            let bytes = v6Bytes
            withUnsafeMutableBytes(of: &a) { for i in 0..<16 { $0[i] = bytes[i] } }
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            guard inet_ntop(AF_INET6, &a, &buf, socklen_t(INET6_ADDRSTRLEN)) != nil else { return "?" }
            return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    var v6Bytes: [UInt8] {
        guard case .v6(let hi, let lo) = value else { return [] }
        return (0..<8).map { UInt8(truncatingIfNeeded: hi >> (56 - 8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: lo >> (56 - 8 * $0)) }
    }

    /// Whether the address lies in `network/prefix` (same family only).
    func isIn(_ network: IPAddress, prefix: Int) -> Bool {
        switch (value, network.value) {
        case (.v4(let a), .v4(let n)):
            let p = Swift.min(Swift.max(prefix, 0), 32)
            let mask: UInt32 = p == 0 ? 0 : ~UInt32(0) << (32 - p)
            return a & mask == n & mask
        case (.v6(let ahi, let alo), .v6(let nhi, let nlo)):
            let p = Swift.min(Swift.max(prefix, 0), 128)
            let mhi: UInt64 = p >= 64 ? ~0 : (p == 0 ? 0 : ~UInt64(0) << (64 - p))
            let mlo: UInt64 = p <= 64 ? 0 : (p == 128 ? ~0 : ~UInt64(0) << (128 - p))
            return ahi & mhi == nhi & mhi && alo & mlo == nlo & mlo
        default:
            return false
        }
    }

    private func v4In(_ v: UInt32, _ n: UInt32, _ p: Int) -> Bool { IPAddress(v4: v).isIn(IPAddress(v4: n), prefix: p) }

    /// Why this address is not a public unicast address, or nil when it is.
    var nonPublicReason: String? {
        switch value {
        case .v4(let v):
            if v == 0xFFFF_FFFF { return "the broadcast address" }
            let ranges: [(UInt32, Int, String)] = [
                (0x0000_0000, 8, "an unspecified address (0.0.0.0/8)"),
                (0x7F00_0000, 8, "a loopback address (127.0.0.0/8)"),
                (0x0A00_0000, 8, "a private address (10.0.0.0/8)"),
                (0xAC10_0000, 12, "a private address (172.16.0.0/12)"),
                (0xC0A8_0000, 16, "a private address (192.168.0.0/16)"),
                (0x6440_0000, 10, "a shared CGNAT address (100.64.0.0/10)"),
                (0xA9FE_0000, 16, "a link-local address (169.254.0.0/16, where cloud metadata services answer)"),
                (0xC000_0000, 24, "an IETF protocol address (192.0.0.0/24)"),
                (0xC000_0200, 24, "a documentation address (192.0.2.0/24)"),
                (0xC633_6400, 24, "a documentation address (198.51.100.0/24)"),
                (0xCB00_7100, 24, "a documentation address (203.0.113.0/24)"),
                (0xC612_0000, 15, "a benchmarking address (198.18.0.0/15)"),
                (0xE000_0000, 4, "a multicast address (224.0.0.0/4)"),
                (0xF000_0000, 4, "a reserved address (240.0.0.0/4)"),
            ]
            for (n, p, why) in ranges where v4In(v, n, p) { return why }
            return nil
        case .v6(let hi, let lo):
            if hi == 0, lo == 0 { return "the unspecified address (::)" }
            if hi == 0, lo == 1 { return "the loopback address (::1)" }
            if hi == 0, lo >> 32 == 0xFFFF { return "an IPv4-mapped IPv6 address (::ffff:\(IPAddress(v4: UInt32(truncatingIfNeeded: lo)))); use the IPv4 address" }
            if hi == 0, lo >> 32 == 0 { return "an IPv4-compatible IPv6 address (::\(IPAddress(v4: UInt32(truncatingIfNeeded: lo))))" }
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address the gateway connects to.
            if hi == 0x0064_FF9B_0000_0000, lo >> 32 == 0 {
                let embedded = IPAddress(v4: UInt32(truncatingIfNeeded: lo))
                return embedded.nonPublicReason.map { "a NAT64 address embedding \(embedded), \($0)" }
            }
            if hi >> 48 == 0x2002 {
                let embedded = IPAddress(v4: UInt32(truncatingIfNeeded: hi >> 16))
                return embedded.nonPublicReason.map { "a 6to4 address embedding \(embedded), \($0)" }
            }
            let top16 = hi >> 48
            if hi >> 16 == 0x0064_FF9B_0001 { return "a local-use NAT64 address (64:ff9b:1::/48)" }
            if top16 & 0xFFC0 == 0xFE80 { return "a link-local address (fe80::/10)" }
            if top16 & 0xFFC0 == 0xFEC0 { return "a site-local address (fec0::/10)" }
            if top16 & 0xFE00 == 0xFC00 { return "a unique-local address (fc00::/7)" }
            if top16 & 0xFF00 == 0xFF00 { return "a multicast address (ff00::/8)" }
            if hi == 0x0100_0000_0000_0000 { return "a discard-only address (100::/64)" }
            if hi >> 32 == 0x2001_0DB8 { return "a documentation address (2001:db8::/32)" }
            return nil
        }
    }
}

/// Which addresses the backend may connect to when a project chooses the URL (webhooks, `http`
/// experiment targets, provider base URLs): only public unicast addresses, never the backend's own
/// storage or listeners, unless the operator's allow-list names them (`--outbound-allow`,
/// `EVALFORGE_OUTBOUND_ALLOW`; docs/backend-configuration.md, "Outbound calls"). A URL is resolved once, every address is checked,
/// and the connection goes to a checked address: a name whose DNS answer changes between the check
/// and the connection (DNS rebinding) cannot reach an address that was not checked.
public struct OutboundPolicy: Sendable {
    /// One allow-list entry: a network (CIDR or single address) or a host name, optionally with a port.
    struct Entry: Sendable, Hashable {
        enum Match: Sendable, Hashable {
            case network(IPAddress, prefix: Int)
            case host(String)
        }
        var match: Match
        var port: Int?
    }

    /// An endpoint of the installation itself (the ClickHouse store, the backend's and the
    /// collector's listeners): refused even when a network entry covers its address; only an entry
    /// naming its port (`127.0.0.1:8123`) opens it.
    public struct ProtectedEndpoint: Sendable, Hashable {
        public var host: String
        public var port: Int
        public var what: String
        public init(host: String, port: Int, what: String) {
            self.host = host
            self.port = port
            self.what = what
        }

        /// The endpoint of an http(s) URL (the ClickHouse URL), or nil when it has no host.
        public init?(url: String, what: String) {
            guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), let h = u.host, !h.isEmpty else { return nil }
            self.init(host: h.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: u.port ?? (scheme == "https" ? 443 : 80), what: what)
        }
    }

    let entries: [Entry]
    public let protected: [ProtectedEndpoint]
    /// The allow-list as given (for logs and errors).
    public let allowListText: String

    /// Nothing but public addresses (the default).
    public static let publicOnly = OutboundPolicy(entries: [], protected: [], text: "")

    private init(entries: [Entry], protected: [ProtectedEndpoint], text: String) {
        self.entries = entries
        self.protected = protected
        allowListText = text
    }

    /// `allowList` is comma-separated: `10.0.0.0/8`, `fd00::/8`, `192.168.1.5`, `[::1]:8080`,
    /// `127.0.0.1:11434`, `llm.internal`, `llm.internal:8000`. Entries without a port allow any
    /// port except the protected endpoints.
    public init(allowList: String, protected: [ProtectedEndpoint] = []) throws(OutboundError) {
        guard allowList.utf8.count <= 16_384 else { throw .invalidAllowList("outbound allow-list: at most 16384 bytes") }
        var entries: [Entry] = []
        for raw in allowList.split(separator: ",") {
            let item = raw.trimmingCharacters(in: .whitespaces)
            if item.isEmpty { continue }
            entries.append(try Self.parseEntry(item))
        }
        self.init(entries: entries, protected: protected, text: allowList)
    }

    /// The same allow-list with more protected endpoints.
    public func protecting(_ more: [ProtectedEndpoint]) -> OutboundPolicy {
        OutboundPolicy(entries: entries, protected: protected + more, text: allowListText)
    }

    static func parseEntry(_ item: String) throws(OutboundError) -> Entry {
        func bad(_ why: String) -> OutboundError {
            .invalidAllowList("outbound allow-list entry '\(item.prefix(100))': \(why); expected a CIDR (10.0.0.0/8, fd00::/8), an address (10.1.2.3, [::1]:8080) or a host name (llm.internal:8000)")
        }
        func port(_ text: Substring) throws(OutboundError) -> Int {
            guard let p = Int(text), (1...65535).contains(p) else { throw bad("port '\(text.prefix(10))' is not 1…65535") }
            return p
        }
        func network(_ text: Substring) throws(OutboundError) -> Entry.Match {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let ip = IPAddress(strict: String(parts[0])) else { throw bad("'\(parts[0].prefix(60))' is not an IP address") }
            let bits = ip.isV4 ? 32 : 128
            var prefix = bits
            if parts.count == 2 {
                guard let p = Int(parts[1]), (0...bits).contains(p) else { throw bad("prefix length '\(parts[1].prefix(10))' is not 0…\(bits)") }
                prefix = p
            }
            return .network(ip, prefix: prefix)
        }
        guard item.utf8.count <= 300 else { throw bad("longer than 300 bytes") }
        if item.hasPrefix("[") {
            guard let close = item.firstIndex(of: "]") else { throw bad("missing ']'") }
            let inner = item[item.index(after: item.startIndex)..<close]
            let rest = item[item.index(after: close)...]
            var p: Int?
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw bad("unexpected text after ']'") }
                p = try port(rest.dropFirst())
            }
            return Entry(match: try network(inner), port: p)
        }
        if item.contains("/") || item.filter({ $0 == ":" }).count >= 2 { return Entry(match: try network(Substring(item)), port: nil) }
        var hostPart = Substring(item)
        var p: Int?
        if let colon = item.lastIndex(of: ":") {
            hostPart = item[..<colon]
            p = try port(item[item.index(after: colon)...])
        }
        if IPAddress(strict: String(hostPart)) != nil { return Entry(match: try network(hostPart), port: p) }
        guard let name = Self.normalizedName(String(hostPart)) else { throw bad("'\(hostPart.prefix(60))' is not a host name") }
        return Entry(match: .host(name), port: p)
    }

    /// Lower-cased, without a trailing dot; nil when it is not a plausible host name.
    static func normalizedName(_ host: String) -> String? {
        var h = host.lowercased()
        if h.hasSuffix(".") { h.removeLast() }
        guard !h.isEmpty, h.utf8.count <= 253, h.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2E || $0 == 0x5F }) else { return nil }
        return h
    }

    /// A URL that passed the policy: the connection must go to `address`.
    public struct Checked: Sendable {
        /// The host as the URL's parser (and AsyncHTTPClient) sees it, without IPv6 brackets.
        public let host: String
        public let port: Int
        public let scheme: String
        /// The checked address to connect to (IPv4 preferred when the name has both).
        public let address: String
    }

    /// Parses `url`, resolves its host once (getaddrinfo, off the cooperative pool) and checks
    /// every address. `field` names the setting in messages (e.g. `webhook.url`).
    public func check(url: String, field: String) async throws(OutboundError) -> Checked {
        let shown = String(url.prefix(200))
        guard url.utf8.count <= 2048, let u = URL(string: url), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let rawHost = u.host, !rawHost.isEmpty else {
            throw .invalidURL("\(field): '\(shown)' is not an http(s) URL with a host")
        }
        let host = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        let port = u.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else { throw .invalidURL("\(field): port \(port) is not 1…65535") }
        // Only names and address literals: no percent-escapes, spaces or control characters.
        guard host.utf8.count <= 253, host.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2E || $0 == 0x5F || $0 == 0x3A }) else {
            throw .invalidURL("\(field): '\(host.prefix(100))' is not a valid host name")
        }
        let name = Self.normalizedName(host)
        // RFC 6761: `localhost`, `localhost.` and `*.localhost` are loopback names by definition,
        // whatever a resolver says (glibc does not find `localhost.` in /etc/hosts).
        let lookup = name == "localhost" || name?.hasSuffix(".localhost") == true ? "localhost" : host
        let addresses: [IPAddress]
        switch await Self.resolve(lookup) {
        case .success(let a): addresses = a
        case .failure(let f): throw .unresolvable("\(field): host '\(host)' does not resolve (\(f.reason))")
        }
        guard !addresses.isEmpty else { throw .unresolvable("\(field): host '\(host)' resolved to no address") }
        for a in addresses {
            try await checkAddress(a, name: name, host: host, port: port, field: field)
        }
        let chosen = addresses.first(where: \.isV4) ?? addresses[0]
        return Checked(host: host, port: port, scheme: scheme, address: chosen.description)
    }

    private func checkAddress(_ a: IPAddress, name: String?, host: String, port: Int, field: String) async throws(OutboundError) {
        func matches(_ e: Entry) -> Bool {
            if let p = e.port, p != port { return false }
            switch e.match {
            case .network(let n, let prefix): return a.isIn(n, prefix: prefix)
            case .host(let h): return name == h
            }
        }
        let named = entries.contains { $0.port != nil && matches($0) }
        if !named, let p = await protectedEndpoint(a, name: name, port: port) {
            throw .protectedEndpoint("\(field): \(host):\(port) is \(p.what) (\(p.host):\(p.port)); outbound calls may not reach it unless the operator's allow-list (--outbound-allow / EVALFORGE_OUTBOUND_ALLOW) names that exact host and port")
        }
        if named || entries.contains(where: { $0.port == nil && matches($0) }) { return }
        if let why = a.nonPublicReason {
            let via = name == nil || IPAddress(strict: host) != nil ? "" : "'\(host)' resolves to \(a), "
            throw .refusedAddress("\(field): \(via)\(a) is \(why); outbound calls go to public addresses only unless the operator allows it with --outbound-allow / EVALFORGE_OUTBOUND_ALLOW (e.g. \(a.isV4 ? a.description : "[\(a)]"):\(port))")
        }
    }

    private func protectedEndpoint(_ a: IPAddress, name: String?, port: Int) async -> ProtectedEndpoint? {
        for p in protected where p.port == port {
            if let name, Self.normalizedName(p.host) == name { return p }
            if let ip = IPAddress(strict: p.host) {
                if ip == a { return p }
                // A listener on 0.0.0.0 or :: answers on every local address.
                if ip.isUnspecified, a.nonPublicReason != nil { return p }
                continue
            }
            if case .success(let resolved) = await Self.resolve(p.host), resolved.contains(a) { return p }
        }
        return nil
    }

    struct ResolveFailure: Error { let reason: String }

    /// getaddrinfo (inet_aton semantics for numeric forms) on a dispatch thread, so a slow DNS
    /// server does not hold a thread of the cooperative pool. At most 64 addresses.
    static func resolve(_ host: String) async -> Result<[IPAddress], ResolveFailure> {
        await withCheckedContinuation { (cont: CheckedContinuation<Result<[IPAddress], ResolveFailure>, Never>) in
            DispatchQueue.global(qos: .userInitiated).async { cont.resume(returning: resolveBlocking(host)) }
        }
    }

    private static func resolveBlocking(_ host: String) -> Result<[IPAddress], ResolveFailure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &result)
        defer { if let result { freeaddrinfo(result) } }
        guard rc == 0 else { return .failure(ResolveFailure(reason: String(cString: gai_strerror(rc)))) }
        var out: [IPAddress] = []
        var next = result
        while let ai = next, out.count < 64 {
            if let sa = ai.pointee.ai_addr {
                if ai.pointee.ai_family == AF_INET {
                    let v = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                    out.append(IPAddress(v4: v))
                } else if ai.pointee.ai_family == AF_INET6 {
                    let bytes = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) } }
                    out.append(IPAddress(v6: bytes))
                }
            }
            next = ai.pointee.ai_next
        }
        var seen = Set<IPAddress>()
        return .success(out.filter { seen.insert($0).inserted })
    }
}
