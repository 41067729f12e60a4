import Dispatch
import Onyx

/// The default handler: decoded tensors in, `InferenceSession.run`, tensors out.
///
/// When every model input has a dynamic first axis, a batch of requests whose other axes agree is
/// stacked into one run and the outputs are split back; otherwise each request runs on its own,
/// concurrently, on the same session.
public final class OnnxModelHandler: InlineModelHandler, @unchecked Sendable {
    // Set once in `initialize`, before any request; read-only afterwards.
    private(set) var session: InferenceSession?
    /// Small models run inline on the request's task: a thread hop costs more than their inference.
    private var runsInline = false
    /// The model's inputs, after any `config.json` override.
    public private(set) var inputs: [TensorMetadata] = []
    /// The model's outputs, after any `config.json` override.
    public private(set) var outputs: [TensorMetadata] = []
    /// Whether every input has a dynamic first axis, so requests can be stacked.
    public private(set) var supportsBatching = false
    /// Outputs that are sequences, maps or optionals, served as BYTES tensors of JSON texts.
    private var jsonOutputs: Set<String> = []

    /// Creates a handler; ``initialize(_:)`` loads the model.
    public init() {}

    /// Loads the model at `context.modelPath` on the server's shared threads (or the configured
    /// thread count) and checks
    /// any `inputs`/`outputs` overrides against it.
    ///
    /// - Parameter context: The model to serve.
    /// - Throws: ``HandlerError`` (500) if an override does not fit the model, or ``OnyxError`` if the model cannot be loaded.
    public func initialize(_ context: HandlerContext) async throws {
        let session = try await Compute.run { try InferenceSession(contentsOf: context.modelPath, options: context.sessionOptions) }
        self.session = session
        jsonOutputs = Set(session.outputs.filter { !($0.valueType?.isTensor ?? true) }.map(\.name))
        runsInline = session.parameterCount.bytes <= Self.inlineParameterBytes
        inputs = try Self.applying(context.configuration.inputs, to: session.inputs.map(Self.metadata), kind: "input")
        outputs = try Self.applying(context.configuration.outputs, to: session.outputs.map(Self.metadata), kind: "output")
        // Batching needs a dynamic first axis on every input and output.
        supportsBatching = !inputs.isEmpty && (inputs + outputs).allSatisfy { $0.shape.first == -1 }
    }

    /// The model's metadata with config.json's declarations applied; each must name a real tensor,
    /// keep its datatype, and keep its rank and fixed extents (it may fix a dynamic or unknown axis).
    static func applying(
        _ overrides: [ModelConfiguration.TensorOverride]?, to declared: [TensorMetadata], kind: String
    ) throws -> [TensorMetadata] {
        guard let overrides else { return declared }
        var result = declared
        for entry in overrides {
            guard let index = result.firstIndex(where: { $0.name == entry.name }) else {
                throw HandlerError(status: 500, "config.json names \(kind) '\(entry.name)', which the model does not have")
            }
            if let name = entry.datatype {
                guard DataType(protocolName: name) == result[index].datatype else {
                    throw HandlerError(status: 500, "config.json: \(kind) '\(entry.name)' is \(result[index].datatype.protocolName) in the model, not \(name)")
                }
            }
            if let dims = entry.dims {
                let model = result[index].shape
                guard model.isEmpty || (dims.count == model.count && zip(dims, model).allSatisfy { $1 == -1 || $0 == $1 }),
                      dims.allSatisfy({ $0 >= -1 }) else {
                    throw HandlerError(status: 500, "config.json: dims \(dims) of \(kind) '\(entry.name)' do not fit the model's \(model)")
                }
                result[index].shape = dims
            }
        }
        return result
    }

    /// Models up to this many weight bytes (a few tens of microseconds per run) run inline.
    static let inlineParameterBytes = 1 << 20

