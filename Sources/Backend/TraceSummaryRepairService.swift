import EvalForgeStore
import Logging
import Metrics
import ServiceLifecycle

/// Runs `ClickHouseStore.repairTraceSummaries` every `interval`: traces stored with their spans and
/// `trace_index` rows but without a `trace_summary` row (a cluster replica killed between the spans
/// block and the materialized view's block, docs/reliability.md) get their row from their spans, so
/// the trace list shows them. Cheap when nothing is missing; harmless on one server, and with
/// several backends running it (an extra summary row is read correctly).
struct TraceSummaryRepairService: Service {
    let store: ClickHouseStore
    let interval: Duration
    /// How long a trace must be seen missing before it is repaired (no partial rows: see
    /// `repairTraceSummaries`).
    let settle: Duration
    let logger: Logger
    private let repaired = Counter(label: "evalforge_backend_trace_summary_repairs_total")
    private let failures = Counter(label: "evalforge_backend_trace_summary_repair_failures_total")

    init(store: ClickHouseStore, interval: Duration, settle: Duration, logger: Logger) {
        self.store = store
        self.interval = interval
        self.settle = settle
        self.logger = logger
    }

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            await runOnce()
        }
    }

    func runOnce() async {
        do {
            let r = try await store.repairTraceSummaries(settle: settle)
            if r.repaired > 0 {
                repaired.increment(by: Int64(r.repaired))
                logger.warning("trace_summary repaired: traces that had spans but no summary row got one from their spans", metadata: [
                    "traces": "\(r.repaired)", "still_missing": "\(r.unrepaired)", "settling": "\(r.settling)",
                ])
            } else if r.unrepaired > 0 {
                logger.debug("trace_summary repair: traces still without a summary row (no readable spans yet)", metadata: ["traces": "\(r.unrepaired)"])
            }
        } catch {
            failures.increment()
            logger.warning("trace_summary repair failed; tried again next interval", metadata: ["error": "\(error)"])
        }
    }
}
