import EvalForgeSDK
import Foundation

// Usage: swift run AgentLoop [LLM base URL]    (default http://127.0.0.1:8080/v1, `evalforge mock-llm`)
// Spans go to the collector at EVALFORGE_COLLECTOR_URL (default http://127.0.0.1:4318).
//
// Each user turn is one trace:
//   invoke_agent travel-assistant            (session.id, user.id; one trace per turn)
//   ├── chat gpt-4o-mini                      (the model asks for a tool)
//   ├── execute_tool get_weather              (gen_ai.tool.name, gen_ai.tool.call.id)
//   └── chat gpt-4o-mini                      (the model answers with the tool result)
// and every turn shares the session id, so the conversation reads as one session.

let base = CommandLine.arguments.dropFirst().first ?? ProcessInfo.processInfo.environment["LLM_BASE_URL"] ?? "http://127.0.0.1:8080/v1"
let model = ProcessInfo.processInfo.environment["LLM_MODEL"] ?? "gpt-4o-mini"
var configuration = EvalForge.Configuration.fromEnvironment()
configuration.serviceName = "agent-loop"
let pipeline = try EvalForge.bootstrap(configuration)

let llm = try LLMHTTPClient(api: .openAIChatCompletions, baseURL: base, apiKey: ProcessInfo.processInfo.environment["OPENAI_API_KEY"] ?? "mock")
let sessionID = "agent-session-\(UInt32.random(in: 100_000...999_999))"
let userID = "traveller-42"
let who = LLMHTTPClient.CallContext(userID: userID, sessionID: sessionID, tags: ["agent-example"])

/// The user's turns. The first two name the tool to use (`tool_choice`) so the demo exercises every
/// tool against the mock LLM, which otherwise picks one by its seed; a real model decides with "auto".
let turns: [(text: String, tool: String?)] = [
    ("What's the weather in Lisbon right now?", "get_weather"),
    ("How much is 250 EUR in JPY?", "convert_currency"),
    ("Find me something to do there tomorrow morning.", nil),
]

/// The conversation so far (OpenAI message objects), kept across turns.
var messages: [[String: Any]] = [["role": "system", "content": "You are a travel assistant. Use the tools when they help."]]
let maxStepsPerTurn = 5

for (index, (userText, forcedTool)) in turns.enumerated() {
    print("\n[turn \(index + 1)] user: \(userText)")
    messages.append(["role": "user", "content": userText])

    let answer = try await EvalForge.withStep(.invokeAgent, name: "travel-assistant") { agent -> String in
        agent.request.userID = userID
        agent.request.sessionID = sessionID
        agent.setAttribute("agent.turn", .int(index + 1))
        print("  trace \(agent.traceParent.traceID.hexString)")

        for step in 1...maxStepsPerTurn {
            // One model call; the SDK records it as a child of the agent span.
            let toolChoice: Any = step == 1 ? forcedTool.map { ["type": "function", "function": ["name": $0]] } ?? "auto" : "auto"
            let body: [String: Any] = ["model": model, "messages": messages, "tools": Toolbox.all.map(\.declaration), "tool_choice": toolChoice]
            let data = try await llm.send(try JSONSerialization.data(withJSONObject: body), context: who)
            guard let message = Chat.firstMessage(data) else { throw ToolError(description: "the model returned no message") }
            messages.append(message)

            let calls = message["tool_calls"] as? [[String: Any]] ?? []
            if calls.isEmpty {
                agent.setAttribute("agent.steps", .int(step))
                return message["content"] as? String ?? ""
            }
            // Run each requested tool as an execute_tool span, also a child of the agent span.
            for call in calls {
                let id = call["id"] as? String ?? ""
                let function = call["function"] as? [String: Any] ?? [:]
                let name = function["name"] as? String ?? "?"
                let arguments = function["arguments"] as? String ?? "{}"
                let result: String = await EvalForge.withStep(.executeTool, name: name) { span in
                    span.setAttribute("gen_ai.tool.call.id", .string(id))
                    span.setAttribute("gen_ai.tool.call.arguments", .string(arguments))
                    do {
                        guard let tool = Toolbox.all.first(where: { $0.name == name }) else { throw ToolError(description: "unknown tool \(name)") }
                        return try await tool.run(arguments)
                    } catch {
                        // The tool failed: mark the span and hand the error to the model as the result.
                        span.recordError(type: "tool_error", message: "\(error)")
                        return #"{"error":"\#(error)"}"#
                    }
                }
                print("  tool \(name)(\(arguments)) → \(result)")
                messages.append(["role": "tool", "tool_call_id": id, "content": result])
            }
        }
        agent.recordError(type: "max_steps", message: "no final answer after \(maxStepsPerTurn) steps")
        return "(gave up after \(maxStepsPerTurn) steps)"
    }
    print("  assistant: \(answer.prefix(140))\(answer.count > 140 ? "…" : "")")
}

await pipeline.forceFlush(timeout: .seconds(3))
let s = pipeline.statistics
print("\nsession \(sessionID): spans recorded \(s.recorded), exported \(s.exported), export failed \(s.exportFailed) → \(configuration.exporter.endpoint)")
await EvalForge.shutdown()

enum Chat {
    static func firstMessage(_ data: Data) -> [String: Any]? {
        guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let choices = o["choices"] as? [[String: Any]] else { return nil }
        return choices.first?["message"] as? [String: Any]
    }
}
