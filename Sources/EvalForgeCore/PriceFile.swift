import Foundation

/// A price file: the operator's own prices, in JSON, loaded the same way by the SDK
/// (`EVALFORGE_PRICE_FILE`, `Configuration.cost.priceTable`), the collector and the backend
/// (`--price-file`), so every stage computes the same cost.
///
/// ```json
/// {
///   "version": "acme-2026-12",
///   "models": [
///     {"model": "gpt-4o", "input": 2.5, "output": 10, "cached_input": 1.25, "source": "contract #12"},
///     {"model": "gpt-4o", "input": 2.0, "output": 8, "valid_from": "2027-01-01", "source": "contract #13"},
///     {"model": "my-finetune", "input": 3, "output": 12}
///   ],
///   "aliases": {"my-finetune-2026-10-01": "my-finetune"}
/// }
/// ```
///
/// Prices are USD per million tokens; `cached_input` and `cache_write` default to `input`.
/// `valid_from` (a UTC day, `YYYY-MM-DD`) starts a price; without it the price applies since always.
/// A span is costed with the price in force at its start. The file's entries join the built-in table:
/// an entry replaces the built-in one of the same model and `valid_from`, and adds to its history
/// otherwise. Spans record the version as `<built-in version>+<file version>`.
public enum PriceFile {
    /// Largest price file read.
    public static let maxBytes = 4 << 20
    /// Most models and aliases in one file.
    public static let maxEntries = 10_000
    /// Highest price per million tokens accepted: far above any model's, below anything absurd.
    public static let maxPricePerMillion = 100_000.0

    private struct Document: Decodable {
        var version: String
        var models: [Model]
        var aliases: [String: String]?
    }

    private struct Model: Decodable {
        var model: String
        var input: Double
        var output: Double
        var cached_input: Double?
        var cache_write: Double?
        var valid_from: String?
        var source: String?
    }

