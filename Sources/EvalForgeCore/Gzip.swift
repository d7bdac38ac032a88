import CZlib

/// gzip compression and bounded decompression over the system zlib.
package enum Gzip {
    /// Why a gzip operation failed.
    package struct Error: Swift.Error, CustomStringConvertible, Sendable {
        private enum Code: Sendable { case corrupt, tooLarge, zlib }
        private let code: Code
        package let message: String
        package var description: String { message }

        package var isTooLarge: Bool { code == .tooLarge }

        static func corrupt(_ detail: String) -> Error { Error(code: .corrupt, message: "gzip body is corrupt: \(detail)") }
        static func tooLarge(_ limit: Int) -> Error {
            Error(code: .tooLarge, message: "gzip body inflates to more than \(limit) bytes")
        }
        static func zlib(_ status: Int32) -> Error { Error(code: .zlib, message: "zlib failed with status \(status)") }
    }

    /// Compresses `input` into a gzip member (RFC 1952).
    package static func compress(_ input: [UInt8], level: Int32 = 1) throws -> [UInt8] {
        try input.withUnsafeBytes { buf in try compress(buf, level: level) }
    }

    /// Compresses the bytes at `input` into a gzip member (RFC 1952).
    package static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 1) throws -> [UInt8] {
        var stream = z_stream()
        let initStatus = deflateInit2_(
            &stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
            ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else { throw Error.zlib(initStatus) }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, UInt(input.count)))
        var output = [UInt8](repeating: 0, count: bound)
        let result: Result<Int, Error> = { () -> Result<Int, Error> in
            let inBuf = input.bindMemory(to: UInt8.self)
            return output.withUnsafeMutableBufferPointer { outBuf -> Result<Int, Error> in
                stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
                stream.avail_in = UInt32(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = UInt32(outBuf.count)
                let status = deflate(&stream, Z_FINISH)
                guard status == Z_STREAM_END else { return .failure(.zlib(status)) }
                return .success(Int(stream.total_out))
            }
        }()
        switch result {
        case .success(let n):
            output.removeSubrange(n...)
            return output
        case .failure(let e):
            throw e
        }
    }

    /// True when `bytes` start with the gzip magic number.
    package static func isGzip(_ bytes: some Collection<UInt8>) -> Bool {
        var it = bytes.makeIterator()
        return it.next() == 0x1f && it.next() == 0x8b
    }

    /// Inflates a gzip (or zlib) body, refusing to produce more than `limit` bytes.
    package static func decompress(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        try input.withUnsafeBytes { buf in try decompress(buf, limit: limit) }
    }

    /// Inflates the gzip (or zlib) bytes at `input`, refusing to produce more than `limit` bytes.
    package static func decompress(_ input: UnsafeRawBufferPointer, limit: Int) throws -> [UInt8] {
        var stream = z_stream()
        // 15 + 32: detect gzip or zlib headers automatically.
        let initStatus = inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else { throw Error.zlib(initStatus) }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let outcome: Error? = { () -> Error? in
            let inBuf = input.bindMemory(to: UInt8.self)
            stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            stream.avail_in = UInt32(inBuf.count)
            while true {
                let (status, produced) = chunk.withUnsafeMutableBufferPointer { outBuf -> (Int32, Int) in
                    stream.next_out = outBuf.baseAddress
                    stream.avail_out = UInt32(outBuf.count)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    return (status, outBuf.count - Int(stream.avail_out))
                }
                if produced > 0 {
                    if output.count + produced > limit { return .tooLarge(limit) }
                    output.append(contentsOf: chunk[0..<produced])
                }
                switch status {
                case Z_STREAM_END:
                    return nil
                case Z_OK:
                    continue
                case Z_BUF_ERROR:
                    if stream.avail_in == 0 { return .corrupt("truncated") }
                    continue
                default:
                    let msg = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                    return .corrupt(msg)
                }
            }
        }()
        if let outcome { throw outcome }
        return output
    }
}
