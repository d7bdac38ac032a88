/// Deterministic randomness: SplitMix64 seeded from a seed and bytes (FNV-1a of the request).
/// Cheap, value-typed, one per request: no shared state between requests.
struct MockRNG {
    var state: UInt64

    init(seed: UInt64, body: some Sequence<UInt8>) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for b in body {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        state = h
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    mutating func unit() -> Double { (Double(next() >> 11) + 0.5) / Double(1 << 53) }

    /// Uniform in `range`.
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }

    /// Uniform index into a non-empty collection of `count` elements.
    mutating func index(_ count: Int) -> Int { Int(next() % UInt64(max(1, count))) }

    /// `n` lowercase hex digits.
    mutating func hex(_ n: Int) -> String {
        var s = ""
        s.reserveCapacity(n + 16)
        while s.count < n {
            let word = String(next(), radix: 16)
            s += String(repeating: "0", count: 16 - word.count) + word
        }
        return String(s.prefix(n))
    }

    /// `n` characters of [A-Za-z0-9], like Anthropic's ids.
    mutating func base62(_ n: Int) -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var s = ""
        s.reserveCapacity(n)
        for _ in 0..<n { s.append(alphabet[index(alphabet.count)]) }
        return s
    }
}