    static func metadata(_ value: Value) -> TensorMetadata {
        // A sequence is a BYTES tensor of one JSON text per element; a map or optional is one text.
        switch value.valueType {
        case .sequence?: return TensorMetadata(name: value.name, datatype: .string, shape: [-1])
        case .map?, .optional?: return TensorMetadata(name: value.name, datatype: .string, shape: [1])
        default: break
        }
        let shape = value.type?.shape?.dimensions.map { dimension -> Int in
            if case .fixed(let n) = dimension { return n }
            return -1
        } ?? []
        return TensorMetadata(name: value.name, datatype: value.type?.dataType ?? .float, shape: shape)
    }

    /// Requests stacked into runs: each run's inputs and, per request, its batch rows.
    public struct Prepared: Sendable {
        struct Run: Sendable {
            var inputs: [String: Tensor]
            var members: [(request: Int, rows: Int)]
        }
        var runs: [Run]
        var failures: [Int: HandlerError]
    }

    /// The outputs of each run, and the requests that failed before running.
    public struct Computed: Sendable {
        var results: [Int: Result<[String: Tensor], HandlerError>]
        var runs: [Prepared.Run]
        var failures: [Int: HandlerError]
    }

    /// Checks each request against the model's inputs and, when batching, stacks compatible ones.
    ///
    /// - Parameters:
    ///   - requests: The batch.
    ///   - context: The model being served.
    /// - Returns: The runs to make; invalid requests are kept as failures, not thrown.
    /// - Throws: ``OnyxError`` if stacking fails.
    public func preprocess(_ requests: [HandlerRequest], context: HandlerContext) async throws -> Prepared {
        var failures: [Int: HandlerError] = [:]
        var valid: [(Int, [String: Tensor])] = []
        for (index, request) in requests.enumerated() {
            do {
                valid.append((index, try validate(request)))
            } catch let error as HandlerError {
                failures[index] = error
            }
        }
        var runs: [Prepared.Run] = []
        if supportsBatching && valid.count > 1 {
            // Group requests whose non-batch axes agree; stack each group along axis 0.
            var groups: [[[Int]]: [(Int, [String: Tensor])]] = [:]
            var order: [[[Int]]] = []
            for entry in valid {
                let key = inputs.map { Array(entry.1[$0.name]!.shape.dropFirst()) }
                if groups[key] == nil { order.append(key) }
                groups[key, default: []].append(entry)
            }
            for key in order {
                let members = groups[key]!
                if members.count == 1 {
                    runs.append(.init(inputs: members[0].1, members: [(members[0].0, members[0].1[inputs[0].name]!.shape[0])]))
                    continue
                }
                var stacked: [String: Tensor] = [:]
                for input in inputs {
                    stacked[input.name] = try Batching.concatenate(members.map { $0.1[input.name]! })
                }
                runs.append(.init(inputs: stacked, members: members.map { ($0.0, $0.1[inputs[0].name]!.shape[0]) }))
            }
        } else {
            runs = valid.map { .init(inputs: $0.1, members: [($0.0, $0.1[inputs.first?.name ?? ""]?.shape.first ?? 1)]) }
        }
        return Prepared(runs: runs, failures: failures)
    }

