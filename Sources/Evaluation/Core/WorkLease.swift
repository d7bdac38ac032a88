import EvalForgeCore
import EvalForgeCrypto
import Logging

/// Leases on the work several backends share through one metadata database: run items, webhook
/// deliveries and online-queue rows (docs/reliability.md, "Shared work and leases").
public struct WorkLeaseSettings: Sendable {
    /// How long a claim is held without a heartbeat: the process that claimed a row extends its
    /// lease every third of this while it works on it; a lease that ran out (the process was killed
    /// or hangs) makes the row claimable by any backend. Env `EVALFORGE_WORK_LEASE_S`. Default 30 s.
    public var duration: Duration
    /// How often a worker looks for runs with claimable items (started anywhere, or left by a
    /// backend that stopped). Default 1 s.
    public var runPollInterval: Duration

    public init(duration: Duration = .seconds(30), runPollInterval: Duration = .seconds(1)) {
        self.duration = duration
        self.runPollInterval = runPollInterval
    }

    public static let `default` = WorkLeaseSettings()
}

/// This process's claims: its worker id (random per process, recorded as the `owner` of every row
/// it claims) and the lease length.
struct WorkLease: Sendable {
    let owner: String
    let durationMs: Int64

    init(_ settings: WorkLeaseSettings, owner: String = "w_" + Digest.hex(Digest.randomBytes(8))) {
        self.owner = owner
        // At least 100 ms (a heartbeat every third of it must be possible), at most a day.
        durationMs = min(max(100, Checked.nanoseconds(settings.duration) / 1_000_000), 86_400_000)
    }

    /// The expiry of a lease taken or extended now.
    func until(_ now: Int64 = nowMs()) -> Int64 { now.addingSaturated(durationMs) }

    /// Every third of the lease: `extend` (one UPDATE of the rows this process holds) until the
    /// task is cancelled. A failed heartbeat is logged; the next one tries again (the lease has
    /// two more thirds to run).
    func heartbeat(_ what: String, logger: Logger, _ extend: @escaping @Sendable () async throws -> Void) async {
        let interval = Duration.milliseconds(max(30, durationMs / 3))
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            do { try await extend() } catch {
                if Task.isCancelled { return }
                logger.warning("extending work leases failed; retrying at the next heartbeat", metadata: ["work": "\(what)", "error": "\(error)"])
            }
        }
    }
}
