import EvalForgeCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where the collector puts what it cannot process instead of crashing on it or dropping it
/// unseen: WAL records that fail to apply on replay, bytes cut off a damaged WAL segment, sequence
/// gaps, and batches the backend proved malformed (400). A file `dead-letter.log` beside the WAL,
/// append-only; each entry keeps its reason and the bytes. `evalforge inspect --dead-letter FILE`
/// lists it. The collector counts entries (metric `evalforge_collector_dead_letters_total`,
/// `/healthz` field `deadLetters`); it never reads the file back.
///
/// Entry: `"EFDL" | u32 kind | u64 seq | u64 last seq | i64 unix ms | u32 reason length | u32 payload
/// length | u32 CRC-32 of everything before it and after it | reason (UTF-8) | payload`, little endian.
public struct DeadLetterFile: Sendable {
    public enum Kind: UInt32, Sendable, CustomStringConvertible {
        /// A WAL record that does not decode or validate any more.
        case walRecord = 1
        /// Records missing from the WAL (`seq...lastSeq`); no payload.
        case walGap = 2
        /// Bytes after record `seq` of a WAL segment that do not verify.
        case walCorruption = 3
        /// A forwarded batch the backend refused as malformed (`seq...lastSeq` its WAL records).
        case rejectedBatch = 4

        public var description: String {
            switch self {
            case .walRecord: "wal_record"
            case .walGap: "wal_gap"
            case .walCorruption: "wal_corruption"
            case .rejectedBatch: "rejected_batch"
            }
        }
    }

    public struct Entry: Sendable {
        public var kind: Kind
        public var seq: UInt64
        public var lastSeq: UInt64
        public var unixMillis: Int64
        public var reason: String
        public var payload: [UInt8]
    }

    public static let fileName = "dead-letter.log"
    static let magic: [UInt8] = Array("EFDL".utf8)
    static let headerSize = 40

    public let path: String
    let directory: String

    public init(directory: String) {
        self.directory = directory
        path = directory + "/" + Self.fileName
    }

    /// Appends one entry and fsyncs it and the directory (rare: only on damage or refusal). The
    /// directory sync makes the file's name durable when this entry created it: the caller
    /// releases the WAL records next, and a power loss must not take the only copy away.
    func append(_ kind: Kind, seq: UInt64, lastSeq: UInt64, reason: String, payload: [UInt8]) throws {
        var header = [UInt8](repeating: 0, count: Self.headerSize)
        header.replaceSubrange(0..<4, with: Self.magic)
        let reasonBytes = Array(reason.utf8.prefix(64 * 1024))
        WriteAheadLog.put32(&header, 4, kind.rawValue)
        WriteAheadLog.put64(&header, 8, seq)
        WriteAheadLog.put64(&header, 16, lastSeq)
        WriteAheadLog.put64(&header, 24, UInt64(bitPattern: (Date().timeIntervalSince1970 * 1000).clampedInteger(Int64.self) ?? 0))
        WriteAheadLog.put32(&header, 32, UInt32(reasonBytes.count))
        guard payload.count <= Int(UInt32.max) else { throw CollectorError.storage("dead-letter entry of \(payload.count) bytes is too large") }
        WriteAheadLog.put32(&header, 36, UInt32(payload.count))
        var crc = WriteAheadLog.crc(header[0..<40])
        crc = reasonBytes.withUnsafeBytes { WriteAheadLog.crcContinue(crc, $0) }
        crc = payload.withUnsafeBytes { WriteAheadLog.crcContinue(crc, $0) }
        var trailer = [UInt8](repeating: 0, count: 4)
        WriteAheadLog.put32(&trailer, 0, crc)
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, OwnerOnlyFiles.fileMode)
        guard fd >= 0 else { throw CollectorError.storage("cannot open the dead-letter file \(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        try header.withUnsafeBytes { h in
            try reasonBytes.withUnsafeBytes { r in
                try payload.withUnsafeBytes { p in
                    try trailer.withUnsafeBytes { t in try WriteAheadLog.writeAll(fd, [h, r, p, t]) }
                }
            }
        }
        guard fsync(fd) == 0 else { throw CollectorError.storage("cannot sync the dead-letter file \(path): \(String(cString: strerror(errno)))") }
        guard WriteAheadLog.fsyncDirectory(directory) else {
            throw CollectorError.storage("cannot sync the directory of the dead-letter file \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Every entry of the file at `path`, in order; stops at the first damaged one (`damaged`
    /// tells whether bytes were left unread).
    public static func read(path: String) throws -> (entries: [Entry], damaged: Bool) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CollectorError.storage("cannot read \(path)")
        }
        let b = [UInt8](data)
        var out: [Entry] = []
        var o = 0
        while o + headerSize + 4 <= b.count {
            guard Array(b[o..<(o + 4)]) == magic else { return (out, true) }
            let reasonLength = Int(WriteAheadLog.u32(b, o + 32))
            let payloadLength = Int(WriteAheadLog.u32(b, o + 36))
            let bodyEnd = o + headerSize + reasonLength + payloadLength
            guard reasonLength <= b.count, payloadLength <= b.count, bodyEnd + 4 <= b.count else { return (out, true) }
            var crc = WriteAheadLog.crc(b[o..<(o + headerSize)])
            crc = b[(o + headerSize)..<bodyEnd].withUnsafeBytes { WriteAheadLog.crcContinue(crc, $0) }
            guard crc == WriteAheadLog.u32(b, bodyEnd), let kind = Kind(rawValue: WriteAheadLog.u32(b, o + 4)) else { return (out, true) }
            let reasonStart = o + headerSize
            out.append(Entry(
                kind: kind, seq: WriteAheadLog.u64(b, o + 8), lastSeq: WriteAheadLog.u64(b, o + 16),
                unixMillis: Int64(bitPattern: WriteAheadLog.u64(b, o + 24)),
                reason: String(decoding: b[reasonStart..<(reasonStart + reasonLength)], as: UTF8.self),
                payload: Array(b[(reasonStart + reasonLength)..<bodyEnd])))
            o = bodyEnd + 4
        }
        return (out, o < b.count)
    }
}
