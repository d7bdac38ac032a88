import Foundation
import FuzzSupport

// libFuzzer's entry points (swift build --sanitize=fuzzer links libFuzzer's main): set-up once
// per process, then one call per input.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> Int32 {
    Fuzz.writeSeedsIfAsked {
        try OTLPSeeds.requests().flatMap { name, r -> [(String, [UInt8])] in
            [("seed-\(name).pb", try r.serializedBytes()), ("seed-\(name).json", try OTLPSeeds.otlpJSON(r))]
        }
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    testOneInput(data, size)
}
