import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Maps thrown errors to `error.type` values.
enum ErrorClassifier {
    static func classify(_ error: any Error) -> (type: String, message: String) {
        if error is CancellationError { return ("cancelled", "the call was cancelled") }
        if let e = error as? LLMHTTPError { return (e.errorType, e.message) }
        if let e = error as? URLError {
            switch e.code {
            case .timedOut: return ("timeout", e.localizedDescription)
            case .cancelled: return ("cancelled", e.localizedDescription)
            case .cannotConnectToHost, .networkConnectionLost, .notConnectedToInternet, .cannotFindHost:
                return ("connection_error", e.localizedDescription)
            default: return ("url_error_\(e.code.rawValue)", e.localizedDescription)
            }
        }
        return (String(reflecting: type(of: error)), String(describing: error))
    }
}
