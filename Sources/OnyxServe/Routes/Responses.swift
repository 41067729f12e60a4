import Hummingbird
import HummingbirdCore
import HTTPTypes
import NIOCore

/// Building responses and turning errors into `{"error": "..."}` with the right status.
enum Responses {
    static let jsonType = "application/json"
    static let headerLengthField = HTTPField.Name("Inference-Header-Content-Length")!

    /// A response before a server writes it: what the router's routes and ``InlineInferenceHandler`` both build.
    struct Parts {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: [UInt8]

        /// `body` with its length, as JSON unless `headers` name another content type.
        init(json body: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) {
            var fields = headers
            if fields[.contentType] == nil { fields[.contentType] = Responses.jsonType }
            fields[.contentLength] = String(body.count)
            self.status = status
            self.headers = fields
            self.body = body
        }

        /// `{"error": "..."}` with the error's status (and `Retry-After` when it has one).
        init(error: HandlerError) {
            var headers: HTTPFields = [:]
            if let retry = error.retryAfter { headers[.retryAfter] = String(retry) }
            self.init(json: InferenceProtocol.errorBody(error.message), status: HTTPResponse.Status(code: error.status), headers: headers)
        }

        var response: Response {
            Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    static func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        Parts(json: bytes, status: status, headers: headers).response
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var writer = JSONWriter()
        writer.value(value)
        return json(writer.bytes, status: status)
    }

    static func error(_ error: HandlerError) -> Response {
        Parts(error: error).response
    }

    /// Maps anything a route throws to a ``HandlerError``.
    static func handlerError(_ error: any Error, maxBodyBytes: Int) -> HandlerError {
        switch error {
        case let error as HandlerError: return error
        case is NIOTooManyBytesError: return HandlerError(status: 413, "request body is larger than the limit of \(maxBodyBytes) bytes")
        case let error as HTTPError: return HandlerError(status: Int(error.status.code), error.body ?? error.status.reasonPhrase)
        default: return HandlerError(status: 500, "internal error: \(error)")
        }
    }

    /// Runs a route body, recording metrics and mapping errors.
    static func measured(
        model: String, route: String, maxBodyBytes: Int, _ body: () async throws -> Response
    ) async -> Response {
        let start = ContinuousClock.now
        RequestMetrics.inFlight.increment()
        defer { RequestMetrics.inFlight.decrement() }
        let response: Response
        do {
            response = try await body()
        } catch {
            response = Responses.error(handlerError(error, maxBodyBytes: maxBodyBytes))
        }
        RequestMetrics.record(model: model, route: route, status: Int(response.status.code), duration: ContinuousClock.now - start)
        return response
    }

    /// ``measured(model:route:maxBodyBytes:_:)`` for a body that answers on the calling thread.
    static func measuredNow(model: String, route: String, maxBodyBytes: Int, _ body: () throws -> Parts) -> Parts {
        let start = ContinuousClock.now
        RequestMetrics.inFlight.increment()
        defer { RequestMetrics.inFlight.decrement() }
        let parts: Parts
        do {
            parts = try body()
        } catch {
            parts = Parts(error: handlerError(error, maxBodyBytes: maxBodyBytes))
        }
        RequestMetrics.record(model: model, route: route, status: Int(parts.status.code), duration: ContinuousClock.now - start)
        return parts
    }
}

extension Request {
    /// The body, up to `limit` bytes (413 beyond; a declared Content-Length over the limit fails before reading).
    func collectBody(limit: Int) async throws -> [UInt8] {
        if let declared = headers[.contentLength].flatMap(Int.init), declared > limit {
            throw HandlerError(status: 413, "request body of \(declared) bytes is larger than the limit of \(limit) bytes")
        }
        var buffer = try await body.collect(upTo: limit)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }
}
