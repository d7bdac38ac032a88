import CDeflate
import EvalForgeCore
import CZlib
import Dispatch
import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// The collector's durable queue: append-only segment files of checksummed records, numbered by a
/// sequence that never repeats; a checkpoint file holds the last sequence the backend acknowledged.
///
/// - Record: `u32 payload length | u32 CRC-32 of (seq, payload) | u64 seq | payload` (little endian).
/// - `append` writes into the page cache (a process crash loses nothing after it returns);
///   `waitDurable` returns when an fsync covers the record, by the `FsyncPolicy`.
/// - Replay after a restart reads every record after the checkpoint; a torn last record (a crash
///   mid-write) is cut off.
/// - `release(upTo:)` records the acknowledgement and deletes segments no longer needed.
final class WriteAheadLog: Sendable {
    /// When appended records reach the disk.
    enum FsyncPolicy: Sendable, Equatable {
        /// fsync before the client is acknowledged (group commit: one fsync covers every waiting request).
        case always
        /// fsync in the background every interval; a machine crash may lose that much, a process crash nothing.
        case interval(Duration)
        /// Leave it to the kernel.
        case never
    }

    struct Error: Swift.Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    private struct Segment {
        var firstSeq: UInt64
        var path: String
        var bytes: Int
    }

    private struct State {
        var fd: Int32 = -1
        /// Descriptors of rotated segments not yet synced; the next sync covers (and closes) them.
        var retired: [Int32] = []
        /// A segment was created since the directory was last synced; the next sync syncs it first.
        var directoryDirty = false
        var segments: [Segment] = []
        var nextSeq: UInt64 = 1
        var ackedSeq: UInt64 = 0
        var totalBytes = 0
        var writtenSeq: UInt64 = 0
        var syncedSeq: UInt64 = 0
        var syncing = false
        var waiters: [(UInt64, CheckedContinuation<Void, any Swift.Error>)] = []
    }

    let directory: String
    let maxSegmentBytes: Int
    let policy: FsyncPolicy
    private let state = NIOLockedValueBox(State())
    private let syncQueue = DispatchQueue(label: "evalforge.wal.fsync")
    /// The open checkpoint file (-1 until the first `release` of this run) and the slot written next.
    private let checkpoint = NIOLockedValueBox<(fd: Int32, next: Int)>((-1, 0))

    /// Opens (creating if needed) the log in `directory`.
    init(directory: String, maxSegmentBytes: Int = 64 << 20, policy: FsyncPolicy) throws {
        self.directory = directory
        self.maxSegmentBytes = max(1 << 16, maxSegmentBytes)
        self.policy = policy
        try Self.createDirectoryDurably(directory)
        // A checkpoint past `maxSeq` can only come from damage; it is ignored (everything on disk is resent, and the backend recognises batch ids).
        let stored = Self.readCheckpoint(directory)
        let acked = stored <= Self.maxSeq ? stored : 0
        var segments: [Segment] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix("wal-") && name.hasSuffix(".log") {
            guard let first = UInt64(name.dropFirst(4).dropLast(4)) else { continue }
            let path = directory + "/" + name
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            segments.append(Segment(firstSeq: first, path: path, bytes: size))
        }
        segments.sort { $0.firstSeq < $1.firstSeq }
        state.withLockedValue { s in
            s.segments = segments
            s.ackedSeq = acked
            s.nextSeq = acked + 1
            s.totalBytes = segments.reduce(0) { $0 + $1.bytes }
        }
    }

    /// What the replay found besides records: sequences missing between records (a segment lost
    /// or damaged), and bytes that do not verify (a torn or corrupt tail, cut off the segment).
    enum ReplayDamage {
        /// Records `missing` are not in the log (after the checkpoint, before a later record).
        case gap(missing: ClosedRange<UInt64>)
        /// `bytes` of segment `segment` after sequence `after` do not verify; they are cut off.
        case corrupt(segment: String, after: UInt64, bytes: [UInt8], reason: String)
    }

    /// The largest sequence a record may carry: a larger one (only from damage: sequences start at
    /// 1 and grow by one) is treated as corrupt, so `seq + 1` never overflows.
    static let maxSeq = UInt64.max / 2

