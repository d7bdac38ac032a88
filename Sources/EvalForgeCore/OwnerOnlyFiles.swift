#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Data files are owner-only: SQLite databases (SQLite gives their -wal and -shm files the mode of
/// the database), the collector's WAL, epoch, dead-letter and outbox files, and key files are
/// created 0600 and the directories created for them 0700, so another account on the host cannot
/// read prompts, answers or keys (docs/configuration.md, "File permissions").
package enum OwnerOnlyFiles {
    package static let fileMode: mode_t = 0o600
    package static let directoryMode: mode_t = 0o700

    package struct Error: Swift.Error, CustomStringConvertible, Sendable {
        package let message: String
        package var description: String { message }
    }

    /// Creates `path` and its missing parents, each 0700. Returns the directories it created,
    /// outermost first (a caller that needs them durable syncs each one's parent). An existing
    /// directory is left as it is (it may be shared, e.g. /var/lib).
    @discardableResult
    package static func createDirectory(_ path: String) throws(Error) -> [String] {
        var missing: [String] = []
        var p = path
        while !p.isEmpty, p != "/", p != ".", !exists(p) {
            missing.append(p)
            p = parent(p)
        }
        for dir in missing.reversed() {
            if mkdir(dir, directoryMode) != 0, errno != EEXIST {
                throw Error(message: "cannot create directory \(dir): \(String(cString: strerror(errno)))")
            }
        }
        return missing.reversed()
    }

    /// Makes sure `path` exists with mode 0600: creates it empty when missing, and narrows an
    /// existing file that group or others may read or write (one created by an older version).
    package static func prepareFile(_ path: String) throws(Error) {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, fileMode)
        guard fd >= 0 else { throw Error(message: "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0, st.st_mode & 0o077 != 0, fchmod(fd, fileMode) != 0 {
            throw Error(message: "cannot make \(path) owner-only (chmod 600): \(String(cString: strerror(errno)))")
        }
    }

    /// Narrows `path` to 0600 when it exists and group or others have any access; a missing file is fine.
    package static func narrowIfExists(_ path: String) throws(Error) {
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & 0o077 != 0 else { return }
        guard chmod(path, fileMode) == 0 else { throw Error(message: "cannot make \(path) owner-only (chmod 600): \(String(cString: strerror(errno)))") }
    }

    /// Writes `bytes` to `path` atomically (a 0600 temporary file, synced, renamed over it).
    package static func write(_ bytes: [UInt8], to path: String) throws(Error) {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, fileMode)
        guard fd >= 0 else { throw Error(message: "cannot write \(tmp): \(String(cString: strerror(errno)))") }
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(tmp)
                throw Error(message: "cannot write \(tmp): \(reason)")
            }
            off += n
        }
        let synced = fsync(fd) == 0
        close(fd)
        guard synced, rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw Error(message: "cannot write \(path): \(reason)")
        }
    }

    /// The file's permission bits, or nil when it does not exist (tests, diagnostics).
    package static func mode(_ path: String) -> mode_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o7777 : nil
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    static func parent(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        return slash == p.startIndex ? "/" : String(p[..<slash])
    }
}
