import Foundation
import Yams

extension CollectorConfiguration {
    /// Applies a YAML configuration document. Unknown keys and wrong types are errors that name the
    /// key and what was expected.
    public mutating func apply(yaml text: String) throws {
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch {
            throw CollectorError.configuration("configuration is not valid YAML: \(error)")
        }
        guard let root else { return }
        guard let doc = root as? [String: Any] else { throw CollectorError.configuration("configuration must be a mapping of sections (receiver, dedup, sampling, queue, forward)") }
        let r = ConfigReader(path: "")
        try r.sections(doc, allowed: ["receiver", "auth", "operator", "dedup", "sampling", "queue", "forward", "shutdown_timeout_ms"])
        if let s = try r.section(doc, "operator", allowed: ["host", "port"]) {
            let r = ConfigReader(path: "operator")
            if let v = try r.string(s, "host") { operatorHost = v }
            if let v = try r.int(s, "port", 0...65535) { operatorPort = v }
        }
        if let s = try r.section(doc, "receiver", allowed: ["host", "port", "max_body_bytes", "default_project", "allowed_hosts"]) {
            let r = ConfigReader(path: "receiver")
            if let v = try r.string(s, "host") { host = v }
            if let v = try r.int(s, "port", 0...65535) { port = v }
            if let v = try r.int(s, "max_body_bytes", 1024...(1 << 30)) { maxBodyBytes = v }
            if let v = try r.string(s, "default_project") { defaultProject = v }
            if let v = try r.strings(s, "allowed_hosts") {
                for h in v where h.isEmpty || h.utf8.count > 253 || h.contains(where: { $0 == " " || $0 == "/" }) {
                    throw CollectorError.configuration("receiver.allowed_hosts: '\(h.prefix(60))' is not a host name")
                }
                allowedHosts = v
            }
        }
        if let s = try r.section(doc, "auth", allowed: ["mode", "force_open", "cache_ttl_ms", "negative_ttl_ms", "stale_grace_ms"]) {
            let r = ConfigReader(path: "auth")
            if let v = try r.string(s, "mode") {
                guard let m = CollectorAuthMode(rawValue: v.lowercased()) else { throw CollectorError.configuration("auth.mode '\(v)': expected key or open") }
                authMode = m
            }
            if let v = try r.bool(s, "force_open") { forceOpen = v }
            if let v = try r.int(s, "cache_ttl_ms", 0...3_600_000) { authCacheTTL = .milliseconds(v) }
            if let v = try r.int(s, "negative_ttl_ms", 0...3_600_000) { authNegativeTTL = .milliseconds(v) }
            if let v = try r.int(s, "stale_grace_ms", 0...86_400_000) { authStaleGrace = .milliseconds(v) }
        }
        if let s = try r.section(doc, "dedup", allowed: ["window_seconds", "max_ids"]) {
            let r = ConfigReader(path: "dedup")
            if let v = try r.int(s, "window_seconds", 1...86_400) { dedupWindow = .seconds(v) }
            if let v = try r.int(s, "max_ids", 1_000...1_000_000_000) { dedupMaxIDs = v }
        }
        if let s = try r.section(doc, "sampling", allowed: ["ratio", "keep_errors", "latency_threshold_ms", "cost_threshold_usd", "rules", "decision_wait_ms", "root_grace_ms", "max_buffered_spans"]) {
            let r = ConfigReader(path: "sampling")
            if let v = try r.double(s, "ratio", 0...1) { sampling.ratio = v }
            if let v = try r.bool(s, "keep_errors") { sampling.keepErrors = v }
            if s["latency_threshold_ms"] is NSNull { sampling.latencyThresholdMs = nil } else if let v = try r.double(s, "latency_threshold_ms", 0...1e9) { sampling.latencyThresholdMs = v }
            if s["cost_threshold_usd"] is NSNull { sampling.costThresholdUSD = nil } else if let v = try r.double(s, "cost_threshold_usd", 0...1e9) { sampling.costThresholdUSD = v }
            if let v = try r.strings(s, "rules") {
                sampling.rules = try v.map { text in
                    guard let rule = TailSamplingPolicy.AttributeRule(text) else {
                        throw CollectorError.configuration("sampling.rules: '\(text)' is not key=value or key=prefix*")
                    }
                    return rule
                }
            }
            if let v = try r.int(s, "decision_wait_ms", 1...3_600_000) { sampling.decisionWait = .milliseconds(v) }
            if let v = try r.int(s, "root_grace_ms", 0...3_600_000) { sampling.rootGrace = .milliseconds(v) }
            if let v = try r.int(s, "max_buffered_spans", 1...100_000_000) { sampling.maxBufferedSpans = v }
        }
        if let s = try r.section(doc, "queue", allowed: ["directory", "max_bytes", "segment_bytes", "fsync"]) {
            let r = ConfigReader(path: "queue")
            if let v = try r.string(s, "directory") { queueDirectory = v }
            if let v = try r.int(s, "max_bytes", (1 << 20)...(1 << 50)) { queueMaxBytes = v }
            if let v = try r.int(s, "segment_bytes", (1 << 16)...(1 << 32)) { queueSegmentBytes = v }
            if let v = try r.string(s, "fsync") { fsync = v }
        }
        if let s = try r.section(doc, "forward", allowed: ["backend_url", "backend_urls", "health_interval_ms", "health_timeout_ms", "api_key", "max_batch_spans", "max_batch_bytes", "concurrency", "flush_interval_ms", "timeout_ms", "initial_backoff_ms", "max_backoff_ms", "compression", "zstd_level", "gzip_level", "collector_id"]) {
            let r = ConfigReader(path: "forward")
            let one = try r.string(s, "backend_url")
            let many = try r.strings(s, "backend_urls")
            if one != nil && many != nil { throw CollectorError.configuration("forward.backend_url and forward.backend_urls are both set; give one (a list for several backends)") }
            if let one { backendURLs = [one] }
            if let many { backendURLs = many }
            if let v = try r.int(s, "health_interval_ms", 100...600_000) { healthInterval = .milliseconds(v) }
            if let v = try r.int(s, "health_timeout_ms", 10...60_000) { healthTimeout = .milliseconds(v) }
            if let v = try r.string(s, "api_key") { apiKey = v }
            if let v = try r.int(s, "max_batch_spans", 1...1_000_000) { maxBatchSpans = v }
            if let v = try r.int(s, "max_batch_bytes", (256 << 10)...(15 << 20)) { maxBatchBytes = v }
            if let v = try r.int(s, "concurrency", 1...64) { forwardConcurrency = v }
            if let v = try r.int(s, "flush_interval_ms", 1...600_000) { flushInterval = .milliseconds(v) }
            if let v = try r.int(s, "timeout_ms", 1...600_000) { forwardTimeout = .milliseconds(v) }
            if let v = try r.int(s, "initial_backoff_ms", 1...600_000) { initialBackoff = .milliseconds(v) }
            if let v = try r.int(s, "max_backoff_ms", 1...3_600_000) { maxBackoff = .milliseconds(v) }
            if let v = try r.string(s, "compression") {
                guard let c = ForwardCompression(rawValue: v.lowercased()) else {
                    throw CollectorError.configuration("forward.compression '\(v)': expected lz4, zstd, gzip or none")
                }
                compression = c
            }
            if let v = try r.int(s, "zstd_level", 1...19) { zstdLevel = v }
            if let v = try r.int(s, "gzip_level", 1...9) { gzipLevel = v }
            if let v = try r.string(s, "collector_id") { collectorID = v }
        }
        if let v = try r.int(doc, "shutdown_timeout_ms", 0...3_600_000) { shutdownTimeout = .milliseconds(v) }
        try validate()
    }

