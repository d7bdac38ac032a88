import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// What the tests that run real EvalForge processes (kill -9, power loss, restarts) share: where the
/// `evalforge` executable is and a free loopback port to start it on.
public enum TestProcesses {
    /// `EVALFORGE_BIN` when set, else the debug build of this package (`swift build` makes it).
    public static var evalforge: String {
        if let b = ProcessInfo.processInfo.environment["EVALFORGE_BIN"] { return b }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/evalforge").path
    }

    /// Why a test that needs the executable cannot run, or nil when it is there.
    public static var evalforgeMissing: String? {
        FileManager.default.isExecutableFile(atPath: evalforge) ? nil : "build the evalforge executable first (swift build): \(evalforge)"
    }

    /// A port on 127.0.0.1 that was free a moment ago (the kernel picked it for a socket just closed).
    public static func freeLoopbackPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// True once `GET /healthz` on 127.0.0.1:`port` answers 200 (the process listens and its stores
    /// are open); false after `within`.
    public static func waitHealthy(_ port: Int, within: Duration = .seconds(30)) async -> Bool {
        guard let url = URL(string: "http://127.0.0.1:\(port)/healthz") else { return false }
        var request = URLRequest(url: url)
        request.timeoutInterval = 1
        let deadline = ContinuousClock.now + within
        while ContinuousClock.now < deadline {
            if let (_, r) = try? await URLSession.shared.data(for: request), (r as? HTTPURLResponse)?.statusCode == 200 { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}
