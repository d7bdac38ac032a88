import Foundation
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The posix_spawn helper every process test uses instead of Foundation's `Process` (which can crash
/// the test process on Linux: see `ChildProcess`).
@Suite("ChildProcess: the tests' process spawner")
struct ChildProcessTests {
    static func shell(_ script: String) -> ChildProcess {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        return p
    }

    @Test("exit codes, output through a pipe, environment and working directory")
    func exitOutputEnvironment() throws {
        let p = Self.shell("pwd; echo \"$GREETING\"; exit 3")
        let out = Pipe()
        p.standardOutput = out
        p.environment = ["GREETING": "hello from the parent", "PATH": "/usr/bin:/bin"]
        p.currentDirectoryURL = URL(fileURLWithPath: "/tmp")
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(text == "/tmp\nhello from the parent\n")
        #expect(!p.isRunning)
        #expect(p.terminationReason == .exit)
        #expect(p.terminationStatus == 3)
    }

    @Test("a signal ends the child and is reported as such; a missing executable throws")
    func signalsAndFailures() throws {
        let p = Self.shell("sleep 30")
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        #expect(p.isRunning)
        p.signal(SIGKILL)
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal)
        #expect(p.terminationStatus == SIGKILL)

        let missing = ChildProcess()
        missing.executableURL = URL(fileURLWithPath: "/nonexistent/evalforge")
        #expect(throws: SpawnError.self) { try missing.run() }
    }

    @Test("the child inherits no descriptor above 2 (a pipe or socket of another test would stay open in it)")
    func noInheritedDescriptors() throws {
        // A descriptor open in this process without close-on-exec.
        let fd = open("/dev/null", O_RDONLY)
        #expect(fd > 2)
        defer { close(fd) }
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: "/bin/ls")
        p.arguments = ["/proc/self/fd"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let listed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").compactMap { Int($0) }
        p.waitUntilExit()
        // 0, 1, 2 and the one directory ls opened to list them (a leaked descriptor would make two).
        #expect(listed.filter { $0 > 2 }.count == 1, "descriptors in the child: \(listed)")
    }
}