    /// Reads the price file at `path` and returns `base` with its prices added.
    public static func load(path: String, into base: PriceTable = .builtIn) throws(PriceFileError) -> PriceTable {
        let url = URL(fileURLWithPath: path)
        let size: Int
        do {
            let values = try url.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey])
            guard values.isRegularFile == true else { throw PriceFileError(.unreadable, "price file \(path): not a regular file") }
            size = values.fileSize ?? 0
        } catch let e as PriceFileError {
            throw e
        } catch {
            throw PriceFileError(.unreadable, "price file \(path): cannot read it (\(error.localizedDescription))")
        }
        guard size <= maxBytes else { throw PriceFileError(.tooLarge, "price file \(path): \(size) bytes; at most \(maxBytes) are read") }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw PriceFileError(.unreadable, "price file \(path): cannot read it (\(error.localizedDescription))")
        }
        do { return try parse(data, into: base) } catch { throw PriceFileError(error.code, "price file \(path): \(error.message)") }
    }

    /// Parses a price file's JSON and returns `base` with its prices added; every problem is named
    /// (`models[3].input: …`).
    public static func parse(_ data: Data, into base: PriceTable = .builtIn) throws(PriceFileError) -> PriceTable {
        guard data.count <= maxBytes else { throw PriceFileError(.tooLarge, "\(data.count) bytes; at most \(maxBytes) are read") }
        let doc: Document
        do {
            doc = try JSONDecoder().decode(Document.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw PriceFileError(.malformed, "\(path(context.codingPath + [key])): missing")
        } catch let DecodingError.typeMismatch(_, context) {
            throw PriceFileError(.malformed, "\(path(context.codingPath)): wrong type (\(context.debugDescription))")
        } catch let DecodingError.valueNotFound(_, context) {
            throw PriceFileError(.malformed, "\(path(context.codingPath)): null")
        } catch {
            throw PriceFileError(.malformed, "not valid JSON of the price file format")
        }
        guard isName(doc.version, max: 64) else { throw PriceFileError(.invalid, "version '\(doc.version.prefix(80))': expected 1-64 characters, letters, digits, '.', '-' or '_'") }
        guard doc.models.count <= maxEntries, (doc.aliases?.count ?? 0) <= maxEntries else {
            throw PriceFileError(.invalid, "more than \(maxEntries) models or aliases")
        }
        var histories: [String: [DatedPrice]] = [:]
        for (i, m) in doc.models.enumerated() {
            let at = "models[\(i)]"
            guard isModelName(m.model) else { throw PriceFileError(.invalid, "\(at).model '\(m.model.prefix(80))': expected 1-200 printable characters") }
            for (field, value) in [("input", Optional(m.input)), ("output", Optional(m.output)), ("cached_input", m.cached_input), ("cache_write", m.cache_write)] {
                guard let value else { continue }
                guard value.isFinite, value >= 0, value <= maxPricePerMillion else {
                    throw PriceFileError(.invalid, "\(at).\(field) \(value): expected USD per million tokens, 0…\(Int(maxPricePerMillion))")
                }
            }
            var from: UInt64 = 0
            if let day = m.valid_from {
                guard let nanos = unixNanos(ofDay: day) else { throw PriceFileError(.invalid, "\(at).valid_from '\(day.prefix(40))': expected a UTC day YYYY-MM-DD, 1970-01-01…2500-12-31") }
                from = nanos
            }
            let source = m.source ?? "price file \(doc.version)"
            guard source.utf8.count <= 500 else { throw PriceFileError(.invalid, "\(at).source: longer than 500 bytes") }
            let name = PriceTable.canonicalName(m.model)
            if histories[name]?.contains(where: { $0.validFromUnixNanos == from }) == true {
                throw PriceFileError(.invalid, "\(at): a second price of '\(name)' valid from \(m.valid_from ?? "always")")
            }
            let price = ModelPrice(input: m.input, output: m.output, cachedInput: m.cached_input, cacheWrite: m.cache_write)
            histories[name, default: []].append(DatedPrice(price: price, validFromUnixNanos: from, source: source))
        }
        var aliases: [String: String] = [:]
        for (alias, target) in (doc.aliases ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard isModelName(alias), isModelName(target) else { throw PriceFileError(.invalid, "aliases['\(alias.prefix(80))']: names must be 1-200 printable characters") }
            let a = PriceTable.canonicalName(alias)
            let t = PriceTable.canonicalName(target)
            guard histories[a] == nil else { throw PriceFileError(.invalid, "aliases['\(alias)']: is also listed in models") }
            guard histories[t] != nil || base.history(for: t) != nil else {
                throw PriceFileError(.invalid, "aliases['\(alias)']: '\(target)' is neither in this file's models nor in the built-in table")
            }
            // An alias of an alias resolves to its model now (lookups follow one step).
            aliases[a] = histories[t] != nil ? t : (base.aliasNames[t] ?? t)
        }
        let file = PriceTable(version: base.version + "+" + doc.version, histories: histories, aliases: aliases)
        return base.merging(file)
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        var out = ""
        for k in keys {
            if let i = k.intValue { out += "[\(i)]" } else { out += out.isEmpty ? k.stringValue : "." + k.stringValue }
        }
        return out.isEmpty ? "the document" : out
    }

    private static func isName(_ s: String, max: Int) -> Bool {
        !s.isEmpty && s.utf8.count <= max && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2E || $0 == 0x2D || $0 == 0x5F }
    }

    private static func isModelName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 200 && s.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F && !($0.properties.generalCategory == .control) }
    }

    /// Start of the UTC day `YYYY-MM-DD` in Unix nanoseconds; nil for anything else, before 1970 or
    /// after 2500 (Unix nanoseconds in a UInt64 end in 2554).
    public static func unixNanos(ofDay day: String) -> UInt64? {
        let b = Array(day.utf8)
        guard b.count == 10, b[4] == 0x2D, b[7] == 0x2D else { return nil }
        func number(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        guard let y = number(0..<4), let m = number(5..<7), let d = number(8..<10), (1970...2500).contains(y), (1...12).contains(m) else { return nil }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...days[m - 1]).contains(d) else { return nil }
        // Days from 1970-01-01 (Howard Hinnant's days_from_civil); y ≤ 2500 keeps the product in range.
        let yy = m <= 2 ? y - 1 : y
        let era = yy / 400
        let yoe = yy - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let daysSinceEpoch = era * 146_097 + doe - 719_468
        return UInt64(daysSinceEpoch) * 86_400 * 1_000_000_000
    }
}

/// A price file that cannot be used, with what is wrong and where.
public struct PriceFileError: Error, CustomStringConvertible, Sendable {
    fileprivate enum Code: Sendable { case unreadable, tooLarge, malformed, invalid }
    fileprivate let code: Code
    public let message: String
    public var description: String { message }

    fileprivate init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
