import EvalForgeModel
import EvalForgeStore
import Foundation
import Hummingbird

/// Query-string parameters of one request, checked against the names a route accepts. Every parse
/// error is a 400 naming the parameter and what was expected. Empty values count as absent, so an
/// HTML form's blank fields select nothing.
struct QueryParameters: Sendable {
    private var values: [String: [String]] = [:]

    init(_ request: Request, allowed: Set<String>) throws {
        try self.init(Self.pairs(request.uri.query ?? ""), allowed: allowed)
    }

    /// `application/x-www-form-urlencoded` pairs: `+` is a space (as HTML forms send it), then
    /// percent-decoding; malformed escapes are a 400.
    static func pairs(_ query: String) throws -> [(String, String)] {
        guard query.utf8.count <= 16_384 else { throw HTTPError(.badRequest, message: "query string longer than 16384 bytes") }
        return try query.split(separator: "&", omittingEmptySubsequences: true).map { part in
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) throws -> String {
                let spaced = s.replacingOccurrences(of: "+", with: " ")
                guard let d = spaced.removingPercentEncoding else {
                    throw HTTPError(.badRequest, message: "malformed percent-encoding in the query string near '\(s.prefix(40))'")
                }
                return d
            }
            return (try decode(kv[0]), kv.count > 1 ? try decode(kv[1]) : "")
        }
    }

    init(_ pairs: [(String, String)], allowed: Set<String>) throws {
        for (k, v) in pairs {
            guard allowed.contains(k) else {
                throw HTTPError(.badRequest, message: "unknown query parameter '\(k)'; accepted: \(allowed.sorted().joined(separator: ", "))")
            }
            guard v.utf8.count <= 2048 else { throw HTTPError(.badRequest, message: "parameter '\(k)' is longer than 2048 bytes") }
            if !v.isEmpty { values[k, default: []].append(v) }
        }
    }

    func string(_ name: String) -> String? { values[name]?.last }

    func all(_ name: String) -> [String] { values[name] ?? [] }

    func double(_ name: String, min: Double? = nil) throws -> Double? {
        guard let s = string(name) else { return nil }
        guard let d = Double(s), d.isFinite else { throw HTTPError(.badRequest, message: "parameter '\(name)' must be a number, got '\(s.prefix(64))'") }
        if let min, d < min { throw HTTPError(.badRequest, message: "parameter '\(name)' must be at least \(min), got \(s.prefix(64))") }
        return d
    }

    func int(_ name: String, default def: Int, range: ClosedRange<Int>) throws -> Int {
        guard let s = string(name) else { return def }
        guard let i = Int(s), range.contains(i) else {
            throw HTTPError(.badRequest, message: "parameter '\(name)' must be an integer between \(range.lowerBound) and \(range.upperBound), got '\(s.prefix(64))'")
        }
        return i
    }

    func bool(_ name: String) throws -> Bool {
        guard let s = string(name) else { return false }
        switch s.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw HTTPError(.badRequest, message: "parameter '\(name)' must be true or false, got '\(s.prefix(64))'")
        }
    }

    func oneOf<T>(_ name: String, _ options: [String: T], default def: T) throws -> T {
        guard let s = string(name) else { return def }
        guard let v = options[s] else {
            throw HTTPError(.badRequest, message: "parameter '\(name)' must be one of \(options.keys.sorted().joined(separator: ", ")), got '\(s.prefix(64))'")
        }
        return v
    }

    /// A time: RFC 3339 (`2026-01-31T12:00:00Z`, fractional seconds and offsets allowed) or Unix
    /// seconds (integer or decimal). Returned as Unix nanoseconds.
    func time(_ name: String) throws -> Int64? {
        guard let s = string(name) else { return nil }
        guard let ns = TimeParsing.unixNanos(s) else {
            throw HTTPError(.badRequest, message: "parameter '\(name)' must be an RFC 3339 time (2026-01-31T12:00:00Z) or Unix seconds between 1677-09-22 and 2262-04-11 (Int64 nanoseconds), got '\(s.prefix(64))'")
        }
        return ns
    }
}

enum TimeParsing {
    /// Unix nanoseconds of an RFC 3339 time or a number of Unix seconds; nil when neither, or when
    /// the time is outside what Int64 nanoseconds hold (1677-09-21 … 2262-04-11), so every later
    /// `* 1e9` or subtraction on it stays in range.
    static func unixNanos(_ s: String) -> Int64? {
        if let d = Double(s) { return nanos(seconds: d) }
        for style in [Date.ISO8601FormatStyle(includingFractionalSeconds: true), Date.ISO8601FormatStyle()] {
            if let date = try? style.parse(s) { return nanos(seconds: date.timeIntervalSince1970) }
        }
        return nil
    }

    /// Unix seconds as nanoseconds, nil when not finite or beyond ±9.2e9 s (one second inside
    /// Int64's range, so adding a bucket or a minute to the result cannot overflow either).
    static func nanos(seconds: Double) -> Int64? {
        guard seconds.isFinite, abs(seconds) <= maxUnixSeconds else { return nil }
        return CheckedNumbers.int64((seconds * 1e9).rounded())
    }

    /// The largest |Unix seconds| a time parameter accepts.
    static let maxUnixSeconds: Double = 9_200_000_000

    /// An interval: seconds (`300`) or a number with a unit (`90s`, `5m`, `1h`, `1d`, `1w`).
    static func seconds(_ s: String) -> Int64? {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        if let n = Int64(s) { return n }
        guard let last = s.last, let unit = units[last], let n = Int64(s.dropLast()) else { return nil }
        let (r, overflow) = n.multipliedReportingOverflow(by: unit)
        return overflow ? nil : r
    }
}

/// The trace filter parameters shared by the trace list, the exports and the UI.
enum TraceFilterParameters {
    static let names: Set<String> = [
        "from", "to", "service", "provider", "model", "status", "user_id", "session_id", "tag",
        "min_cost_usd", "min_duration_ms", "score_name", "min_score", "max_score", "q",
    ]

    static func filter(_ p: QueryParameters, projectID: String) throws -> TraceFilter {
        var f = TraceFilter(projectID: projectID)
        f.from = try p.time("from")
        f.to = try p.time("to")
        if let from = f.from, let to = f.to, from >= to {
            throw HTTPError(.badRequest, message: "time range is empty: 'from' must be before 'to'")
        }
        f.service = p.string("service")
        f.provider = p.string("provider")
        f.model = p.string("model")
        f.status = try p.oneOf("status", ["ok": SpanStatus?.some(.ok), "error": .some(.error)], default: nil)
        f.userID = p.string("user_id")
        f.sessionID = p.string("session_id")
        f.tag = p.string("tag")
        f.minCostUSD = try p.double("min_cost_usd", min: 0)
        f.minDurationNanos = try p.double("min_duration_ms", min: 0).map { CheckedNumbers.clampedInt64(min($0, 1e12) * 1e6) }
        f.scoreName = p.string("score_name")
        f.minScore = try p.double("min_score")
        f.maxScore = try p.double("max_score")
        if f.scoreName == nil, f.minScore != nil || f.maxScore != nil {
            throw HTTPError(.badRequest, message: "'min_score' and 'max_score' need 'score_name' (the score they apply to)")
        }
        if let lo = f.minScore, let hi = f.maxScore, lo > hi {
            throw HTTPError(.badRequest, message: "score range is empty: 'min_score' is above 'max_score'")
        }
        f.text = p.string("q")
        return f
    }

    static let sorts: [String: TraceSort] = Dictionary(uniqueKeysWithValues: TraceSort.allCases.map { ($0.rawValue, $0) })
}