    /// Reads every record still on disk in order, repairing a torn tail; `acknowledged` tells whether
    /// the backend already has it (such records only rebuild dedup state). `damage` hears of every
    /// gap and every cut-off tail (before the cut), so nothing disappears unaccounted. Call once,
    /// before `append`.
    func replay(_ body: (_ seq: UInt64, _ payload: [UInt8], _ acknowledged: Bool) throws -> Void, damage: (ReplayDamage) -> Void = { _ in }) throws {
        let (segments, acked) = state.withLockedValue { ($0.segments, $0.ackedSeq) }
        var lastSeq = acked
        for seg in segments {
            guard let data = FileManager.default.contents(atPath: seg.path) else { continue }
            let bytes = [UInt8](data)
            var offset = 0
            var good = 0
            var reason = "torn record (shorter than its header)"
            while offset + 16 <= bytes.count {
                let len = Int(Self.u32(bytes, offset))
                let crc = Self.u32(bytes, offset + 4)
                let seq = Self.u64(bytes, offset + 8)
                guard len <= bytes.count - offset - 16 else { reason = "torn record (length \(len) past the end of the segment)"; break }
                let payload = Array(bytes[(offset + 16)..<(offset + 16 + len)])
                guard Self.checksum(seq: seq, payload) == crc else { reason = "record checksum mismatch"; break }
                guard seq >= 1, seq <= Self.maxSeq else { reason = "record sequence \(seq) out of range"; break }
                if seq > lastSeq {
                    if seq > lastSeq + 1 { damage(.gap(missing: (lastSeq + 1)...(seq - 1))) }
                    try body(seq, payload, false)
                    lastSeq = seq
                } else {
                    try body(seq, payload, true)
                }
                offset += 16 + len
                good = offset
            }
            if good < bytes.count {
                // Torn or corrupt tail: keep what verified, report and cut off the rest; later
                // segments are still read (a gap is reported if records are missing).
                damage(.corrupt(segment: seg.path, after: lastSeq, bytes: Array(bytes[good...]), reason: reason))
                truncate(seg.path, Int64(good))
                state.withLockedValue { s in
                    if let k = s.segments.firstIndex(where: { $0.path == seg.path }) {
                        s.totalBytes -= s.segments[k].bytes - good
                        s.segments[k].bytes = good
                    }
                }
            }
        }
        state.withLockedValue { s in
            s.nextSeq = lastSeq + 1
            s.writtenSeq = lastSeq
            s.syncedSeq = lastSeq
        }
    }

    /// Appends one record and returns its sequence number. Synchronous and short: a write(2) into
    /// the page cache (callers hold their ordering lock around it).
    func append(_ payload: [UInt8]) throws -> UInt64 {
        try append(prefix: payload, body: [], bodyCRC: 0)
    }

    /// Appends one record whose payload is `prefix` followed by `body`, without joining them:
    /// `bodyCRC` (from `Self.checksum(body)`, computed before the caller's lock) is combined with the
    /// checksum of the sequence and the short prefix, and one writev(2) puts header, prefix and
    /// body into the page cache. The record on disk is the same as `append(prefix + body)`.
    func append(prefix: [UInt8], body: [UInt8], bodyCRC: UInt32) throws -> UInt64 {
        try state.withLockedValue { s in
            if s.fd < 0 || (s.segments.last.map { $0.bytes >= maxSegmentBytes } ?? true) {
                try rotate(&s)
            }
            let seq = s.nextSeq
            guard seq <= Self.maxSeq else { throw Error(message: "WAL sequence space exhausted") }
            let head = Self.checksum(seq: seq, prefix)
            let crc = UInt32(truncatingIfNeeded: crc32_combine(uLong(head), uLong(bodyCRC), off_t(body.count)))
            let length = prefix.count + body.count
            guard length <= Int(UInt32.max) else { throw Error(message: "WAL record of \(length) bytes exceeds the 4 GiB record limit") }
            var header: (UInt64, UInt64) = ((UInt64(length) | UInt64(crc) << 32).littleEndian, seq.littleEndian)
            try withUnsafeBytes(of: &header) { h in
                try prefix.withUnsafeBytes { p in
                    try body.withUnsafeBytes { b in try Self.writeAll(s.fd, [h, p, b]) }
                }
            }
            s.nextSeq += 1
            s.writtenSeq = seq
            let n = 16 + length
            s.segments[s.segments.count - 1].bytes += n
            s.totalBytes += n
            return seq
        }
    }

