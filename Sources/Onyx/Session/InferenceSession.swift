import Dispatch
import OnyxCore
import OnyxIR
import OnyxKernels
import OnyxOperators
import Synchronization

/// A loaded model, ready to run.
///
/// Create one per model and share it: ``run(_:)-5wgfr`` may be called from many threads at once,
/// and from async code ``run(_:)-2u3r1`` runs the model off the caller's executor.
/// Kernels are prepared once when the session is created; shapes and the memory plan are
/// computed once per distinct set of input shapes and cached.
///
/// ```swift
/// let session = try InferenceSession(contentsOf: "model.onnx")
/// let outputs = try session.run(["input": try Tensor(shape: [1, 64], scalars: features)])
/// // in async code:
/// let later = try await session.run(["input": x])
/// ```
public final class InferenceSession: Sendable {
    /// The graph inputs the caller supplies, with their declared types.
    public let inputs: [Value]
    /// The graph outputs, with their declared types.
    public let outputs: [Value]
    /// The decoded model's metadata, opset imports and graph as decoded, without the top-level
    /// graph's initializers: the session keeps only its own prepared copy of the weights (folded,
    /// packed). Their size is ``parameterCount``.
    public let model: Model
    /// The number of parameters (elements of the decoded model's initializers) and their bytes.
    public let parameterCount: (elements: Int, bytes: Int)
    /// The options the session was created with.
    public let options: SessionOptions

    let graph: ExecutableGraph
    private let pool: ComputePool
    private let plans = Mutex<PlanCache>(PlanCache())
    /// Set once planning has met a shape that depends on input values; from then on every run
    /// is planned with its values.
    private let shapesDependOnValues = Atomic<Bool>(false)
    /// Whether planning has met a shape that depends on input values, so every run is planned
    /// with its values (slower: the run's nodes are evaluated while planning).
    var plansRunsWithValues: Bool { shapesDependOnValues.load(ordering: .relaxed) }
    /// Where the async `run` runs the model, off the caller's executor.
    let runQueue = DispatchQueue(label: "onyx.session.run", attributes: .concurrent)

    /// Loads and prepares the model in the file at `path`.
    ///
    /// - Parameters:
    ///   - path: An ONNX model file; external data is resolved relative to its folder.
    ///   - options: Threads, optimization level, kernel variant and limits.
    /// - Throws: ``OnyxError`` if the file cannot be read, is not a valid model, or uses an
    ///   operator Onyx does not support.
    public convenience init(contentsOf path: String, options: SessionOptions = SessionOptions()) throws {
        try self.init(model: Model(contentsOf: path), options: options)
    }

    /// Loads and prepares a model from the bytes of an ONNX file.
    ///
    /// - Parameters:
    ///   - bytes: The serialized `ModelProto`. Models with external data need ``init(contentsOf:options:)``.
    ///   - options: Threads, optimization level, kernel variant and limits.
    /// - Throws: ``OnyxError`` if the bytes are not a valid model or it uses an unsupported operator.
    public convenience init(bytes: [UInt8], options: SessionOptions = SessionOptions()) throws {
        try self.init(model: Model(bytes: bytes), options: options)
    }

    /// Prepares an already decoded model.
    ///
    /// - Parameters:
    ///   - model: The model.
    ///   - options: Threads, optimization level, kernel variant and limits.
    /// - Throws: ``OnyxError`` if the graph is invalid or uses an unsupported operator.
    public init(model: consuming Model, options: SessionOptions = SessionOptions()) throws {
        guard options.isa <= KernelISA.best else {
            throw OnyxError(.invalidArgument, "this CPU cannot run the \(options.isa.rawValue) kernels (best: \(KernelISA.best.rawValue))")
        }
        try model.graph.validate(opsetImports: model.opsetImports)
        parameterCount = model.parameterCount
        // The graph moves into the optimizer holding the session's only reference to the decoded
        // weights (when the caller passed its model on), so a weight a pass replaces (Conv +
        // BatchNormalization folding) is freed there and then instead of being kept beside the new
        // one and the packed copy.
        let graph = model.graph
        model.graph.initializers = []
        let optimized = GraphOptimizer(level: options.optimizationLevel, isa: options.isa).optimize(consume graph)
        self.graph = try ExecutableGraph(graph: optimized, opsetImports: model.opsetImports, isa: options.isa)
        self.model = model
        self.inputs = model.graph.inputs
        self.outputs = model.graph.outputs
        self.options = options
        self.pool = ComputePool(threadCount: options.threadCount)
    }

