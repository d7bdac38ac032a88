import EvalForgeCore

/// Encodes buffered span records straight into an OTLP `ExportTraceServiceRequest` (protobuf),
/// without building intermediate message objects. Field numbers follow Protos/opentelemetry.
///
/// Runs on the export task, never on the recording thread. Cost is computed here from the price
/// table; content is redacted and capped here, before it leaves the process.
struct OTLPSpanEncoder {
    let resourceAttributes: [(String, String)]
    let priceTable: PriceTable
    let redactor: ContentRedactor?
    let scopeName = "evalforge-swift"
    let scopeVersion = EvalForge.version

    private var span = ProtobufWriter()
    private var scope = ProtobufWriter()
    private var kv = ProtobufWriter()
    private var costCache: [String: [DatedPrice]?] = [:]

    init(configuration c: EvalForge.Configuration) {
        var attrs: [(String, String)] = [
            ("service.name", c.serviceName),
            ("telemetry.sdk.name", "evalforge"),
            ("telemetry.sdk.language", "swift"),
            ("telemetry.sdk.version", EvalForge.version),
            (GenAIKeys.priceTable, c.cost.priceTable.merging(c.cost.overrides).version),
        ]
        if let p = c.project { attrs.append((GenAIKeys.project, p)) }
        for (k, v) in c.resourceAttributes.sorted(by: { $0.key < $1.key }) where k != "service.name" { attrs.append((k, v)) }
        resourceAttributes = attrs
        priceTable = c.cost.priceTable.merging(c.cost.overrides)
        redactor = c.content.capture ? ContentRedactor(c.content) : nil
        span.bytes.reserveCapacity(2048)
        kv.bytes.reserveCapacity(256)
    }

    /// The request body for `records`.
    mutating func encode(_ records: ArraySlice<SpanRecord>) -> [UInt8] {
        scope.bytes.removeAll(keepingCapacity: true)
        // InstrumentationScope
        var scopeMsg = ProtobufWriter()
        scopeMsg.stringField(1, scopeName)
        scopeMsg.stringField(2, scopeVersion)
        scope.messageField(1, scopeMsg.bytes)
        // Borrowed in place: copying a record would retain and release its request and strings on
        // this thread, on the same cache lines the recording threads retain them on.
        for i in records.indices {
            encodeSpan(records[i])
            scope.messageField(2, span.bytes)
        }
        var resource = ProtobufWriter()
        for (k, v) in resourceAttributes {
            kv.bytes.removeAll(keepingCapacity: true)
            kv.stringField(1, k)
            let valueLen = 1 + ProtobufWriter.varintSize(UInt64(v.utf8.count)) + v.utf8.count
            kv.messageHeader(2, length: valueLen)
            kv.stringField(1, v)
            resource.messageField(1, kv.bytes)
        }
        var resourceSpans = ProtobufWriter()
        resourceSpans.bytes.reserveCapacity(scope.bytes.count + resource.bytes.count + 16)
        resourceSpans.messageField(1, resource.bytes)
        resourceSpans.messageField(2, scope.bytes)
        var request = ProtobufWriter()
        request.bytes.reserveCapacity(resourceSpans.bytes.count + 8)
        request.messageField(1, resourceSpans.bytes)
        return request.bytes
    }

