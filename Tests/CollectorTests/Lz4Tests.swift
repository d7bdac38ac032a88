import EvalForgeCompression
import Testing

@Suite("Lz4 (EvalForgeCompression)")
struct Lz4Tests {
    static func error(_ body: () throws -> [UInt8]) -> Lz4.Error? {
        do {
            _ = try body()
            return nil
        } catch let e as Lz4.Error {
            return e
        } catch {
            Issue.record("unexpected error type: \(error)")
            return nil
        }
    }

    @Test("round trip of random, repetitive, tiny and empty data, whole or fed in uneven pieces")
    func roundTrip() throws {
        for input in [ZstdTests.random(700_000) + ZstdTests.repetitive(1_500_000), ZstdTests.random(1), []] {
            let whole = try Lz4.compress(input)
            #expect(Lz4.isLz4(whole))
            #expect(try Lz4.decompress(whole, limit: input.count) == input)  // exactly at the limit
            let cuts = [0, 0, 1, 7, 65_536, 300_001, 1_000_000].filter { $0 <= input.count } + [input.count]
            let streamed = try Lz4.compress(size: input.count) { feed in
                for (a, b) in zip(cuts, cuts.dropFirst()) { try input[a..<b].withUnsafeBytes(feed) }
            }
            #expect(try Lz4.decompress(streamed, limit: input.count) == input)
        }
        // Compresses what compresses.
        let text = ZstdTests.repetitive(1_000_000)
        #expect(try Lz4.compress(text).count < text.count / 10)
    }

    @Test("two frames back to back inflate to both contents")
    func concatenatedFrames() throws {
        let a = ZstdTests.repetitive(300_000), b = ZstdTests.random(1_000)
        #expect(try Lz4.decompress(try Lz4.compress(a) + (try Lz4.compress(b)), limit: 1 << 20) == a + b)
    }

    @Test("corrupt, truncated, oversized and empty bodies get a clear error, never a crash")
    func badInput() throws {
        let input = ZstdTests.repetitive(200_000) + ZstdTests.random(50_000)
        let frame = try Lz4.compress(input)
        var damaged = frame
        damaged[damaged.count - 2] ^= 0x55  // the content checksum
        #expect(Self.error { try Lz4.decompress(damaged, limit: 1 << 20) }?.description.hasPrefix("lz4 body is corrupt") == true)
        #expect(Self.error { try Lz4.decompress(Array(frame.dropLast(9)), limit: 1 << 20) }?.description == "lz4 body is corrupt: truncated (the frame ends early)")
        #expect(Self.error { try Lz4.decompress(ZstdTests.random(5_000), limit: 1 << 20) }?.description.hasPrefix("lz4 body is corrupt") == true)
        #expect(Self.error { try Lz4.decompress([], limit: 10) }?.description == "lz4 body is corrupt: empty body (no lz4 frame)")
        let tooLarge = Self.error { try Lz4.decompress(frame, limit: input.count - 1) }
        #expect(tooLarge?.isTooLarge == true)
        #expect(tooLarge?.description == "lz4 body inflates to more than \(input.count - 1) bytes")
        // Misuse of the streaming compressor: the fed size must match the declared one.
        #expect(Self.error { try Lz4.compress(size: 10) { feed in try [UInt8](repeating: 1, count: 9).withUnsafeBytes(feed) } }?.description == "lz4 compression: 9 bytes were fed, 10 declared")
        #expect(Self.error { try Lz4.compress(size: 10) { feed in try [UInt8](repeating: 1, count: 11).withUnsafeBytes(feed) } }?.description == "lz4 compression: more than the declared 10 bytes were fed")
    }

    @Test("Content-Encoding lz4 is recognised and inflated through ContentCoding")
    func contentCoding() throws {
        #expect(ContentCoding(header: " LZ4 ") == .lz4)
        #expect(ContentCoding.lz4.headerValue == "lz4")
        let input = ZstdTests.repetitive(100_000)
        #expect(try ContentCoding.lz4.decode(try ContentCoding.lz4.encode(input, level: 0), limit: 100_000) == input)
        let frame = try Lz4.compress(input)
        do {
            _ = try ContentCoding.lz4.decode(frame, limit: 99_999)
            Issue.record("expected a too-large error")
        } catch {
            #expect(error.isTooLarge)
        }
    }
}
