/// An OTLP/HTTP trace request body as protobuf bytes, whatever its content type (protobuf or JSON)
/// and encoding (gzip, zstd, lz4 or identity): the first step of the one ingest path, shared by
/// the collector's and the backend's `POST /v1/traces`. The bytes are validated while they are read
/// (`OTLPWireDecoder`), then normalized (`GenAINormalizer.normalize(spanBytes:…)`).
package enum OTLPTraceRequestDecoding {
    /// The request's protobuf bytes and the format its answer uses. Throws `OTLPRequestError`
    /// (400, 413 or 415) naming what was wrong.
    package static func protobufBytes(body: [UInt8], contentType: String?, contentEncoding: String?, limit: Int) throws(OTLPRequestError) -> (bytes: [UInt8], format: OTLPRequestDecoder.Format) {
        let format = try OTLPRequestDecoder.format(contentType: contentType)
        let inflated = try OTLPRequestDecoder.inflate(body, encoding: contentEncoding, limit: limit)
        return (try OTLPRequestDecoder.protobufBytes(inflated, format: format), format)
    }

    /// True when `contentType` names OTLP JSON (responses then use JSON too).
    package static func isJSON(contentType: String?) -> Bool {
        (try? OTLPRequestDecoder.format(contentType: contentType)) == .json
    }
}
