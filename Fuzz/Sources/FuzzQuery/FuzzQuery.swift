import Foundation
import FuzzBackendSupport
import FuzzSupport

/// The libFuzzer entry point of the `query` surface (scripts/fuzz query): one input is
/// `ROUTE?QUERY`, e.g. `/api/traces?from=1763000000&limit=5`. ROUTE names one of the backend's
/// read routes (API and web UI pages; `{trace}`, `{session}`, `{user}` become ids the store
/// holds); a ROUTE that is not one of them picks one by its bytes, so mutations keep reaching
/// every route. QUERY is sent as the request's query string (bytes an HTTP parser would refuse are
/// percent-escaped, as a client would send them). The backend is real: router, API key, query
/// parsing, the SQLite store of this process (seeded with the seed batches) and the rendering of
/// the answer. A 4xx is an expected answer; a trap, hang or 500 is a finding.
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    QueryFuzz.run(Fuzz.bytes(data, size))
    return 0
}

enum QueryFuzz {
    static let fixture = BackendFixture.make(seeded: true)

    static let routes = [
        "/api/traces", "/api/traces/{trace}", "/api/sessions", "/api/sessions/{session}", "/api/users", "/api/users/{user}",
        "/api/metrics", "/api/usage", "/api/export/spans", "/api/export/traces",
        "/", "/traces", "/traces/{trace}", "/sessions", "/sessions/{session}", "/users", "/experiments",
    ]

    /// Typical query strings of each route (what the UI and the docs send).
    static let seeds = [
        "/api/traces?limit=20", "/api/traces?from=1763000000&to=1763003600&sort=cost_desc&limit=5",
        "/api/traces?from=2025-11-13T00:00:00Z&to=2025-11-14T00:00:00.5%2B01:00&model=gpt-4o-mini&status=error",
        "/api/traces?service=chat-api&provider=anthropic&min_cost_usd=0.001&min_duration_ms=100&q=Hello",
        "/api/traces?score_name=relevance&min_score=0.5&max_score=1&tag=prod&user_id=u-1&session_id=s-1",
        "/api/traces?limit=1&cursor=abc", "/api/traces/{trace}", "/api/sessions?limit=10", "/api/sessions/{session}",
        "/api/users?from=1763000000", "/api/users/{user}", "/api/metrics?from=1763000000&to=1763086400&bucket=1h&group_by=model",
        "/api/metrics?window=7d", "/api/usage?from=1763000000&to=1763086400", "/api/export/spans?format=jsonl&limit=100",
        "/api/export/traces?format=csv", "/?range=24h", "/traces?model=gpt-4o&page=2", "/traces/{trace}", "/sessions?q=conv",
        "/sessions/{session}", "/users", "/experiments",
    ]

    static func run(_ input: [UInt8]) {
        let split = input.firstIndex(of: UInt8(ascii: "?")) ?? input.endIndex
        let name = String(decoding: input[..<split], as: UTF8.self)
        let query = split < input.endIndex ? input[(split + 1)...] : []
        var route = routes.contains(name) ? name : routes[Int(input[..<split].reduce(0) { ($0 &* 31 &+ Int($1)) & 0xFFFF }) % routes.count]
        let ids = SeedIDs.all
        route = route.replacingOccurrences(of: "{trace}", with: ids.traces.first ?? "0")
            .replacingOccurrences(of: "{session}", with: ids.sessions.first ?? "s-1")
            .replacingOccurrences(of: "{user}", with: ids.users.first ?? "u-1")
        let path = query.isEmpty ? route : route + "?" + escape(query)
        let f = fixture
        _ = Fuzz.blocking { () -> Int in
            let r = await f.send(.get, path)
            Fuzz.expectNoServerError(r.status, "GET \(path.prefix(200))", r.body)
            return r.status
        }
    }

    /// The query bytes as a client puts them on the wire: controls, space, `#`, DEL and non-ASCII
    /// bytes percent-escaped (an HTTP parser refuses them raw), everything else as it is.
    static func escape(_ bytes: ArraySlice<UInt8>) -> String {
        var out = ""
        out.reserveCapacity(bytes.count)
        for b in bytes {
            if b <= 0x20 || b == 0x23 || b >= 0x7F {
                out += String(format: "%%%02X", b)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(b))
            }
        }
        return out
    }
}
