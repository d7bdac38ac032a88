import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The batch being forwarded, persisted before the first send so a collector that crashes before
/// the backend's acknowledgement resends the *same* batch (same id, same content) after restart.
struct Outbox {
    let directory: String

    struct Entry {
        var firstSeq: UInt64
        var lastSeq: UInt64
        var body: [UInt8]
    }

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    private func path(_ first: UInt64, _ last: UInt64) -> String { "\(directory)/batch-\(first)-\(last).pb.gz" }

    func write(_ e: Entry) throws {
        let tmp = path(e.firstSeq, e.lastSeq) + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CollectorError.configuration("cannot write outbox \(tmp): \(String(cString: strerror(errno)))") }
        try WriteAheadLog.writeAll(fd, e.body)
        fsync(fd)
        close(fd)
        guard rename(tmp, path(e.firstSeq, e.lastSeq)) == 0 else {
            throw CollectorError.configuration("cannot rename outbox file: \(String(cString: strerror(errno)))")
        }
        WriteAheadLog.fsyncDirectory(directory)
    }

    func remove(_ e: Entry) {
        unlink(path(e.firstSeq, e.lastSeq))
    }

    /// Batches written and not yet acknowledged, oldest first.
    func pending() -> [Entry] {
        var out: [Entry] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix("batch-") && name.hasSuffix(".pb.gz") {
            let parts = name.dropFirst("batch-".count).dropLast(".pb.gz".count).split(separator: "-")
            guard parts.count == 2, let f = UInt64(parts[0]), let l = UInt64(parts[1]),
                let data = FileManager.default.contents(atPath: directory + "/" + name)
            else { continue }
            out.append(Entry(firstSeq: f, lastSeq: l, body: [UInt8](data)))
        }
        return out.sorted { $0.firstSeq < $1.firstSeq }
    }
}
