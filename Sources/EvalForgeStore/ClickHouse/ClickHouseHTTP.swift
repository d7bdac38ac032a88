import AsyncHTTPClient
import Foundation
import Logging
import NIOCore

/// One ClickHouse server's HTTP interface: runs statements and queries (RowBinary results) and
/// sends insert bodies, retrying transient failures with exponential backoff.
struct ClickHouseHTTP: Sendable {
    let client: HTTPClient
    let base: String
    let authorization: String?
    let timeout: TimeAmount
    let maxAttempts: Int
    let backoffMilliseconds: Int
    let logger: Logger
    /// Settings sent with every request (URL parameters); empty on one server. In cluster mode:
    /// - `distributed_product_mode=local`: an `IN (SELECT … FROM <Distributed>)` inside a query on a
    ///   Distributed table reads the shard's local table (18.16's default refuses the query); exact
    ///   because both sides are sharded by trace;
    /// - `insert_distributed_sync=1`: an insert into a Distributed table returns once every shard
    ///   stored its rows (not when they are queued on this node), so an acknowledged batch is in the
    ///   shards' replicated tables, and a resent body is deduplicated there block by block;
    /// - `load_balancing=in_order`, `prefer_localhost_replica=0`: reads and writes go to the first
    ///   healthy replica of each shard in the cluster's order, whichever node a backend talks to, so
    ///   every backend reads what any of them wrote while that replica is up.
    let settings: [(String, String)]

    init(configuration c: ClickHouseConfiguration, client: HTTPClient, logger: Logger) throws {
        var base = c.url
        while base.hasSuffix("/") { base.removeLast() }
        guard let u = URL(string: base), let scheme = u.scheme, ["http", "https"].contains(scheme), u.host != nil else {
            throw StoreError.invalidArgument("ClickHouse URL '\(c.url)' is not an http(s) URL like http://127.0.0.1:8123")
        }
        self.base = base
        self.client = client
        if c.user != "default" || !c.password.isEmpty {
            authorization = "Basic " + Data("\(c.user):\(c.password)".utf8).base64EncodedString()
        } else {
            authorization = nil
        }
        timeout = .seconds(Int64(max(1, c.timeoutSeconds)))
        maxAttempts = max(1, c.maxAttempts)
        backoffMilliseconds = max(1, c.retryBackoffMilliseconds)
        self.logger = logger
        settings = c.cluster == nil ? [] : [("distributed_product_mode", "local"), ("insert_distributed_sync", "1"), ("load_balancing", "in_order"), ("prefer_localhost_replica", "0")]
    }

    /// `base/` with `query` as URL parameters.
    private func url(_ query: [(String, String)]) -> String {
        var url = base + "/"
        var first = true
        for (k, v) in query {
            url += (first ? "?" : "&") + k + "=" + (v.addingPercentEncoding(withAllowedCharacters: Self.unreserved) ?? "")
            first = false
        }
        return url
    }

    /// Runs `sql` (DDL or a statement without result); the SQL travels in the body.
    func execute(_ sql: String, parameters: [(name: String, value: String)] = [], settings: [(String, String)] = [], retry: Bool = true) async throws {
        _ = try await send(urlQuery: settings, parameters: parameters, body: ByteBuffer(string: sql), retry: retry, what: "statement")
    }

    /// Runs a SELECT and returns its RowBinary result.
    func query(_ sql: String, parameters: [(name: String, value: String)] = []) async throws -> RowBinaryReader {
        let body = try await send(urlQuery: [], parameters: parameters, body: ByteBuffer(string: sql + "\nFORMAT RowBinary"), retry: true, what: "query")
        return RowBinaryReader(buffer: body)
    }

    /// INSERT INTO `table` (`columns`) FORMAT RowBinary with `rows` as the body; returns once the
    /// server acknowledged it.
    func insert(table: String, columns: String, rows: ByteBuffer) async throws {
        _ = try await send(urlQuery: [("query", "INSERT INTO \(table) (\(columns)) FORMAT RowBinary")], parameters: [], body: rows, retry: true, what: "insert into \(table)")
    }

    private static let unreserved: CharacterSet = {
        var s = CharacterSet.alphanumerics
        s.insert(charactersIn: "-._~")
        return s
    }()

