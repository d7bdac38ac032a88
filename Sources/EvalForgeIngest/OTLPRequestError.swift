/// Why an OTLP/HTTP trace request was refused, with the HTTP status it is answered with: 400 for a
/// body that is not a valid request (the message names the place), 413 for one too large once
/// inflated, 415 for an unsupported content type or encoding. The collector and the backend answer
/// it the same way.
public struct OTLPRequestError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable { case badRequest, tooLarge, unsupportedMediaType }
    private let code: Code
    public let message: String
    public var description: String { message }

    package static func badRequest(_ m: String) -> OTLPRequestError { OTLPRequestError(code: .badRequest, message: m) }
    package static func tooLarge(_ m: String) -> OTLPRequestError { OTLPRequestError(code: .tooLarge, message: m) }
    package static func unsupportedMediaType(_ m: String) -> OTLPRequestError { OTLPRequestError(code: .unsupportedMediaType, message: m) }

    /// 400, 413 or 415.
    public var httpStatus: Int {
        switch code {
        case .badRequest: return 400
        case .tooLarge: return 413
        case .unsupportedMediaType: return 415
        }
    }
}