    private mutating func encodeSpan(_ r: borrowing SpanRecord) {
        span.bytes.removeAll(keepingCapacity: true)
        withUnsafeBytes(of: (r.traceID.high.bigEndian, r.traceID.low.bigEndian)) { span.bytesField(1, $0) }
        withUnsafeBytes(of: r.spanID.bigEndian) { span.bytesField(2, $0) }
        if r.parentSpanID != 0 {
            withUnsafeBytes(of: r.parentSpanID.bigEndian) { span.bytesField(4, $0) }
        }
        span.stringField(5, r.spanName)
        span.varintField(6, UInt64(r.kind.rawValue))
        span.fixed64Field(7, r.startUnixNanos)
        span.fixed64Field(8, r.endUnixNanos)

        let q = r.request
        if !q.operation.name.isEmpty { attr(GenAIKeys.operationName, q.operation.name) }
        if !q.provider.isEmpty { attr(GenAIKeys.providerName, q.provider) }
        if !q.model.isEmpty { attr(GenAIKeys.requestModel, q.model) }
        if let v = r.responseModel { attr(GenAIKeys.responseModel, v) }
        if let v = r.responseID { attr(GenAIKeys.responseID, v) }
        // One reason (the usual case) is encoded without building an array.
        if let one = r.singleFinishReason {
            attr(GenAIKeys.responseFinishReasons, CollectionOfOne(one))
        } else if r.hasFinishReasons {
            attr(GenAIKeys.responseFinishReasons, r.finishReasons)
        }
        let u = r.usage
        if let v = u.input { attr(GenAIKeys.usageInputTokens, Int64(v)) }
        if let v = u.output { attr(GenAIKeys.usageOutputTokens, Int64(v)) }
        if let v = u.cacheRead { attr(GenAIKeys.usageCacheReadInputTokens, Int64(v)) }
        if let v = u.cacheCreation { attr(GenAIKeys.usageCacheCreationInputTokens, Int64(v)) }
        if let v = u.reasoning { attr(GenAIKeys.usageReasoningOutputTokens, Int64(v)) }
        if let v = q.temperature { attr(GenAIKeys.requestTemperature, v) }
        if let v = q.maxTokens { attr(GenAIKeys.requestMaxTokens, Int64(v)) }
        if let v = q.topP { attr(GenAIKeys.requestTopP, v) }
        if let v = q.topK { attr(GenAIKeys.requestTopK, Int64(v)) }
        if let v = q.frequencyPenalty { attr(GenAIKeys.requestFrequencyPenalty, v) }
        if let v = q.presencePenalty { attr(GenAIKeys.requestPresencePenalty, v) }
        if !q.stopSequences.isEmpty { attr(GenAIKeys.requestStopSequences, q.stopSequences) }
        if let v = q.seed { attr(GenAIKeys.requestSeed, Int64(v)) }
        if let v = q.choiceCount, v != 1 { attr(GenAIKeys.requestChoiceCount, Int64(v)) }
        // Always on model calls, so "not streamed" is recorded rather than inferred from absence.
        if q.operation.isModelCall { attrBool(GenAIKeys.requestStream, q.stream) }
        if let v = q.serverAddress { attr(GenAIKeys.serverAddress, v) }
        if let v = q.serverPort { attr(GenAIKeys.serverPort, Int64(v)) }
        if let v = q.conversationID { attr(GenAIKeys.conversationID, v) }
        if let v = q.userID { attr(GenAIKeys.userID, v) }
        if let v = q.sessionID { attr(GenAIKeys.sessionID, v) }
        if !q.tags.isEmpty { attr(GenAIKeys.tags, q.tags) }
        for (k, v) in q.metadata { attr(GenAIKeys.metadataPrefix + k, v) }
        if r.firstChunkNanos != 0 { attr(GenAIKeys.timeToFirstChunk, Double(r.firstChunkNanos) / 1e9) }
        if q.operation.isModelCall {
            // A cost that is not a finite, non-negative number (a user's NaN, an override of inf) is unknown.
            if let cost = r.costUSD ?? cost(r), cost.isFinite, cost >= 0 {
                attr(GenAIKeys.costUSD, cost)
            } else {
                attrBool(GenAIKeys.costUnknown, true)
            }
        }
        if let t = r.errorType { attr(GenAIKeys.errorType, t) }
        if let redactor {
            var truncated = false
            if let s = r.systemInstructions { attr(GenAIKeys.systemInstructions, redactor.apply(s, truncated: &truncated)) }
            if let s = r.input { attr(GenAIKeys.inputMessages, redactor.apply(s, truncated: &truncated)) }
            if let s = r.output { attr(GenAIKeys.outputMessages, redactor.apply(s, truncated: &truncated)) }
            if truncated { attrBool(GenAIKeys.contentTruncated, true) }
        }
        for (k, v) in r.attributes {
            switch v {
            case .string(let s): attr(k, s)
            case .int(let i): attr(k, Int64(i))
            case .double(let d): attr(k, d)
            case .bool(let b): attrBool(k, b)
            case .stringArray(let a): attr(k, a)
            }
        }
        // Status
        if r.isError {
            var status = ProtobufWriter()
            if let m = r.errorMessage { status.stringField(2, m) }
            status.varintField(3, 2)
            span.messageField(15, status.bytes)
        }
        // W3C flags: sampled.
        span.fixed32Field(16, 0x100 | 0x01)
    }

