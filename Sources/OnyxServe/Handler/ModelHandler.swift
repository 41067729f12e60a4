import Onyx

/// A named tensor in a request or response, in the order the client or model gave it.
public struct NamedTensor: Sendable {
    /// The tensor's name (a model input or output).
    public var name: String
    /// The data.
    public var tensor: Tensor
    /// Whether each element of this BYTES tensor is a JSON text: a model output that is a
    /// sequence, map or optional, one text per sequence element (ZipMap's label → probability maps).
    /// `/predictions` writes those texts as JSON; the v2 protocol sends them as BYTES strings.
    public var holdsJSON: Bool

    /// Pairs a name with a tensor.
    ///
    /// - Parameters:
    ///   - name: The input or output name.
    ///   - tensor: The data.
    ///   - holdsJSON: Whether the tensor holds the JSON texts of a sequence, map or optional.
    public init(name: String, tensor: Tensor, holdsJSON: Bool = false) {
        self.name = name
        self.tensor = tensor
        self.holdsJSON = holdsJSON
    }
}

/// One client request as a handler receives it.
public struct HandlerRequest: Sendable {
    /// The client's request id, echoed in the response.
    public var id: String?
    /// Decoded input tensors (Open Inference Protocol, or `{"shape", "data"}` on `/predictions`).
    public var inputs: [NamedTensor]
    /// Outputs the client asked for; `nil` means all.
    public var requestedOutputs: [String]?
    /// Request-level `parameters` of the protocol.
    public var parameters: [String: JSONValue]
    /// The parsed JSON body when a handler defines its own format (`/predictions` with a custom handler).
    public var json: JSONValue?
    /// The stateful sequence the request belongs to (`sequence_id` and its flags), if any.
    public var sequence: SequenceControl?
    /// When the client stops waiting (the `timeout` parameter, a gRPC deadline): a request still
    /// queued then is dropped without running.
    public var deadline: ContinuousClock.Instant?

    /// Creates a request, for handlers called directly and for tests.
    ///
    /// - Parameters:
    ///   - id: The client's request id.
    ///   - inputs: Input tensors.
    ///   - requestedOutputs: Outputs to return; `nil` for all.
    ///   - parameters: Request-level protocol parameters.
    ///   - json: The raw JSON body, for handlers with their own format.
    ///   - sequence: The stateful sequence the request belongs to.
    ///   - deadline: When the client stops waiting.
    public init(id: String? = nil, inputs: [NamedTensor] = [], requestedOutputs: [String]? = nil,
                parameters: [String: JSONValue] = [:], json: JSONValue? = nil,
                sequence: SequenceControl? = nil, deadline: ContinuousClock.Instant? = nil) {
        self.id = id
        self.inputs = inputs
        self.requestedOutputs = requestedOutputs
        self.parameters = parameters
        self.json = json
        self.sequence = sequence
        self.deadline = deadline
    }
}

/// A handler's answer to one request.
public enum HandlerResponse: Sendable {
    /// Output tensors, encoded by the protocol the request came in on (JSON or binary).
    case tensors([NamedTensor])
    /// A handler-defined JSON body.
    case json(JSONValue)
}

/// An error a handler reports for a request, with the HTTP status the client gets.
public struct HandlerError: Error, Sendable, CustomStringConvertible {
    /// The HTTP status: 4xx for the client's mistakes, 5xx for the server's.
    public var status: Int
    /// What went wrong, sent to the client.
    public var message: String
    /// Seconds the client should wait before retrying (sent as `Retry-After` with 503).
    public var retryAfter: Int?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - status: The HTTP status.
    ///   - message: What went wrong, sent to the client.
    ///   - retryAfter: Seconds before a retry may succeed, for 503.
    public init(status: Int, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.retryAfter = retryAfter
    }

    /// A 400: the request itself is wrong.
    ///
    /// - Parameter message: What is wrong with it.
    /// - Returns: The error.
    public static func badRequest(_ message: String) -> HandlerError { HandlerError(status: 400, message) }
    /// A 404: no such model, version or route.
    ///
    /// - Parameter message: What was not found.
    /// - Returns: The error.
    public static func notFound(_ message: String) -> HandlerError { HandlerError(status: 404, message) }
    /// A 503 with `Retry-After: 1`: the queue is full.
    ///
    /// - Parameter message: Why the request was turned away.
    /// - Returns: The error.
    public static func overloaded(_ message: String) -> HandlerError { HandlerError(status: 503, message, retryAfter: 1) }

    public var description: String { "\(status): \(message)" }
}

/// What a handler learns about the model it serves.
public struct HandlerContext: Sendable {
    /// The model's name in URLs.
    public var modelName: String
    /// The version being served.
    public var version: String
    /// The version's folder (holding `model.onnx` for ONNX handlers).
    public var modelDirectory: String
    /// The model file.
    public var modelPath: String
    /// The model's `config.json` (or command-line) settings.
    public var configuration: ModelConfiguration
    /// The kernel threads the server's models share; a model whose configuration sets `threads`
    /// has threads of its own instead. `nil` outside a ``ModelRepository``.
    public var threadPool: SharedThreadPool?

    /// Creates a context.
    ///
    /// - Parameters:
    ///   - modelName: The model's name in URLs.
    ///   - version: The version being served.
    ///   - modelDirectory: The version's folder.
    ///   - modelPath: The model file.
    ///   - configuration: The model's settings.
    ///   - threadPool: The kernel threads the server's models share.
    public init(
        modelName: String, version: String, modelDirectory: String, modelPath: String, configuration: ModelConfiguration,
        threadPool: SharedThreadPool? = nil
    ) {
        self.modelName = modelName
        self.version = version
        self.modelDirectory = modelDirectory
        self.modelPath = modelPath
        self.configuration = configuration
        self.threadPool = threadPool
    }

