import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A minimal blocking HTTP/1.1 client on one keep-alive TCP connection to 127.0.0.1 (the load
/// generator's and the orchestrator's; POSIX sockets, so it costs next to nothing next to the
/// collector). Understands Content-Length and chunked responses.
final class HTTPConnection {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let port: UInt16
    private var fd: Int32 = -1
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    private var start = 0
    private var end = 0

    init(port: Int) { self.port = UInt16(port) }
    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        start = 0
        end = 0
    }

    private func connect() throws {
        close()
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(s)
            throw Failure(description: "connect 127.0.0.1:\(port): \(String(cString: strerror(e)))")
        }
        fd = s
    }

    /// Sends one request and returns the status and body. Reconnects once if a kept-alive
    /// connection turns out closed before anything was answered.
    func request(_ head: [UInt8], body: [UInt8]) throws -> (status: Int, body: [UInt8]) {
        if fd < 0 { try connect() }
        do {
            try send(head, body)
        } catch {
            try connect()
            try send(head, body)
        }
        return try readResponse()
    }

    func get(_ path: String) throws -> (status: Int, body: [UInt8]) {
        try request(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n".utf8), body: [])
    }

    private func send(_ head: [UInt8], _ body: [UInt8]) throws {
        try head.withUnsafeBytes { h in
            try body.withUnsafeBytes { b in
                var hOff = 0
                var bOff = 0
                while hOff < h.count || bOff < b.count {
                    var iov = [
                        iovec(iov_base: UnsafeMutableRawPointer(mutating: h.baseAddress.map { $0 + hOff }), iov_len: h.count - hOff),
                        iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress.map { $0 + bOff }), iov_len: b.count - bOff),
                    ]
                    let n = iov.withUnsafeMutableBufferPointer { writev(fd, $0.baseAddress, 2) }
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw Failure(description: "write: \(String(cString: strerror(errno)))")
                    }
                    var left = n
                    let takeH = min(left, h.count - hOff)
                    hOff += takeH
                    left -= takeH
                    bOff += left
                }
            }
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    private func fill() throws -> Bool {
        if start > 0 && start == end {
            start = 0
            end = 0
        }
        if end == buffer.count {
            if start > 0 {
                buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
                end -= start
                start = 0
            } else {
                buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count))
            }
        }
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + end, $0.count - end) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "read: \(String(cString: strerror(errno)))")
            }
            end += n
            return n > 0
        }
    }

    private func readLine() throws -> String {
        while true {
            if let i = buffer[start..<end].firstIndex(of: UInt8(ascii: "\n")) {
                var lineEnd = i
                if lineEnd > start && buffer[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                let line = String(decoding: buffer[start..<lineEnd], as: UTF8.self)
                start = i + 1
                return line
            }
            guard try fill() else { throw Failure(description: "connection closed mid-response") }
        }
    }

    private func readExactly(_ n: Int) throws -> [UInt8] {
        while end - start < n {
            guard try fill() else { throw Failure(description: "connection closed mid-body") }
        }
        let out = Array(buffer[start..<(start + n)])
        start += n
        return out
    }

    private func readResponse() throws -> (status: Int, body: [UInt8]) {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            close()
            throw Failure(description: "bad status line '\(statusLine.prefix(80))'")
        }
        var length: Int?
        var chunked = false
        var closeAfter = false
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces).lowercased()
            switch name {
            case "content-length": length = Int(value)
            case "transfer-encoding": chunked = value.contains("chunked")
            case "connection": closeAfter = value.contains("close")
            default: break
            }
        }
        var body: [UInt8] = []
        if chunked {
            while true {
                let sizeLine = try readLine()
                guard let size = Int(sizeLine.split(separator: ";").first.map(String.init) ?? "", radix: 16) else {
                    close()
                    throw Failure(description: "bad chunk size '\(sizeLine.prefix(40))'")
                }
                if size == 0 {
                    while try !readLine().isEmpty {}
                    break
                }
                body += try readExactly(size)
                _ = try readLine()
            }
        } else if let length {
            body = try readExactly(length)
        } else {
            while try fill() {}
            body = Array(buffer[start..<end])
            start = end
            closeAfter = true
        }
        if closeAfter { close() }
        return (status, body)
    }
}
