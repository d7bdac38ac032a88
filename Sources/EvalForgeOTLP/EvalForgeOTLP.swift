// The OTLP trace protocol as generated Swift (see Generated/ and scripts/generate-protos.sh).
// Everything here is `package`: the SDK encodes OTLP itself, the collector and backend decode with these types.
@_exported import SwiftProtobuf
