import Foundation

/// A tool the agent may call: its OpenAI function declaration and a local implementation.
struct Tool: Sendable {
    var name: String
    var description: String
    /// JSON schema of the arguments.
    var parametersJSON: String
    /// Takes the model's arguments (a JSON object as text), returns the result as text.
    var run: @Sendable (String) async throws -> String

    var declaration: [String: Any] {
        let parameters = (try? JSONSerialization.jsonObject(with: Data(parametersJSON.utf8))) ?? [:]
        return ["type": "function", "function": ["name": name, "description": description, "parameters": parameters]]
    }
}

struct ToolError: Error, CustomStringConvertible {
    var description: String
}

/// Three deterministic local tools; a real agent would call APIs or databases here.
enum Toolbox {
    static let all: [Tool] = [weather, convert, searchDocs]

    static func object(_ json: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
    }

    static let weather = Tool(
        name: "get_weather",
        description: "Current weather for a city.",
        parametersJSON: #"{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}"#,
        run: { json in
            let args = object(json)
            guard let city = args["city"] as? String, !city.isEmpty else { throw ToolError(description: "get_weather: 'city' (string) is required") }
            let celsius = 8 + city.unicodeScalars.reduce(0) { ($0 + Int($1.value)) % 23 }
            let unit = args["unit"] as? String ?? "celsius"
            let value = unit == "fahrenheit" ? celsius * 9 / 5 + 32 : celsius
            return #"{"city":"\#(city)","temperature":\#(value),"unit":"\#(unit)","sky":"partly cloudy"}"#
        })

    static let convert = Tool(
        name: "convert_currency",
        description: "Converts an amount between currencies.",
        parametersJSON: #"{"type":"object","properties":{"amount":{"type":"number","minimum":1,"maximum":10000},"from":{"type":"string","enum":["EUR","USD","JPY"]},"to":{"type":"string","enum":["EUR","USD","JPY"]}},"required":["amount","from","to"]}"#,
        run: { json in
            let args = object(json)
            let rates = ["EUR": 1.0, "USD": 1.08, "JPY": 162.0]
            guard let amount = (args["amount"] as? NSNumber)?.doubleValue,
                  let from = args["from"] as? String, let to = args["to"] as? String,
                  let a = rates[from], let b = rates[to] else { throw ToolError(description: "convert_currency: expected amount, from and to") }
            return #"{"amount":\#(amount),"from":"\#(from)","to":"\#(to)","result":\#((amount / a * b * 100).rounded() / 100)}"#
        })

    static let searchDocs = Tool(
        name: "search_docs",
        description: "Searches the travel guide.",
        parametersJSON: #"{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer","minimum":1,"maximum":5}},"required":["query"]}"#,
        run: { json in
            let query = object(json)["query"] as? String ?? ""
            try await Task.sleep(for: .milliseconds(20))   // pretend to search
            return #"{"query":"\#(query)","hits":["Museums open 9–18","Trains every 10 minutes"]}"#
        })
}
