import EvalForgeCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A random id of this WAL's life, in every batch id (`<collector id>-<epoch>-<first>-<last>`), so
/// ids stay unique when the WAL directory is emptied and sequences restart at 1 (the backend would
/// otherwise answer "duplicate" for new data, and the collector release it), and across hosts
/// configured with the same collector id. Kept in `instance-epoch` beside the WAL; a new one is
/// drawn when the file is missing or unreadable, or when the WAL holds nothing at all (no record,
/// no checkpoint, no outbox batch: no batch id of the old epoch can be sent again).
enum InstanceEpoch {
    static let fileName = "instance-epoch"

    static func load(directory: String, walIsEmpty: Bool) throws -> String {
        let path = directory + "/" + fileName
        if !walIsEmpty, let data = FileManager.default.contents(atPath: path) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text.utf8.count == 16, text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) { return text }
        }
        let epoch = String(UInt64.random(in: 1...UInt64.max), radix: 16)
        let padded = String(repeating: "0", count: 16 - epoch.count) + epoch
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, OwnerOnlyFiles.fileMode)
        guard fd >= 0 else { throw CollectorError.storage("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        do {
            try WriteAheadLog.writeAll(fd, Array((padded + "\n").utf8))
            guard fsync(fd) == 0 else { throw CollectorError.storage("cannot sync \(tmp): \(String(cString: strerror(errno)))") }
        } catch {
            Glibc.close(fd)
            throw error
        }
        Glibc.close(fd)
        guard rename(tmp, path) == 0 else { throw CollectorError.storage("cannot rename \(tmp): \(String(cString: strerror(errno)))") }
        guard WriteAheadLog.fsyncDirectory(directory) else { throw CollectorError.storage("cannot sync \(directory): \(String(cString: strerror(errno)))") }
        return padded
    }
}
