/// Reading protobuf fields with every problem reported: the checks both byte-level readers share
/// (the collector's OTLP request decoder and the backend's span-row reader). A conforming reader
/// supplies its bytes and `fail`, which turns a problem into its own error with the place it is
/// reading (for example `resource_spans[0].scope_spans[1].spans[3]: …`); `message` names the
/// protobuf message being read.
package protocol CheckedWireFields {
    associatedtype Failure: Error
    /// The bytes being read (every cursor passed in reads this buffer).
    var b: UnsafeRawBufferPointer { get }
    /// The error for `problem` at the reader's current place.
    func fail(_ problem: String) -> Failure
}

/// Names of the protobuf wire types, for error messages.
package enum WireTypeName {
    @usableFromInline static let names = ["varint", "64-bit", "length-delimited", "start-group", "end-group", "32-bit", "invalid (6)", "invalid (7)"]

    @inlinable package static func of(_ w: UInt8) -> String { w < 8 ? names[Int(w)] : "invalid" }
}

extension CheckedWireFields {
    /// The next tag; a malformed one (truncated, field number 0 or above 2^29 − 1) is an error.
    @inlinable @inline(__always)
    package func tag(_ c: inout ProtobufWireCursor, _ message: StaticString) throws(Failure) -> (UInt64, UInt8) {
        let at = c.offset
        guard let (field, wire) = c.tag(), field <= 536_870_911 else {
            throw fail("\(message): malformed tag at byte \(at) (truncated, field number 0 or too large)")
        }
        return (field, wire)
    }

    @inlinable @inline(__always)
    package func expect(_ wire: UInt8, _ expected: UInt8, _ message: StaticString, _ field: UInt64) throws(Failure) {
        guard wire == expected else {
            throw fail("\(message) field \(field) has wire type \(WireTypeName.of(wire)), expected \(WireTypeName.of(expected))")
        }
    }

    /// A length-delimited field's payload range.
    @inlinable @inline(__always)
    package func payload(_ c: inout ProtobufWireCursor, _ wire: UInt8, _ message: StaticString, _ field: UInt64) throws(Failure) -> Range<Int> {
        try expect(wire, 2, message, field)
        guard let r = c.lengthDelimited() else { throw fail("\(message) field \(field): truncated message (length past the end)") }
        return r
    }

    /// A string field's range, checked to be UTF-8.
    @inlinable @inline(__always)
    package func string(_ c: inout ProtobufWireCursor, _ wire: UInt8, _ message: StaticString, _ field: UInt64) throws(Failure) -> Range<Int> {
        let r = try payload(&c, wire, message, field)
        guard UTF8Validation.isValid(b, r) else { throw fail("\(message) field \(field): a string field holds invalid UTF-8") }
        return r
    }

    @inlinable @inline(__always)
    package func varint(_ c: inout ProtobufWireCursor, _ wire: UInt8, _ message: StaticString, _ field: UInt64) throws(Failure) -> UInt64 {
        try expect(wire, 0, message, field)
        guard let v = c.varint() else { throw fail("\(message) field \(field): truncated varint") }
        return v
    }

    @inlinable @inline(__always)
    package func fixed64(_ c: inout ProtobufWireCursor, _ wire: UInt8, _ message: StaticString, _ field: UInt64) throws(Failure) -> UInt64 {
        try expect(wire, 1, message, field)
        guard let v = c.fixed64() else { throw fail("\(message) field \(field): truncated fixed64") }
        return v
    }

    /// Skips a known scalar field after checking its wire type.
    @inlinable @inline(__always)
    package func scalar(_ c: inout ProtobufWireCursor, _ wire: UInt8, _ expected: UInt8, _ message: StaticString, _ field: UInt64) throws(Failure) {
        try expect(wire, expected, message, field)
        guard c.skip(wireType: wire) else { throw fail("\(message) field \(field): truncated message") }
    }

    /// Skips an unknown field; groups and wire types 6 and 7 are errors.
    @inlinable @inline(__always)
    package func skip(_ c: inout ProtobufWireCursor, _ wire: UInt8, _ message: StaticString) throws(Failure) {
        guard c.skip(wireType: wire) else {
            throw fail(wire == 3 || wire == 4 || wire > 5 ? "\(message): unsupported wire type \(WireTypeName.of(wire))" : "\(message): truncated message")
        }
    }
}
