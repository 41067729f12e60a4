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
        // grpc-swift cancels the RPC when the client's deadline passes (or the client goes away):
        // the answer is then DEADLINE_EXCEEDED, while the request already queued still runs.
        let hasDeadline = request.metadata[stringValues: "grpc-timeout"].contains { _ in true }
        let onCancel = hasDeadline
            ? RPCError(code: .deadlineExceeded, message: "the request's deadline passed before model '\(message.modelName)' answered")
            : RPCError(code: .cancelled, message: "the client cancelled the request")
        do {
            let response = try await untilRPCCancelled(onCancel) { try await infer(message) }
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

    /// The model `name` at `version` (its highest version when empty), or NOT_FOUND.
    private func model(_ name: String, version: String) throws -> ServedModel {
        do {
            return try repository.model(name, version: version.isEmpty ? nil : version)
        } catch let error as HandlerError {
            throw RPCError(error)
        }
    }
}

/// Runs `operation` until it answers or the RPC is cancelled, whichever comes first; on
/// cancellation throws `error` at once and leaves `operation` to finish unheard.
private func untilRPCCancelled<Output: Sendable>(
    _ error: RPCError, _ operation: @escaping @Sendable () async throws -> Output
) async throws -> Output {
    let answer = FirstAnswer<Output>()
    return try await withRPCCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            answer.wait(continuation)
            Task {
                do {
                    answer.give(.success(try await operation()))
                } catch {
                    answer.give(.failure(error))
                }
            }
        }
    } onCancelRPC: {
        answer.give(.failure(error))
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
