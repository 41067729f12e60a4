import HTTPTypes
import Hummingbird
import Onyx

/// Open Inference Protocol v2 routes: server and model health, metadata, and inference.
struct OpenInferenceV2Routes {
    let repository: ModelRepository
    let configuration: ServerConfiguration

    func register(on router: Router<ServeRequestContext>) {
        router.get("v2") { _, _ in
            Responses.json(.object([
                "name": .string(configuration.serverName),
                "version": .string(configuration.serverVersion),
                "extensions": .array([.string("binary_tensor_data")] + (configuration.repositoryControl ? [.string("model_repository")] : [])),
            ]))
        }
        router.get("v2/health/live") { _, _ in Responses.json([], status: .ok) }
        router.get("v2/health/ready") { _, _ -> Response in
            let ready = !repository.allModels.isEmpty
            return Responses.json([], status: ready ? .ok : .serviceUnavailable)
        }
        router.get("v2/models/:model") { _, context in try await metadata(context, version: nil) }
        router.get("v2/models/:model/versions/:version") { _, context in
            try await metadata(context, version: context.parameters.require("version"))
        }
        router.get("v2/models/:model/ready") { _, context in ready(context, version: nil) }
        router.get("v2/models/:model/versions/:version/ready") { _, context in
            ready(context, version: context.parameters.get("version"))
        }
        router.post("v2/models/:model/infer") { request, context in await infer(request, context, version: nil) }
        router.post("v2/models/:model/versions/:version/infer") { request, context in
            await infer(request, context, version: context.parameters.get("version"))
        }
    }

    private func metadata(_ context: ServeRequestContext, version: String?) async throws -> Response {
        let name = try context.parameters.require("model")
        do {
            let model = try repository.model(name, version: version)
            func tensors(_ list: [TensorMetadata]) -> JSONValue {
                .array(list.map { t in
                    .object(["name": .string(t.name), "datatype": .string(t.datatype.protocolName),
                             "shape": .array(t.shape.map { .number(Double($0)) })])
                })
            }
            return Responses.json(.object([
                "name": .string(name),
                "versions": .array(repository.versions(of: name).map { .string($0) }),
                "platform": .string(model.platform),
                "inputs": tensors(model.inputs),
                "outputs": tensors(model.outputs),
            ]))
        } catch let error as HandlerError {
            return Responses.error(error)
        }
    }

    private func ready(_ context: ServeRequestContext, version: String?) -> Response {
        guard let name = context.parameters.get("model") else { return Responses.error(.notFound("no model named")) }
        do {
            _ = try repository.model(name, version: version)
            return Responses.json([], status: .ok)
        } catch let error as HandlerError {
            return Responses.error(error)
        } catch {
            return Responses.error(HandlerError(status: 500, "\(error)"))
        }
    }

    private func infer(_ request: Request, _ context: ServeRequestContext, version: String?) async -> Response {
        let name = context.parameters.get("model") ?? ""
        return await Responses.measured(model: name, route: "infer", maxBodyBytes: configuration.maxBodyBytes) {
            let model = try repository.model(name, version: version)
            let headerLength = try InferExchange.headerLength(request.headers[Responses.headerLengthField])
            let body = try await request.collectBody(limit: configuration.maxBodyBytes)
            let decoded = try InferExchange.decode(body, headerLength: headerLength, for: model)
            let response = try await context.infer(decoded.request, on: model)
            return InferExchange.answer(response, to: decoded, name: name, model: model).response
        }
    }
}

/// The parts of a v2 infer exchange that do not depend on how the request arrived: the router's
/// route and ``InlineInferenceHandler`` share them.
enum InferExchange {
    /// `Inference-Header-Content-Length`: where the JSON part of a binary-tensor body ends.
    static func headerLength(_ field: String?) throws -> Int? {
        guard let field else { return nil }
        guard let n = Int(field), n >= 0 else {
            throw HandlerError.badRequest("Inference-Header-Content-Length must be a non-negative integer, got '\(field)'")
        }
        return n
    }

    static func decode(_ body: [UInt8], headerLength: Int?, for model: ServedModel) throws -> InferenceProtocol.DecodedRequest {
        try InferenceProtocol.decodeRequest(body, headerLength: headerLength, maxElements: model.context.configuration.maxTensorElements)
    }

    /// The response to `decoded`: its outputs as JSON, or as binary after a JSON header when the
    /// request asked for that.
    static func answer(
        _ response: HandlerResponse, to decoded: InferenceProtocol.DecodedRequest, name: String, model: ServedModel
    ) -> Responses.Parts {
        switch response {
        case .json(let value):
            var writer = JSONWriter()
            writer.value(value)
            return Responses.Parts(json: writer.bytes)
        case .tensors(let outputs):
            let (bytes, jsonLength) = InferenceProtocol.encodeResponse(
                modelName: name, version: model.context.version, id: decoded.request.id, outputs: outputs,
                binaryOutputs: decoded.binaryOutputs, allBinary: decoded.allBinary)
            var headers: HTTPFields = [:]
            if let jsonLength {
                headers[Responses.headerLengthField] = String(jsonLength)
                headers[.contentType] = "application/octet-stream"
            }
            return Responses.Parts(json: bytes, headers: headers)
        }
    }
}
