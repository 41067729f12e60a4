import Foundation

/// A model's serving settings: `config.json` beside its versions, or command-line flags.
///
/// ```json
/// {"handler": "onnx", "max_batch_size": 8, "max_queue_delay_ms": 0, "instance_count": 2,
///  "queue_capacity": 64, "timeout_ms": 30000, "threads": 1,
///  "inputs": [{"name": "input", "datatype": "FP32", "dims": [-1, 64]}],
///  "sequence_batching": {"state": [{"input_name": "state", "output_name": "stateN"}],
///                        "max_sequence_idle_ms": 60000, "max_sequences": 1024}}
/// ```
public struct ModelConfiguration: Sendable, Codable, Equatable {
    /// The registered handler type (`onnx` by default).
    public var handler: String
    /// Most requests run together in one batch; 1 turns dynamic batching off.
    public var maxBatchSize: Int
    /// How long the first queued request waits for others to join its batch. With 0 (the default, as in
    /// Triton) a batch starts as soon as an instance is free, holding whatever queued while all were busy.
    public var maxQueueDelayMilliseconds: Int
    /// Batches of one model that may run at the same time.
    public var instanceCount: Int
    /// Requests queued or running beyond which new ones get 503.
    public var queueCapacity: Int
    /// A request still queued after this long gets 503.
    public var timeoutMilliseconds: Int
    /// Kernel threads of this model's own; 0 (the default) shares the server's pool
    /// (``ModelRepository/threadPool``) with the other models.
    public var threads: Int
    /// Largest number of elements accepted in one request tensor.
    public var maxTensorElements: Int
    /// Declared inputs that replace what the model file says (for models that leave axes unknown,
    /// or to pin a dynamic axis); each must be compatible with the model.
    public var inputs: [TensorOverride]?
    /// Declared outputs, likewise.
    public var outputs: [TensorOverride]?
    /// State the server keeps per sequence for a stateful model (Triton's `sequence_batching`
    /// with implicit state); `nil` for a stateless model.
    public var sequenceBatching: SequenceBatching?

    /// A stateful model's sequences: which model inputs are fed from which outputs of the
    /// sequence's previous request, how long an idle sequence lives, how many may live at once.
    public struct SequenceBatching: Sendable, Codable, Equatable {
        /// One state tensor: the input fed, each request, from the output of the one before.
        public struct State: Sendable, Codable, Equatable {
            /// The model input the state is fed into (`state`).
            public var inputName: String
            /// The model output the next state is read from (`stateN`).
            public var outputName: String
            /// The state's shape, for its initial value (zeros); `-1` takes the request's batch
            /// size (the first axis of its first input). `nil`: the input's declared shape.
            public var dims: [Int]?

            /// Creates a state pair.
            ///
            /// - Parameters:
            ///   - inputName: The model input the state is fed into.
            ///   - outputName: The model output the next state is read from.
            ///   - dims: The initial state's shape, `-1` for the batch size; `nil` for the input's declared shape.
            public init(inputName: String, outputName: String, dims: [Int]? = nil) {
                self.inputName = inputName
                self.outputName = outputName
                self.dims = dims
            }

            enum CodingKeys: String, CodingKey {
                case inputName = "input_name"
                case outputName = "output_name"
                case dims
            }
        }

        /// The state pairs.
        public var state: [State]
        /// A sequence with no request for this long is dropped, with its state.
        public var maxSequenceIdleMilliseconds: Int
        /// Most sequences alive at once; a start beyond it gets 429 (gRPC RESOURCE_EXHAUSTED).
        public var maxSequences: Int

        /// Creates sequence settings.
        ///
        /// - Parameters:
        ///   - state: The state pairs.
        ///   - maxSequenceIdleMilliseconds: How long an idle sequence lives.
        ///   - maxSequences: Most sequences alive at once.
        public init(state: [State], maxSequenceIdleMilliseconds: Int = 60_000, maxSequences: Int = 1024) {
            self.state = state
            self.maxSequenceIdleMilliseconds = maxSequenceIdleMilliseconds
            self.maxSequences = maxSequences
        }

        enum CodingKeys: String, CodingKey {
            case state
            case maxSequenceIdleMilliseconds = "max_sequence_idle_ms"
            case maxSequences = "max_sequences"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = SequenceBatching(state: [])
            state = try c.decode([State].self, forKey: .state)
            maxSequenceIdleMilliseconds = try c.decodeIfPresent(Int.self, forKey: .maxSequenceIdleMilliseconds)
                ?? defaults.maxSequenceIdleMilliseconds
            maxSequences = try c.decodeIfPresent(Int.self, forKey: .maxSequences) ?? defaults.maxSequences
        }
    }

    /// One `inputs`/`outputs` entry of config.json: `{"name": "x", "datatype": "FP32", "dims": [-1, 64]}`.
    public struct TensorOverride: Sendable, Codable, Equatable {
        /// The input or output name in the model.
        public var name: String
        /// The Open Inference Protocol type name (`FP32`, `INT64`, …), or `nil` to keep the model's.
        public var datatype: String?
        /// Extents, `-1` for a dynamic axis.
        public var dims: [Int]?

