import Hummingbird
import Onyx

/// TorchServe-style routes: `POST /predictions/{model}[/{version}]` and `GET /ping`.
///
/// The body is the Flask habit, `{"shape": [...], "data": [...]}` (optionally `"datatype"`, or a
/// list of such objects for several inputs, or `{"inputs": {name: {...}}}`), answered with
/// `{"shape", "datatype", "data"}` per output; a custom handler gets the parsed JSON as it is.
struct TorchServeRoutes {
    let repository: ModelRepository
    let configuration: ServerConfiguration

    func register(on router: Router<ServeRequestContext>) {
        router.get("ping") { _, _ in
            Responses.json(.object(["status": .string(repository.allModels.isEmpty ? "Unhealthy" : "Healthy")]),
                           status: repository.allModels.isEmpty ? .serviceUnavailable : .ok)
        }
        router.post("predictions/:model") { request, context in await predict(request, context, version: nil) }
        router.post("predictions/:model/:version") { request, context in
            await predict(request, context, version: context.parameters.get("version"))
        }
    }

    private func predict(_ request: Request, _ context: ServeRequestContext, version: String?) async -> Response {
        let name = context.parameters.get("model") ?? ""
        return await Responses.measured(model: name, route: "predictions", maxBodyBytes: configuration.maxBodyBytes) {
            let model = try repository.model(name, version: version)
            let body = try await request.collectBody(limit: configuration.maxBodyBytes)
            let limit = model.context.configuration.maxTensorElements
            let document: JSONValue
            do {
                document = try JSONParser.parse(body, maxElements: limit)
            } catch let error as JSONSyntaxError {
                throw HandlerError.badRequest("request body is not valid JSON: \(error)")
            }
            var handlerRequest = HandlerRequest(json: document)
            if model.context.configuration.handler == "onnx" {
                handlerRequest.inputs = try Self.tensors(from: document, limit: limit)
            }
            switch try await context.infer(handlerRequest, on: model) {
            case .json(let value):
                return Responses.json(value)
            case .tensors(let outputs):
                var writer = JSONWriter()
                if outputs.count == 1 {
                    InferenceProtocol.writeOutput(outputs[0], binary: false, expandJSON: true, to: &writer)
                } else {
                    writer.raw("[")
                    for (i, output) in outputs.enumerated() {
                        if i > 0 { writer.raw(",") }
                        InferenceProtocol.writeOutput(output, binary: false, expandJSON: true, to: &writer)
                    }
                    writer.raw("]")
                }
                return Responses.json(writer.bytes)
            }
        }
    }

    /// Tensors from the Flask-habit body forms.
    static func tensors(from document: JSONValue, limit: Int) throws -> [NamedTensor] {
        func one(_ value: JSONValue, name: String) throws -> NamedTensor {
            guard case .object = value else { throw HandlerError.badRequest("each input must be an object {\"shape\": [...], \"data\": [...]}") }
            guard let data = value["data"] else { throw HandlerError.badRequest("input \(name.isEmpty ? "" : "'\(name)' ")has no \"data\"") }
            // Without a datatype: BYTES for text, FP32 for numbers.
            let typeName = value["datatype"]?.stringValue ?? value["dtype"]?.stringValue ?? (Self.holdsText(data) ? "BYTES" : "FP32")
            guard let type = DataType(protocolName: typeName) else { throw HandlerError.badRequest("unknown datatype '\(typeName)'") }
            let shape: [Int]
            if let values = value["shape"]?.arrayValue {
                shape = try values.map { v in
                    guard let n = v.intValue, n >= 0 else { throw HandlerError.badRequest("\"shape\" must hold non-negative integers") }
                    return n
                }
            } else {
                shape = try Self.inferShape(data)
            }
            do {
                return NamedTensor(name: value["name"]?.stringValue ?? name,
                                   tensor: try TensorJSON.tensor(from: data, type: type, shape: shape, name: name.isEmpty ? "input" : name, limit: limit))
            } catch let error as TensorCodingError {
                throw HandlerError.badRequest(error.message)
            }
        }
        switch document {
        case .object(let members):
            if case .object(let named)? = members["inputs"] {
                return try named.keys.sorted().map { try one(named[$0]!, name: $0) }
            }
            return [try one(document, name: "")]
        case .array(let list):
            return try list.map { try one($0, name: "") }
        default:
            throw HandlerError.badRequest("request body must be {\"shape\": [...], \"data\": [...]}")
        }
    }

    /// The shape of a nested array of numbers.
    static func inferShape(_ data: JSONValue) throws -> [Int] {
        switch data {
        case .numbers(let run): return [run.doubles.count]
        case .array(let elements):
            guard let first = elements.first else { return [0] }
            let inner = try inferShape(first)
            for element in elements.dropFirst() where try inferShape(element) != inner {
                throw HandlerError.badRequest("\"data\" is a ragged nested array; give \"shape\"")
            }
            return [elements.count] + inner
        case .number, .bool, .string: return []
        default: throw HandlerError.badRequest("\"data\" must hold only numbers, booleans or strings")
        }
    }

    /// Whether the first element of a (nested) `data` array is a string.
    static func holdsText(_ data: JSONValue) -> Bool {
        switch data {
        case .string: true
        case .array(let elements): elements.first.map(holdsText) ?? false
        default: false
        }
    }
}
