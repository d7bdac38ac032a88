import EvalForgeOTLP
import Foundation

/// Valid OTLP trace requests built with the generated SwiftProtobuf messages (the SDK's and the
/// tests' encoding): the seed corpus of the collector surface and the source of the batch
/// surface's forwarded batches.
public enum OTLPSeeds {
    public typealias Request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
    public typealias Span = Opentelemetry_Proto_Trace_V1_Span
    typealias KeyValue = Opentelemetry_Proto_Common_V1_KeyValue

    static func kv(_ k: String, _ v: String) -> KeyValue {
        var kv = KeyValue()
        kv.key = k
        kv.value.stringValue = v
        return kv
    }

    static func kv(_ k: String, int v: Int64) -> KeyValue {
        var kv = KeyValue()
        kv.key = k
        kv.value.intValue = v
        return kv
    }

    static func kv(_ k: String, double v: Double) -> KeyValue {
        var kv = KeyValue()
        kv.key = k
        kv.value.doubleValue = v
        return kv
    }

    static func bytes(_ v: UInt64, _ w: UInt64? = nil) -> Data {
        var out = Data(withUnsafeBytes(of: v.bigEndian) { Array($0) })
        if let w { out.append(contentsOf: withUnsafeBytes(of: w.bigEndian) { Array($0) }) }
        return out
    }

    /// One GenAI chat span of trace `trace` (a non-zero number).
    public static func span(trace: UInt64, id: UInt64, parent: UInt64 = 0, model: String = "gpt-4o-mini", input: Int64 = 100, output: Int64 = 20,
                            durationMs: UInt64 = 300, error: Bool = false, startNanos: UInt64 = 1_763_000_000_000_000_000) -> Span {
        var s = Span()
        s.traceID = bytes(trace &* 0x9E37_79B9_7F4A_7C15 | 1, trace ^ 0x1234_5678)
        s.spanID = bytes(id)
        if parent != 0 { s.parentSpanID = bytes(parent) }
        s.name = "chat \(model)"
        s.kind = .client
        s.startTimeUnixNano = startNanos
        s.endTimeUnixNano = startNanos + durationMs * 1_000_000
        s.attributes = [
            kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"), kv("gen_ai.request.model", model),
            kv("gen_ai.response.model", model),
            kv("gen_ai.usage.input_tokens", int: input), kv("gen_ai.usage.output_tokens", int: output),
        ]
        if error {
            s.status.code = .error
            s.status.message = "upstream 500"
            s.attributes.append(kv("error.type", "500"))
        }
        return s
    }

    public static func request(_ groups: [(service: String, project: String?, spans: [Span])]) -> Request {
        var r = Request()
        for g in groups {
            var rs = Opentelemetry_Proto_Trace_V1_ResourceSpans()
            rs.resource.attributes = [kv("service.name", g.service)]
            if let p = g.project { rs.resource.attributes.append(kv("evalforge.project", p)) }
            var ss = Opentelemetry_Proto_Trace_V1_ScopeSpans()
            ss.scope.name = "evalforge-sdk"
            ss.scope.version = "1.0"
            ss.spans = g.spans
            rs.scopeSpans = [ss]
            r.resourceSpans.append(rs)
        }
        return r
    }

