extension EvalForge {
    /// Not API: measures the OTLP encoding of `spans` typical chat spans (batches of
    /// `maxBatchSpans`) for `scripts/bench sdk`. Returns nanoseconds and bytes per span.
    public static func _measureEncode(spans: Int, configuration: Configuration = .default) -> (nsPerSpan: Double, bytesPerSpan: Double) {
        var request = LLMRequest(provider: LLMProvider.openAI, model: "gpt-4o-mini")
        request.temperature = 0.7
        request.maxTokens = 512
        var record = SpanRecord(
            traceID: IDGenerator.traceID(), spanID: IDGenerator.spanID(), parentSpanID: IDGenerator.spanID(),
            kind: .client, name: nil, request: request, startUnixNanos: Clocks.unixNanos())
        record.endUnixNanos = record.startUnixNanos + 350_000_000
        record.responseModel = "gpt-4o-mini-2024-07-18"
        record.responseID = "chatcmpl-AbCdEf0123456789"
        record.finishReasons = ["stop"]
        record.usage = TokenUsage(input: 812, output: 143, cacheRead: 256)
        record.firstChunkNanos = 120_000_000
        let batchSize = max(1, configuration.buffer.maxBatchSpans)
        var batch = [SpanRecord](repeating: record, count: batchSize)
        for i in batch.indices { batch[i].spanID = IDGenerator.spanID() }
        var encoder = OTLPSpanEncoder(configuration: configuration)
        _ = encoder.encode(batch[...])  // warm up
        var bytes = 0
        var done = 0
        let start = Clocks.monotonicNanos()
        while done < spans {
            let n = min(batchSize, spans - done)
            bytes += encoder.encode(batch[0..<n]).count
            done += n
        }
        let elapsed = Clocks.monotonicNanos() - start
        return (Double(elapsed) / Double(max(1, done)), Double(bytes) / Double(max(1, done)))
    }
}
