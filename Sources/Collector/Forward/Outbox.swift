import EvalForgeCompression
import EvalForgeCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The batch being forwarded, persisted before the first send so a collector that crashes before
/// the backend's acknowledgement resends the *same* batch (same id, same content) after restart.
///
/// A file's suffix records how its body is compressed (`.pb.zst`, `.pb.lz4`, `.pb.gz`, `.pb`), so a batch
/// written before a restart is resent with the right `Content-Encoding` even when
/// `forward.compression` changed in between.
struct Outbox {
    let directory: String

    struct Entry {
        var firstSeq: UInt64
        var lastSeq: UInt64
        var body: [UInt8]
        /// How `body` is compressed; sent as its `Content-Encoding`.
        var coding: ContentCoding
    }

    init(directory: String) throws {
        self.directory = directory
        try WriteAheadLog.createDirectoryDurably(directory)  // owner-only, synced into its parent
    }

    /// The file name suffix of a body in `coding` (also used for the `rejected` copies).
    static func suffix(_ coding: ContentCoding) -> String {
        switch coding {
        case .zstd: ".pb.zst"
        case .lz4: ".pb.lz4"
        case .gzip: ".pb.gz"
        case .identity: ".pb"
        }
    }

    /// The suffixes are distinct endings (".pb" ends none of the others); files from before zstd
    /// (always ".pb.gz") are read as gzip.
    private static let codings: [ContentCoding] = [.zstd, .lz4, .gzip, .identity]

    private func path(_ e: Entry) -> String { "\(directory)/batch-\(e.firstSeq)-\(e.lastSeq)\(Self.suffix(e.coding))" }

    func write(_ e: Entry) throws {
        let tmp = path(e) + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, OwnerOnlyFiles.fileMode)
        guard fd >= 0 else { throw CollectorError.configuration("cannot write outbox \(tmp): \(String(cString: strerror(errno)))") }
        do {
            try WriteAheadLog.writeAll(fd, e.body)
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        // A batch whose file is not durable must not be sent: after a power loss it would be sealed
        // again from the WAL under another id, and the backend would store its spans twice.
        let synced = fsync(fd) == 0
        let syncError = errno
        let closed = close(fd) == 0
        guard synced, closed else {
            unlink(tmp)
            throw CollectorError.configuration("cannot sync outbox \(tmp): \(String(cString: strerror(synced ? errno : syncError)))")
        }
        guard rename(tmp, path(e)) == 0 else {
            throw CollectorError.configuration("cannot rename outbox file: \(String(cString: strerror(errno)))")
        }
        guard WriteAheadLog.fsyncDirectory(directory) else {
            throw CollectorError.configuration("cannot sync the outbox directory \(directory): \(String(cString: strerror(errno)))")
        }
    }

    func remove(_ e: Entry) {
        unlink(path(e))
    }

    /// Batches written and not yet acknowledged, oldest first, each with the encoding its file
    /// name records.
    func pending() -> [Entry] {
        var out: [Entry] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix("batch-") {
            guard let coding = Self.codings.first(where: { name.hasSuffix(Self.suffix($0)) }) else { continue }
            let parts = name.dropFirst("batch-".count).dropLast(Self.suffix(coding).count).split(separator: "-")
            guard parts.count == 2, let f = UInt64(parts[0]), let l = UInt64(parts[1]),
                let data = FileManager.default.contents(atPath: directory + "/" + name)
            else { continue }
            out.append(Entry(firstSeq: f, lastSeq: l, body: [UInt8](data), coding: coding))
        }
        return out.sorted { $0.firstSeq < $1.firstSeq }
    }
}
