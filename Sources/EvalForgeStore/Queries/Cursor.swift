import Foundation

/// Opaque keyset-pagination cursors: the sort values of the last row of a page plus a fingerprint of
/// the query, base64url-encoded JSON. A cursor used with a different query, or edited, is refused.
public struct Cursor: Sendable, Equatable, Codable {
    /// Fingerprint of the query the cursor belongs to.
    public var query: String
    /// Sort values of the last row returned, as strings.
    public var after: [String]

    public init(query: String, after: [String]) {
        self.query = query
        self.after = after
    }

    public func encoded() -> String {
        let data = (try? JSONEncoder().encode(self)) ?? Data()
        return data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Decodes `text` and checks that it belongs to `query` and carries `count` sort values.
    public static func decode(_ text: String, query: String, count: Int) throws -> Cursor {
        var b64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard text.count <= 4096, let data = Data(base64Encoded: b64), let c = try? JSONDecoder().decode(Cursor.self, from: data) else {
            throw StoreError.invalidCursor("invalid cursor: not a cursor returned by this API")
        }
        guard c.query == query, c.after.count == count else {
            throw StoreError.invalidCursor("invalid cursor: it belongs to a different query (filters or sort changed)")
        }
        return c
    }

    /// A stable fingerprint of a Codable query description.
    public static func fingerprint(_ parts: some Encodable) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        let data = (try? enc.encode(parts)) ?? Data()
        // FNV-1a 64: cursors are not secrets, only a guard against mixing queries.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in data { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }
}