    private mutating func cost(_ r: SpanRecord) -> Double? {
        let model = r.responseModel ?? r.request.model
        let history: [DatedPrice]?
        if let cached = costCache[model] {
            history = cached
        } else {
            history = priceTable.history(for: model)
            if costCache.count < 4096 { costCache[model] = history }
        }
        // The price in force when the span started.
        guard let history, let price = PriceTable.price(in: history, atUnixNanos: r.startUnixNanos) else { return nil }
        return PriceTable.cost(price: price, usage: r.usage)
    }

    // MARK: KeyValue writers (KeyValue{1: key, 2: AnyValue{...}})

    private mutating func attr(_ key: String, _ value: String) {
        let n = value.utf8.count
        let anyLen = 1 + ProtobufWriter.varintSize(UInt64(n)) + n
        keyValueHeader(key, valueLength: anyLen)
        span.stringField(1, value)
    }

    private mutating func attr(_ key: String, _ value: Int64) {
        let anyLen = 1 + ProtobufWriter.varintSize(UInt64(bitPattern: value))
        keyValueHeader(key, valueLength: anyLen)
        span.varintField(3, UInt64(bitPattern: value))
    }

    private mutating func attr(_ key: String, _ value: Double) {
        keyValueHeader(key, valueLength: 9)
        span.doubleField(4, value)
    }

    private mutating func attrBool(_ key: String, _ value: Bool) {
        keyValueHeader(key, valueLength: 2)
        span.varintField(2, value ? 1 : 0)
    }

    private mutating func attr<Values: Collection<String>>(_ key: String, _ values: Values) {
        // AnyValue{5: ArrayValue{1: AnyValue{1: string}...}}
        var arrayLen = 0
        for v in values {
            let n = v.utf8.count
            let inner = 1 + ProtobufWriter.varintSize(UInt64(n)) + n
            arrayLen += 1 + ProtobufWriter.varintSize(UInt64(inner)) + inner
        }
        let anyLen = 1 + ProtobufWriter.varintSize(UInt64(arrayLen)) + arrayLen
        keyValueHeader(key, valueLength: anyLen)
        span.messageHeader(5, length: arrayLen)
        for v in values {
            let n = v.utf8.count
            span.messageHeader(1, length: 1 + ProtobufWriter.varintSize(UInt64(n)) + n)
            span.stringField(1, v)
        }
    }

    /// Writes the span's `attributes` tag, the KeyValue length, the key, and the AnyValue header;
    /// the caller then writes the AnyValue's single field.
    @inline(__always) private mutating func keyValueHeader(_ key: String, valueLength: Int) {
        let k = key.utf8.count
        let kvLen = 1 + ProtobufWriter.varintSize(UInt64(k)) + k + 1 + ProtobufWriter.varintSize(UInt64(valueLength)) + valueLength
        span.messageHeader(9, length: kvLen)
        span.stringField(1, key)
        span.messageHeader(2, length: valueLength)
    }
}
