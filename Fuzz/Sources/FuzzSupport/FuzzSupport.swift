import Foundation

/// Helpers shared by the libFuzzer entry points (Fuzz/Sources/Fuzz*): they run synchronously
/// inside `LLVMFuzzerTestOneInput`, so async APIs are awaited on a semaphore, and each input gets
/// a fresh scratch directory.
public enum Fuzz {
    /// The input as an array (libFuzzer passes a null pointer for the empty input).
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// Runs `body` to completion on the cooperative pool and returns its result. libFuzzer's
    /// thread is not a Swift concurrency thread, so blocking it is safe.
    public static func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task {
            let r: Result<T, any Error>
            do { r = .success(try await body()) } catch { r = .failure(error) }
            box.set(r)
            done.signal()
        }
        done.wait()
        return box.get()
    }

    /// An empty scratch directory, reused across inputs (removed and recreated each call).
    public static func scratchDirectory(_ name: String) -> String {
        let d = NSTemporaryDirectory() + "evalforge-fuzz-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: d)
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// When EVALFORGE_FUZZ_WRITE_SEEDS names a directory, writes `seeds` there (name → bytes) and
    /// exits: scripts/fuzz NAME --seeds regenerates a committed corpus from the real encoders.
    public static func writeSeedsIfAsked(_ seeds: () throws -> [(String, [UInt8])]) {
        guard let dir = ProcessInfo.processInfo.environment["EVALFORGE_FUZZ_WRITE_SEEDS"], !dir.isEmpty else { return }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for (name, bytes) in try seeds() {
                try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name))
            }
            exit(0)
        } catch {
            FileHandle.standardError.write(Data("cannot write seeds: \(error)\n".utf8))
            exit(1)
        }
    }
}

private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<T, any Error>?
    func set(_ v: Result<T, any Error>) { lock.lock(); value = v; lock.unlock() }
    func get() -> Result<T, any Error> {
        lock.lock()
        defer { lock.unlock() }
        return value ?? .failure(CancellationError())
    }
}

extension Fuzz {
    static let isVerbose = ProcessInfo.processInfo.environment["EVALFORGE_FUZZ_VERBOSE"] == "1"

    /// With EVALFORGE_FUZZ_VERBOSE=1 (for checking seeds), what happened to an input.
    public static func verbose(_ message: @autoclosure () -> String) {
        if isVerbose { FileHandle.standardError.write(Data(("fuzz: " + message() + "\n").utf8)) }
    }

    /// A 500 is a finding too (an error the handler did not map to an answer): with
    /// EVALFORGE_FUZZ_STRICT=1 it aborts (so libFuzzer records the input), otherwise it is printed
    /// once per distinct message.
    public static func expectNoServerError(_ status: Int, _ what: String, _ body: [UInt8]) {
        guard status == 500 else { return }
        let message = "\(what) answered 500: \(String(decoding: body.prefix(300), as: UTF8.self))"
        if ProcessInfo.processInfo.environment["EVALFORGE_FUZZ_STRICT"] == "1" {
            FileHandle.standardError.write(Data((message + "\n").utf8))
            abort()
        }
        if serverErrors.insert(message) { FileHandle.standardError.write(Data(("NOTE: " + message + "\n").utf8)) }
    }

    static let serverErrors = MessageSet()
}

/// Distinct messages already printed.
final class MessageSet: @unchecked Sendable {
    private let lock = NSLock()
    private var seen = Set<String>()
    func insert(_ s: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return seen.insert(s).inserted
    }
}