    /// Applies `EVALFORGE_COLLECTOR_*` (and `EVALFORGE_BACKEND_URL`, `EVALFORGE_API_KEY`) variables.
    public mutating func apply(environment env: [String: String]) throws {
        func int(_ k: String) throws -> Int? {
            guard let raw = env[k] else { return nil }
            guard let v = Int(raw) else { throw CollectorError.configuration("\(k)=\(raw): expected an integer") }
            return v
        }
        if let v = env["EVALFORGE_COLLECTOR_HOST"] { host = v }
        if let v = try int("EVALFORGE_COLLECTOR_PORT") { port = v }
        if let v = try int("EVALFORGE_COLLECTOR_OPERATOR_PORT") { operatorPort = v }
        if let v = env["EVALFORGE_COLLECTOR_QUEUE_DIR"] { queueDirectory = v }
        if let v = env["EVALFORGE_COLLECTOR_FSYNC"] { fsync = v }
        if let v = env["EVALFORGE_COLLECTOR_ID"] { collectorID = v }
        if let v = env["EVALFORGE_BACKEND_URL"] { backendURLs = Self.urlList(v) }
        if let v = env["EVALFORGE_API_KEY"] { apiKey = v }
        if let raw = env["EVALFORGE_COLLECTOR_AUTH_MODE"] {
            guard let m = CollectorAuthMode(rawValue: raw.lowercased()) else { throw CollectorError.configuration("EVALFORGE_COLLECTOR_AUTH_MODE=\(raw): expected key or open") }
            authMode = m
        }
        if let raw = env["EVALFORGE_COLLECTOR_SAMPLING_RATIO"] {
            guard let v = Double(raw), (0...1).contains(v) else { throw CollectorError.configuration("EVALFORGE_COLLECTOR_SAMPLING_RATIO=\(raw): expected a number between 0 and 1") }
            sampling.ratio = v
        }
        try validate()
    }

