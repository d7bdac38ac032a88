import EvalForgeModel
import EvalForgeStore
import Foundation
import Logging
import ServiceLifecycle

/// Deletes each project's telemetry older than its retention (`Project.retention(default:)`: its
/// own days, else the server's `--retention-days`; 0 = keep forever) every `interval`, all projects
/// in one `deleteExpired` pass (docs/storage.md, "Retention").
struct RetentionService: Service {
    let store: any SpanStore
    let projects: ProjectStore
    let interval: Duration
    /// Days kept for projects that follow the server default; 0 = forever.
    let defaultDays: Int
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await runOnce()
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
        }
    }

    func runOnce(now: Date = Date()) async {
        do {
            let all = try await projects.projects()
            let cutoffs = Self.cutoffs(all, defaultDays: defaultDays, now: now)
            guard !cutoffs.isEmpty else { return }
            // Every project expires data: whole partitions older than the shortest-lived may go.
            let n: Int
            do {
                n = try await store.deleteExpired(cutoffs, everyProject: cutoffs.count == all.count)
            } catch {
                // Some rows may be gone: other backends forget what they merged of them.
                try? await CacheGenerations.bump(projects.db, .telemetryDeletes)
                throw error
            }
            if n > 0 {
                logger.info("retention deleted rows", metadata: ["projects": "\(cutoffs.count)", "rows": "\(n)"])
                // Every backend forgets its merged metric hours and multi-row trace sets (docs/scaling.md).
                try await CacheGenerations.bump(projects.db, .telemetryDeletes)
            }
        } catch {
            logger.warning("retention run failed", metadata: ["error": "\(error)"])
        }
    }

    /// Each project's cutoff in Unix nanoseconds: the start of the UTC day `days` days before
    /// today's. Whole UTC days go, so a kept day keeps all its spans and rollups (its hourly and
    /// daily aggregates do not change), and a store has new rows to delete only once a day.
    /// Projects kept forever are left out.
    static func cutoffs(_ projects: [Project], defaultDays: Int, now: Date) -> [String: Int64] {
        let today = CheckedNumbers.clampedInt64(now.timeIntervalSince1970.rounded(.down)) / 86_400
        var out: [String: Int64] = [:]
        for p in projects {
            let days = Int64(p.retention(default: defaultDays))  // 0 or within Project.retentionDaysRange
            guard days > 0, today - days > 0 else { continue }
            out[p.id] = (today - days).multipliedSaturated(by: 86_400 * 1_000_000_000)
        }
        return out
    }
}
