import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Posts results to the EvalForge backend's scores API: `POST {backend}/api/scores` with
/// `{"scores": [...]}`, authenticated with the project's API key (`Authorization: Bearer`).
/// Each score carries a stable id (run, item, check), so posting the same run twice keeps one copy.
struct ScoresClient {
    var backendURL: String
    var apiKey: String

    struct Score {
        var id: String
        var traceID: String
        var spanID: String
        var sessionID: String
        var name: String
        var passed: Bool
        var comment: String

        var json: [String: Any] {
            var o: [String: Any] = ["id": id, "traceId": traceID, "sessionId": sessionID, "name": name, "value": passed ? 1 : 0,
                                    "label": passed ? "pass" : "fail", "dataType": "boolean", "comment": comment]
            if !spanID.isEmpty { o["spanId"] = spanID }
            return o
        }
    }

    /// Returns a one-line account of what the backend answered.
    func post(_ scores: [Score]) async throws -> String {
        let base = backendURL.hasSuffix("/") ? String(backendURL.dropLast()) : backendURL
        guard let url = URL(string: base + "/api/scores") else { throw EvalError("--backend \(backendURL): expected a URL like http://127.0.0.1:3000") }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization")
        request.httpBody = try JSONSerialization.data(withJSONObject: ["scores": scores.map(\.json)])
        request.timeoutInterval = 30
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let text = String(decoding: data.prefix(300), as: UTF8.self)
        switch status {
        case 200..<300: return "posted \(scores.count) scores to \(url.absoluteString): \(status)"
        case 401: throw EvalError("\(url.absoluteString) answered 401: the API key is missing or wrong (evalforge dev prints the key; see docs/troubleshooting.md): \(text)")
        case 404: throw EvalError("\(url.absoluteString) answered 404: this backend has no scores API (it needs the evaluation API, docs/evaluation.md): \(text)")
        default: throw EvalError("\(url.absoluteString) answered \(status): \(text)")
        }
    }
}