    /// Checks cross-field constraints.
    public func validate() throws {
        guard fsyncPolicy != nil else { throw CollectorError.configuration("queue.fsync '\(fsync)': expected always, never or interval:<ms>") }
        guard (1...64).contains(backendURLs.count) else {
            throw CollectorError.configuration("forward.backend_urls: \(backendURLs.count) URLs; expected 1…64")
        }
        for url in backendURLs {
            guard url.utf8.count <= 2048, let u = URL(string: url), u.scheme == "http" || u.scheme == "https", u.host != nil else {
                throw CollectorError.configuration("forward.backend_url '\(url.prefix(200))': expected an http(s) URL")
            }
        }
        let distinct = Set(backendURLs.map(Self.trimmedBase))
        guard distinct.count == backendURLs.count else { throw CollectorError.configuration("forward.backend_urls: a backend URL is listed twice") }
        guard healthTimeout > .zero, healthInterval > .zero else { throw CollectorError.configuration("forward.health_interval_ms and forward.health_timeout_ms must be positive") }
        guard (0...65535).contains(port) else { throw CollectorError.configuration("receiver.port \(port): expected 0…65535") }
        if let operatorPort {
            guard (0...65535).contains(operatorPort), operatorPort == 0 || operatorPort != port else {
                throw CollectorError.configuration("operator.port \(operatorPort): expected 0…65535 (0: any free port), not the receiver's port")
            }
        }
        guard !queueDirectory.isEmpty else { throw CollectorError.configuration("queue.directory must not be empty") }
        guard (1...64).contains(forwardConcurrency) else { throw CollectorError.configuration("forward.concurrency \(forwardConcurrency): expected 1…64") }
        guard (1...19).contains(zstdLevel) else { throw CollectorError.configuration("forward.zstd_level \(zstdLevel): expected 1…19") }
        guard (1...9).contains(gzipLevel) else { throw CollectorError.configuration("forward.gzip_level \(gzipLevel): expected 1…9") }
        guard ((256 << 10)...(15 << 20)).contains(maxBatchBytes) else { throw CollectorError.configuration("forward.max_batch_bytes \(maxBatchBytes): expected 262144…15728640 (the backend refuses bodies above 16 MiB)") }
        guard (1...1_000_000).contains(maxBatchSpans) else { throw CollectorError.configuration("forward.max_batch_spans \(maxBatchSpans): expected 1…1000000") }
        // Batch ids are `<collector id>-<epoch>-<first>-<last>`; the backend refuses ids above 256 bytes.
        guard !collectorID.isEmpty, collectorID.utf8.count <= 128 else { throw CollectorError.configuration("forward.collector_id '\(collectorID.prefix(40))…': expected 1…128 bytes") }
        guard (1024...(1 << 30)).contains(maxBodyBytes) else { throw CollectorError.configuration("receiver.max_body_bytes \(maxBodyBytes): expected 1024…1073741824") }
    }
}

