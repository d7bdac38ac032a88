import EvalForgeCore
import EvalForgeIngest
import EvalForgeModel
import EvalForgeOTLP
import Foundation
import IngestOracle
import Testing

@Suite("GenAI normalization across instrumentations")
struct NormalizerTests {
    let resource = ResourceInfo(service: "svc", project: "p")

    func span(_ attrs: [Opentelemetry_Proto_Common_V1_KeyValue]) -> Opentelemetry_Proto_Trace_V1_Span {
        var s = SpanFactory.span(trace: SpanFactory.traceID(), id: 1)
        s.attributes = attrs
        return s
    }

    func double(_ k: String, _ v: Double) -> Opentelemetry_Proto_Common_V1_KeyValue {
        var kv = Opentelemetry_Proto_Common_V1_KeyValue()
        kv.key = k
        kv.value.doubleValue = v
        return kv
    }

    func attr(_ s: Opentelemetry_Proto_Trace_V1_Span, _ k: String) -> Opentelemetry_Proto_Common_V1_AnyValue? {
        s.attributes.first { $0.key == k }?.value
    }

    @Test("the wire key table finds exactly its keys: every length, colliding first and last bytes, keys inside a larger buffer")
    func wireKeyTable() {
        let keys = ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "abcd", "abcde", "x_long_key_aaaaaaaaaaaaaaaa_y", "x_long_key_bbbbbbbbbbbbbbbb_y"]
        let table = WireKeyTable(keys.enumerated().map { ($1, $0) } + [("abcd", 99)])  // a repeated key keeps its first value
        let buffer = Array("..".utf8) + keys.flatMap { Array($0.utf8) } + Array("..".utf8)
        buffer.withUnsafeBytes { b in
            var at = 2
            for (i, k) in keys.enumerated() {
                #expect(table.lookup(b, at..<(at + k.utf8.count)) == i, "\(k)")
                #expect(table.lookup(b, at..<(at + k.utf8.count - 1)) == (k == "abcde" ? 2 : nil), "prefix of \(k)")
                at += k.utf8.count
            }
            #expect(table.lookup(b, 0..<3) == nil)  // under 4 bytes
            #expect(table.lookup(b, (b.count - 2)..<(b.count + 5)) == nil)  // past the end
        }
        let other = Array("x_long_key_cccccccccccccccc_y".utf8)
        other.withUnsafeBytes { #expect(table.lookup($0, 0..<$0.count) == nil) }
    }

    @Test("OpenLLMetry: deprecated gen_ai names, prompts and completions")
    func openLLMetry() throws {
        var s = span([
            SpanFactory.kv("gen_ai.system", "Anthropic"), SpanFactory.kv("llm.request.type", "chat"),
            SpanFactory.kv("gen_ai.request.model", "claude-haiku-4-5"), SpanFactory.kv("gen_ai.response.model", "claude-haiku-4-5-20251001"),
            SpanFactory.kv("gen_ai.usage.prompt_tokens", 10), SpanFactory.kv("gen_ai.usage.completion_tokens", 20),
            SpanFactory.kv("gen_ai.usage.cache_read_input_tokens", 1000), SpanFactory.kv("gen_ai.usage.cache_creation_input_tokens", 200),
            SpanFactory.kv("gen_ai.prompt.0.role", "user"), SpanFactory.kv("gen_ai.prompt.0.content", "hi \"there\""),
            SpanFactory.kv("gen_ai.completion.0.role", "assistant"), SpanFactory.kv("gen_ai.completion.0.content", "hello"),
            SpanFactory.kv("llm.user", "u-7"),
        ])
        let f = try #require(GenAINormalizer().normalize(&s, resource: resource))
        #expect(f.provider == "anthropic" && f.operation == "chat" && f.isLLMCall)
        // Anthropic's input excluded the cache: summed into input.
        #expect(f.usage.input == 1210 && f.usage.output == 20 && f.usage.cacheRead == 1000 && f.usage.cacheCreation == 200)
        #expect(attr(s, "gen_ai.provider.name")?.stringValue == "anthropic")
        #expect(attr(s, "gen_ai.usage.input_tokens")?.intValue == 1210)
        #expect(attr(s, "gen_ai.system") == nil && attr(s, "gen_ai.usage.prompt_tokens") == nil)
        #expect(attr(s, "user.id")?.stringValue == "u-7")
        let messages = try #require(attr(s, "gen_ai.input.messages")?.stringValue)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(messages.utf8)) as? [[String: Any]])
        #expect(parsed.first?["role"] as? String == "user")
        #expect(((parsed.first?["parts"] as? [[String: Any]])?.first?["content"] as? String) == "hi \"there\"")
        let expected = (10 * 1.0 + 1000 * 0.10 + 200 * 1.25 + 20 * 5.0) / 1_000_000
        #expect(abs((f.costUSD ?? 0) - expected) < 1e-12)
    }

