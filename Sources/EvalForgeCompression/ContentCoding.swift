import EvalForgeCore

/// The HTTP `Content-Encoding`s of telemetry bodies: what the collector forwards with, and what
/// the backend and the receivers inflate (each bounded by a size limit).
public enum ContentCoding: String, Sendable, CaseIterable {
    case identity
    case gzip
    case zstd
    case lz4

    /// What an error message lists as accepted.
    public static let acceptedList = "zstd, lz4, gzip or identity"

    /// The coding named by a `Content-Encoding` header value (case-insensitive; absent or empty is
    /// identity, `x-gzip` is gzip); nil for anything else.
    public init?(header: String?) {
        let value = (header ?? "").trimmingASCIISpaces().lowercased()
        switch value {
        case "", "identity": self = .identity
        case "gzip", "x-gzip": self = .gzip
        case "zstd": self = .zstd
        case "lz4": self = .lz4
        default: return nil
        }
    }

    /// The `Content-Encoding` header value to send; nil for identity (no header).
    public var headerValue: String? {
        switch self {
        case .identity: nil
        case .gzip: "gzip"
        case .zstd: "zstd"
        case .lz4: "lz4"
        }
    }

    /// Compresses `bytes` (identity returns them as they are). `level` is the codec's own scale.
    public func encode(_ bytes: [UInt8], level: Int32) throws -> [UInt8] {
        switch self {
        case .identity: bytes
        case .gzip: try Gzip.compress(bytes, level: level)
        case .zstd: try Zstd.compress(bytes, level: level)
        case .lz4: try Lz4.compress(bytes)
        }
    }

    /// Compresses a body produced in pieces (`produce` feeds each piece, `size` bytes in all).
    /// zstd and lz4 stream the pieces into the compressor without assembling the body; gzip and
    /// identity assemble it first.
    public func encode(size: Int, level: Int32, _ produce: (_ feed: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> [UInt8] {
        switch self {
        case .zstd: return try Zstd.compress(size: size, level: level, produce)
        case .lz4: return try Lz4.compress(size: size, produce)
        case .identity, .gzip:
            var body: [UInt8] = []
            body.reserveCapacity(size)
            try produce { body.append(contentsOf: $0) }
            return try encode(body, level: level)
        }
    }

    /// Why a body could not be inflated.
    public struct DecodingError: Swift.Error, CustomStringConvertible, Sendable {
        /// The body inflates past the limit (HTTP 413); otherwise it is corrupt (HTTP 400).
        public let isTooLarge: Bool
        public let message: String
        public var description: String { message }
    }

    /// Inflates `bytes`, refusing to produce more than `limit` bytes.
    public func decode(_ bytes: [UInt8], limit: Int) throws(DecodingError) -> [UInt8] {
        switch self {
        case .identity:
            return bytes
        case .gzip:
            do { return try Gzip.decompress(bytes, limit: limit) } catch let e as Gzip.Error {
                throw DecodingError(isTooLarge: e.isTooLarge, message: e.isTooLarge ? "gzip body inflates past the \(limit)-byte limit" : "Content-Encoding gzip, but \(e.message)")
            } catch {
                throw DecodingError(isTooLarge: false, message: "Content-Encoding gzip, but \(error)")
            }
        case .zstd:
            do { return try Zstd.decompress(bytes, limit: limit) } catch let e as Zstd.Error {
                throw DecodingError(isTooLarge: e.isTooLarge, message: e.isTooLarge ? "zstd body inflates past the \(limit)-byte limit" : "Content-Encoding zstd, but \(e.message)")
            } catch {
                throw DecodingError(isTooLarge: false, message: "Content-Encoding zstd, but \(error)")
            }
        case .lz4:
            do { return try Lz4.decompress(bytes, limit: limit) } catch let e as Lz4.Error {
                throw DecodingError(isTooLarge: e.isTooLarge, message: e.isTooLarge ? "lz4 body inflates past the \(limit)-byte limit" : "Content-Encoding lz4, but \(e.message)")
            } catch {
                throw DecodingError(isTooLarge: false, message: "Content-Encoding lz4, but \(error)")
            }
        }
    }
}

extension String {
    fileprivate func trimmingASCIISpaces() -> Substring {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return s
    }
}
