import Foundation
import FuzzBackendSupport
import FuzzSupport

// libFuzzer's entry points (swift build --sanitize=fuzzer links libFuzzer's main): set-up once
// per process, then one call per input.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> Int32 {
    Fuzz.writeSeedsIfAsked { QueryFuzz.seeds.enumerated().map { (String(format: "seed-%02d", $0.offset), Array($0.element.utf8)) } }
    _ = QueryFuzz.fixture
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    testOneInput(data, size)
}
