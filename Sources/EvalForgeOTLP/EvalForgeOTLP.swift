// The OTLP trace protocol as generated Swift (see Generated/ and scripts/generate-protos.sh).
// The generated types are `public` (Visibility=Public): the SDK encodes OTLP itself, the collector and backend decode with these types.
@_exported import SwiftProtobuf

/// An OTLP/HTTP trace request (`POST /v1/traces`), as the ingest path and its tests name it.
public typealias ExportTraceRequest = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
