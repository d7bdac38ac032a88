import EvalForgeCore
import Foundation
import Testing

@testable import EvalForgeSDK

@Suite("Prices: explicit aliases, sources, validity dates, price files")
struct PriceFileTests {
    @Test("dated snapshots are priced only through explicit aliases; an unlisted date is unknown")
    func explicitAliases() {
        let t = PriceTable.builtIn
        #expect(t.price(for: "gpt-4o-2024-08-06")?.input == 2.50)
        #expect(t.price(for: "gpt-4o-2024-05-13")?.input == 5.00)  // its own launch price, not gpt-4o's
        #expect(t.price(for: "gpt-4o-2031-01-01") == nil)
        #expect(t.price(for: "claude-sonnet-4-5-20991231") == nil)
        #expect(t.price(for: "o1-pro") == nil && t.price(for: "o1") != nil)
        // Every alias leads to a listed model; every built-in price names its source.
        for (alias, target) in t.aliasNames { #expect(t.price(for: target) != nil, "\(alias) → \(target)") }
        for (model, prices) in t.entries {
            #expect(!prices.isEmpty && prices.allSatisfy { $0.source.hasPrefix("https://") }, "\(model)")
        }
    }

    static let file = """
        {"version": "acme-7", "models": [
          {"model": "acme-llm", "input": 1, "output": 2, "source": "contract 1"},
          {"model": "acme-llm", "input": 3, "output": 6, "valid_from": "2026-06-01", "source": "contract 2"},
          {"model": "openai/gpt-4o", "input": 2, "output": 8, "valid_from": "2026-03-01"}
        ], "aliases": {"acme-llm-2026-05": "acme-llm", "gpt-4o-latest-snapshot": "gpt-4o"}}
        """

    @Test("a price file adds dated prices; a span takes the price of its day")
    func validityDates() throws {
        let t = try PriceFile.parse(Data(Self.file.utf8))
        #expect(t.version == PriceTable.builtInVersion + "+acme-7")
        let may = try #require(PriceFile.unixNanos(ofDay: "2026-05-31"))
        let june = try #require(PriceFile.unixNanos(ofDay: "2026-06-01"))
        #expect(june - may == 86_400 * 1_000_000_000)
        #expect(PriceFile.unixNanos(ofDay: "1970-01-01") == 0)
        #expect(PriceFile.unixNanos(ofDay: "2024-02-29") == 1_709_164_800 * 1_000_000_000)
        #expect(t.price(for: "acme-llm", atUnixNanos: may)?.input == 1)
        #expect(t.price(for: "acme-llm", atUnixNanos: june)?.input == 3)
        #expect(t.price(for: "acme-llm")?.input == 3)  // current: the newest
        #expect(t.price(for: "acme-llm-2026-05", atUnixNanos: may)?.output == 2)
        // The built-in gpt-4o price stays for older spans; the file's applies from its day.
        let feb = try #require(PriceFile.unixNanos(ofDay: "2026-02-01"))
        #expect(t.price(for: "gpt-4o", atUnixNanos: feb)?.input == 2.5)
        #expect(t.price(for: "gpt-4o-2024-08-06", atUnixNanos: june)?.input == 2)
        #expect(t.price(for: "gpt-4o-latest-snapshot", atUnixNanos: june)?.input == 2)
        #expect(t.history(for: "acme-llm")?.map(\.source) == ["contract 1", "contract 2"])
        // Only-dated history: a span older than the first price has no price.
        let dated = try PriceFile.parse(Data(#"{"version":"d","models":[{"model":"new-llm","input":1,"output":1,"valid_from":"2026-06-01"}]}"#.utf8))
        #expect(dated.price(for: "new-llm", atUnixNanos: may) == nil)
        #expect(dated.price(for: "new-llm", atUnixNanos: june)?.input == 1)
    }

    @Test("a bad price file is refused with what is wrong and where", arguments: [
        (#"{"models": []}"#, "version"),
        (#"{"version": "v", "models": [{"model": "m", "input": -1, "output": 1}]}"#, "models[0].input"),
        (#"{"version": "v", "models": [{"model": "m", "input": 1, "output": 1e300}]}"#, "models[0].output"),
        (#"{"version": "v", "models": [{"model": "m", "input": 1, "output": "2"}]}"#, "models[0].output"),
        (#"{"version": "v", "models": [{"model": "m", "input": 1, "output": 1, "valid_from": "2026-02-30"}]}"#, "models[0].valid_from"),
        (#"{"version": "v", "models": [{"model": "m", "input": 1, "output": 1, "valid_from": "3000-01-01"}]}"#, "models[0].valid_from"),
        (#"{"version": "v", "models": [{"model": "m", "input": 1, "output": 1}, {"model": "M", "input": 2, "output": 2}]}"#, "models[1]"),
        (#"{"version": "v", "models": [{"model": "", "input": 1, "output": 1}]}"#, "models[0].model"),
        (#"{"version": "v", "models": [], "aliases": {"x": "no-such-model"}}"#, "aliases['x']"),
        (#"{"version": "v w", "models": []}"#, "version"),
        ("not json", "JSON"),
    ])
    func refused(_ json: String, _ named: String) {
        #expect {
            _ = try PriceFile.parse(Data(json.utf8))
        } throws: { error in
            (error as? PriceFileError)?.message.contains(named) == true
        }
    }

    @Test("the SDK costs spans from a price file and records its version; EVALFORGE_PRICE_FILE loads it")
    func sdkUsesPriceFile() async throws {
        let path = NSTemporaryDirectory() + "prices-\(UUID().uuidString).json"
        try Self.file.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let env = EvalForge.Configuration.default.applyingEnvironment(["EVALFORGE_PRICE_FILE": path])
        #expect(env.problems.isEmpty && env.configuration.cost.priceTable.version.hasSuffix("+acme-7"))
        let bad = EvalForge.Configuration.default.applyingEnvironment(["EVALFORGE_PRICE_FILE": path + ".missing"])
        #expect(bad.problems.count == 1 && bad.configuration.cost.priceTable == PriceTable.builtIn)

        let receiver = OTLPTestReceiver()
        try await receiver.withRunning { url in
            var c = env.configuration
            c.exporter.endpoint = url
            let pipeline = EvalForge.Pipeline(configuration: c)
            try await EvalForge.withLLMCall(LLMRequest(provider: "acme", model: "acme-llm"), pipeline: pipeline) { span in
                span.usage = TokenUsage(input: 1_000_000, output: 1_000_000)
            }
            await pipeline.forceFlush()
            let (resource, span) = try #require(receiver.spans.first)
            // Recorded after 2026-06-01: the newer price, 3 + 6 USD.
            #expect(span.double(GenAIKeys.costUSD) == 9)
            #expect(resource.attributes.first { $0.key == GenAIKeys.priceTable }?.value.stringValue == PriceTable.builtInVersion + "+acme-7")
        }
    }
}
