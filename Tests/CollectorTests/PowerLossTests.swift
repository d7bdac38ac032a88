import EvalForgeCore
import EvalForgeOTLP
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@testable import Collector

#if canImport(FoundationNetworking)
import FoundationNetworking
import TestProcesses
#endif

/// Power loss, simulated on the real `evalforge collector`: tests/durability/powerloss.c, loaded
/// with LD_PRELOAD, records what each fsync/fdatasync made durable (file contents, directory
/// entries); after kill -9 its restore tool rewrites the WAL directory to exactly that state (unsynced
/// bytes cut off, files whose directory was never synced removed, unsynced renames undone), and a
/// collector started without the shim must forward every span it acknowledged. The same scenario
/// with a policy that acknowledges before syncing must lose spans: that proves the shim drops what a
/// power loss would drop, so the durable default's pass means something.
@Suite("Power loss (unsynced writes dropped) of the real `evalforge collector`", .serialized)
struct PowerLossTests {
    /// The shim and its restore tool, compiled once per test run with the machine's C compiler.
    struct Shim: Sendable {
        let library: String
        let tool: String
    }

    struct ShimError: Error, CustomStringConvertible {
        let description: String
    }

    static let shim: Result<Shim, ShimError> = buildShim()

    static var source: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("tests/durability/powerloss.c").path
    }

    /// Compiles with `$CC`, `cc`, `clang` (the Swift toolchain has one) or `gcc`, the first that works.
    static func buildShim() -> Result<Shim, ShimError> {
        let dir = NSTemporaryDirectory() + "evalforge-powerloss-shim-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let shim = Shim(library: dir + "/libpowerloss.so", tool: dir + "/powerloss")
        var candidates = ["cc", "clang", "gcc"]
        if let cc = ProcessInfo.processInfo.environment["CC"], !cc.isEmpty { candidates.insert(cc, at: 0) }
        var errors: [String] = []
        for cc in candidates {
            let lib = run("/usr/bin/env", [cc, "-O1", "-Wall", "-shared", "-fPIC", "-o", shim.library, source, "-ldl", "-lpthread"])
            if lib.status != 0 { errors.append("\(cc): \(lib.output.prefix(300))"); continue }
            let tool = run("/usr/bin/env", [cc, "-O1", "-Wall", "-DPOWERLOSS_TOOL", "-o", shim.tool, source])
            if tool.status != 0 { errors.append("\(cc): \(tool.output.prefix(300))"); continue }
            return .success(shim)
        }
        return .failure(ShimError(description: "cannot compile \(source) (scripts/setup installs gcc when neither cc nor clang is on PATH): \(errors.joined(separator: "; "))"))
    }

    /// Runs a program to completion, returning its exit status and its output (stdout and stderr).
    static func run(_ executable: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// What one power-loss run found.
    struct Outcome {
        var acknowledged: Set<String>
        var stored: [String]
        /// The restore tool's summary line.
        var restore: String
        /// The shim's record of syncs ("file …" and "dir …" lines).
        var syncLog: [Substring]
        /// Requests answered with anything but 200 before the power failed.
        var refused: Int
        var lost: Set<String> { acknowledged.subtracting(stored) }
    }

    /// One simulated machine: the "disk" (`root`, whose parent is outside the simulation), the
    /// shim's records (`state`), the collector's configuration and port.
    struct Machine {
        let shim: Shim
        let root = CollectorPipelineTests.tempDir()
        let state = CollectorPipelineTests.tempDir()
        let port = TestProcesses.freeLoopbackPort()
        let operatorPort = TestProcesses.freeLoopbackPort()
        /// The WAL directory, created by the collector: its own directory entry must be synced too.
        var queue: String { root + "/wal" }
        var config: String { state + "-collector.yaml" }
        var url: String { "http://127.0.0.1:\(port)" }
        /// The operator listener (`/healthz` with the counters).
        var operatorURL: String { "http://127.0.0.1:\(operatorPort)" }

        /// Writes the collector's configuration: `queue` and `forward` are YAML flow mappings' contents.
        func configure(queue extraQueue: String, forward: String) throws {
            try """
                queue: {directory: \(queue)\(extraQueue)}
                forward: {collector_id: powerloss, flush_interval_ms: 100, initial_backoff_ms: 20, max_backoff_ms: 100, \(forward)}
                """.write(toFile: config, atomically: true, encoding: .utf8)
        }

        /// Starts `evalforge collector`, under the shim unless `underShim` is false.
        func start(underShim: Bool, failSyncs: String? = nil) throws -> ChildProcess {
            let p = ChildProcess()
            p.executableURL = URL(fileURLWithPath: TestProcesses.evalforge)
            p.arguments = ["collector", "--open", "--config", config, "--port", "\(port)", "--operator-port", "\(operatorPort)", "--log-level", "error"]
            var env = ProcessInfo.processInfo.environment
            if underShim {
                env["LD_PRELOAD"] = shim.library
                env["EVALFORGE_POWERLOSS_ROOT"] = root
                env["EVALFORGE_POWERLOSS_STATE"] = state
                if let failSyncs { env["EVALFORGE_POWERLOSS_FAIL_SYNCS"] = failSyncs }
            }
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            return p
        }

        /// The power fails: kill -9, then the disk is cut back to what was synced. Returns the
        /// restore tool's summary and the shim's log of syncs.
        func powerFails(_ collector: ChildProcess) -> (restore: String, syncLog: [Substring]) {
            kill(collector.processIdentifier, SIGKILL)
            collector.waitUntilExit()
            let restore = PowerLossTests.run(shim.tool, ["restore", state, root])
            #expect(restore.status == 0, "restore failed: \(restore.output)")
            let log = (try? String(contentsOfFile: state + "/log", encoding: .utf8))?.split(separator: "\n") ?? []
            return (restore.output, log)
        }

        /// Waits until everything in `expected` reached `backend`, or the collector has nothing left to send.
        func drained(into backend: BackendStandIn, expecting expected: Set<String>) async {
            _ = await ForwardingSafetyTests.waitUntil(.seconds(60)) {
                if expected.isSubset(of: backend.uniqueSpanIDs) { return true }
                guard let h = try? await ForwardingSafetyTests.health(operatorURL), h.queueDepthRecords == 0 else { return false }
                let outbox = (try? FileManager.default.contentsOfDirectory(atPath: queue + "/outbox")) ?? []
                return !outbox.contains { $0.hasPrefix("batch-") }
            }
        }
    }

    static func spanIDs(_ spans: [Opentelemetry_Proto_Trace_V1_Span]) -> [String] {
        spans.map { Hex.encode(bytes: $0.traceID) + Hex.encode(bytes: $0.spanID) }
    }

    /// Starts the collector under the shim, acknowledges at least `spans` spans under continuous
    /// load from two senders with the backend refusing (503: nothing leaves the machine, everything
    /// acknowledged is only in the WAL and the outbox), lets the power fail while the load runs,
    /// restarts the collector without the shim against a working backend and collects what
    /// arrives. `failSyncs` is the shim's `EVALFORGE_POWERLOSS_FAIL_SYNCS` (`dir:N`: directory
    /// syncs after the first N fail with EIO); then the load also stops once 40 requests were refused.
    static func powerLoss(fsync: String?, spans: Int = 600, failSyncs: String? = nil) async throws -> Outcome {
        let machine = Machine(shim: try shim.get())
        let backend = BackendStandIn()
        backend.down.store(true, ordering: .relaxed)
        return try await backend.buildApplication().test(.live) { backendClient in
            let backendPort = try #require(backendClient.port)
            // Small segments: many rotations, each a new file whose directory entry must be synced.
            try machine.configure(
                queue: ", segment_bytes: 65536" + (fsync.map { ", fsync: \"\($0)\"" } ?? ""),
                forward: "backend_url: \"http://127.0.0.1:\(backendPort)\"")
            let port = machine.port
            var collector = try machine.start(underShim: true, failSyncs: failSyncs)
            #expect(await TestProcesses.waitHealthy(port), "the collector under the shim did not start")
            let shared = LoadState()
            let refused = RefusalCount()
            let client = OTLPClient(url: "http://127.0.0.1:\(port)")
            let load = Task {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<2 {
                        group.addTask {
                            while !shared.stop.load(ordering: .relaxed) {
                                let t = SpanFactory.traceID()
                                let batch = (1...20).map { SpanFactory.span(trace: t, id: UInt64($0)) }
                                if (try? await client.post(SpanFactory.request(batch))) == 200 {
                                    shared.acked.withLock { $0.formUnion(Self.spanIDs(batch)) }
                                } else {
                                    refused.count.add(1, ordering: .relaxed)
                                }
                            }
                        }
                    }
                }
            }
            let flowing = ContinuousClock.now + .seconds(60)
            while shared.acked.withLock({ $0.count }) < spans, failSyncs == nil || refused.count.load(ordering: .relaxed) < 40, ContinuousClock.now < flowing {
                try await Task.sleep(for: .milliseconds(20))
            }
            // The power fails while requests are in flight.
            let (restore, syncLog) = machine.powerFails(collector)
            shared.stop.store(true, ordering: .relaxed)
            await load.value
            let acknowledged = shared.acked.withLock { $0 }

            backend.down.store(false, ordering: .relaxed)
            collector = try machine.start(underShim: false)
            defer {
                collector.terminate()
                collector.waitUntilExit()
            }
            #expect(await TestProcesses.waitHealthy(port), "the collector did not start on the restored WAL")
            await machine.drained(into: backend, expecting: acknowledged)
            let stored = backend.stored.withLock { Self.spanIDs($0.spans) }
            return Outcome(acknowledged: acknowledged, stored: stored, restore: restore, syncLog: syncLog, refused: refused.count.load(ordering: .relaxed))
        }
    }

    @Test("the default policy (always, group-committed): every acknowledged span survives a power loss")
    func durableDefault() async throws {
        #expect(TestProcesses.evalforgeMissing == nil, "\(TestProcesses.evalforgeMissing ?? "")")
        #expect(CollectorConfiguration.default.fsyncPolicy == .always)
        let o = try await Self.powerLoss(fsync: nil)
        #expect(o.acknowledged.count >= 600)
        // The shim saw the collector's syncs: segment contents and the directories naming them.
        #expect(o.syncLog.contains { $0.hasPrefix("file ") && $0.contains("wal/wal-") })
        #expect(o.syncLog.contains { $0.hasPrefix("dir ") && $0.hasSuffix(" /wal") })
        #expect(o.lost.isEmpty, "lost \(o.lost.count) of \(o.acknowledged.count) acknowledged spans; restore: \(o.restore)")
        #expect(o.stored.count == Set(o.stored).count, "\(o.stored.count - Set(o.stored).count) spans stored twice")
    }

    @Test(
        "policies that acknowledge before syncing lose acknowledged spans (the shim drops unsynced writes)",
        arguments: ["never", "interval:60000"])
    func acknowledgedBeforeSync(policy: String) async throws {
        let o = try await Self.powerLoss(fsync: policy)
        #expect(o.acknowledged.count >= 600)
        #expect(!o.lost.isEmpty, "fsync \(policy) lost nothing of \(o.acknowledged.count) acknowledged spans: the simulation did not drop unsynced data; restore: \(o.restore)")
    }

    @Test("directory syncs failing (EIO) after a while: nothing is acknowledged that a power loss could take")
    func failingDirectorySync() async throws {
        // The first directory syncs (the WAL directory's parent, the epoch file, the first segment)
        // succeed; every later one fails, so the next segment's name cannot be made durable.
        let o = try await Self.powerLoss(fsync: nil, failSyncs: "dir:4")
        #expect(o.syncLog.contains { $0.hasPrefix("failed dir") }, "the fault was never injected")
        #expect(o.refused > 0, "no request was refused while directory syncs failed")
        #expect(!o.acknowledged.isEmpty)
        #expect(o.lost.isEmpty, "lost \(o.lost.count) of \(o.acknowledged.count) acknowledged spans; restore: \(o.restore)")
    }

    @Test("a batch the backend proves malformed (400) is dead-lettered durably before its WAL records are released")
    func deadLetterSurvives() async throws {
        let machine = Machine(shim: try Self.shim.get())
        let backend = BackendStandIn()
        try await backend.buildApplication().test(.live) { backendClient in
            let backendPort = try #require(backendClient.port)
            // Uncompressed batches, so the dead-lettered bodies can be read back below.
            try machine.configure(queue: "", forward: "backend_url: \"http://127.0.0.1:\(backendPort)\", compression: none")
            var collector = try machine.start(underShim: true)
            #expect(await TestProcesses.waitHealthy(machine.port), "the collector under the shim did not start")
            let client = OTLPClient(url: machine.url)
            var acknowledged = Set<String>()
            func send() async throws {
                let t = SpanFactory.traceID()
                let spans = (1...20).map { SpanFactory.span(trace: t, id: UInt64($0)) }
                if try await client.post(SpanFactory.request(spans)) == 200 { acknowledged.formUnion(Self.spanIDs(spans)) }
            }
            // One batch accepted first: this run's checkpoint file exists, so the release after the
            // dead-lettering only rewrites it in place (no directory sync that would cover the new file).
            try await send()
            #expect(await ForwardingSafetyTests.waitUntil { (try? await ForwardingSafetyTests.health(machine.operatorURL))?.queueDepthRecords == 0 })
            backend.forcedStatus.store(400, ordering: .relaxed)
            for _ in 0..<5 { try await send() }
            #expect(await ForwardingSafetyTests.waitUntil {
                guard let h = try? await ForwardingSafetyTests.health(machine.operatorURL) else { return false }
                return h.deadLetters >= 1 && h.queueDepthRecords == 0
            }, "the refused batches were not dead-lettered and released")
            let (restore, _) = machine.powerFails(collector)

            backend.forcedStatus.store(0, ordering: .relaxed)
            collector = try machine.start(underShim: false)
            defer {
                collector.terminate()
                collector.waitUntilExit()
            }
            #expect(await TestProcesses.waitHealthy(machine.port), "the collector did not start on the restored WAL")
            await machine.drained(into: backend, expecting: acknowledged)
            let entries = (try? DeadLetterFile.read(path: machine.queue + "/" + DeadLetterFile.fileName).entries) ?? []
            var deadLettered = Set<String>()
            for e in entries where e.kind == .rejectedBatch {
                let batch = try Evalforge_V1_ForwardBatch(serializedBytes: e.payload)
                for rs in batch.resourceSpans { for ss in rs.scopeSpans { deadLettered.formUnion(Self.spanIDs(ss.spans)) } }
            }
            #expect(acknowledged.count == 120)
            #expect(!deadLettered.isEmpty, "no dead-letter entry survived the power loss; restore: \(restore)")
            let lost = acknowledged.subtracting(backend.uniqueSpanIDs).subtracting(deadLettered)
            #expect(lost.isEmpty, "\(lost.count) acknowledged spans neither stored nor dead-lettered after the power loss")
        }
    }
}

/// Requests the load got no 200 for (shared by the senders).
final class RefusalCount: Sendable {
    let count = Atomic<Int>(0)
}