    /// Typical requests: a two-span trace, an error, a rich span (messages, events, tool call,
    /// cost, nested values, every usage key), two projects in one request, an agent trace.
    public static func requests() -> [(String, Request)] {
        var out: [(String, Request)] = []
        out.append(("simple", request([("svc", nil, [span(trace: 1, id: 1), span(trace: 1, id: 2, parent: 1, model: "gpt-4o")])])))
        out.append(("error", request([("svc", "proj-a", [span(trace: 2, id: 1, durationMs: 12_000, error: true)])])))

        var rich = span(trace: 3, id: 7, model: "claude-sonnet-4", input: 1200, output: 340)
        rich.attributes += [
            kv("gen_ai.provider.name", "anthropic"),
            kv("gen_ai.usage.cache_read.input_tokens", int: 800), kv("gen_ai.usage.cache_creation.input_tokens", int: 50),
            kv("gen_ai.usage.reasoning.output_tokens", int: 12),
            kv("gen_ai.request.temperature", double: 0.2), kv("gen_ai.request.max_tokens", int: 1024), kv("gen_ai.request.top_p", double: 0.9),
            kv("gen_ai.response.finish_reasons", "[\"stop\"]"), kv("gen_ai.response.id", "msg_01"),
            kv("gen_ai.conversation.id", "conv-9"), kv("gen_ai.response.time_to_first_chunk", double: 0.42),
            kv("gen_ai.input.messages", #"[{"role":"user","parts":[{"type":"text","content":"Hello"}]}]"#),
            kv("gen_ai.output.messages", #"[{"role":"assistant","parts":[{"type":"text","content":"Hi!"}],"finish_reason":"stop"}]"#),
            kv("gen_ai.system_instructions", #"[{"type":"text","content":"Be brief."}]"#),
            kv("evalforge.cost.usd", double: 0.0123), kv("evalforge.tags", "prod,beta"), kv("evalforge.metadata.user", "u-1"),
            kv("session.id", "s-1"), kv("user.id", "u-1"),
        ]
        var nested = KeyValue()
        nested.key = "nested"
        var list = Opentelemetry_Proto_Common_V1_ArrayValue()
        list.values = [.init(), .init(), .init()]
        list.values[0].stringValue = "a"
        list.values[1].doubleValue = 1.5
        list.values[2].boolValue = true
        nested.value.arrayValue = list
        rich.attributes.append(nested)
        var event = Opentelemetry_Proto_Trace_V1_Span.Event()
        event.name = "gen_ai.choice"
        event.timeUnixNano = 1_763_000_000_100_000_000
        event.attributes = [kv("index", int: 0)]
        rich.events = [event]
        var link = Opentelemetry_Proto_Trace_V1_Span.Link()
        link.traceID = bytes(9, 9)
        link.spanID = bytes(9)
        rich.links = [link]
        out.append(("rich", request([("chat-api", "proj-b", [rich])])))

        out.append(("two-projects", request([("svc-a", "proj-a", [span(trace: 4, id: 1)]), ("svc-b", "proj-b", [span(trace: 5, id: 1, model: "gpt-4.1")])])))

        var agent = span(trace: 6, id: 1, model: "gpt-4o")
        agent.name = "invoke_agent planner"
        agent.attributes[0] = kv("gen_ai.operation.name", "invoke_agent")
        agent.attributes.append(kv("gen_ai.agent.name", "planner"))
        var tool = span(trace: 6, id: 2, parent: 1)
        tool.name = "execute_tool search"
        tool.attributes = [kv("gen_ai.operation.name", "execute_tool"), kv("gen_ai.tool.name", "search"), kv("gen_ai.tool.call.id", "call_1")]
        var plain = span(trace: 6, id: 3, parent: 1)
        plain.name = "GET /db"
        plain.attributes = [kv("http.method", "GET")]
        out.append(("agent", request([("agent", nil, [agent, tool, plain, span(trace: 6, id: 4, parent: 2, model: "gpt-4o-mini")])])))
        return out
    }
}

extension OTLPSeeds {
    /// The request as OTLP/JSON: proto3 JSON with trace and span ids as hex (proto3 JSON has base64).
    public static func otlpJSON(_ r: Request) throws -> [UInt8] {
        let object = try JSONSerialization.jsonObject(with: Data(try r.jsonString().utf8))
        let data = try JSONSerialization.data(withJSONObject: hexIDs(object), options: [.sortedKeys])
        return Array(data)
    }

    private static func hexIDs(_ v: Any) -> Any {
        if let list = v as? [Any] { return list.map(hexIDs) }
        guard var o = v as? [String: Any] else { return v }
        for (k, value) in o {
            if ["traceId", "spanId", "parentSpanId"].contains(k), let b64 = value as? String, let bytes = Data(base64Encoded: b64) {
                o[k] = bytes.map { String(format: "%02x", $0) }.joined()
            } else {
                o[k] = hexIDs(value)
            }
        }
        return o
    }
}