extension CollectorConfiguration {
    /// A comma-separated list of URLs (`EVALFORGE_BACKEND_URL`), blanks dropped.
    public static func urlList(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// A base URL without trailing slashes (what paths are appended to).
    static func trimmedBase(_ url: String) -> String {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        return base
    }
}

/// Typed reads from a YAML mapping with errors that name the key.
struct ConfigReader {
    let path: String

    func key(_ k: String) -> String { path.isEmpty ? k : "\(path).\(k)" }

    func sections(_ doc: [String: Any], allowed: Set<String>) throws {
        for k in doc.keys where !allowed.contains(k) {
            throw CollectorError.configuration("unknown configuration key '\(key(k))'; expected one of \(allowed.sorted().joined(separator: ", "))")
        }
    }

    func section(_ doc: [String: Any], _ name: String, allowed: Set<String>) throws -> [String: Any]? {
        guard let v = doc[name], !(v is NSNull) else { return nil }
        guard let m = v as? [String: Any] else { throw CollectorError.configuration("'\(key(name))' must be a mapping") }
        for k in m.keys where !allowed.contains(k) {
            throw CollectorError.configuration("unknown configuration key '\(key(name)).\(k)'; expected one of \(allowed.sorted().joined(separator: ", "))")
        }
        return m
    }

    func string(_ m: [String: Any], _ k: String) throws -> String? {
        guard let v = m[k], !(v is NSNull) else { return nil }
        if let s = v as? String { return s }
        throw CollectorError.configuration("\(key(k)): expected a string, got \(v)")
    }

    func int(_ m: [String: Any], _ k: String, _ range: ClosedRange<Int>) throws -> Int? {
        guard let v = m[k], !(v is NSNull) else { return nil }
        guard let i = v as? Int, !(v is Bool) else { throw CollectorError.configuration("\(key(k)): expected an integer, got \(v)") }
        guard range.contains(i) else { throw CollectorError.configuration("\(key(k)): \(i) is outside \(range.lowerBound)…\(range.upperBound)") }
        return i
    }

    func double(_ m: [String: Any], _ k: String, _ range: ClosedRange<Double>) throws -> Double? {
        guard let v = m[k], !(v is NSNull) else { return nil }
        let d: Double
        if let x = v as? Double { d = x } else if let x = v as? Int { d = Double(x) } else {
            throw CollectorError.configuration("\(key(k)): expected a number, got \(v)")
        }
        guard range.contains(d) else { throw CollectorError.configuration("\(key(k)): \(d) is outside \(range.lowerBound)…\(range.upperBound)") }
        return d
    }

    func bool(_ m: [String: Any], _ k: String) throws -> Bool? {
        guard let v = m[k], !(v is NSNull) else { return nil }
        guard let b = v as? Bool else { throw CollectorError.configuration("\(key(k)): expected true or false, got \(v)") }
        return b
    }

    func strings(_ m: [String: Any], _ k: String) throws -> [String]? {
        guard let v = m[k], !(v is NSNull) else { return nil }
        guard let a = v as? [Any] else { throw CollectorError.configuration("\(key(k)): expected a list of strings") }
        return try a.map { x in
            guard let s = x as? String else { throw CollectorError.configuration("\(key(k)): expected a list of strings, got \(x)") }
            return s
        }
    }
}