    /// Starts a new segment. The full one is not synced here (that would stall every ingest behind
    /// the locks): it is retired, and the next sync — group commit, interval timer or shutdown —
    /// syncs and closes it before declaring anything durable.
    private func rotate(_ s: inout State) throws {
        if s.fd >= 0 {
            if policy == .never {
                let old = s.fd
                syncQueue.async {
                    fdatasync(old)
                    Glibc.close(old)
                }
            } else {
                s.retired.append(s.fd)
            }
            s.fd = -1
        }
        let path = directory + "/wal-" + String(format: "%020llu", s.nextSeq) + ".log"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, OwnerOnlyFiles.fileMode)
        guard fd >= 0 else { throw Error(message: "cannot open WAL segment \(path): \(String(cString: strerror(errno)))") }
        s.fd = fd
        s.segments.append(Segment(firstSeq: s.nextSeq, path: path, bytes: 0))
        // The new name becomes durable with the next sync (before anything in it is declared
        // durable), not here under the callers' locks.
        s.directoryDirty = true
    }

    /// Returns when `seq` is on disk as the policy requires (at once for `interval` and `never`).
    func waitDurable(_ seq: UInt64) async throws {
        guard policy == .always else { return }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Swift.Error>) in
            let startSync = state.withLockedValue { s -> Bool in
                if s.syncedSeq >= seq {
                    c.resume()
                    return false
                }
                s.waiters.append((seq, c))
                if s.syncing { return false }
                s.syncing = true
                return true
            }
            if startSync { syncQueue.async { self.syncLoop() } }
        }
    }

    /// Runs on the fsync queue: syncs, wakes the covered waiters, repeats while more are waiting.
    private func syncLoop() {
        while true {
            let (retired, fd, target, directory) = state.withLockedValue { s -> ([Int32], Int32, UInt64, Bool) in
                defer { s.retired = []; s.directoryDirty = false }
                return (s.retired, s.fd >= 0 ? dup(s.fd) : -1, s.writtenSeq, s.directoryDirty)
            }
            var ok = true
            var err: Int32 = 0
            // A segment whose name is not durable is lost with everything in it: a failed directory
            // sync fails the waiters like a failed data sync (503, nothing acknowledged).
            if directory, !Self.fsyncDirectory(self.directory) {
                ok = false
                err = errno
                state.withLockedValue { $0.directoryDirty = true }
            }
            for old in retired {
                if fdatasync(old) != 0 { ok = false; err = errno }
                Glibc.close(old)
            }
            if fd >= 0 {
                if fdatasync(fd) != 0 { ok = false; err = errno }
                Glibc.close(fd)
            }
            let (ready, more) = state.withLockedValue { s -> ([(UInt64, CheckedContinuation<Void, any Swift.Error>)], Bool) in
                if ok { s.syncedSeq = max(s.syncedSeq, target) }
                var ready: [(UInt64, CheckedContinuation<Void, any Swift.Error>)] = []
                if ok {
                    s.waiters.removeAll { w in
                        if w.0 <= s.syncedSeq {
                            ready.append(w)
                            return true
                        }
                        return false
                    }
                } else {
                    ready = s.waiters
                    s.waiters = []
                }
                let more = !s.waiters.isEmpty
                if !more { s.syncing = false }
                return (ready, more)
            }
            for (_, c) in ready {
                if ok { c.resume() } else { c.resume(throwing: Error(message: "WAL fsync failed: \(String(cString: strerror(err)))")) }
            }
            if !more { return }
        }
    }

    /// One background sync of every written record (the `interval` policy's timer, and shutdown).
    /// Blocking: call it off the cooperative thread pool (`syncInBackground`).
    func syncNow() {
        let (retired, fd, target, directory) = state.withLockedValue { s -> ([Int32], Int32, UInt64, Bool) in
            defer { s.retired = []; s.directoryDirty = false }
            return (s.retired, s.fd >= 0 ? dup(s.fd) : -1, s.writtenSeq, s.directoryDirty)
        }
        if directory, !Self.fsyncDirectory(self.directory) { state.withLockedValue { $0.directoryDirty = true } }
        for old in retired {
            fdatasync(old)
            Glibc.close(old)
        }
        if fd >= 0 {
            fdatasync(fd)
            Glibc.close(fd)
        }
        state.withLockedValue { $0.syncedSeq = max($0.syncedSeq, target) }
    }

    /// `syncNow` on the WAL's sync queue.
    func syncInBackground() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            syncQueue.async {
                self.syncNow()
                c.resume()
            }
        }
    }

    /// Records that the backend acknowledged everything up to `seq` and deletes unneeded segments.
    func release(upTo seq: UInt64) throws {
        let (dead, changed) = state.withLockedValue { s -> ([String], Bool) in
            let seq = min(seq, Self.maxSeq)
            guard seq > s.ackedSeq else { return ([], false) }
            // Past what was written (only an outbox file name from outside could claim that): later
            // records must still number above the checkpoint, or a replay would take them as acknowledged.
            if seq >= s.nextSeq { s.nextSeq = seq + 1 }
            s.ackedSeq = seq
            var dead: [String] = []
            while s.segments.count > 1, s.segments[1].firstSeq <= seq + 1 {
                let seg = s.segments.removeFirst()
                s.totalBytes -= seg.bytes
                dead.append(seg.path)
            }
            return (dead, true)
        }
        guard changed else { return }
        try writeCheckpoint(seq)
        for p in dead { unlink(p) }
    }

    var totalBytes: Int { state.withLockedValue { $0.totalBytes } }
    var ackedSeq: UInt64 { state.withLockedValue { $0.ackedSeq } }
    var lastSeq: UInt64 { state.withLockedValue { $0.nextSeq - 1 } }
    /// Records appended and not yet acknowledged.
    var depth: UInt64 { state.withLockedValue { ($0.nextSeq - 1).subtractingSaturated($0.ackedSeq) } }

    func close() {
        state.withLockedValue { s in
            if s.directoryDirty {
                Self.fsyncDirectory(directory)
                s.directoryDirty = false
            }
            for old in s.retired {
                fsync(old)
                Glibc.close(old)
            }
            s.retired = []
            if s.fd >= 0 {
                fsync(s.fd)
                Glibc.close(s.fd)
                s.fd = -1
            }
        }
        checkpoint.withLockedValue { c in
            if c.fd >= 0 { Glibc.close(c.fd) }
            c.fd = -1
        }
    }

    // MARK: Files

    /// The last acknowledged sequence: the larger of the checkpoint file's two valid slots (a file
    /// of one 12-byte slot, from before the second slot was added, is read as well); 0 when none.
    static func readCheckpoint(_ dir: String) -> UInt64 {
        guard let d = FileManager.default.contents(atPath: dir + "/checkpoint"), d.count == 12 || d.count == 24 else { return 0 }
        let b = [UInt8](d)
        var best: UInt64 = 0
        for slot in stride(from: 0, to: b.count, by: 12) where u32(b, slot + 8) == crc(b[slot..<(slot + 8)]) {
            best = max(best, u64(b, slot))
        }
        return best
    }

    /// Writes the checkpoint into the older of the file's two slots and fdatasyncs it: one data
    /// write, no rename, no directory sync (the file's size never changes). A torn write damages
    /// only the slot being written; the other still holds the previous checkpoint, and the batches
    /// between the two are still in the outbox (they are removed only after this returns), so they
    /// are resent under their batch ids, which the backend recognises.
    private func writeCheckpoint(_ seq: UInt64) throws {
        var slot = [UInt8](repeating: 0, count: 12)
        Self.put64(&slot, 0, seq)
        Self.put32(&slot, 8, Self.crc(slot[0..<8]))
        // Only the forwarder's serial release path writes the checkpoint; the lock never waits.
        try checkpoint.withLockedValue { c in
            if c.fd < 0 {
                // First write of this run: (re)create the two-slot file atomically, then keep it open.
                let path = directory + "/checkpoint", tmp = path + ".tmp"
                let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, OwnerOnlyFiles.fileMode)
                guard fd >= 0 else { throw Error(message: "cannot write WAL checkpoint \(tmp): \(String(cString: strerror(errno)))") }
                do {
                    try Self.writeAll(fd, slot + slot)
                    guard fsync(fd) == 0 else { throw Error(message: "cannot sync WAL checkpoint \(tmp): \(String(cString: strerror(errno)))") }
                    guard rename(tmp, path) == 0 else { throw Error(message: "cannot rename WAL checkpoint \(tmp): \(String(cString: strerror(errno)))") }
                } catch {
                    Glibc.close(fd)
                    throw error
                }
                guard Self.fsyncDirectory(directory) else {
                    let reason = String(cString: strerror(errno))
                    Glibc.close(fd)
                    throw Error(message: "cannot sync the WAL directory after writing the checkpoint: \(reason)")
                }
                c.fd = fd
                c.next = 1
                return
            }
            let written = slot.withUnsafeBytes { pwrite(c.fd, $0.baseAddress, 12, off_t(c.next * 12)) }
            guard written == 12, fdatasync(c.fd) == 0 else {
                let reason = String(cString: strerror(errno))
                Glibc.close(c.fd)
                c.fd = -1  // the next write starts a fresh file
                throw Error(message: "cannot write WAL checkpoint: \(reason)")
            }
            c.next ^= 1
        }
    }

    /// fsyncs a directory, making the names created, renamed or removed in it durable; false (with
    /// `errno` set) when that failed.
    @discardableResult
    static func fsyncDirectory(_ dir: String) -> Bool {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        let synced = fsync(fd) == 0
        let err = errno
        Glibc.close(fd)
        errno = err
        return synced
    }

    /// Creates `path` and its missing parents, then syncs the parent of each directory it created:
    /// a new directory's name is durable only once its parent is synced, and without that a power
    /// loss takes the whole WAL (every segment, checkpoint and outbox file synced inside it) away.
    static func createDirectoryDurably(_ path: String) throws {
        // Owner-only (0700): the WAL holds prompts and answers.
        let created: [String]
        do { created = try OwnerOnlyFiles.createDirectory(path) } catch { throw Error(message: error.message) }
        for dir in created {
            let parent = parentDirectory(dir)
            guard fsyncDirectory(parent) else {
                throw Error(message: "cannot sync directory \(parent) after creating \(dir): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// The directory holding `path` ("." for a bare name, "/" for a top-level one).
    static func parentDirectory(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        return slash == p.startIndex ? "/" : String(p[..<slash])
    }

    private func truncate(_ path: String, _ size: Int64) {
        Glibc.truncate(path, off_t(size))
    }

    /// Writes every buffer in order with writev(2), continuing after partial writes and EINTR.
    static func writeAll(_ fd: Int32, _ buffers: [UnsafeRawBufferPointer]) throws {
        var parts = buffers.filter { $0.count > 0 }
        while !parts.isEmpty {
            let n = parts.withUnsafeBufferPointer { p -> Int in
                var iov = p.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
                return writev(fd, &iov, Int32(min(iov.count, 1024)))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw Error(message: "WAL write failed: \(String(cString: strerror(errno)))")
            }
            var left = n
            while left > 0, let first = parts.first {
                if left >= first.count {
                    left -= first.count
                    parts.removeFirst()
                } else {
                    parts[0] = UnsafeRawBufferPointer(rebasing: first[left...])
                    left = 0
                }
            }
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var off = 0
        try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            while off < raw.count {
                let n = write(fd, base + off, raw.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw Error(message: "WAL write failed: \(String(cString: strerror(errno)))")
                }
                off += n
            }
        }
    }

    /// CRC-32 of `bytes` (the zlib/gzip CRC, computed by libdeflate: PCLMUL-accelerated), for
    /// `append(prefix:body:bodyCRC:)`.
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { libdeflate_crc32(0, $0.baseAddress, $0.count) }
    }

    static func checksum(seq: UInt64, _ payload: [UInt8]) -> UInt32 {
        var s = seq.littleEndian
        let head = withUnsafeBytes(of: &s) { libdeflate_crc32(0, $0.baseAddress, 8) }
        return payload.withUnsafeBytes { libdeflate_crc32(head, $0.baseAddress, $0.count) }
    }

    /// Continues CRC-32 `crc` over `p`.
    static func crcContinue(_ crc: UInt32, _ p: UnsafeRawBufferPointer) -> UInt32 {
        libdeflate_crc32(crc, p.baseAddress, p.count)
    }

    static func crc(_ b: ArraySlice<UInt8>) -> UInt32 {
        b.withUnsafeBytes { libdeflate_crc32(0, $0.baseAddress, $0.count) }
    }

    static func u32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }
    static func u64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(u32(b, o)) | UInt64(u32(b, o + 4)) << 32 }
    static func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) {
        for i in 0..<4 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }
    static func put64(_ b: inout [UInt8], _ o: Int, _ v: UInt64) {
        for i in 0..<8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }
}
