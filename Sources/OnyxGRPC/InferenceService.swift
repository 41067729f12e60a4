import Foundation
import GRPCCore
import Onyx
import OnyxServe
import Synchronization

/// `inference.GRPCInferenceService`: the Open Inference Protocol's health, metadata and inference
/// RPCs over the same repository, handlers, batchers, limits and metrics as the REST front.
struct InferenceService: Inference_GRPCInferenceService.ServiceProtocol {
    let repository: ModelRepository
    let configuration: ServerConfiguration

    func serverLive(
        request: ServerRequest<Inference_ServerLiveRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ServerLiveResponse> {
        ServerResponse(message: .with { $0.live = true })
    }

    func serverReady(
        request: ServerRequest<Inference_ServerReadyRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ServerReadyResponse> {
        ServerResponse(message: .with { $0.ready = !repository.allModels.isEmpty })
    }

    func modelReady(
        request: ServerRequest<Inference_ModelReadyRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelReadyResponse> {
        let ready = (try? model(request.message.name, version: request.message.version)) != nil
        return ServerResponse(message: .with { $0.ready = ready })
    }

    func serverMetadata(
        request: ServerRequest<Inference_ServerMetadataRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ServerMetadataResponse> {
        ServerResponse(message: .with {
            $0.name = configuration.serverName
            $0.version = configuration.serverVersion
            // Raw contents are this protocol's form of the binary tensor extension; the
            // repository extension is served over HTTP only.
            $0.extensions = ["binary_tensor_data"]
        })
    }

    func modelMetadata(
        request: ServerRequest<Inference_ModelMetadataRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelMetadataResponse> {
        let name = request.message.name
        let served = try model(name, version: request.message.version)
        func tensors(_ list: [TensorMetadata]) -> [Inference_ModelMetadataResponse.TensorMetadata] {
            list.map { t in
                .with {
                    $0.name = t.name
                    $0.datatype = t.datatype.protocolName
                    $0.shape = t.shape.map(Int64.init)
                }
            }
        }
        return ServerResponse(message: .with {
            $0.name = name
            $0.versions = repository.versions(of: name)
            $0.platform = served.platform
            $0.inputs = tensors(served.handler.inputs)
            $0.outputs = tensors(served.handler.outputs)
        })
    }

    func modelInfer(
        request: ServerRequest<Inference_ModelInferRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelInferResponse> {
        let message = request.message
        let start = ContinuousClock.now
        RequestMetrics.inFlight.increment()
        defer { RequestMetrics.inFlight.decrement() }
        // The client's deadline is watched here, not through grpc-swift's RPC cancellation: that
        // also fires when the server begins a graceful shutdown, whose RPCs in flight must still
        // be answered. Past the deadline the answer is DEADLINE_EXCEEDED; the request already
        // queued still runs.
        let deadlineError = RPCError(
            code: .deadlineExceeded, message: "the request's deadline passed before model '\(message.modelName)' answered")
        do {
            let response = try await untilTimeout(Self.timeout(request.metadata), deadlineError) { try await infer(message) }
            RequestMetrics.record(model: message.modelName, route: "grpc_infer", status: 200, duration: .now - start)
            return ServerResponse(message: response)
        } catch {
            let rpcError: RPCError = switch error {
            case let error as RPCError: error
            case let error as HandlerError: RPCError(error)
            default: RPCError(code: .internalError, message: "internal error: \(error)")
            }
            RequestMetrics.record(model: message.modelName, route: "grpc_infer", status: rpcError.httpStatus, duration: .now - start)
            throw rpcError
        }
    }

    /// Decodes, runs through the model's batcher and encodes, as the REST `/infer` route does.
    private func infer(_ message: Inference_ModelInferRequest) async throws -> Inference_ModelInferResponse {
        let served = try repository.model(message.modelName, version: message.modelVersion.isEmpty ? nil : message.modelVersion)
        let request = try message.handlerRequest(maxElements: served.context.configuration.maxTensorElements)
        switch try await served.infer(request) {
        case .tensors(let outputs):
            return try Inference_ModelInferResponse(
                model: message.modelName, version: served.context.version, id: message.id, outputs: outputs,
                typed: message.wantsTypedOutputs)
        case .json:
            throw HandlerError(status: 501, "model '\(message.modelName)' answers with its own JSON, which only the REST front carries")
        }
    }

    /// The `grpc-timeout` of a request ("100m", "5S": digits and a unit, H M S m u n), or nil when
    /// absent or malformed.
    static func timeout(_ metadata: Metadata) -> Duration? {
        guard let value = metadata[stringValues: "grpc-timeout"].first(where: { _ in true }),
              let unit = value.last, (2...9).contains(value.count), let amount = Int64(value.dropLast()), amount >= 0
        else { return nil }
        switch unit {
        case "H": return .seconds(amount * 3600)
        case "M": return .seconds(amount * 60)
        case "S": return .seconds(amount)
        case "m": return .milliseconds(amount)
        case "u": return .microseconds(amount)
        case "n": return .nanoseconds(amount)
        default: return nil
        }
    }

    /// The model `name` at `version` (its highest version when empty), or NOT_FOUND.
    private func model(_ name: String, version: String) throws -> ServedModel {
        do {
            return try repository.model(name, version: version.isEmpty ? nil : version)
        } catch let error as HandlerError {
            throw RPCError(error)
        }
    }
}

/// Runs `operation` until it answers or `timeout` passes, whichever comes first; past the timeout
/// throws `error` at once and leaves `operation` to finish unheard.
private func untilTimeout<Output: Sendable>(
    _ timeout: Duration?, _ error: RPCError, _ operation: @escaping @Sendable () async throws -> Output
) async throws -> Output {
    guard let timeout else { return try await operation() }
    let answer = FirstAnswer<Output>()
    let timer = Task {
        guard (try? await Task.sleep(for: timeout)) != nil else { return }
        answer.give(.failure(error))
    }
    defer { timer.cancel() }
    return try await withCheckedThrowingContinuation { continuation in
        answer.wait(continuation)
        Task {
            do {
                answer.give(.success(try await operation()))
            } catch {
                answer.give(.failure(error))
            }
        }
    }
}

/// Hands the first of several results to one waiting continuation; later ones are dropped.
private final class FirstAnswer<Output: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Output, any Error>?
        var early: Result<Output, any Error>?
        var answered = false
    }
    private let state = Mutex(State())

    func wait(_ continuation: CheckedContinuation<Output, any Error>) {
        let early = state.withLock { state -> Result<Output, any Error>? in
            if let early = state.early { return early }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func give(_ result: Result<Output, any Error>) {
        let waiting = state.withLock { state -> CheckedContinuation<Output, any Error>? in
            guard !state.answered else { return nil }
            state.answered = true
            guard let continuation = state.continuation else {
                state.early = result
                return nil
            }
            state.continuation = nil
            return continuation
        }
        waiting?.resume(with: result)
    }
}
