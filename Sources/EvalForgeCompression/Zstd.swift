import CZstd

/// zstd compression (RFC 8878) and bounded decompression over the system libzstd.
///
/// The collector compresses forwarded batches with it (level 1 is several times faster than gzip
/// level 1 and smaller); the backend and the receivers inflate `Content-Encoding: zstd` bodies.
public enum Zstd {
    /// Why a zstd operation failed.
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        private enum Code: Sendable { case corrupt, tooLarge, zstd }
        private let code: Code
        public let message: String
        public var description: String { message }

        public var isTooLarge: Bool { code == .tooLarge }

        static func corrupt(_ detail: String) -> Error { Error(code: .corrupt, message: "zstd body is corrupt: \(detail)") }
        static func tooLarge(_ limit: Int) -> Error {
            Error(code: .tooLarge, message: "zstd body inflates to more than \(limit) bytes")
        }
        static func zstd(_ what: String, _ status: Int) -> Error {
            Error(code: .zstd, message: "zstd \(what) failed: \(String(cString: ZSTD_getErrorName(status)))")
        }
        static func allocation(_ what: String) -> Error { Error(code: .zstd, message: "zstd: cannot allocate a \(what) context") }
        static func misuse(_ detail: String) -> Error { Error(code: .zstd, message: "zstd compression: \(detail)") }
    }

    /// The magic number that starts every zstd frame (0xFD2FB528, little endian).
    public static func isZstd(_ bytes: some Collection<UInt8>) -> Bool {
        var it = bytes.makeIterator()
        return it.next() == 0x28 && it.next() == 0xB5 && it.next() == 0x2F && it.next() == 0xFD
    }

    /// Compresses `input` into one zstd frame (content size and checksum included).
    public static func compress(_ input: [UInt8], level: Int32 = 1) throws -> [UInt8] {
        try input.withUnsafeBytes { buf in try compress(buf, level: level) }
    }

    /// Compresses the bytes at `input` into one zstd frame with the content size in its header and
    /// an XXH64 checksum of the content, so corruption is detected when inflating.
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 1) throws -> [UInt8] {
        guard let cctx = ZSTD_createCCtx() else { throw Error.allocation("compression") }
        defer { ZSTD_freeCCtx(cctx) }
        var status = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)
        guard ZSTD_isError(status) == 0 else { throw Error.zstd("setting the level \(level)", status) }
        status = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
        guard ZSTD_isError(status) == 0 else { throw Error.zstd("enabling the checksum", status) }
        // Written by zstd, never read before: no zero-filling of the (input-sized) bound.
        var failure: Int?
        var empty: UInt8 = 0
        let output = withUnsafeMutablePointer(to: &empty) { emptyPointer in
            [UInt8](unsafeUninitializedCapacity: ZSTD_compressBound(input.count)) { out, count in
                let written = ZSTD_compress2(cctx, out.baseAddress, out.count, input.baseAddress ?? UnsafeRawPointer(emptyPointer), input.count)
                if ZSTD_isError(written) != 0 {
                    failure = written
                    count = 0
                } else {
                    count = written
                }
            }
        }
        if let failure { throw Error.zstd("compression", failure) }
        return output
    }

    /// Compresses a body produced in pieces into one zstd frame without assembling it first:
    /// `produce` calls its argument with each piece in order (small pieces are fine; zstd buffers
    /// them), and exactly `size` bytes in all, which the frame header records as its content size.
    /// Same frame as `compress` of the joined bytes at the same level (content size, checksum).
    public static func compress(size: Int, level: Int32 = 1, _ produce: (_ feed: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> [UInt8] {
        guard let cctx = ZSTD_createCCtx() else { throw Error.allocation("compression") }
        defer { ZSTD_freeCCtx(cctx) }
        for (parameter, value, what) in [(ZSTD_c_compressionLevel, level, "setting the level \(level)"), (ZSTD_c_checksumFlag, 1, "enabling the checksum")] {
            let status = ZSTD_CCtx_setParameter(cctx, parameter, value)
            guard ZSTD_isError(status) == 0 else { throw Error.zstd(what, status) }
        }
        let pledged = ZSTD_CCtx_setPledgedSrcSize(cctx, UInt64(size))
        guard ZSTD_isError(pledged) == 0 else { throw Error.zstd("declaring the content size", pledged) }
        var fed = 0
        // One frame never exceeds the bound of its content size, streamed or not.
        return try [UInt8](unsafeUninitializedCapacity: ZSTD_compressBound(size)) { out, count in
            count = 0
            var outBuf = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
            func run(_ piece: UnsafeRawBufferPointer, _ directive: ZSTD_EndDirective) throws {
                var empty: UInt8 = 0
                try withUnsafeMutablePointer(to: &empty) { emptyPointer in
                    var inBuf = ZSTD_inBuffer(src: piece.baseAddress ?? UnsafeRawPointer(emptyPointer), size: piece.count, pos: 0)
                    while true {
                        let left = ZSTD_compressStream2(cctx, &outBuf, &inBuf, directive)
                        guard ZSTD_isError(left) == 0 else { throw Error.zstd("compression", left) }
                        let done = directive == ZSTD_e_end ? left == 0 : inBuf.pos == inBuf.size
                        if done { return }
                        guard outBuf.pos < outBuf.size else { throw Error.misuse("the output exceeded the frame bound") }
                    }
                }
            }
            try produce { piece in
                fed += piece.count
                guard fed <= size else { throw Error.misuse("more than the declared \(size) bytes were fed") }
                try run(piece, ZSTD_e_continue)
            }
            guard fed == size else { throw Error.misuse("\(fed) bytes were fed, \(size) declared") }
            try run(UnsafeRawBufferPointer(start: nil, count: 0), ZSTD_e_end)
            count = outBuf.pos
        }
    }

    /// Inflates a zstd body (one or more frames), refusing to produce more than `limit` bytes.
    public static func decompress(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        try input.withUnsafeBytes { buf in try decompress(buf, limit: limit) }
    }

    /// Inflates the zstd bytes at `input` (one or more frames), refusing to produce more than
    /// `limit` bytes.
    ///
    /// Streams through a fixed output chunk: the frame header's content size is only a hint (it is
    /// used to refuse early when it already exceeds `limit`, and to reserve at most `limit` bytes),
    /// and the decoder's window is capped (`ZSTD_d_windowLogMax`) near `limit`, so a hostile header
    /// cannot make it allocate much more than `limit` either.
    public static func decompress(_ input: UnsafeRawBufferPointer, limit: Int) throws -> [UInt8] {
        guard let base = input.baseAddress, input.count > 0 else { throw Error.corrupt("empty body (no zstd frame)") }
        let declared = ZSTD_getFrameContentSize(base, input.count)
        // ZSTD_CONTENTSIZE_UNKNOWN is UInt64.max, ZSTD_CONTENTSIZE_ERROR UInt64.max - 1: the
        // streaming decoder below reports a bad or short header precisely.
        if declared < UInt64.max - 1, declared > UInt64(max(limit, 0)) { throw Error.tooLarge(limit) }

        guard let dctx = ZSTD_createDCtx() else { throw Error.allocation("decompression") }
        defer { ZSTD_freeDCtx(dctx) }
        let status = ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, Int32(windowLogMax(limit: limit)))
        guard ZSTD_isError(status) == 0 else { throw Error.zstd("setting the window limit", status) }

        var output = [UInt8]()
        if declared < UInt64.max - 1 { output.reserveCapacity(Int(declared)) }
        var chunk = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
        var inBuf = ZSTD_inBuffer(src: base, size: input.count, pos: 0)
        while true {
            let (hint, produced, filled) = chunk.withUnsafeMutableBytes { out -> (Int, Int, Bool) in
                var outBuf = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let hint = ZSTD_decompressStream(dctx, &outBuf, &inBuf)
                return (hint, outBuf.pos, outBuf.pos == outBuf.size)
            }
            if ZSTD_isError(hint) != 0 {
                throw Error.corrupt(String(cString: ZSTD_getErrorName(hint)))
            }
            if produced > 0 {
                if output.count + produced > limit { throw Error.tooLarge(limit) }
                output.append(contentsOf: chunk[0..<produced])
            }
            if hint == 0 {
                // A frame ended and everything it holds was flushed; another may follow.
                if inBuf.pos == inBuf.size { return output }
                continue
            }
            // Mid-frame: with every input byte consumed and room left in the chunk, the decoder
            // is waiting for input that will never come.
            if inBuf.pos == inBuf.size && !filled {
                throw Error.corrupt("truncated (the frame ends early)")
            }
        }
    }

    /// The largest decoder window accepted: enough for `limit` bytes, never below 2^23 (what the
    /// standard levels 1…19 use when the content size is unknown) nor above zstd's default 2^27.
    static func windowLogMax(limit: Int) -> Int {
        let needed = limit <= 1 ? 0 : Int.bitWidth - (limit - 1).leadingZeroBitCount
        return min(max(needed, 23), 27)
    }
}