    /// Checks a request's inputs against the model: names, types, ranks and fixed extents.
    private func validate(_ request: HandlerRequest) throws -> [String: Tensor] {
        var byName: [String: Tensor] = [:]
        let names = inputs.map(\.name)
        for (position, input) in request.inputs.enumerated() {
            // An unnamed tensor (TorchServe-style body) binds to the model's inputs in order.
            let name = input.name.isEmpty && position < names.count ? names[position] : input.name
            guard let spec = inputs.first(where: { $0.name == name }) else {
                throw HandlerError.badRequest("unknown input '\(name)'; the model's inputs are \(names.map { "'\($0)'" }.joined(separator: ", "))")
            }
            guard byName[name] == nil else { throw HandlerError.badRequest("input '\(name)' is given twice") }
            guard input.tensor.dataType == spec.datatype else {
                throw HandlerError.badRequest("input '\(name)' must be \(spec.datatype.protocolName), got \(input.tensor.dataType.protocolName)")
            }
            let shape = input.tensor.shape
            guard shape.count == spec.shape.count,
                  zip(shape, spec.shape).allSatisfy({ $1 == -1 || $0 == $1 }) else {
                throw HandlerError.badRequest("input '\(name)' has shape \(shape), the model expects \(spec.shape)")
            }
            byName[name] = input.tensor
        }
        for spec in inputs where byName[spec.name] == nil {
            throw HandlerError.badRequest("missing input '\(spec.name)' (\(spec.datatype.protocolName) \(spec.shape))")
        }
        if let requested = request.requestedOutputs {
            for name in requested where !outputs.contains(where: { $0.name == name }) {
                throw HandlerError.badRequest("unknown output '\(name)'; the model's outputs are \(outputs.map { "'\($0.name)'" }.joined(separator: ", "))")
            }
        }
        return byName
    }

    /// Runs the session once per prepared run, concurrently, off the cooperative pool (or inline for
    /// tiny models).
    ///
    /// - Parameters:
    ///   - prepared: The runs.
    ///   - context: The model being served.
    /// - Returns: Each run's outputs or error.
    /// - Throws: ``HandlerError`` (503) if the handler was not initialized.
    public func inference(_ prepared: Prepared, context: HandlerContext) async throws -> Computed {
        guard let session else { throw HandlerError(status: 503, "model '\(context.modelName)' is not initialized") }
        if runsInline && prepared.runs.count == 1 {
            let run = prepared.runs[0]
            let result: Result<[String: Tensor], HandlerError>
            do {
                // A synchronous closure selects the synchronous `run`: inline on this thread, by design.
                result = .success(try { try Self.run(session, run.inputs, jsonOutputs: self.jsonOutputs) }())
            } catch let error as OnyxError {
                result = .failure(HandlerError(status: error.code == .internalError ? 500 : 400, error.message))
            }
            return Computed(results: [0: result], runs: prepared.runs, failures: prepared.failures)
        }
        let inline = runsInline, jsonOutputs = self.jsonOutputs
        let results = await withTaskGroup(of: (Int, Result<[String: Tensor], HandlerError>).self) { group in
            for (index, run) in prepared.runs.enumerated() {
                group.addTask {
                    do {
                        let outputs = inline
                            ? try { try Self.run(session, run.inputs, jsonOutputs: jsonOutputs) }()
                            : try await Compute.run { try Self.run(session, run.inputs, jsonOutputs: jsonOutputs) }
                        return (index, .success(outputs))
                    } catch let error as OnyxError {
                        return (index, .failure(HandlerError(status: error.code == .internalError ? 500 : 400, error.message)))
                    } catch {
                        return (index, .failure(HandlerError(status: 500, "\(error)")))
                    }
                }
            }
            var collected: [Int: Result<[String: Tensor], HandlerError>] = [:]
            for await (index, result) in group { collected[index] = result }
            return collected
        }
        return Computed(results: results, runs: prepared.runs, failures: prepared.failures)
    }

    /// Runs the model; outputs in `jsonOutputs` (sequences, maps, optionals) come back as BYTES
    /// tensors of JSON texts, one per sequence element.
    static func run(_ session: InferenceSession, _ inputs: [String: Tensor], jsonOutputs: Set<String>) throws -> [String: Tensor] {
        guard !jsonOutputs.isEmpty else { return try session.run(inputs) }
        var outputs: [String: Tensor] = [:]
        for (name, value) in try session.run(values: inputs.mapValues(OnnxValue.tensor)) {
            switch value {
            case .tensor(let tensor): outputs[name] = tensor
            case .sequence(let elements): outputs[name] = try Tensor(strings: elements.map(ValueJSON.text), shape: [elements.count])
            default: outputs[name] = try Tensor(strings: [ValueJSON.text(value)], shape: [1])
            }
        }
        return outputs
    }