        /// Creates an override.
        ///
        /// - Parameters:
        ///   - name: The input or output name.
        ///   - datatype: The protocol type name, or `nil` to keep the model's.
        ///   - dims: Extents, `-1` for a dynamic axis, or `nil` to keep the model's.
        public init(name: String, datatype: String? = nil, dims: [Int]? = nil) {
            self.name = name
            self.datatype = datatype
            self.dims = dims
        }
    }

    /// Creates a configuration; the defaults are those of a model folder without `config.json`.
    ///
    /// - Parameters:
    ///   - handler: The ``HandlerRegistry`` name of the handler.
    ///   - maxBatchSize: Most requests stacked into one batch.
    ///   - maxQueueDelayMilliseconds: How long the first queued request waits for others to join its batch.
    ///   - instanceCount: Batches of the model that may run at the same time.
    ///   - queueCapacity: Requests queued or running beyond which new ones get 503.
    ///   - timeoutMilliseconds: A request still queued after this long gets 503.
    ///   - threads: Kernel threads of the model's own; 0 to share the server's pool.
    ///   - maxTensorElements: Largest number of elements accepted in one request tensor.
    ///   - inputs: Declared inputs replacing the model's.
    ///   - outputs: Declared outputs replacing the model's.
    ///   - sequenceBatching: The state kept per sequence, for a stateful model.
    public init(
        handler: String = "onnx", maxBatchSize: Int = 8, maxQueueDelayMilliseconds: Int = 0, instanceCount: Int = 2,
        queueCapacity: Int = 256, timeoutMilliseconds: Int = 30_000, threads: Int = 0, maxTensorElements: Int = 1 << 26,
        inputs: [TensorOverride]? = nil, outputs: [TensorOverride]? = nil, sequenceBatching: SequenceBatching? = nil
    ) {
        self.handler = handler
        self.maxBatchSize = maxBatchSize
        self.maxQueueDelayMilliseconds = maxQueueDelayMilliseconds
        self.instanceCount = instanceCount
        self.queueCapacity = queueCapacity
        self.timeoutMilliseconds = timeoutMilliseconds
        self.threads = threads
        self.maxTensorElements = maxTensorElements
        self.inputs = inputs
        self.outputs = outputs
        self.sequenceBatching = sequenceBatching
    }

    enum CodingKeys: String, CodingKey {
        case handler
        case maxBatchSize = "max_batch_size"
        case maxQueueDelayMilliseconds = "max_queue_delay_ms"
        case instanceCount = "instance_count"
        case queueCapacity = "queue_capacity"
        case timeoutMilliseconds = "timeout_ms"
        case threads
        case maxTensorElements = "max_tensor_elements"
        case inputs
        case outputs
        case sequenceBatching = "sequence_batching"
    }

    public init(from decoder: any Decoder) throws {
        let defaults = ModelConfiguration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        handler = try c.decodeIfPresent(String.self, forKey: .handler) ?? defaults.handler
        maxBatchSize = try c.decodeIfPresent(Int.self, forKey: .maxBatchSize) ?? defaults.maxBatchSize
        maxQueueDelayMilliseconds = try c.decodeIfPresent(Int.self, forKey: .maxQueueDelayMilliseconds) ?? defaults.maxQueueDelayMilliseconds
        instanceCount = try c.decodeIfPresent(Int.self, forKey: .instanceCount) ?? defaults.instanceCount
        queueCapacity = try c.decodeIfPresent(Int.self, forKey: .queueCapacity) ?? defaults.queueCapacity
        timeoutMilliseconds = try c.decodeIfPresent(Int.self, forKey: .timeoutMilliseconds) ?? defaults.timeoutMilliseconds
        threads = try c.decodeIfPresent(Int.self, forKey: .threads) ?? defaults.threads
        maxTensorElements = try c.decodeIfPresent(Int.self, forKey: .maxTensorElements) ?? defaults.maxTensorElements
        inputs = try c.decodeIfPresent([TensorOverride].self, forKey: .inputs)
        outputs = try c.decodeIfPresent([TensorOverride].self, forKey: .outputs)
        sequenceBatching = try c.decodeIfPresent(SequenceBatching.self, forKey: .sequenceBatching)
    }

    /// Reads `config.json`, checking every value.
    public static func load(_ path: String) throws -> ModelConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HandlerError(status: 500, "cannot read \(path)")
        }
        let configuration: ModelConfiguration
        do {
            configuration = try JSONDecoder().decode(ModelConfiguration.self, from: data)
        } catch {
            throw HandlerError(status: 500, "\(path) is not a valid model configuration: \(error)")
        }
        try configuration.validate(path)
        return configuration
    }

    func validate(_ origin: String) throws {
        guard maxBatchSize >= 1, maxQueueDelayMilliseconds >= 0, instanceCount >= 1, queueCapacity >= 1,
              timeoutMilliseconds >= 1, threads >= 0, maxTensorElements >= 1 else {
            throw HandlerError(status: 500, "\(origin): batch size, instances, queue capacity and timeout must be ≥ 1; delays and threads ≥ 0")
        }
        if let sequences = sequenceBatching {
            guard !sequences.state.isEmpty, sequences.maxSequenceIdleMilliseconds >= 1, sequences.maxSequences >= 1 else {
                throw HandlerError(status: 500, "\(origin): sequence_batching needs at least one state pair, and max_sequence_idle_ms and max_sequences ≥ 1")
            }
        }
    }
}
