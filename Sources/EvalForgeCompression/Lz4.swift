import CLZ4

/// LZ4 frames (the LZ4 frame format, `Content-Encoding: lz4`) over the system liblz4.
///
/// The collector's default for forwarded batches: about twice zstd level 1's speed on span data
/// at a lower ratio (measured in docs/benchmarks.md); the sidecar's CPU is the host's. Frames
/// carry the content size and a content checksum, so corruption is detected when inflating.
public enum Lz4 {
    /// Why an LZ4 operation failed.
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        private enum Code: Sendable { case corrupt, tooLarge, lz4 }
        private let code: Code
        public let message: String
        public var description: String { message }

        public var isTooLarge: Bool { code == .tooLarge }

        static func corrupt(_ detail: String) -> Error { Error(code: .corrupt, message: "lz4 body is corrupt: \(detail)") }
        static func tooLarge(_ limit: Int) -> Error { Error(code: .tooLarge, message: "lz4 body inflates to more than \(limit) bytes") }
        static func lz4(_ what: String, _ status: Int) -> Error {
            Error(code: .lz4, message: "lz4 \(what) failed: \(String(cString: LZ4F_getErrorName(status)))")
        }
        static func misuse(_ detail: String) -> Error { Error(code: .lz4, message: "lz4 compression: \(detail)") }
    }

    /// The magic number that starts every LZ4 frame (0x184D2204, little endian).
    public static func isLz4(_ bytes: some Collection<UInt8>) -> Bool {
        var it = bytes.makeIterator()
        return it.next() == 0x04 && it.next() == 0x22 && it.next() == 0x4D && it.next() == 0x18
    }

    /// The frame's block size (`LZ4F_max1MB`).
    private static let blockBytes = 1 << 20

    /// Compresses `input` into one LZ4 frame.
    public static func compress(_ input: [UInt8]) throws -> [UInt8] {
        try compress(size: input.count) { feed in try input.withUnsafeBytes(feed) }
    }

    /// Compresses a body produced in pieces into one LZ4 frame without assembling it first:
    /// `produce` calls its argument with each piece in order, exactly `size` bytes in all (the
    /// frame header records the content size). Each piece becomes its own block (up to 1 MiB;
    /// larger pieces are split), compressed straight from the caller's memory: independent
    /// blocks and auto-flush, so liblz4 neither copies pieces into its block buffer nor keeps a
    /// dictionary between blocks. Feed pieces of some 100 KiB or more for a good ratio.
    public static func compress(size: Int, _ produce: (_ feed: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> [UInt8] {
        var prefs = LZ4F_preferences_t()
        prefs.frameInfo.blockSizeID = LZ4F_max1MB
        prefs.frameInfo.blockMode = LZ4F_blockIndependent
        prefs.autoFlush = 1
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        prefs.frameInfo.contentSize = UInt64(size)
        var ctx: OpaquePointer?
        let created = LZ4F_createCompressionContext(&ctx, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(created) == 0, let cctx = ctx else { throw Error.lz4("creating a compression context", created) }
        defer { LZ4F_freeCompressionContext(cctx) }

        var output: [UInt8] = []
        output.reserveCapacity(LZ4F_compressFrameBound(size, &prefs) / 2)
        // Each call writes into `scratch` (sized for its worst case), then the output grows by what it wrote.
        var scratch = [UInt8](repeating: 0, count: LZ4F_compressBound(blockBytes, &prefs) + 64)
        func step(_ bound: Int, _ body: (UnsafeMutableRawPointer, Int) -> Int, _ what: String) throws {
            if scratch.count < bound { scratch = [UInt8](repeating: 0, count: bound) }
            let written = scratch.withUnsafeMutableBytes { s in body(s.baseAddress!, s.count) }
            guard LZ4F_isError(written) == 0 else { throw Error.lz4(what, written) }
            output.append(contentsOf: scratch[0..<written])
        }
        try step(Int(LZ4F_HEADER_SIZE_MAX), { LZ4F_compressBegin(cctx, $0, $1, &prefs) }, "starting a frame")
        var fed = 0
        try produce { piece in
            fed += piece.count
            guard fed <= size else { throw Error.misuse("more than the declared \(size) bytes were fed") }
            // Large pieces go through in block-sized slices so the scratch buffer stays small.
            var offset = 0
            while offset < piece.count {
                let n = min(piece.count - offset, blockBytes)
                let slice = UnsafeRawBufferPointer(rebasing: piece[offset..<(offset + n)])
                try step(LZ4F_compressBound(n, &prefs), { LZ4F_compressUpdate(cctx, $0, $1, slice.baseAddress, n, nil) }, "compression")
                offset += n
            }
        }
        guard fed == size else { throw Error.misuse("\(fed) bytes were fed, \(size) declared") }
        try step(LZ4F_compressBound(0, &prefs), { LZ4F_compressEnd(cctx, $0, $1, nil) }, "ending the frame")
        return output
    }

    /// Inflates an LZ4 body (one or more frames), refusing to produce more than `limit` bytes.
    public static func decompress(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        try input.withUnsafeBytes { buf in try decompress(buf, limit: limit) }
    }

    /// Inflates the LZ4 frames at `input` through a fixed output chunk, refusing to produce more
    /// than `limit` bytes (the decoder's own buffer is bounded by the 4 MiB largest block size).
    public static func decompress(_ input: UnsafeRawBufferPointer, limit: Int) throws -> [UInt8] {
        guard let base = input.baseAddress, input.count > 0 else { throw Error.corrupt("empty body (no lz4 frame)") }
        var ctx: OpaquePointer?
        let created = LZ4F_createDecompressionContext(&ctx, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(created) == 0, let dctx = ctx else { throw Error.lz4("creating a decompression context", created) }
        defer { LZ4F_freeDecompressionContext(dctx) }

        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256 << 10)
        var offset = 0
        while true {
            var consumed = input.count - offset
            var produced = chunk.count
            let hint = chunk.withUnsafeMutableBytes { out in
                LZ4F_decompress(dctx, out.baseAddress, &produced, base + offset, &consumed, nil)
            }
            guard LZ4F_isError(hint) == 0 else { throw Error.corrupt(String(cString: LZ4F_getErrorName(hint))) }
            offset += consumed
            if produced > 0 {
                if output.count + produced > limit { throw Error.tooLarge(limit) }
                output.append(contentsOf: chunk[0..<produced])
            }
            if hint == 0 {
                // A frame ended and was flushed; another may follow.
                if offset == input.count { return output }
                continue
            }
            // Mid-frame with every input byte consumed and nothing more produced: truncated.
            if offset == input.count && produced == 0 { throw Error.corrupt("truncated (the frame ends early)") }
        }
    }
}
