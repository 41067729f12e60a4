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
    /// Set when the server begins a graceful shutdown.
    var shutdown = ShutdownFlag()

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
            $0.inputs = tensors(served.inputs)
            $0.outputs = tensors(served.outputs)
        })
    }

    func modelInfer(
        request: ServerRequest<Inference_ModelInferRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelInferResponse> {
        let message = request.message
        let start = ContinuousClock.now
        RequestMetrics.inFlight.increment()
        defer { RequestMetrics.inFlight.decrement() }
        // The client's deadline is watched here: past it the answer is DEADLINE_EXCEEDED at once,
        // and a request still queued then is dropped by the batcher without running (one already
        // running finishes unheard).
        let deadline = Self.timeout(request.metadata).map { start + $0 }
        let deadlineError = RPCError(
            code: .deadlineExceeded, message: "the request's deadline passed before model '\(message.modelName)' answered")
        let work = Task { try await infer(message, deadline: deadline) }
        do {
            let response = try await withRPCCancellationHandler {
                try await untilDeadline(deadline, deadlineError, work)
            } onCancelRPC: { [shutdown] in
                // grpc-swift cancels an RPC when its client resets the stream (cancels the call or
                // disconnects), when its deadline passes, and when the server begins a graceful
                // shutdown. Only the first means no one waits for the answer: the request leaves
                // the queue. At the deadline the batcher drops it itself (counted as a timeout);
                // in a shutdown, calls in flight are still answered.
                if shutdown.isShuttingDown { return }
                if let deadline, deadline - .now < .milliseconds(100) { return }
                work.cancel()
            }
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
    private func infer(_ message: Inference_ModelInferRequest, deadline: ContinuousClock.Instant?) async throws -> Inference_ModelInferResponse {
        let served = try repository.model(message.modelName, version: message.modelVersion.isEmpty ? nil : message.modelVersion)
        var request = try message.handlerRequest(maxElements: served.context.configuration.maxTensorElements)
        if let deadline { request.tighten(deadline: deadline) }
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

/// Waits for `work` until it answers or `deadline` passes, whichever comes first; past the
/// deadline throws `error` at once and leaves `work` to finish unheard.
private func untilDeadline<Output: Sendable>(
    _ deadline: ContinuousClock.Instant?, _ error: RPCError, _ work: Task<Output, any Error>
) async throws -> Output {
    guard let deadline else { return try await work.value }
    let answer = FirstAnswer<Output>()
    let timer = Task {
        guard (try? await Task.sleep(until: deadline, clock: .continuous)) != nil else { return }
        answer.give(.failure(error))
    }
    defer { timer.cancel() }
    return try await withCheckedThrowingContinuation { continuation in
        answer.wait(continuation)
        Task {
            do {
                answer.give(.success(try await work.value))
            } catch {
                answer.give(.failure(error))
            }
        }
    }
}

/// Whether the server has begun a graceful shutdown, which grpc-swift also reports to the RPCs in
/// flight as a cancellation.
final class ShutdownFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    /// Whether the shutdown has begun.
    var isShuttingDown: Bool { flag.load(ordering: .acquiring) }

    /// Records that the shutdown has begun.
    func set() { flag.store(true, ordering: .releasing) }
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