    /// Runs the model.
    ///
    /// - Parameter inputs: One tensor per graph input, by name. Each must have the declared data
    ///   type and a shape the declared shape accepts. A symbolic axis (such as a batch axis) is a
    ///   name, not a constraint: as in onnxruntime, shapes come from the inputs given, and axes
    ///   that must agree are checked by the nodes that use them.
    /// - Returns: Every graph output, by name.
    /// - Throws: ``OnyxError`` with code `.invalidInput` or `.shapeMismatch` for bad inputs, or an
    ///   error from the node that failed.
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        let ordered = try orderedInputs(inputs)
        let plan = try plan(for: ordered)
        try checkTensorOutputs(plan)
        let results = try execute(plan, inputs: ordered)
        var named: [String: Tensor] = [:]
        named.reserveCapacity(results.count)
        for (value, tensor) in zip(outputs, results) { named[value.name] = tensor }
        return named
    }

    /// Runs the model with inputs given in graph-input order and returns outputs in graph-output order.
    ///
    /// - Parameter inputs: One tensor per entry of ``inputs``, in that order.
    /// - Returns: One tensor per entry of ``outputs``, in that order.
    /// - Throws: ``OnyxError`` for bad inputs or a failing node.
    public func run(orderedInputs inputs: [Tensor]) throws -> [Tensor] {
        guard inputs.count == self.inputs.count else {
            throw OnyxError.invalidInput("the model takes \(self.inputs.count) inputs, \(inputs.count) were given")
        }
        for (value, tensor) in zip(self.inputs, inputs) { try check(tensor, against: value) }
        let plan = try plan(for: inputs)
        try checkTensorOutputs(plan)
        return try execute(plan, inputs: inputs)
    }

    /// Runs the model on values of any type: tensors, and the sequences, maps and optionals that
    /// some models take or return (a scikit-learn classifier's ZipMap returns a sequence of maps,
    /// label → probability, one per row).
    ///
    /// ```swift
    /// let outputs = try session.run(values: ["input": .tensor(features)])
    /// for case .map(let labels, let probabilities) in outputs["output_probability"]?.sequence ?? [] { … }
    /// ```
    ///
    /// - Parameter values: One value per model input, by name.
    /// - Returns: Every model output, by name.
    /// - Throws: ``OnyxError`` as ``run(_:)`` does, and `.invalidInput` for a value whose type is
    ///   not the declared one.
    public func run(values: [String: OnnxValue]) throws -> [String: OnnxValue] {
        for name in values.keys where !inputs.contains(where: { $0.name == name }) {
            throw OnyxError.invalidInput("unknown input '\(name)'; the model's inputs are \(inputs.map { "'\($0.name)'" }.joined(separator: ", "))")
        }
        let ordered = try inputs.map { declared -> OnnxValue in
            guard let value = values[declared.name] else {
                throw OnyxError.invalidInput("missing input '\(declared.name)' (\(declared.valueType?.description ?? "tensor"))")
            }
            return value
        }
        var named: [String: OnnxValue] = [:]
        for (declared, value) in zip(outputs, try run(orderedValues: ordered)) { named[declared.name] = value }
        return named
    }

    /// Runs the model on values of any type, given and returned in declaration order.
    ///
    /// - Throws: As ``run(values:)``.
    public func run(orderedValues values: [OnnxValue]) throws -> [OnnxValue] {
        guard values.count == inputs.count else {
            throw OnyxError.invalidInput("the model takes \(inputs.count) inputs, \(values.count) were given")
        }
        // Sequences, maps and optionals enter as handles into this run's store.
        let wrapsOptionals = inputs.contains { if case .optional? = $0.valueType { true } else { false } }
        let store = values.contains { $0.tensor == nil } || wrapsOptionals ? ValueStore() : nil
        var containers: [ValueType?] = []
        let ordered = try zip(inputs, values).map { declared, given -> Tensor in
            var value = given
            // A value where an optional of its type is declared is that optional, holding it.
            if case .optional(let element)? = declared.valueType, value.type != declared.valueType, value.conforms(to: element) {
                value = .optional(value)
            }
            if case .tensor(let tensor) = value {
                try check(tensor, against: declared)
                containers.append(nil)
                return tensor
            }
            let type = declared.valueType ?? value.type
            guard !type.isTensor, value.conforms(to: type) else {
                throw OnyxError.invalidInput("input '\(declared.name)' must be \(type), got \(value.type)")
            }
            containers.append(type)
            return Tensor(scalar: store!.add(value))
        }
        let plan = try plan(for: ordered, containers: containers, values: store)
        let runStore = plan.runValues ?? store ?? (plan.usesValues ? ValueStore() : nil)
        let results = try execute(plan, inputs: ordered, values: runStore)
        return try zip(graph.outputIds, results).map { id, tensor in
            guard plan.descriptors[id]?.container != nil else { return .tensor(tensor) }
            guard let runStore else { throw OnyxError.internalError("a sequence, map or optional output without a value store") }
            return try runStore.value(try tensor.scalars(as: Int64.self)[0])
        }
    }

    /// Refuses, before running, a plan with an output that is not a tensor: `run(values:)` returns those.
    private func checkTensorOutputs(_ plan: ExecutionPlan) throws {
        for (k, id) in graph.outputIds.enumerated() {
            if let type = plan.descriptors[id]?.container {
                throw OnyxError.invalidInput("output '\(outputs[k].name)' is a \(type), not a tensor; run the model with run(values:)")
            }
        }
    }

    /// Runs the model as ``run(_:)`` does, adding the time each node takes to `profile`.
    ///
    /// Nodes folded into constants when the session was planned take no time in a run and do
    /// not appear; a control-flow node's time includes its subgraphs'.
    ///
    /// ```swift
    /// var profile = RunProfile()
    /// for _ in 0..<100 { _ = try session.run(feeds, profile: &profile) }
    /// for entry in profile.byOperatorType { print(entry.opType, entry.share) }
    /// ```
    public func run(_ inputs: [String: Tensor], profile: inout RunProfile) throws -> [String: Tensor] {
        let ordered = try orderedInputs(inputs)
        let plan = try plan(for: ordered)
        try checkTensorOutputs(plan)
        var timings = [UInt64](repeating: 0, count: graph.steps.count)
        let results = try timings.withUnsafeMutableBufferPointer { try execute(plan, inputs: ordered, timings: $0) }
        profile.add(timings, steps: graph.steps)
        var named: [String: Tensor] = [:]
        for (value, tensor) in zip(outputs, results) { named[value.name] = tensor }
        return named
    }

    // MARK: - Inputs

    private func orderedInputs(_ given: [String: Tensor]) throws -> [Tensor] {
        for name in given.keys where !inputs.contains(where: { $0.name == name }) {
            let expected = inputs.map { "'\($0.name)'" }.joined(separator: ", ")
            throw OnyxError.invalidInput("unknown input '\(name)'; the model's inputs are \(expected)")
        }
        let ordered = try inputs.map { value -> Tensor in
            guard let tensor = given[value.name] else {
                throw OnyxError.invalidInput("missing input '\(value.name)' (\(value.type?.description ?? "tensor"))")
            }
            try check(tensor, against: value)
            return tensor
        }
        return ordered
    }

    private func check(_ tensor: Tensor, against value: Value) throws {
        if let declared = value.valueType, !declared.isTensor {
            throw OnyxError.invalidInput("input '\(value.name)' is a \(declared), not a tensor; pass it with run(values:)")
        }
        guard let type = value.type else { return }
        guard tensor.dataType == type.dataType else {
            throw OnyxError.invalidInput(
                "input '\(value.name)' must be \(type.dataType), got \(tensor.dataType)")
        }
        if let shape = type.shape, !shape.accepts(tensor.shape) {
            throw OnyxError.shapeMismatch(
                "input '\(value.name)' has shape \(tensor.shape), the model expects \(shape)")
        }
    }

    // MARK: - Planning

    ///
    /// - Parameters:
    ///   - containers: Per input, the type of a sequence, map or optional (whose handle the tensor
    ///     holds); `nil` for a tensor. Empty: every input is a tensor.
    ///   - values: The store those handles index.
    func plan(for inputs: [Tensor], containers: [ValueType?] = [], values: ValueStore? = nil) throws -> ExecutionPlan {
        if let cached = plans.withLock({ $0.plan(matching: inputs.lazy.map(\.shape)) }) { return cached }
        let descriptors = inputs.enumerated().map { k, tensor in
            if k < containers.count, let type = containers[k] { return TensorDescriptor(container: type) }
            return TensorDescriptor(tensor.dataType, tensor.shape)
        }
        if !shapesDependOnValues.load(ordering: .relaxed) {
            do {
                return try shapePlan(for: descriptors)
            } catch is NeedsInputValues {}
        }
        // Some shape depends on input values (NonZero, or a Reshape fed by a graph input): plan
        // this run with the values known.
        do {
            // String values are read through a table of their own for this plan's folding.
            let strings = StringTable(parent: graph.strings)
            return try ExecutionPlan(
                graph: graph, inputs: descriptors, inputValues: try inputs.map { try $0.rebased(into: strings) },
                strings: strings, values: values ?? ValueStore(), memoryLimit: options.memoryLimitBytes)
        } catch let error as NeedsInputValues {
            throw OnyxError.internalError("\(error) even with every input value known")
        }
    }

    /// The plan for inputs of these descriptors from shapes alone, cached for the runs that
    /// follow.
    ///
    /// - Throws: ``NeedsInputValues`` (and remembers it) when some shape depends on a value.
    func shapePlan(for descriptors: [TensorDescriptor]) throws -> ExecutionPlan {
        if let cached = plans.withLock({ $0.plan(matching: descriptors.lazy.map(\.shape)) }) { return cached }
        do {
            let plan = try ExecutionPlan(graph: graph, inputs: descriptors, memoryLimit: options.memoryLimitBytes)
            let capacity = options.planCacheCapacity
            plans.withLock { $0.insert(plan, for: descriptors.map(\.shape), capacity: capacity) }
            return plan
        } catch let error as NeedsInputValues {
            shapesDependOnValues.store(true, ordering: .relaxed)
            throw error
        }
    }

    // MARK: - Execution

    /// Runs `plan`. Its only heap allocations are the returned array and, per output the plan
    /// places in the arena's stead, one tensor (a storage object and its bytes).
    ///
    /// - Parameter timings: When profiling, nanoseconds to add each step's time to, by graph step.
    private func execute(
        _ plan: ExecutionPlan, inputs: [Tensor], values: ValueStore? = nil, timings: UnsafeMutableBufferPointer<UInt64>? = nil
    ) throws -> [Tensor] {
        // Sequences, maps and optionals go in the plan's store (a plan for one run's values) or the caller's.
        let values = plan.usesValues ? plan.runValues ?? values ?? ValueStore() : nil
        // A run with strings numbers them in a table of its own that extends the session's, so
        // what it adds is freed with its outputs.
        let strings = plan.usesStrings ? plan.runStrings ?? StringTable(parent: graph.strings) : nil
        let inputs = try strings.map { table in try inputs.map { try $0.rebased(into: table) } } ?? inputs
        let results: [Tensor] = try graph.outputIds.indices.map { k in
            let id = graph.outputIds[k]
            switch plan.locations[id] {
            case .output(let j) where j == k:
                let d = plan.descriptors[id]!
                return Tensor(uninitialized: d.dataType, shape: d.shape, strings: d.dataType == .string ? strings : nil)
            case .constant(let tensor): return tensor
            case .input(let i): return try inputs[i].reshaped(plan.descriptors[id]!.shape)
            default: throw OnyxError.internalError("graph output '\(graph.valueNames[id])' was not produced")
            }
        }
        let arena = plan.borrowArena()
        defer { plan.returnArena(arena) }

        try withExtendedLifetime((inputs, results)) {
            for slot in plan.perRunSlots {
                let id = plan.viewValues[slot]!
                let data: UnsafeMutableRawPointer
                switch plan.locations[id] {
                case .input(let k): data = inputs[k].baseAddress
                case .output(let k): data = results[k].baseAddress
                default: continue
                }
                let d = plan.descriptors[id]!
                arena.views[slot] = TensorView(d, data: data)
            }
            // Steps are reached through buffer pointers: copying a step out of its array would
            // retain its names, kernel box and id arrays on every node of every run.
            try arena.views.withUnsafeBufferPointer { views in
                try graph.steps.withUnsafeBufferPointer { graphSteps in
                    for step in plan.steps where !step.isElided {
                        let context = KernelContext(
                            inputs: UnsafeBufferPointer(rebasing: views[step.viewStart..<(step.viewStart + step.inputCount)]),
                            outputs: UnsafeBufferPointer(
                                rebasing: views[(step.viewStart + step.inputCount)..<(step.viewStart + step.inputCount + step.outputCount)]),
                            workspace: step.workspaceOffset.map { arena.memory + $0 },
                            pool: pool, strings: strings, values: values)
                        do {
                            guard let timings else {
                                try graphSteps[step.graphStep].kernel.run(context)
                                continue
                            }
                            let start = DispatchTime.now().uptimeNanoseconds
                            try graphSteps[step.graphStep].kernel.run(context)
                            timings[step.graphStep] += DispatchTime.now().uptimeNanoseconds - start
                        } catch let error as OnyxError {
                            let graphStep = graphSteps[step.graphStep]
                            throw error.annotated(nodeName: graphStep.name, opType: graphStep.opType)
                        }
                    }
                }
            }
        }
        return results
    }
}

/// Plans by input-shape signature, evicting the least recently used past capacity.
struct PlanCache {
    private var entries: [[[Int]]: (plan: ExecutionPlan, lastUse: UInt64)] = [:]
    private var clock: UInt64 = 0

    /// The plan for inputs of these shapes, found without building a signature (a run's lookup
    /// allocates nothing).
    mutating func plan<Shapes: Collection>(matching shapes: Shapes) -> ExecutionPlan? where Shapes.Element == [Int] {
        var found: [[Int]]?
        for signature in entries.keys where signature.count == shapes.count {
            if zip(signature, shapes).allSatisfy({ $0 == $1 }) {
                found = signature
                break
            }
        }
        // Updated after the loop: writing while iterating would copy the table.
        guard let found, let entry = entries[found] else { return nil }
        clock += 1
        entries[found] = (entry.plan, clock)
        return entry.plan
    }

    mutating func insert(_ plan: ExecutionPlan, for signature: [[Int]], capacity: Int) {
        clock += 1
        entries[signature] = (plan, clock)
        if entries.count > capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            entries[oldest.key] = nil
        }
    }
}
