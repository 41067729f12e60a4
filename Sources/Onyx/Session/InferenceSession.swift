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
    /// Plans from step 0, by input shapes.
    private let plans = Mutex<PlanCache<[[Int]]>>(PlanCache())
    /// Plans for the steps after a value-dependent one, by what they are planned from.
    private let stagePlans = Mutex<PlanCache<StageKey>>(PlanCache())
    private let stopsAtValues = Atomic<Bool>(false)
    /// Whether some run met a step whose output shape depends on a value known only in a run, so
    /// runs go in stages (see ``ExecutionPlan``).
    var runsInStages: Bool { stopsAtValues.load(ordering: .relaxed) }
    /// How many plans for the steps after a value-dependent one are cached.
    var stagePlanCount: Int { stagePlans.withLock(\.count) }
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
        self.pool = options.threadPool?.pool ?? ComputePool(threadCount: options.threadCount)
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
        let results = try runTensors(ordered)
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
        return try runTensors(inputs)
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
        let plan = try plan(for: ordered, containers: containers)
        let runStore = store ?? (plan.usesValues || !plan.coversGraph ? ValueStore() : nil)
        let results: [Tensor], descriptors: [TensorDescriptor]
        if plan.coversGraph {
            results = try execute(plan, inputs: ordered, values: runStore)
            descriptors = graph.outputIds.map { plan.descriptors[$0]! }
        } else {
            (results, descriptors) = try runInStages(from: plan, inputs: ordered, values: runStore!)
        }
        return try zip(descriptors, results).map { descriptor, tensor in
            guard descriptor.container != nil else { return .tensor(tensor) }
            guard let runStore else { throw OnyxError.internalError("a sequence, map or optional output without a value store") }
            return try runStore.value(try tensor.scalars(as: Int64.self)[0])
        }
    }

    /// Runs the graph on tensors in graph-input order, refusing an output that is not a tensor
    /// (`run(values:)` returns those): before running when the plan covers the graph.
    private func runTensors(_ inputs: [Tensor], timings: UnsafeMutableBufferPointer<UInt64>? = nil) throws -> [Tensor] {
        let plan = try plan(for: inputs)
        if plan.coversGraph {
            try checkTensorOutputs(graph.outputIds.lazy.map { plan.descriptors[$0]?.container })
            return try execute(plan, inputs: inputs, timings: timings)
        }
        let (results, descriptors) = try runInStages(from: plan, inputs: inputs, values: ValueStore(), timings: timings)
        try checkTensorOutputs(descriptors.lazy.map(\.container))
        return results
    }

    private func checkTensorOutputs(_ containers: some Sequence<ValueType?>) throws {
        for (k, container) in containers.enumerated() {
            if let type = container {
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
        var timings = [UInt64](repeating: 0, count: graph.steps.count)
        let results = try timings.withUnsafeMutableBufferPointer { try runTensors(ordered, timings: $0) }
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

    /// The plan from step 0 for these inputs (cached by their shapes): the whole graph, or the
    /// steps before the first whose output shape needs a value known only in a run.
    ///
    /// - Parameter containers: Per input, the type of a sequence, map or optional (whose handle
    ///   the tensor holds); `nil` for a tensor. Empty: every input is a tensor.
    func plan(for inputs: [Tensor], containers: [ValueType?] = []) throws -> ExecutionPlan {
        if let cached = plans.withLock({ $0.plan(matching: inputs.lazy.map(\.shape)) }) { return cached }
        return try shapePlan(for: inputs.enumerated().map { k, tensor in
            if k < containers.count, let type = containers[k] { return TensorDescriptor(container: type) }
            return TensorDescriptor(tensor.dataType, tensor.shape)
        })
    }

    /// The plan from step 0 for inputs of these descriptors, cached for the runs that follow.
    func shapePlan(for descriptors: [TensorDescriptor]) throws -> ExecutionPlan {
        if let cached = plans.withLock({ $0.plan(matching: descriptors.lazy.map(\.shape)) }) { return cached }
        let plan = try ExecutionPlan(graph: graph, inputs: descriptors, stopsAtValues: true, memoryLimit: options.memoryLimitBytes)
        if !plan.coversGraph { stopsAtValues.store(true, ordering: .relaxed) }
        let capacity = options.planCacheCapacity
        plans.withLock { $0.insert(plan, for: descriptors.map(\.shape), capacity: capacity) }
        return plan
    }

    /// The plan for steps `start...`, whose inputs earlier steps produced.
    private func stagePlan(start: Int, inputIds: [Int], inputs: [TensorDescriptor], constants: [Int: Tensor]) throws -> ExecutionPlan {
        let key = StageKey(start: start, inputs: inputs, constants: constants)
        if let cached = stagePlans.withLock({ $0.plan(for: key) }) { return cached }
        let plan = try ExecutionPlan(
            graph: graph, inputs: inputs, inputIds: inputIds, start: start, constants: constants, stopsAtValues: true,
            memoryLimit: options.memoryLimitBytes)
        let capacity = options.planCacheCapacity
        stagePlans.withLock { $0.insert(plan, for: key, capacity: capacity) }
        return plan
    }

    // MARK: - Runs in stages

    /// Runs `first` and then, where a plan stops short of the graph's end, the step it stopped
    /// at with its inputs' values at hand and the plan for the steps after it, made from the
    /// shapes that step produced.
    ///
    /// - Returns: The graph outputs and their descriptors.
    private func runInStages(
        from first: ExecutionPlan, inputs: [Tensor], values: ValueStore, timings: UnsafeMutableBufferPointer<UInt64>? = nil
    ) throws -> (outputs: [Tensor], descriptors: [TensorDescriptor]) {
        // One table for the whole run: the later plans and steps read the strings earlier ones wrote.
        let strings = StringTable(parent: graph.strings)
        var known: [Int: (tensor: Tensor, descriptor: TensorDescriptor)] = [:]
        // Values a plan folded: the plans after it take them as constants, and are cached by them.
        var folded: [Int: Tensor] = [:]
        var plan = first, planInputs = inputs
        while true {
            let produced = try execute(plan, inputs: planInputs, strings: strings, values: values, timings: timings)
            for (id, tensor) in zip(plan.outputIds, produced) {
                known[id] = (tensor, plan.descriptors[id]!)
                if case .constant = plan.locations[id], graph.constants[id] == nil { folded[id] = tensor }
            }
            guard plan.end < graph.steps.count else { break }
            try runStep(plan.end, known: &known, strings: strings, values: values, timings: timings)

            var inputIds: [Int] = [], constants: [Int: Tensor] = [:]
            for id in plan.readAfterEnd {
                if let value = folded[id] {
                    constants[id] = value
                } else if known[id] != nil {
                    inputIds.append(id)
                }
            }
            plan = try stagePlan(
                start: plan.end + 1, inputIds: inputIds, inputs: inputIds.map { known[$0]!.descriptor }, constants: constants)
            planInputs = inputIds.map { known[$0]!.tensor }
        }
        let outputs = try graph.outputIds.map { id in
            guard let value = known[id] else { throw OnyxError.internalError("graph output '\(graph.valueNames[id])' was not produced") }
            return value
        }
        return (outputs.map(\.tensor), outputs.map(\.descriptor))
    }

    /// Runs step `index`, whose output shapes depend on its inputs' values, with those values known.
    private func runStep(
        _ index: Int, known: inout [Int: (tensor: Tensor, descriptor: TensorDescriptor)], strings: StringTable,
        values: ValueStore, timings: UnsafeMutableBufferPointer<UInt64>?
    ) throws {
        let step = graph.steps[index]
        let planned: [PlannedInput?] = try step.inputs.map { id in
            guard let id else { return nil }
            if let constant = graph.constants[id] {
                return PlannedInput(descriptor: TensorDescriptor(constant.dataType, constant.shape), constant: constant)
            }
            guard let (tensor, descriptor) = known[id] else {
                throw OnyxError.internalError("value '\(graph.valueNames[id])' is not known when node '\(step.name)' runs")
            }
            let value = descriptor.container == nil ? nil : try values.value(try tensor.scalars(as: Int64.self)[0])
            return PlannedInput(descriptor: descriptor, constant: tensor, containerValue: value)
        }
        let started = DispatchTime.now().uptimeNanoseconds
        try ExecutionPlan.checkTypes(of: planned.compactMap { $0?.descriptor }, at: step)
        let checkOutputs = { (outputs: [TensorDescriptor]) in
            try ExecutionPlan.checkTypes(of: outputs, at: step)
            for descriptor in outputs {
                try ExecutionPlan.checkExtents(
                    descriptor, limit: self.options.memoryLimitBytes, what: "output of node '\(step.name)' (\(step.opType))")
            }
        }
        let outputs: [TensorDescriptor], results: [Tensor]
        do {
            if let kernel = step.kernel as? any ValueShapedKernel {
                let evaluated = try ExecutableGraph.annotating(step) { try kernel.evaluate(knowing: planned, strings: strings) }
                outputs = evaluated.map(\.descriptor)
                results = evaluated.map(\.tensor)
                try checkOutputs(outputs)
            } else {
                outputs = try ExecutableGraph.annotating(step) { try step.kernel.outputDescriptors(for: planned) }
                try checkOutputs(outputs)
                results = try ExecutableGraph.annotating(step) {
                    try step.kernel.evaluate(planned: planned, outputs: outputs, pool: pool, strings: strings, values: values)
                }
            }
        } catch let error as NeedsInputValues {
            throw OnyxError.internalError("\(error) even with every input value known")
        }
        timings?[index] += DispatchTime.now().uptimeNanoseconds - started
        for (id, (tensor, descriptor)) in zip(step.outputs, zip(results, outputs)) {
            if let id { known[id] = (tensor, descriptor) }
        }
    }

    // MARK: - Execution

    /// Runs `plan` on its inputs, returning its outputs (``ExecutionPlan/inputIds``,
    /// ``ExecutionPlan/outputIds``). Its only heap allocations are the returned array and, per
    /// output the plan places in the arena's stead, one tensor (a storage object and its bytes).
    ///
    /// - Parameters:
    ///   - strings: The run's string table (a run in stages shares one); by default, a new one
    ///     that extends the session's, so what the run adds is freed with its outputs.
    ///   - values: The run's store of sequences, maps and optionals.
    ///   - timings: When profiling, nanoseconds to add each step's time to, by graph step.
    private func execute(
        _ plan: ExecutionPlan, inputs: [Tensor], strings: StringTable? = nil, values: ValueStore? = nil,
        timings: UnsafeMutableBufferPointer<UInt64>? = nil
    ) throws -> [Tensor] {
        let values = plan.usesValues ? values ?? ValueStore() : nil
        let strings = plan.usesStrings ? strings ?? StringTable(parent: graph.strings) : nil
        let inputs = try strings.map { table in try inputs.map { try $0.rebased(into: table) } } ?? inputs
        let results: [Tensor] = try plan.outputIds.indices.map { k in
            let id = plan.outputIds[k]
            switch plan.locations[id] {
            case .output(let j) where j == k:
                let d = plan.descriptors[id]!
                return Tensor(uninitialized: d.dataType, shape: d.shape, strings: d.dataType == .string ? strings : nil)
            case .constant(let tensor): return tensor
            case .input(let i): return try inputs[i].reshaped(plan.descriptors[id]!.shape)
            default: throw OnyxError.internalError("value '\(graph.valueNames[id])' was not produced")
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

/// Plans by what they were made from, evicting the least recently used past capacity.
struct PlanCache<Key: Hashable> {
    private var entries: [Key: (plan: ExecutionPlan, lastUse: UInt64)] = [:]
    private var clock: UInt64 = 0

    var count: Int { entries.count }

    mutating func plan(for key: Key) -> ExecutionPlan? {
        guard let entry = entries[key] else { return nil }
        clock += 1
        entries[key] = (entry.plan, clock)
        return entry.plan
    }

    mutating func insert(_ plan: ExecutionPlan, for key: Key, capacity: Int) {
        clock += 1
        entries[key] = (plan, clock)
        if entries.count > capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            entries[oldest.key] = nil
        }
    }
}

extension PlanCache where Key == [[Int]] {
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
        return found.flatMap { plan(for: $0) }
    }
}

/// What a plan for the steps after a value-dependent one is made from.
struct StageKey: Hashable {
    let start: Int
    let inputs: [TensorDescriptor]
    /// The values earlier plans folded that this one reads, by value id: their types, shapes and bytes.
    let constants: [Int: ConstantKey]

    struct ConstantKey: Hashable {
        let descriptor: TensorDescriptor
        let bytes: [UInt8]
    }

    init(start: Int, inputs: [TensorDescriptor], constants: [Int: Tensor]) {
        self.start = start
        self.inputs = inputs
        self.constants = constants.mapValues { tensor in
            ConstantKey(descriptor: TensorDescriptor(tensor.dataType, tensor.shape),
                        bytes: tensor.withUnsafeBytes { Array($0) })
        }
    }
}