    private func send(urlQuery: [(String, String)], parameters: [(name: String, value: String)], body: ByteBuffer, retry: Bool, what: String) async throws -> ByteBuffer {
        let target = url(settings + urlQuery + parameters.map({ ("param_" + $0.name, $0.value) }))
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await once(url: target, body: body, what: what)
            } catch let error as StoreError where error.isTransient && retry && attempt < maxAttempts {
                let delay = backoffMilliseconds << (attempt - 1)
                logger.warning("clickhouse \(what) failed, retrying", metadata: ["clickhouse.attempt": "\(attempt)", "clickhouse.delay_ms": "\(delay)", "error": "\(error.message)"])
                try await Task.sleep(for: .milliseconds(delay))
            }
        }
    }

    /// Runs a SELECT once (no retry) within `timeout`: the readiness check, which must answer
    /// quickly and say what is wrong rather than wait out the retries.
    func probe(_ sql: String, timeout: TimeAmount) async throws -> RowBinaryReader {
        RowBinaryReader(buffer: try await once(url: url(settings), body: ByteBuffer(string: sql + "\nFORMAT RowBinary"), what: "readiness check", timeout: timeout))
    }

    private func once(url: String, body: ByteBuffer, what: String, timeout: TimeAmount? = nil) async throws -> ByteBuffer {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.body = .bytes(body)
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await client.execute(request, timeout: timeout ?? self.timeout)
            bytes = try await response.body.collect(upTo: 1 << 30)
        } catch let error as StoreError {
            throw error
        } catch is CancellationError {
            throw StoreError.unavailable("ClickHouse \(what) cancelled")
        } catch {
            throw StoreError.unavailable("ClickHouse at \(base) is unreachable (\(what)): \(error); data stays queued and is retried")
        }
        guard response.status.code == 200 else {
            throw Self.classify(statusCode: response.status.code, body: String(buffer: bytes), base: base, what: what)
        }
        return bytes
    }

    /// Error codes after which retrying later may succeed (overload, timeouts, network, read-only).
    /// In cluster mode the node a backend talks to forwards inserts and reads to the other shards over
    /// the native protocol, so a peer restarting or killed surfaces as that node's error: a cut
    /// connection (24 CANNOT_WRITE_TO_OSTREAM; 32/33 below), no replica of a shard reachable (279
    /// ALL_CONNECTION_TRIES_FAILED), ZooKeeper away (225 NO_ZOOKEEPER, 999 KEEPER_EXCEPTION).
    /// Calling those permanent made the backend answer 400 and the collector dead-letter acknowledged
    /// spans (the cluster fault test, tests/python/test_cluster_faults.py).
    static let transientCodes: Set<Int> = [3, 24, 159, 164, 202, 203, 209, 210, 225, 241, 242, 252, 279, 285, 319, 425, 999]

    /// 32 ATTEMPT_TO_READ_AFTER_EOF and 33 CANNOT_READ_ALL_DATA are the insert body's fault when
    /// ClickHouse parses it (truncated RowBinary: "(at row 5)"), and a peer's when they name the
    /// connection ("while receiving packet from 127.0.0.1:19231"): only the latter is transient.
    static func isPeerConnectionError(code: Int?, text: String) -> Bool {
        guard code == 32 || code == 33 else { return false }
        return text.contains("while receiving packet from") || text.contains("while reading from socket")
    }

    static func classify(statusCode: UInt, body: String, base: String, what: String) -> StoreError {
        let text = body.split(separator: "\n").first.map(String.init) ?? "HTTP \(statusCode)"
        var code: Int?
        if let r = text.range(of: "Code: ") {
            code = Int(text[r.upperBound...].prefix { $0.isNumber })
        }
        // 252 is TOO_MANY_PARTS for both "too many parts" (merges are behind: retry later) and "too
        // many partitions for single INSERT block" (this insert's rows span too many months: every
        // retry fails the same way, so it is the data's fault, not the server's).
        if code == 252, text.localizedCaseInsensitiveContains("partitions") {
            return .rejected("ClickHouse refused the \(what): its rows fall in too many monthly partitions: \(text)")
        }
        // 18.16 reports a refused or reset connection to a peer as a Poco exception (1000) naming it.
        let pocoNetwork = code == 1000 && ["Connection", "Timeout", "connect"].contains { text.contains($0) }
        if statusCode == 503 || statusCode == 429 || code.map(transientCodes.contains) == true || pocoNetwork
            || isPeerConnectionError(code: code, text: text) {
            return .unavailable("ClickHouse at \(base) is overloaded or unavailable (\(what)): \(text)")
        }
        return .rejected("ClickHouse refused the \(what): \(text)")
    }
}
