import Foundation
import Testing

@testable import MockLLM

@Suite("Hand-written JSON")
struct JSONTextTests {
    @Test("strings with quotes, backslashes, control characters and non-ASCII round-trip through JSONSerialization")
    func escaping() throws {
        let strings = ["plain", "say \"hi\"", "back\\slash", "line\nbreak\ttab\r", "\u{0}\u{1}\u{1f}", "é 中文 🙂", "</script>", ""]
        for s in strings {
            let value: JSONValue = ["s": .string(s), "list": [.string(s), 1, .double(2.5), true, nil]]
            let decoded = try JSONSerialization.jsonObject(with: Data(value.text.utf8)) as? [String: Any]
            #expect(decoded?["s"] as? String == s)
            #expect((decoded?["list"] as? [Any])?.count == 5)
        }
    }

    @Test("numbers, booleans and nested values from JSONSerialization keep their types; keys are sorted")
    func fromAny() throws {
        let any = try JSONSerialization.jsonObject(with: Data(#"{"b": [1, 2.5, true, null, "x"], "a": {"z": false, "y": -3}}"#.utf8))
        let value = try #require(JSONValue(any: any))
        #expect(value.text == #"{"a":{"y":-3,"z":false},"b":[1,2.5,true,null,"x"]}"#)
    }
}