    /// Session options for this model: its own `threads` when its configuration sets them,
    /// otherwise the server's shared ``threadPool``.
    public var sessionOptions: SessionOptions {
        configuration.threads > 0 ? SessionOptions(threadCount: configuration.threads) : SessionOptions(threadPool: threadPool)
    }
}

/// Metadata of one model input or output, as `/v2/models/{m}` reports it.
public struct TensorMetadata: Sendable, Equatable {
    /// The input or output name.
    public var name: String
    /// The element type.
    public var datatype: DataType
    /// Extents, `-1` for a dynamic axis.
    public var shape: [Int]

    /// Creates metadata.
    ///
    /// - Parameters:
    ///   - name: The input or output name.
    ///   - datatype: The element type.
    ///   - shape: Extents, `-1` for a dynamic axis.
    public init(name: String, datatype: DataType, shape: [Int]) {
        self.name = name
        self.datatype = datatype
        self.shape = shape
    }
}

/// The skeleton every served model goes through: `initialize` once, then for each batch of
/// requests `handle`, which by default chains `preprocess → inference → postprocess`.
///
/// `handle` receives a batch (one or more requests the batcher grouped) and returns one result
/// per request, in order; a failed request does not fail its neighbours.
public protocol ModelHandler: AnyObject, Sendable {
    /// What `preprocess` hands to `inference`.
    associatedtype Prepared: Sendable
    /// What `inference` hands to `postprocess`.
    associatedtype Computed: Sendable

    /// Loads the model; called once before any request.
    func initialize(_ context: HandlerContext) async throws

    /// Turns a batch of requests into model inputs.
    func preprocess(_ requests: [HandlerRequest], context: HandlerContext) async throws -> Prepared

    /// Runs the model.
    func inference(_ prepared: Prepared, context: HandlerContext) async throws -> Computed

    /// Splits the model's outputs back into one response per request.
    func postprocess(_ computed: Computed, requests: [HandlerRequest], context: HandlerContext) async throws
        -> [Result<HandlerResponse, HandlerError>]

    /// Answers a batch of requests, one result each, in order.
    func handle(_ requests: [HandlerRequest], context: HandlerContext) async -> [Result<HandlerResponse, HandlerError>]

    /// Inputs the model takes (for metadata and request validation).
    var inputs: [TensorMetadata] { get }
    /// Outputs the model produces.
    var outputs: [TensorMetadata] { get }
    /// Whether requests may be stacked along axis 0 into one run.
    var supportsBatching: Bool { get }
}

extension ModelHandler {
    /// Chains ``preprocess(_:context:)``, ``inference(_:context:)`` and
    /// ``postprocess(_:requests:context:)``; an error from any of them fails every request of the
    /// batch with its status (``HandlerError``), 400 (``OnyxError`` about the input) or 500.
    ///
    /// - Parameters:
    ///   - requests: The batch.
    ///   - context: The model being served.
    /// - Returns: One result per request, in order.
    public func handle(_ requests: [HandlerRequest], context: HandlerContext) async -> [Result<HandlerResponse, HandlerError>] {
        do {
            let prepared = try await preprocess(requests, context: context)
            let computed = try await inference(prepared, context: context)
            return try await postprocess(computed, requests: requests, context: context)
        } catch let error as HandlerError {
            return requests.map { _ in .failure(error) }
        } catch let error as OnyxError {
            return requests.map { _ in .failure(HandlerError(status: error.code == .internalError ? 500 : 400, error.message)) }
        } catch {
            return requests.map { _ in .failure(HandlerError(status: 500, "\(error)")) }
        }
    }

    /// By default requests are not stacked: each runs on its own.
    public var supportsBatching: Bool { false }
}

/// A handler that can answer one request on the calling thread, for models so small that a hop to
/// another thread costs more than running them. The HTTP server then answers such a model's v2
/// infer requests on the connection's event loop, without the router or the batcher
/// (``InlineInferenceHandler``); everything else goes through ``ModelHandler/handle(_:context:)``.
public protocol InlineModelHandler: ModelHandler {
    /// Whether ``answerInline(_:context:)`` may be called: fixed once ``ModelHandler/initialize(_:)`` returns.
    var answersInline: Bool { get }

    /// The answer to `request`, computed on this thread.
    func answerInline(_ request: HandlerRequest, context: HandlerContext) -> Result<HandlerResponse, HandlerError>
}

/// Handler types by name, so a model's `config.json` can pick one (`"handler": "screening"`).
public enum HandlerRegistry {
    /// Makes a new, uninitialized handler.
    public typealias Factory = @Sendable () -> any ModelHandler

    private static let table = LockedDictionary<String, Factory>([
        "onnx": { OnnxModelHandler() },
        "screening": { RequestScreeningHandler() },
    ])

    /// Makes `name` available to model configurations.
    public static func register(_ name: String, _ factory: @escaping Factory) {
        table.set(name, factory)
    }

    /// A new handler of the type registered as `name`.
    public static func make(_ name: String) -> (any ModelHandler)? {
        table.get(name)?()
    }

    /// The registered handler names, sorted.
    public static var names: [String] { table.keys.sorted() }
}
