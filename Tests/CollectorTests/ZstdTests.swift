import EvalForgeCompression
import EvalForgeCore
import Foundation
import TestProcesses
import Testing

@Suite("Zstd (EvalForgeCompression)")
struct ZstdTests {
    /// Deterministic pseudo-random bytes (xorshift), incompressible.
    static func random(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
        var x = seed
        return (0..<count).map { _ in
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    static func repetitive(_ count: Int) -> [UInt8] {
        let line = Array("{\"gen_ai.request.model\":\"gpt-4o-mini\",\"gen_ai.usage.input_tokens\":100}\n".utf8)
        return (0..<count).map { line[$0 % line.count] }
    }

    static func error(_ body: () throws -> [UInt8]) -> Zstd.Error? {
        do {
            _ = try body()
            return nil
        } catch let e as Zstd.Error {
            return e
        } catch {
            Issue.record("unexpected error type: \(error)")
            return nil
        }
    }

    @Test("a body fed in pieces makes the same frame as the joined body; a wrong size is refused")
    func streamedPieces() throws {
        for input in [Self.random(700_000) + Self.repetitive(1_500_000), Self.random(5), []] {
            // Uneven pieces, including empty ones.
            let cuts = [0, 0, 1, 7, 65_536, 300_001, 1_000_000].filter { $0 <= input.count } + [input.count]
            let streamed = try Zstd.compress(size: input.count, level: 1) { feed in
                for (a, b) in zip(cuts, cuts.dropFirst()) {
                    try input[a..<b].withUnsafeBytes(feed)
                }
            }
            #expect(streamed == (try Zstd.compress(input, level: 1)))
            #expect(try Zstd.decompress(streamed, limit: input.count) == input)
        }
        let short = Self.error { try Zstd.compress(size: 10, level: 1) { feed in try [UInt8](repeating: 1, count: 9).withUnsafeBytes(feed) } }
        #expect(short?.description == "zstd compression: 9 bytes were fed, 10 declared")
        let long = Self.error { try Zstd.compress(size: 10, level: 1) { feed in try [UInt8](repeating: 1, count: 11).withUnsafeBytes(feed) } }
        #expect(long?.description == "zstd compression: more than the declared 10 bytes were fed")
    }

    @Test("round trip of random, repetitive and empty data at several levels", arguments: [1, 3, 19])
    func roundTrip(level: Int32) throws {
        for input in [Self.random(300_000), Self.repetitive(2_000_000), Self.random(1), []] {
            let compressed = try Zstd.compress(input, level: level)
            #expect(Zstd.isZstd(compressed))
            #expect(try Zstd.decompress(compressed, limit: input.count) == input)  // exactly at the limit
        }
        let repetitive = Self.repetitive(2_000_000)
        #expect(try Zstd.compress(repetitive, level: level).count < 20_000)
        let random = Self.random(300_000)
        #expect(try Zstd.compress(random, level: level).count <= random.count + random.count / 100 + 64)
    }

    @Test("empty body is not a zstd frame; an empty frame inflates to nothing")
    func empty() throws {
        let e = try #require(Self.error { try Zstd.decompress([], limit: 100) })
        #expect(!e.isTooLarge && e.message.contains("corrupt") && e.message.contains("empty"))
        #expect(try Zstd.decompress(try Zstd.compress([]), limit: 0) == [])
    }

    @Test("over the limit: refused, both when the header declares the size and when it does not")
    func overLimit() throws {
        let input = Self.repetitive(1_000_000)
        let frame = try Zstd.compress(input)
        let declared = try #require(Self.error { try Zstd.decompress(frame, limit: input.count - 1) })
        #expect(declared.isTooLarge && declared.message.contains("\(input.count - 1)"))

        // A frame whose header does not declare its size (as the streaming CLI writes from a pipe)
        // is stopped while inflating.
        let streamed = try Self.zstdCLI(input)
        #expect(try Zstd.decompress(streamed, limit: input.count) == input)
        let stopped = try #require(Self.error { try Zstd.decompress(streamed, limit: 100_000) })
        #expect(stopped.isTooLarge)
    }

    @Test("a bomb (1 GiB of zeros in a ~32 KiB frame) is refused without inflating it")
    func bomb() throws {
        let bomb = try Self.zeroBomb(bytes: 1 << 30)
        #expect(bomb.count < 64 * 1024)
        let e = try #require(Self.error { try Zstd.decompress(bomb, limit: 8 << 20) })
        #expect(e.isTooLarge)
    }

    @Test("truncated frames are corrupt, at every cut")
    func truncated() throws {
        let input = Self.repetitive(200_000) + Self.random(50_000)
        let frame = try Zstd.compress(input)
        for cut in [1, 3, 4, 6, frame.count / 3, frame.count / 2, frame.count - 5, frame.count - 1] {
            let e = try #require(Self.error { try Zstd.decompress(Array(frame[0..<cut]), limit: 1 << 20) }, "cut at \(cut) of \(frame.count)")
            #expect(!e.isTooLarge)
            #expect(e.message.contains("zstd body is corrupt"))
        }
        let cut = try #require(Self.error { try Zstd.decompress(Array(frame.dropLast(10)), limit: 1 << 20) })
        #expect(cut.message.contains("truncated") || cut.message.contains("corrupt"))
    }

    @Test("corrupt input: wrong magic, flipped bytes (caught by the block decoder or the checksum), trailing garbage")
    func corrupt() throws {
        let input = Self.repetitive(100_000) + Self.random(20_000)
        let frame = try Zstd.compress(input)
        let gzip = try Gzip.compress(input)
        let notZstd = try #require(Self.error { try Zstd.decompress(gzip, limit: 1 << 20) })
        #expect(!notZstd.isTooLarge && notZstd.message.contains("zstd body is corrupt"))
        for position in stride(from: 8, to: frame.count, by: max(1, frame.count / 40)) {
            var damaged = frame
            damaged[position] ^= 0x5A
            // A flipped byte must never pass silently: either an error, or (in a literal that
            // happened to decode) the checksum catches it.
            do {
                let out = try Zstd.decompress(damaged, limit: 1 << 20)
                Issue.record("flipping byte \(position) went unnoticed (\(out.count) bytes out)")
            } catch let e as Zstd.Error {
                #expect(e.message.contains("corrupt") || e.isTooLarge)
            }
        }
        let trailing = try #require(Self.error { try Zstd.decompress(frame + [1, 2, 3, 4, 5, 6, 7, 8], limit: 1 << 20) })
        #expect(!trailing.isTooLarge)
    }

    @Test("concatenated frames inflate to the concatenation, within one limit")
    func concatenated() throws {
        let a = Self.repetitive(10_000), b = Self.random(5_000)
        let both = try Zstd.compress(a) + Zstd.compress(b)
        #expect(try Zstd.decompress(both, limit: 15_000) == a + b)
        #expect(Self.error { try Zstd.decompress(both, limit: 14_999) }?.isTooLarge == true)
    }

    @Test("ContentCoding names, encodes and decodes every Content-Encoding")
    func contentCoding() throws {
        #expect(ContentCoding(header: nil) == .identity && ContentCoding(header: "") == .identity && ContentCoding(header: "identity") == .identity)
        #expect(ContentCoding(header: "gzip") == .gzip && ContentCoding(header: "X-GZIP") == .gzip)
        #expect(ContentCoding(header: "zstd") == .zstd && ContentCoding(header: " ZSTD ") == .zstd)
        #expect(ContentCoding(header: "br") == nil && ContentCoding(header: "deflate") == nil)
        #expect(ContentCoding.identity.headerValue == nil && ContentCoding.zstd.headerValue == "zstd" && ContentCoding.gzip.headerValue == "gzip")
        let input = Self.repetitive(50_000)
        for coding in ContentCoding.allCases {
            let body = try coding.encode(input, level: 1)
            #expect(try coding.decode(body, limit: input.count) == input)
            if coding != .identity {
                #expect(throws: ContentCoding.DecodingError.self) { try coding.decode(body, limit: 1_000) }
                do { _ = try coding.decode(body, limit: 1_000) } catch {
                    #expect(error.isTooLarge && error.message.contains("\(coding.rawValue) body inflates past the 1000-byte limit"))
                }
                do { _ = try coding.decode([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], limit: 1_000) } catch {
                    #expect(!error.isTooLarge && error.message.hasPrefix("Content-Encoding \(coding.rawValue), but"))
                }
            }
        }
    }

    // MARK: - Frames libzstd's one-shot API would not write

    /// `input` compressed by the `zstd` CLI from a pipe: no content size in the frame header.
    static func zstdCLI(_ input: [UInt8]) throws -> [UInt8] {
        let p = ChildProcess()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "command -v zstd >/dev/null && exec zstd -q -1 -c"]
        let stdin = Pipe(), stdout = Pipe()
        p.standardInput = stdin
        p.standardOutput = stdout
        try p.run()
        let writer = Thread { stdin.fileHandleForWriting.write(Data(input)); try? stdin.fileHandleForWriting.close() }
        writer.start()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            // No CLI on this machine: a frame without a declared size, built from raw blocks.
            return rawBlocksFrame(input)
        }
        return [UInt8](out)
    }

    /// A zstd frame of raw (stored) blocks with no content size and no checksum (RFC 8878 §3.1.1).
    static func rawBlocksFrame(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]
        out.append(0x00)  // frame header descriptor: no FCS, not single segment, no checksum
        out.append(0x58)  // window descriptor: 2^(10 + 11) = 2 MiB
        var offset = 0
        repeat {
            let n = min(128 * 1024, input.count - offset)
            let last = offset + n == input.count
            let header = UInt32(n) << 3 | (last ? 1 : 0)  // block type 0: raw
            out += [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF)]
            out += input[offset..<offset + n]
            offset += n
        } while offset < input.count
        return out
    }

    /// A frame of RLE blocks (one byte each, 128 KiB of zeros) that inflates to `bytes`.
    static func zeroBomb(bytes: Int) throws -> [UInt8] {
        var out: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x58]
        let blocks = bytes / (128 * 1024)
        for i in 0..<blocks {
            let header = UInt32(128 * 1024) << 3 | 1 << 1 | (i == blocks - 1 ? 1 : 0)  // block type 1: RLE
            out += [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF), 0x00]
        }
        return out
    }
}