    @Test("OpenInference: llm.* attributes and span kinds")
    func openInference() throws {
        var s = span([
            SpanFactory.kv("openinference.span.kind", "LLM"), SpanFactory.kv("llm.provider", "openai"), SpanFactory.kv("llm.system", "openai"),
            SpanFactory.kv("llm.model_name", "gpt-4o-mini"), SpanFactory.kv("llm.token_count.prompt", 500), SpanFactory.kv("llm.token_count.completion", 50),
            SpanFactory.kv("llm.token_count.prompt_details.cache_read", 128), SpanFactory.kv("llm.token_count.completion_details.reasoning", 5),
            SpanFactory.kv("llm.input_messages.0.message.role", "system"), SpanFactory.kv("llm.input_messages.0.message.content", "be brief"),
            SpanFactory.kv("llm.input_messages.1.message.role", "user"), SpanFactory.kv("llm.input_messages.1.message.content", "hi"),
            SpanFactory.kv("session.id", "sess-1"),
        ])
        let f = try #require(GenAINormalizer().normalize(&s, resource: resource))
        #expect(f.provider == "openai" && f.model == "gpt-4o-mini" && f.operation == "chat")
        #expect(f.usage == TokenUsage(input: 500, output: 50, cacheRead: 128, reasoning: 5))
        #expect(attr(s, "gen_ai.request.model")?.stringValue == "gpt-4o-mini")
        #expect(attr(s, "gen_ai.usage.cache_read.input_tokens")?.intValue == 128)
        #expect(attr(s, "gen_ai.input.messages")?.stringValue.contains("be brief") == true)
        var tool = span([SpanFactory.kv("openinference.span.kind", "TOOL"), SpanFactory.kv("tool.name", "search")])
        let t = try #require(GenAINormalizer().normalize(&tool, resource: resource))
        #expect(t.operation == "execute_tool" && !t.isLLMCall)
    }

    @Test("current OTel names are kept as they are; a span's own cost wins")
    func currentConventions() throws {
        var s = span([
            SpanFactory.kv("gen_ai.operation.name", "chat"), SpanFactory.kv("gen_ai.provider.name", "openai"),
            SpanFactory.kv("gen_ai.request.model", "gpt-4o"), SpanFactory.kv("gen_ai.usage.input_tokens", 100),
            SpanFactory.kv("gen_ai.usage.output_tokens", 10), double("evalforge.cost.usd", 0.5), double("gen_ai.response.time_to_first_chunk", 0.25),
        ])
        let before = s.attributes.count
        let f = try #require(GenAINormalizer().normalize(&s, resource: resource))
        #expect(s.attributes.count == before)
        #expect(f.costUSD == 0.5 && f.timeToFirstChunkSeconds == 0.25)
    }

    @Test("strings and doubles where integers belong; totals without a prompt count")
    func sloppyTypes() throws {
        var s = span([
            SpanFactory.kv("gen_ai.system", "openai"), SpanFactory.kv("gen_ai.request.model", "gpt-4o"),
            SpanFactory.kv("gen_ai.usage.completion_tokens", "12"), SpanFactory.kv("llm.usage.total_tokens", 112),
        ])
        let f = try #require(GenAINormalizer().normalize(&s, resource: resource))
        #expect(f.usage.input == 100 && f.usage.output == 12)
    }
}
