import EvalForgeCore
import EvalForgeModel
import Foundation
import Testing

@testable import Collector

/// The collector costs spans from the operator's price file (`--price-file`), at the price of each
/// span's own day.
@Suite("Collector: the price file")
struct CollectorPriceFileTests {
    static let file = """
        {"version": "ops-1", "models": [
          {"model": "house-model-7b", "input": 1, "output": 1, "source": "contract A"},
          {"model": "house-model-7b", "input": 4, "output": 4, "valid_from": "2026-01-01", "source": "contract B"}
        ], "aliases": {"house-model-7b-2025-10-01": "house-model-7b"}}
        """

    @Test("spans without a cost are costed from the file at their day's price; unlisted names stay unknown")
    func costedFromFile() async throws {
        let path = NSTemporaryDirectory() + "prices-\(UUID().uuidString).json"
        try Self.file.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let table = try PriceFile.load(path: path)
        #expect(table.version == PriceTable.builtInVersion + "+ops-1")
        let p = try CollectorPipeline(configuration: CollectorPipelineTests.config { $0.priceTable = table })
        let t = SpanFactory.traceID()
        let before: UInt64 = 1_763_000_000_000_000_000  // 2025-11-13
        let after: UInt64 = 1_767_312_000_000_000_000  // 2026-01-02
        _ = try await CollectorPipelineTests.ingest(p, SpanFactory.request([
            SpanFactory.span(trace: t, id: 1, model: "house-model-7b", input: 1_000_000, output: 0, startNanos: before),
            SpanFactory.span(trace: t, id: 2, model: "house-model-7b-2025-10-01", input: 1_000_000, output: 0, startNanos: after),
            SpanFactory.span(trace: t, id: 3, model: "house-model-7b-2025-11-01", input: 10, output: 10, startNanos: after),
            SpanFactory.span(trace: t, id: 4, model: "gpt-4o", input: 1_000_000, output: 0, startNanos: after),
        ]))
        let b = try #require(p.seal(force: true))
        func cost(_ id: UInt64) -> Double? {
            let span = b.kept.first { $0.span.spanID == Data(withUnsafeBytes(of: id.bigEndian) { Array($0) }) }?.span
            return span?.attributes.first { $0.key == GenAIKeys.costUSD }?.value.doubleValue
        }
        #expect(cost(1) == 1.0)  // the price of its day
        #expect(cost(2) == 4.0)  // an alias from the file, the newer price
        #expect(cost(3) == nil)  // an unlisted snapshot: unknown, never the base model's price
        #expect(cost(4) == 2.5)  // built-in prices stay
        let unknown = b.kept.first { $0.span.name == "chat house-model-7b-2025-11-01" }?.span
        #expect(unknown?.attributes.contains { $0.key == GenAIKeys.costUnknown } == true)
    }
}
