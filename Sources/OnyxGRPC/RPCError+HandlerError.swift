import GRPCCore
import Onyx
import OnyxServe

extension RPCError {
    /// The gRPC status for a handler's error: the HTTP status the REST front would send, mapped as
    /// gRPC's own HTTP mapping does (400 → INVALID_ARGUMENT, 404 → NOT_FOUND, 503 → UNAVAILABLE, …).
    init(_ error: HandlerError) {
        let code: RPCError.Code = switch error.status {
        case 400, 422: .invalidArgument
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .notFound
        case 409: .alreadyExists
        case 413, 429: .resourceExhausted
        case 501: .unimplemented
        case 503: .unavailable
        case 504: .deadlineExceeded
        case 500..<600: .internalError
        default: .unknown
        }
        self.init(code: code, message: error.message)
    }

    /// The HTTP status the REST front would have sent, for the request metrics' `status` label.
    var httpStatus: Int {
        switch code {
        case .invalidArgument, .outOfRange, .failedPrecondition: 400
        case .unauthenticated: 401
        case .permissionDenied: 403
        case .notFound: 404
        case .alreadyExists: 409
        case .resourceExhausted: 429
        case .cancelled: 499
        case .unimplemented: 501
        case .unavailable: 503
        case .deadlineExceeded: 504
        default: 500
        }
    }
}

extension HandlerError {
    /// A 400 about one input, as the REST front words it.
    static func input(_ name: String, _ message: String) -> HandlerError {
        .badRequest("input '\(name)': \(message)")
    }
}
