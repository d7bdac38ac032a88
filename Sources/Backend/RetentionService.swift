import EvalForgeModel
import EvalForgeStore
import Foundation
import Logging
import ServiceLifecycle

/// Deletes each project's telemetry older than its retention (`Project.retentionDays`, 0 = keep
/// forever) every `interval`. Stores with a server-side TTL may treat the call as a no-op.
struct RetentionService: Service {
    let store: any SpanStore
    let projects: ProjectStore
    let interval: Duration
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

    func runOnce() async {
        do {
            for p in try await projects.projects() where p.retentionDays > 0 {
                let cutoff = CheckedNumbers.clampedInt64((Date().timeIntervalSince1970 - Double(p.retentionDays) * 86_400) * 1e9)  // any configured day count
                let n = try await store.deleteExpired(projectID: p.id, beforeUnixNanos: cutoff)
                if n > 0 { logger.info("retention deleted rows", metadata: ["project": "\(p.id)", "rows": "\(n)"]) }
            }
        } catch {
            logger.warning("retention run failed", metadata: ["error": "\(error)"])
        }
    }
}
