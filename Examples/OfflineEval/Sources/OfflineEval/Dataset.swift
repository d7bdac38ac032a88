import Foundation

/// One line of the dataset (JSONL).
struct DatasetItem: Decodable, Sendable {
    var id: String
    var input: String
    /// What a check compares the answer with: the whole answer (`exact`) or a part (`contains`).
    var expected: String?
    /// `exact`, `contains`, `json`.
    var checks: [Check]
    /// `json` asks for JSON mode (`response_format: json_object`).
    var format: String?

    static func load(path: String) throws -> [DatasetItem] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EvalError("cannot read the dataset \(path)")
        }
        var items: [DatasetItem] = []
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty || text.hasPrefix("#") { continue }
            do {
                let item = try JSONDecoder().decode(DatasetItem.self, from: Data(text.utf8))
                if item.checks.contains(where: { $0 != .json }) && item.expected == nil {
                    throw EvalError("checks \(item.checks.map(\.rawValue)) need an \"expected\" value")
                }
                items.append(item)
            } catch let error as EvalError {
                throw EvalError("\(path):\(n + 1): \(error)")
            } catch {
                throw EvalError("\(path):\(n + 1): expected {\"id\", \"input\", \"expected\"?, \"checks\": [\"exact\"|\"contains\"|\"json\"], \"format\"?}: \(error)")
            }
        }
        return items
    }
}

/// A simple deterministic check of an answer.
enum Check: String, Decodable, Sendable, CaseIterable {
    /// The answer, trimmed, equals `expected` (case-insensitive, a final period ignored).
    case exact
    /// The answer contains `expected` (case-insensitive).
    case contains
    /// The answer is one valid JSON value.
    case json

    /// The score name posted to the backend.
    var scoreName: String {
        switch self {
        case .exact: "exact_match"
        case .contains: "contains"
        case .json: "json_valid"
        }
    }

    func passes(answer: String, expected: String?) -> Bool {
        switch self {
        case .exact:
            func norm(_ s: String) -> String {
                var t = s.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
                if t.hasSuffix(".") { t.removeLast() }
                return t
            }
            return norm(answer) == norm(expected ?? "")
        case .contains:
            return answer.lowercased().contains((expected ?? "").lowercased())
        case .json:
            return (try? JSONSerialization.jsonObject(with: Data(answer.utf8), options: [.fragmentsAllowed])) != nil
        }
    }
}

struct EvalError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
