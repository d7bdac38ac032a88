import EvalForgeOTLP

/// The collector's OTLP/HTTP trace body decoding as a public entry point, so the backend's direct
/// `POST /v1/traces` accepts exactly what the collector accepts (protobuf or JSON, gzip or identity)
/// with the same error messages.
public enum OTLPTraceRequestDecoding {
    /// Decodes a request body. Throws `CollectorError` whose `httpStatus` is 400, 413 or 415.
    public static func decode(body: [UInt8], contentType: String?, contentEncoding: String?, limit: Int) throws -> ExportTraceRequest {
        let format = try OTLPRequestDecoder.format(contentType: contentType)
        let inflated = try OTLPRequestDecoder.inflate(body, encoding: contentEncoding, limit: limit)
        return try OTLPRequestDecoder.decode(inflated, format: format).0
    }

    /// True when `contentType` names OTLP JSON (responses then use JSON too).
    public static func isJSON(contentType: String?) -> Bool {
        (try? OTLPRequestDecoder.format(contentType: contentType)) == .json
    }
}

extension CollectorError {
    /// The HTTP status this error maps to (400, 413, 415, 500 or 503).
    public var statusCode: Int { httpStatus }
}