    /// Splits stacked outputs back per request and keeps only the outputs each asked for.
    ///
    /// - Parameters:
    ///   - computed: The runs' results.
    ///   - requests: The batch, in order.
    ///   - context: The model being served.
    /// - Returns: One result per request, in order.
    /// - Throws: ``OnyxError`` if an output cannot be split.
    public func postprocess(_ computed: Computed, requests: [HandlerRequest], context: HandlerContext) async throws
        -> [Result<HandlerResponse, HandlerError>]
    {
        var responses = [Result<HandlerResponse, HandlerError>?](repeating: nil, count: requests.count)
        for (index, error) in computed.failures { responses[index] = .failure(error) }
        for (index, run) in computed.runs.enumerated() {
            switch computed.results[index]! {
            case .failure(let error):
                for member in run.members { responses[member.request] = .failure(error) }
            case .success(let outputs):
                var offset = 0
                for member in run.members {
                    do {
                        let rows = run.members.count == 1 ? nil : offset..<(offset + member.rows)
                        responses[member.request] = .success(.tensors(try tensors(outputs, rows: rows, for: requests[member.request])))
                    } catch {
                        responses[member.request] = .failure(HandlerError(status: 500, "splitting the batch failed: \(error)"))
                    }
                    offset += member.rows
                }
            }
        }
        return responses.enumerated().map { index, response in
            response ?? .failure(HandlerError(status: 500, "request \(index) got no result"))
        }
    }

    /// The outputs `request` asked for (all by default), cut to `rows` of a stacked run.
    private func tensors(_ outputs: [String: Tensor], rows: Range<Int>?, for request: HandlerRequest) throws -> [NamedTensor] {
        try (request.requestedOutputs ?? self.outputs.map(\.name)).map { name in
            let full = outputs[name]!
            return NamedTensor(name: name, tensor: try rows.map { try Batching.slice(full, rows: $0) } ?? full,
                               holdsJSON: jsonOutputs.contains(name))
        }
    }

    /// Whether the model is small enough to run on the request's own thread (see ``inlineParameterBytes``).
    public var answersInline: Bool { runsInline }

    /// Checks and runs one request on this thread: ``preprocess(_:context:)``, ``inference(_:context:)``
    /// and ``postprocess(_:requests:context:)`` for a batch of one, without their hops.
    ///
    /// - Parameters:
    ///   - request: The request.
    ///   - context: The model being served.
    /// - Returns: Its outputs, or the error the batched path would give it.
    public func answerInline(_ request: HandlerRequest, context: HandlerContext) -> Result<HandlerResponse, HandlerError> {
        guard let session else { return .failure(HandlerError(status: 503, "model '\(context.modelName)' is not initialized")) }
        do {
            let outputs = try Self.run(session, try validate(request), jsonOutputs: jsonOutputs)
            return .success(.tensors(try tensors(outputs, rows: nil, for: request)))
        } catch let error as HandlerError {
            return .failure(error)
        } catch let error as OnyxError {
            return .failure(HandlerError(status: error.code == .internalError ? 500 : 400, error.message))
        } catch {
            return .failure(HandlerError(status: 500, "\(error)"))
        }
    }
}

/// Runs CPU-bound work on Dispatch threads so it never blocks Swift concurrency's cooperative pool
/// (where the HTTP server's tasks run).
public enum Compute {
    private static let queue = DispatchQueue(label: "onyx.compute", attributes: .concurrent)

    /// Runs `body` on a thread of a concurrent Dispatch queue and returns its result.
    ///
    /// For an ``InferenceSession``, `try await session.run(inputs)` does the same on the session's own queue.
    ///
    /// - Parameter body: CPU-bound work.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try body() })
            }
        }
    }
}
