import EvalForgeModel
import Logging
import NIOCore

/// The insert path: a bounded buffer of encoded rows that goes to the server in few, large RowBinary
/// inserts.
///
/// - A caller's rows are encoded on its own task, then queued; the caller resumes only after the
///   insert that carried them was acknowledged by the server (or with the error that insert ended in).
/// - An insert starts when `batchRows` rows are waiting, or at once when nothing is in flight (group
///   commit: rows that arrive while an insert is running travel together in the next one), or when the
///   oldest waiting row has waited `flushIntervalMilliseconds`; at most `maxConcurrentInserts` run.
/// - Spans, rollups and trace-index rows of a flush go in one insert each (in parallel), then the
///   batch-ledger rows.
/// - More than `maxBufferedRows` waiting rows: new batches are refused with `StoreError.unavailable`
///   (backpressure; the collector keeps them queued).
actor ClickHouseWriter {
    /// One batch's RowBinary rows per table (byte arrays: a flush copies them once into the request body).
    struct Entry: Sendable {
        var spans: [UInt8]
        var spanRows: Int
        var rollups: [UInt8]
        var rollupRows: Int
        /// `trace_index` rows: one per (trace, day) of the spans.
        var traceIndex: [UInt8] = []
        var traceIndexRows: Int = 0
        var ledger: [UInt8]
        /// Calendar months (`IngestBounds.monthIndex`) the entry's rows fall in, by UTC and by the
        /// trace index's day zone: the partitions its insert touches.
        var months: Set<Int32> = []
    }

    /// Most monthly partitions one grouped insert may touch: ClickHouse refuses a block touching
    /// more than `max_partitions_per_insert_block` (default 100), for every batch in it.
    static let maxMonthsPerInsert = 90

    private struct Waiting {
        var entry: Entry
        var continuation: CheckedContinuation<Void, any Error>
    }

    struct Tables: Sendable {
        var spans: String
        var spanColumns: String
        var rollups: String
        var rollupColumns: String
        var traceIndex: String
        var traceIndexColumns: String
        var batches: String
    }

    private let http: ClickHouseHTTP
    private let tables: Tables
    private let batchRows: Int
    private let maxBufferedRows: Int
    private let maxInFlight: Int
    private let interval: Duration
    private let logger: Logger

    private var pending: [Waiting] = []
    private var pendingRows = 0
    private var oldest: ContinuousClock.Instant?
    private var inFlight = 0
    private var timer: Task<Void, Never>?
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    /// Server inserts of spans/rollups started (for tests and logs).
    private(set) var flushes = 0

    init(http: ClickHouseHTTP, tables: Tables, configuration c: ClickHouseConfiguration, logger: Logger) {
        self.http = http
        self.tables = tables
        batchRows = max(1, c.batchRows)
        maxBufferedRows = max(c.maxBufferedRows, max(1, c.batchRows))
        maxInFlight = max(1, c.maxConcurrentInserts)
        interval = .milliseconds(max(1, c.flushIntervalMilliseconds))
        self.logger = logger
    }

    /// Queues `entry` and returns once the server acknowledged the insert that carried it.
    func write(_ entry: Entry) async throws {
        let rows = max(1, entry.spanRows + entry.rollupRows)
        if !pending.isEmpty, pendingRows + rows > maxBufferedRows {
            throw StoreError.unavailable("ClickHouse writer is behind: \(pendingRows) rows are waiting for the server; retry later")
        }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            pending.append(Waiting(entry: entry, continuation: c))
            pendingRows += rows
            if oldest == nil { oldest = .now }
            startFlushes()
        }
    }

    /// Waits until nothing is queued or in flight.
    func drain() async {
        if pending.isEmpty && inFlight == 0 { return }
        await withCheckedContinuation { idleWaiters.append($0) }
    }

    private func startFlushes() {
        while !pending.isEmpty && inFlight < maxInFlight {
            let overdue = oldest.map { ContinuousClock.now - $0 >= interval } ?? false
            guard pendingRows >= batchRows || inFlight == 0 || overdue else { break }
            var take: [Waiting] = []
            var rows = 0
            var months = Set<Int32>()
            while let first = pending.first {
                let n = max(1, first.entry.spanRows + first.entry.rollupRows)
                if !take.isEmpty && rows + n > batchRows { break }
                if !take.isEmpty && months.union(first.entry.months).count > Self.maxMonthsPerInsert { break }
                months.formUnion(first.entry.months)
                take.append(pending.removeFirst())
                rows += n
            }
            pendingRows -= rows
            oldest = pending.isEmpty ? nil : .now
            inFlight += 1
            flushes += 1
            let http = http, tables = tables, logger = logger
            Task {
                let results = await Self.flushIsolating(take.map(\.entry), http: http, tables: tables, logger: logger)
                self.finished(take, results)
            }
        }
        if !pending.isEmpty && timer == nil {
            let interval = interval
            timer = Task {
                try? await Task.sleep(for: interval)
                self.timerFired()
            }
        }
    }

    private func timerFired() {
        timer = nil
        startFlushes()
    }

    private func finished(_ batch: [Waiting], _ results: [Result<Void, StoreError>]) {
        inFlight -= 1
        for (i, w) in batch.enumerated() {
            let result = i < results.count ? results[i] : .failure(.unavailable("ClickHouse insert result missing; retry"))
            w.continuation.resume(with: result.mapError { $0 as any Error })
        }
        startFlushes()
        if pending.isEmpty && inFlight == 0 {
            let waiters = idleWaiters
            idleWaiters = []
            for w in waiters { w.resume() }
        }
    }

    /// A grouped flush, one result per entry. When the group is refused for a reason a retry would
    /// not fix (for example one project's rows in too many partitions), each entry is sent again on
    /// its own: only the batches that fail alone get the error, the others are stored. Transient
    /// failures (server down) are the same for all and are returned for all, without more requests.
    static func flushIsolating(_ entries: [Entry], http: ClickHouseHTTP, tables: Tables, logger: Logger) async -> [Result<Void, StoreError>] {
        let result = await flush(entries, http: http, tables: tables, logger: logger)
        guard case .failure(let error) = result, !error.isTransient, entries.count > 1 else {
            return Array(repeating: result, count: entries.count)
        }
        logger.warning("grouped clickhouse insert refused; inserting each batch alone", metadata: ["clickhouse.batches": "\(entries.count)", "error": "\(error.message)"])
        var results: [Result<Void, StoreError>] = []
        results.reserveCapacity(entries.count)
        for e in entries { results.append(await flush([e], http: http, tables: tables, logger: logger)) }
        return results
    }

    /// One flush: spans, rollups and trace-index rows inserted in parallel, then the ledger rows. Retries happen inside
    /// `ClickHouseHTTP`; a resend after a partial failure is harmless (the tables deduplicate).
    private static func flush(_ entries: [Entry], http: ClickHouseHTTP, tables: Tables, logger: Logger) async -> Result<Void, StoreError> {
        let allocator = ByteBufferAllocator()
        var spans = allocator.buffer(capacity: entries.reduce(0) { $0 + $1.spans.count })
        var rollups = allocator.buffer(capacity: entries.reduce(0) { $0 + $1.rollups.count })
        var ledger = allocator.buffer(capacity: entries.reduce(0) { $0 + $1.ledger.count })
        var index = allocator.buffer(capacity: entries.reduce(0) { $0 + $1.traceIndex.count })
        var spanRows = 0, rollupRows = 0, indexRows = 0
        for e in entries {
            spans.writeBytes(e.spans)
            index.writeBytes(e.traceIndex)
            indexRows += e.traceIndexRows
            rollups.writeBytes(e.rollups)
            ledger.writeBytes(e.ledger)
            spanRows += e.spanRows
            rollupRows += e.rollupRows
        }
        let spanBody = spans, rollupBody = rollups, ledgerBody = ledger, indexBody = index
        let haveSpans = spanRows > 0, haveRollups = rollupRows > 0, haveIndex = indexRows > 0
        do {
            async let spansDone: Void = haveSpans ? http.insert(table: tables.spans, columns: tables.spanColumns, rows: spanBody) : ()
            async let rollupsDone: Void = haveRollups ? http.insert(table: tables.rollups, columns: tables.rollupColumns, rows: rollupBody) : ()
            async let indexDone: Void = haveIndex ? http.insert(table: tables.traceIndex, columns: tables.traceIndexColumns, rows: indexBody) : ()
            try await spansDone
            try await rollupsDone
            try await indexDone
            try await http.insert(table: tables.batches, columns: ClickHouseFlavor.batchInsertColumns, rows: ledgerBody)
            return .success(())
        } catch let e as StoreError {
            logger.error("clickhouse insert failed", metadata: ["clickhouse.rows": "\(spanRows)", "clickhouse.batches": "\(entries.count)", "error": "\(e.message)"])
            return .failure(e)
        } catch {
            return .failure(.unavailable("ClickHouse insert failed: \(error)"))
        }
    }
}
