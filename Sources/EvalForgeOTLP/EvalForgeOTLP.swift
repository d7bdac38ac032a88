// The OTLP trace protocol as generated Swift (see Generated/ and scripts/generate-protos.sh).
// The generated types are `public` (Visibility=Public): the SDK encodes OTLP itself, the collector and backend decode with these types.
@_exported import SwiftProtobuf
