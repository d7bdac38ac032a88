import Crypto
import EvalForgeCore
import Foundation

/// Why a secret could not be sealed or opened, or a key not loaded; the message says what to do.
public struct SecretsError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable { case key, unknownKey, damaged, seal }
    private let code: Code
    public let message: String
    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    /// A key file or variable that is not 32 bytes of base64, or cannot be read or written.
    public static func key(_ m: String) -> SecretsError { .init(.key, m) }
    /// A ciphertext sealed with a key the keyring does not have (the wrong key was configured).
    public static func unknownKey(_ m: String) -> SecretsError { .init(.unknownKey, m) }
    /// A ciphertext that does not open with its key (damaged, or a different key with the same id).
    public static func damaged(_ m: String) -> SecretsError { .init(.damaged, m) }
    public static func seal(_ m: String) -> SecretsError { .init(.seal, m) }
    public var description: String { message }
    /// The configured keys do not include the one a value was sealed with.
    public var isUnknownKey: Bool { code == .unknownKey }
}

/// The keys secrets at rest are sealed with: AES-256-GCM (swift-crypto), a random 96-bit nonce per
/// value. The current key seals; older keys (rotation) only open. A sealed value is text,
/// `efsec:v1:<key id>:<base64 of nonce ‖ ciphertext ‖ tag>`, so it fits the TEXT and JSON columns
/// the secrets always lived in; the key id (the first 8 hex digits of the key's SHA-256) tells
/// which key sealed it, so a rotation can re-seal with the new key and a wrong key is reported as
/// such instead of as damage. docs/security.md, "Secrets at rest".
public struct SecretKeyring: Sendable {
    public struct Key: Sendable {
        public let id: String
        let key: SymmetricKey
    }

    public let current: Key
    public let previous: [Key]

    public static let prefix = "efsec:v1:"
    public static let keyBytes = 32
    static let aad = Array("evalforge-secret-v1".utf8)

    public init(current: [UInt8], previous: [[UInt8]] = []) throws(SecretsError) {
        guard current.count == Self.keyBytes else { throw .key("the secrets key must be \(Self.keyBytes) bytes, got \(current.count)") }
        for p in previous where p.count != Self.keyBytes { throw .key("an old secrets key must be \(Self.keyBytes) bytes, got \(p.count)") }
        self.current = Key(id: Self.keyID(current), key: SymmetricKey(data: current))
        self.previous = previous.map { Key(id: Self.keyID($0), key: SymmetricKey(data: $0)) }.filter { $0.id != Self.keyID(current) }
    }

    /// A key's public id: 8 hex digits of the SHA-256 of the key (identifies, reveals nothing usable).
    public static func keyID(_ key: [UInt8]) -> String { String(Digest.hex(Digest.sha256(key)).prefix(8)) }

    /// Whether `stored` is a sealed value (else it is plain text from before encryption).
    public static func isSealed(_ stored: String) -> Bool { stored.hasPrefix(prefix) }

    /// The id of the key that sealed `stored`, nil for plain text.
    public static func sealingKeyID(_ stored: String) -> String? {
        guard isSealed(stored) else { return nil }
        let rest = stored.dropFirst(prefix.count)
        guard let colon = rest.firstIndex(of: ":") else { return "" }
        return String(rest[..<colon])
    }

    /// Seals `plaintext` with the current key. The empty string stays empty (nothing to hide).
    public func seal(_ plaintext: String) throws(SecretsError) -> String {
        guard !plaintext.isEmpty else { return "" }
        do {
            let box = try AES.GCM.seal(Array(plaintext.utf8), using: current.key, nonce: AES.GCM.Nonce(), authenticating: Self.aad)
            guard let combined = box.combined else { throw SecretsError.seal("AES-GCM gave no combined box") }
            return Self.prefix + current.id + ":" + combined.base64EncodedString()
        } catch let e as SecretsError {
            throw e
        } catch {
            throw .seal("cannot seal a secret: \(error)")
        }
    }

    /// The plaintext of `stored`: sealed values are opened with their key, plain text (rows from
    /// before encryption, until the start-up migration seals them) is returned as it is.
    public func open(_ stored: String) throws(SecretsError) -> String {
        guard let kid = Self.sealingKeyID(stored) else { return stored }
        guard let key = ([current] + previous).first(where: { $0.id == kid }) else {
            throw .unknownKey("a stored secret was sealed with secrets key \(kid.prefix(16)), but the configured key is \(current.id)\(previous.isEmpty ? "" : " (old keys: \(previous.map(\.id).joined(separator: ", ")))"): start with the key it was sealed with (--secrets-key-file / EVALFORGE_SECRETS_KEY), or give it as an old key (--secrets-old-key-file) to re-seal with the new one")
        }
        let body = stored.dropFirst(Self.prefix.count + kid.count + 1)
        guard let data = Data(base64Encoded: String(body)), data.count >= 12 + 16 else {
            throw .damaged("a stored secret sealed with key \(kid) is not valid base64 of a sealed box: the metadata file is damaged")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: data)
            let plain = try AES.GCM.open(box, using: key.key, authenticating: Self.aad)
            return String(decoding: plain, as: UTF8.self)
        } catch {
            throw .damaged("a stored secret does not decrypt with secrets key \(kid): the metadata file is damaged, or a different key was configured")
        }
    }

    /// Whether `stored` should be re-sealed: plain text, or sealed with an older key.
    public func needsReseal(_ stored: String) -> Bool {
        guard !stored.isEmpty else { return false }
        return Self.sealingKeyID(stored) != current.id
    }

    /// Decodes a key given as base64 (a key file's content or `EVALFORGE_SECRETS_KEY`), naming `source`.
    public static func decodeKey(base64 text: String, source: String) throws(SecretsError) -> [UInt8] {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let data = Data(base64Encoded: trimmed), data.count == keyBytes else {
            throw .key("\(source): expected \(keyBytes) random bytes in base64 (44 characters, e.g. from `openssl rand -base64 32`)")
        }
        return Array(data)
    }

    /// Reads a base64 key file.
    public static func readKeyFile(_ path: String) throws(SecretsError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .key("secrets key file \(path): cannot be read (missing, or not readable by this user)")
        }
        return try decodeKey(base64: String(decoding: data, as: UTF8.self), source: "secrets key file \(path)")
    }

    /// Reads the key file at `path`, or creates it (owner-only, 0600) with a new random key when it
    /// does not exist. Returns the key and whether it was created.
    public static func loadOrCreateKeyFile(_ path: String) throws(SecretsError) -> (key: [UInt8], created: Bool) {
        if FileManager.default.fileExists(atPath: path) { return (try readKeyFile(path), false) }
        let key = Digest.randomBytes(keyBytes)
        do {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try OwnerOnlyFiles.createDirectory(dir) }
            try OwnerOnlyFiles.write(Array((Data(key).base64EncodedString() + "\n").utf8), to: path)
        } catch {
            throw .key("cannot write the generated secrets key to \(path): \(error.message)")
        }
        return (key, true)
    }
}
