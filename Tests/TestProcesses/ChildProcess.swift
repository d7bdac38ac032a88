import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, for the tests that run real processes (EvalForge's
/// executables, servers, Python). It has the part of `Foundation.Process`'s interface the tests use.
///
/// Why not `Foundation.Process`: on Linux its `run()` (swift-corelibs-foundation up to the Swift 6.3
/// toolchain here) reads each `/proc/self/fd` entry with a 256-byte copy of `d_name`, past the end of
/// glibc's directory buffer, and now and then crashes the whole test process
/// (swiftlang/swift-corelibs-foundation#5472). A CI run lost 30 minutes to it: the crash orphaned a
/// collector the test had started. Here every descriptor above 2 is closed in the child
/// (`posix_spawn_file_actions_addclosefrom_np`), so children inherit nothing by accident either.
public final class ChildProcess: @unchecked Sendable {
    public enum TerminationReason: Sendable {
        case exit
        case uncaughtSignal
    }

    /// Set before `run()`; not changed afterwards (the tests' use, as with `Process`).
    public var executableURL: URL?
    public var arguments: [String]?
    /// The child's whole environment; nil: this process's.
    public var environment: [String: String]?
    public var currentDirectoryURL: URL?
    /// `FileHandle` (including `FileHandle.nullDevice`) or `Pipe`; nil: inherited.
    public var standardInput: Any?
    public var standardOutput: Any?
    public var standardError: Any?

    private struct State {
        var pid: pid_t = 0
        /// The raw wait status once the child has been reaped.
        var status: Int32?
    }

    private let state = Mutex(State())

    public init() {}

    public var processIdentifier: Int32 { state.withLock { $0.pid } }

    /// Starts the child. Throws when the executable cannot be started.
    public func run() throws {
        guard let path = executableURL?.path else { throw SpawnError("no executableURL") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        var closeInParent: [FileHandle] = []
        for (target, io) in [(Int32(0), standardInput), (1, standardOutput), (2, standardError)] {
            switch io {
            case let handle as FileHandle where handle === FileHandle.nullDevice:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case let handle as FileHandle:
                posix_spawn_file_actions_adddup2(&actions, handle.fileDescriptor, target)
            case let pipe as Pipe:
                let end = target == 0 ? pipe.fileHandleForReading : pipe.fileHandleForWriting
                posix_spawn_file_actions_adddup2(&actions, end.fileDescriptor, target)
                closeInParent.append(end)
            case nil:
                break
            default:
                throw SpawnError("standard stream \(target) must be a FileHandle or a Pipe")
            }
        }
        guard let closeFrom = Self.addCloseFrom, closeFrom(&actions, 3) == 0 else {
            throw SpawnError("posix_spawn_file_actions_addclosefrom_np is not available (glibc 2.34 or later)")
        }
        if let dir = currentDirectoryURL?.path {
            guard let chdir = Self.addChdir, chdir(&actions, dir) == 0 else { throw SpawnError("cannot set the working directory \(dir)") }
        }
        // Default signal dispositions and an empty mask in the child, whatever the test process set.
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = [path] + (arguments ?? [])
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var cArgv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cEnv: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, &cArgv, &cEnv)
        guard rc == 0 else { throw SpawnError("cannot start \(path): \(String(cString: strerror(rc)))") }
        state.withLock { $0.pid = pid }
        // The child has its copies; the parent's write end of an output pipe must close for EOF.
        for handle in closeInParent { try? handle.close() }
    }

    /// Reaps the child if it has exited (never blocks).
    private func poll() -> Int32? {
        state.withLock { s in
            if let status = s.status { return status }
            guard s.pid > 0 else { return nil }
            var status: Int32 = 0
            let r = waitpid(s.pid, &status, WNOHANG)
            if r == s.pid {
                s.status = status
                return status
            }
            return nil
        }
    }

    public var isRunning: Bool { processIdentifier > 0 && poll() == nil }

    public func terminate() { signal(SIGTERM) }
    public func interrupt() { signal(SIGINT) }

    /// Sends `sig` to the child while it has not been reaped (a reaped pid may belong to another process).
    public func signal(_ sig: Int32) {
        state.withLock { s in
            if s.pid > 0, s.status == nil { _ = kill(s.pid, sig) }
        }
    }

    /// Blocks until the child has exited.
    public func waitUntilExit() {
        guard processIdentifier > 0 else { return }
        while poll() == nil { usleep(5_000) }
    }

    /// The exit code, or the signal number when the child was killed by a signal.
    public var terminationStatus: Int32 {
        guard let s = poll() else { return -1 }
        return s & 0x7f == 0 ? (s >> 8) & 0xff : s & 0x7f
    }

    public var terminationReason: TerminationReason {
        guard let s = poll() else { return .exit }
        return s & 0x7f == 0 ? .exit : .uncaughtSignal
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+) and `…_addchdir_np` (2.29+): not in
    /// Swift's Glibc module, so looked up at run time.
    private static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: AddCloseFrom.self) }
    private static let addChdir: AddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: AddChdir.self) }
}

extension ChildProcess {
    /// Runs `executable` with `arguments` to its end (standard output discarded) and returns its exit
    /// status and standard error: the shape of every "this configuration is refused, naming why" test.
    public static func runToExit(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, standardError: String) {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.environment = environment
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }
}

/// Why a child process could not be started.
public struct SpawnError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
