import EvalForgeCore
import Tracing

extension EvalForge {
    /// How the SDK records, samples, buffers and exports. Start from `.default`, change what you need,
    /// and pass it to `EvalForge.bootstrap(_:)`; `Configuration.fromEnvironment()` applies the
    /// environment variables named on each field.
    public struct Configuration: Sendable {
        /// `service.name` of the exported resource. Env: `OTEL_SERVICE_NAME`. Default: "unknown_service:swift".
        public var serviceName: String = "unknown_service:swift"
        /// Extra resource attributes. Env: `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`). Default: none.
        public var resourceAttributes: [String: String] = [:]
        /// EvalForge project the spans belong to (`evalforge.project` resource attribute). Env: `EVALFORGE_PROJECT`. Default: nil.
        public var project: String? = nil

        public var sampling: Sampling = .default
        public var buffer: Buffer = .default
        public var exporter: Exporter = .default
        public var content: Content = .default
        public var cost: Cost = .default
        /// Finds the parent of a new span in a `ServiceContext` that holds no EvalForge step. Default
        /// (nil): ask the bootstrapped instrument (`InstrumentationSystem`) to inject W3C trace context
        /// and read its `traceparent`, which works with swift-otel and any W3C propagator.
        public var parentResolver: (@Sendable (ServiceContext) -> TraceParent?)? = nil

        public init() {}

        /// The documented defaults, ignoring the environment: for tests, or a service that sets
        /// everything in code. A deployed service usually wants `fromEnvironment()` instead (the same
        /// defaults with the `OTEL_*` / `EVALFORGE_*` variables applied).
        public static let `default` = Configuration()

        /// Head sampling by trace id, with a local rule that keeps errored and slow calls.
        public struct Sampling: Sendable {
            /// Fraction of traces kept, 0...1, decided deterministically from the trace id.
            /// Env: `EVALFORGE_SAMPLE_RATIO`, else `OTEL_TRACES_SAMPLER_ARG` when `OTEL_TRACES_SAMPLER` is
            /// `traceidratio`/`parentbased_traceidratio`. Default: 1.0.
            public var ratio: Double = 1.0
            /// Keep every span that ended with an error whatever the ratio. Env: `EVALFORGE_SAMPLE_KEEP_ERRORS`. Default: true.
            public var keepErrors: Bool = true
            /// Keep every span slower than this whatever the ratio; nil disables. Env: `EVALFORGE_SAMPLE_KEEP_SLOWER_THAN_MS`. Default: 5000 ms.
            public var keepSlowerThan: Duration? = .seconds(5)
            /// Follow an incoming W3C `traceparent` whose `sampled` flag is 0: spans in that trace (and
            /// their children, and the `traceparent` sent downstream) are not sampled, except what
            /// `keepErrors` / `keepSlowerThan` keep. Env: `EVALFORGE_SAMPLE_RESPECT_PARENT`. Default: true.
            public var respectParentSampled: Bool = true
            /// When the local rule (`keepErrors`, `keepSlowerThan`) keeps a span the ratio or the parent
            /// did not sample, keep the other spans of its trace that this process recorded too, so it
            /// does not arrive orphaned. Unsampled spans then wait at the exporter (at most `buffer.maxSpans`
            /// of them, the oldest dropped first) for 10 s (at least two `buffer.flushInterval`s) after
            /// they end; spans of the kept trace that end later are kept while the trace is remembered
            /// (the last 4,096 kept traces, for 10 minutes). Shutdown drops what is still undecided.
            /// Other processes' spans of the trace follow their own sampling. Env:
            /// `EVALFORGE_SAMPLE_KEEP_TRACE`. Default: true.
            public var keepTraceOfKeptSpans: Bool = true
            public init() {}
            public static let `default` = Sampling()
        }

        /// The bounded in-process buffer between recording and export.
        public struct Buffer: Sendable {
            /// Spans held at most; beyond it new spans are dropped and counted. Env: `EVALFORGE_BUFFER_MAX_SPANS`
            /// (or `OTEL_BSP_MAX_QUEUE_SIZE`). Default: 65,536.
            public var maxSpans: Int = 65_536
            /// Spans per export request. Env: `EVALFORGE_BATCH_MAX_SPANS` (or `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`). Default: 2,048.
            public var maxBatchSpans: Int = 2_048
            /// Longest a span waits before export. Env: `EVALFORGE_FLUSH_INTERVAL_MS` (or `OTEL_BSP_SCHEDULE_DELAY`). Default: 1000 ms.
            public var flushInterval: Duration = .seconds(1)
            /// How long shutdown may take to flush. Env: `EVALFORGE_SHUTDOWN_TIMEOUT_MS`. Default: 5000 ms.
            public var shutdownTimeout: Duration = .seconds(5)
            public init() {}
            public static let `default` = Buffer()
        }

        /// OTLP/HTTP protobuf export to the collector.
        public struct Exporter: Sendable {
            /// Collector base URL; `/v1/traces` is appended. Env: `EVALFORGE_COLLECTOR_URL`, else
            /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT`. Default: http://127.0.0.1:4318.
            public var endpoint: String = "http://127.0.0.1:4318/v1/traces"
            /// Extra request headers (e.g. an API key). Env: `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS`
            /// (`k=v,k2=v2`), and `EVALFORGE_API_KEY` sets `Authorization: Bearer …`. Default: none.
            public var headers: [String: String] = [:]
            /// gzip request bodies. Env: `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip`/`none`). Default: false,
            /// as OTel's exporters: the collector runs on the same host, where compressing costs the
            /// service CPU and saves nothing; set it when the collector is across a network.
            public var gzip: Bool = false
            /// Export requests in flight at once (a large buffer drains in parallel batches).
            /// Env: `EVALFORGE_EXPORT_CONCURRENCY`. Default: 2.
            public var maxConcurrentExports: Int = 2
            /// Timeout of one export request. Env: `OTEL_EXPORTER_OTLP_TIMEOUT` (ms). Default: 10,000 ms.
            public var timeout: Duration = .seconds(10)
            /// Attempts per batch before it is dropped and counted. Env: `EVALFORGE_EXPORT_MAX_ATTEMPTS`. Default: 6.
            public var maxAttempts: Int = 6
            /// First retry delay; doubles per attempt with full jitter, capped by `maxBackoff`. Default: 100 ms.
            public var initialBackoff: Duration = .milliseconds(100)
            /// Longest retry delay (a larger Retry-After is honoured up to 60 s). Default: 5 s.
            public var maxBackoff: Duration = .seconds(5)
            /// Consecutive failed requests that open the circuit breaker. Env: `EVALFORGE_BREAKER_THRESHOLD`. Default: 5.
            public var breakerThreshold: Int = 5
            /// How long the breaker stays open before one probe request. Default: 2 s.
            public var breakerCooldown: Duration = .seconds(2)
            public init() {}
            public static let `default` = Exporter()
        }

        /// Capture of prompts and completions.
        public struct Content: Sendable {
            /// Record prompt and completion text (`gen_ai.input.messages`, `gen_ai.output.messages`).
            /// Env: `EVALFORGE_CAPTURE_CONTENT` (also `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`). Default: false.
            public var capture: Bool = false
            /// Built-in masks run before anything leaves the process. Env: `EVALFORGE_REDACT` (comma list of
            /// `emails,apiKeys,cardNumbers`, or `none`). Default: all three.
            public var masks: Set<Mask> = [.emails, .apiKeys, .cardNumbers]
            /// Your own redaction, run after the masks on each captured text.
            public var redact: (@Sendable (String) -> String)? = nil
            /// Bytes kept per captured text; longer text is cut at a character boundary and the span gets
            /// `evalforge.content.truncated = true`. Env: `EVALFORGE_CONTENT_MAX_BYTES`. Default: 16,384.
            public var maxBytes: Int = 16_384
            public init() {}
            public static let `default` = Content()

            public enum Mask: String, Sendable, Hashable, CaseIterable {
                case emails, apiKeys, cardNumbers
            }
        }

        /// Cost computation.
        public struct Cost: Sendable {
            /// The prices costs are computed from: the built-in table, or your price file loaded with
            /// `PriceFile.load(path:)` — the same file the collector and backend take with
            /// `--price-file`, so cost agrees at every stage (docs/sdk.md, "Prices"). A span is costed
            /// at the price in force when it started. Env: `EVALFORGE_PRICE_FILE` (a path). Default: `PriceTable.builtIn`.
            public var priceTable: PriceTable = .builtIn
            /// Price overrides or additions, by model name (USD per million tokens), on top of
            /// `priceTable`, valid since always. Default: none.
            public var overrides: [String: ModelPrice] = [:]
            /// Add `stream_options.include_usage: true` to OpenAI streaming requests that do not set it,
            /// so the stream reports token usage and the span gets a cost. When usage is still missing
            /// (turned off, or a provider that ignores it) the span records `evalforge.cost.unknown`,
            /// never a cost of zero. Env: `EVALFORGE_OPENAI_STREAM_USAGE`. Default: true.
            public var requestStreamUsage: Bool = true
            public init() {}
            public static let `default` = Cost()
        }
    }
}

extension EvalForge.Configuration {
    /// Longest duration any setting takes (an hour): larger values are pinned to it, so no timer,
    /// deadline or URLSession timeout can overflow a conversion.
    public static let maxDuration: Duration = .seconds(3600)
    /// Most spans the buffer can be configured to hold.
    public static let maxBufferSpans = 16 << 20

    /// `self` with every number pinned into a range the pipeline can run with: counts at least 1 (and
    /// the buffer at most `maxBufferSpans`, a batch at most the buffer), durations within
    /// 0...`maxDuration` (intervals and timeouts at least 1 ms), the ratio within 0...1 (NaN reads as 1),
    /// content bytes within 0...64 MiB. `Pipeline` applies it to whatever it is given.
    public func bounded() -> Self {
        var c = self
        let durations = Duration.zero ... Self.maxDuration
        let positive = Duration.milliseconds(1) ... Self.maxDuration
        c.sampling.ratio = c.sampling.ratio.isNaN ? 1 : min(1, max(0, c.sampling.ratio))
        c.sampling.keepSlowerThan = c.sampling.keepSlowerThan?.clamped(to: durations)
        c.buffer.maxSpans = min(max(1, c.buffer.maxSpans), Self.maxBufferSpans)
        c.buffer.maxBatchSpans = min(max(1, c.buffer.maxBatchSpans), c.buffer.maxSpans)
        c.buffer.flushInterval = c.buffer.flushInterval.clamped(to: positive)
        c.buffer.shutdownTimeout = c.buffer.shutdownTimeout.clamped(to: durations)
        c.exporter.maxConcurrentExports = min(max(1, c.exporter.maxConcurrentExports), 64)
        c.exporter.timeout = c.exporter.timeout.clamped(to: positive)
        c.exporter.maxAttempts = min(max(1, c.exporter.maxAttempts), 1000)
        c.exporter.initialBackoff = c.exporter.initialBackoff.clamped(to: positive)
        c.exporter.maxBackoff = c.exporter.maxBackoff.clamped(to: positive)
        c.exporter.breakerThreshold = min(max(1, c.exporter.breakerThreshold), 1_000_000)
        c.exporter.breakerCooldown = c.exporter.breakerCooldown.clamped(to: durations)
        c.content.maxBytes = min(max(0, c.content.maxBytes), 64 << 20)
        return c
    }

    /// `self` with the documented environment variables applied. Bad values are reported through
    /// `problems` (variable, value, what was expected) and leave the field unchanged.
    public func applyingEnvironment(_ env: [String: String]) -> (configuration: Self, problems: [String]) {
        var c = self
        var problems: [String] = []
        func int(_ key: String) -> Int? {
            guard let raw = env[key] else { return nil }
            guard let v = Int(trim(raw)), v >= 0 else {
                problems.append("\(key)=\(raw): expected a non-negative integer")
                return nil
            }
            return v
        }
        /// Milliseconds up to `maxDuration`; larger values are reported and ignored.
        func millis(_ key: String) -> Int? {
            guard let v = int(key) else { return nil }
            guard v <= 3_600_000 else {
                problems.append("\(key)=\(v): expected at most 3600000 (one hour)")
                return nil
            }
            return v
        }
        func bool(_ key: String) -> Bool? {
            guard let raw = env[key] else { return nil }
            switch raw.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default:
                problems.append("\(key)=\(raw): expected true or false")
                return nil
            }
        }
        func pairs(_ key: String) -> [String: String] {
            guard let raw = env[key] else { return [:] }
            var out: [String: String] = [:]
            for item in raw.split(separator: ",") {
                let kv = item.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else {
                    problems.append("\(key): '\(item)' is not key=value")
                    continue
                }
                out[trim(kv[0])] = percentDecoded(trim(kv[1]))
            }
            return out
        }

        if let v = env["OTEL_SERVICE_NAME"], !v.isEmpty { c.serviceName = v }
        for (k, v) in pairs("OTEL_RESOURCE_ATTRIBUTES") {
            if k == "service.name", env["OTEL_SERVICE_NAME"] == nil { c.serviceName = v } else { c.resourceAttributes[k] = v }
        }
        if let v = env["EVALFORGE_PROJECT"], !v.isEmpty { c.project = v }

        if let raw = env["EVALFORGE_SAMPLE_RATIO"] ?? (["traceidratio", "parentbased_traceidratio"].contains(env["OTEL_TRACES_SAMPLER"] ?? "") ? env["OTEL_TRACES_SAMPLER_ARG"] : nil) {
            if let r = Double(trim(raw)), (0...1).contains(r) { c.sampling.ratio = r } else { problems.append("sample ratio \(raw): expected a number between 0 and 1") }
        }
        if let v = bool("EVALFORGE_SAMPLE_KEEP_ERRORS") { c.sampling.keepErrors = v }
        if let v = bool("EVALFORGE_SAMPLE_RESPECT_PARENT") { c.sampling.respectParentSampled = v }
        if let v = bool("EVALFORGE_SAMPLE_KEEP_TRACE") { c.sampling.keepTraceOfKeptSpans = v }
        if let v = millis("EVALFORGE_SAMPLE_KEEP_SLOWER_THAN_MS") { c.sampling.keepSlowerThan = v == 0 ? nil : .milliseconds(v) }

        if let v = int("EVALFORGE_BUFFER_MAX_SPANS") ?? int("OTEL_BSP_MAX_QUEUE_SIZE"), v > 0 {
            if v <= Self.maxBufferSpans { c.buffer.maxSpans = v } else { problems.append("buffer size \(v): expected at most \(Self.maxBufferSpans)") }
        }
        if let v = int("EVALFORGE_BATCH_MAX_SPANS") ?? int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), v > 0 {
            if v <= Self.maxBufferSpans { c.buffer.maxBatchSpans = v } else { problems.append("batch size \(v): expected at most \(Self.maxBufferSpans)") }
        }
        if let v = millis("EVALFORGE_FLUSH_INTERVAL_MS") ?? millis("OTEL_BSP_SCHEDULE_DELAY"), v > 0 { c.buffer.flushInterval = .milliseconds(v) }
        if let v = millis("EVALFORGE_SHUTDOWN_TIMEOUT_MS") { c.buffer.shutdownTimeout = .milliseconds(v) }

        if let v = env["EVALFORGE_COLLECTOR_URL"], !v.isEmpty {
            c.exporter.endpoint = v.hasSuffix("/v1/traces") ? v : (v.hasSuffix("/") ? String(v.dropLast()) : v) + "/v1/traces"
        } else if let v = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], !v.isEmpty {
            c.exporter.endpoint = v
        } else if let v = env["OTEL_EXPORTER_OTLP_ENDPOINT"], !v.isEmpty {
            c.exporter.endpoint = (v.hasSuffix("/") ? String(v.dropLast()) : v) + "/v1/traces"
        }
        for (k, v) in pairs("OTEL_EXPORTER_OTLP_HEADERS") { c.exporter.headers[k] = v }
        for (k, v) in pairs("OTEL_EXPORTER_OTLP_TRACES_HEADERS") { c.exporter.headers[k] = v }
        if let key = env["EVALFORGE_API_KEY"], !key.isEmpty { c.exporter.headers["Authorization"] = "Bearer \(key)" }
        if let raw = env["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"] ?? env["OTEL_EXPORTER_OTLP_COMPRESSION"] {
            switch raw.lowercased() {
            case "gzip": c.exporter.gzip = true
            case "none", "": c.exporter.gzip = false
            default: problems.append("OTEL_EXPORTER_OTLP_COMPRESSION=\(raw): expected gzip or none")
            }
        }
        if let v = millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") ?? millis("OTEL_EXPORTER_OTLP_TIMEOUT"), v > 0 { c.exporter.timeout = .milliseconds(v) }
        if let v = int("EVALFORGE_EXPORT_MAX_ATTEMPTS"), v > 0 { c.exporter.maxAttempts = min(v, 1000) }
        if let v = int("EVALFORGE_EXPORT_CONCURRENCY"), (1...64).contains(v) { c.exporter.maxConcurrentExports = v }
        if let v = int("EVALFORGE_BREAKER_THRESHOLD"), v > 0 { c.exporter.breakerThreshold = min(v, 1_000_000) }

        if let v = bool("EVALFORGE_CAPTURE_CONTENT") ?? bool("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT") { c.content.capture = v }
        if let raw = env["EVALFORGE_REDACT"] {
            if raw.lowercased() == "none" {
                c.content.masks = []
            } else {
                var masks = Set<EvalForge.Configuration.Content.Mask>()
                for name in raw.split(separator: ",") {
                    let n = trim(name)
                    if let m = EvalForge.Configuration.Content.Mask(rawValue: n) { masks.insert(m) } else {
                        problems.append("EVALFORGE_REDACT: unknown mask '\(n)'; expected emails, apiKeys, cardNumbers or none")
                    }
                }
                c.content.masks = masks
            }
        }
        if let v = int("EVALFORGE_CONTENT_MAX_BYTES"), v > 0 { c.content.maxBytes = min(v, 64 << 20) }
        if let v = bool("EVALFORGE_OPENAI_STREAM_USAGE") { c.cost.requestStreamUsage = v }
        if let path = env["EVALFORGE_PRICE_FILE"], !path.isEmpty {
            do { c.cost.priceTable = try PriceFile.load(path: path) } catch { problems.append("EVALFORGE_PRICE_FILE: \(error.message); using the built-in prices") }
        }
        return (c, problems)
    }
}

private func trim(_ s: some StringProtocol) -> String {
    var sub = Substring(s)
    while let f = sub.first, f == " " || f == "\t" { sub = sub.dropFirst() }
    while let l = sub.last, l == " " || l == "\t" { sub = sub.dropLast() }
    return String(sub)
}

/// Decodes %XX escapes as OTEL_RESOURCE_ATTRIBUTES allows; leaves malformed escapes as they are.
private func percentDecoded(_ s: String) -> String {
    guard s.contains("%") else { return s }
    var out = [UInt8]()
    let u = Array(s.utf8)
    var i = 0
    while i < u.count {
        if u[i] == UInt8(ascii: "%"), i + 2 < u.count, let v = Hex.decode(String(decoding: u[(i + 1)...(i + 2)], as: UTF8.self)) {
            out.append(contentsOf: v)
            i += 3
        } else {
            out.append(u[i])
            i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}
