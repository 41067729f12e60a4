import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// If, Loop and Scan: nodes that run a subgraph.
    ///
    /// Their output shapes can depend on values (the branch taken, the trip count): such a node
    /// runs with its inputs' values known, between the plans before and after it (see
    /// ``NeedsInputValues``).
    package static let controlFlowOperators: [OperatorRegistration] = [
        OperatorRegistration("If") { context in try IfKernel(context) },
        OperatorRegistration("Loop") { context in try LoopKernel(context) },
        OperatorRegistration("Scan", versions: 8...8) { context in try ScanKernel(context, batched: true) },
        OperatorRegistration("Scan", versions: 9...Int.max) { context in try ScanKernel(context, batched: false) },
        OperatorRegistration("SequenceMap", versions: 17...Int.max) { context in try SequenceMapKernel(context) },
    ]
}

/// A control-flow body (If's branches, Loop's and Scan's body) prepared once to run many times.
///
/// Operators only run bodies; the runtime layer, which knows how to plan a graph, prepares them
/// through the ``SubgraphCompiler`` it hands every node in its ``NodeContext``.
package protocol PreparedSubgraph: Sendable {
    /// How many outputs the body produces.
    var outputCount: Int { get }

    /// Runs the body on its inputs, in the order the graph declares them.
    func run(orderedInputs: [Tensor]) throws -> [Tensor]

    /// Runs the body on inputs of any type (sequences, maps, optionals), in declaration order.
    func run(orderedValues: [OnnxValue]) throws -> [OnnxValue]

    /// The body's output types and shapes for inputs of these types and shapes, found by
    /// planning it (the plan is kept for the runs that follow).
    ///
    /// - Throws: ``NeedsInputValues`` when some output shape depends on an input's value.
    func outputDescriptors(for inputs: [TensorDescriptor]) throws -> [TensorDescriptor]
}

/// Prepares control-flow bodies; the runtime layer provides one in ``NodeContext/subgraphs``.
package protocol SubgraphCompiler: Sendable {
    /// Prepares `model` (one body, with the enclosing model's opset imports) for the kernel variant `isa`.
    func prepare(_ model: Model, isa: KernelISA) throws -> any PreparedSubgraph
}

/// A subgraph prepared once. The enclosing graph's constants it reads become its own
/// initializers; the other values it reads from the enclosing graph become extra inputs after
/// the ones it declares.
package struct Subgraph: Sendable {
    package let body: any PreparedSubgraph
    package let declaredInputCount: Int
    /// The enclosing graph's values it reads during a run, in the order of its extra inputs.
    package let outerNames: [String]

    package var outputCount: Int { body.outputCount }
    /// The body's declared output types (`nil` where undeclared).
    package let outputTypes: [ValueType?]

    /// Prepares `graph` (attribute `attribute` of the node in `context`).
    package init(_ graph: Graph, attribute: String, context: NodeContext) throws {
        var graph = graph
        declaredInputCount = graph.inputs.count
        outputTypes = graph.outputs.map(\.valueType)
        // The node's implicit inputs follow its own in `constantInputs`.
        var outerConstants: [String: Tensor] = [:]
        for (j, name) in context.node.implicitInputs.enumerated() {
            if let value = context.constantInput(context.inputCount + j) { outerConstants[name] = value }
        }
        let references = graph.outerScopeReferences
        graph.initializers += references.compactMap { name in outerConstants[name].map { (name: name, tensor: $0) } }
        outerNames = references.filter { outerConstants[$0] == nil }
        graph.inputs += outerNames.map { Value(name: $0, type: nil) }
        let imports = context.opsetImports.isEmpty ? ["": context.opset] : context.opsetImports
        guard let compiler = context.subgraphs else {
            throw context.attributeError("subgraph '\(attribute)' cannot run here: no runtime prepares subgraphs")
        }
        do {
            body = try compiler.prepare(Model(opsetImports: imports, graph: graph), isa: context.isa)
        } catch let error as OnyxError {
            throw context.attributeError("subgraph '\(attribute)': \(error.message)")
        }
    }

    /// Runs the subgraph on its declared inputs and the enclosing graph's values (by name).
    ///
    /// String outputs come back indexing `strings`, so outputs of several runs can be stacked.
    package func run(_ declared: [OnnxValue], outer: [String: OnnxValue], strings: StringTable) throws -> [OnnxValue] {
        try body.run(orderedValues: bodyInputs(declared, outer: outer)).map { try $0.rebased(into: strings) }
    }

    /// Runs a body that takes and returns tensors only.
    package func run(_ declared: [Tensor], outer: [String: Tensor], strings: StringTable) throws -> [Tensor] {
        try body.run(orderedInputs: bodyInputs(declared, outer: outer)).map { try $0.rebased(into: strings) }
    }

    /// The output descriptors for declared inputs and enclosing values of these descriptors.
    ///
    /// - Throws: ``NeedsInputValues`` when some output shape depends on a value.
    package func outputDescriptors(_ declared: [TensorDescriptor], outer: [String: TensorDescriptor]) throws -> [TensorDescriptor] {
        try body.outputDescriptors(for: bodyInputs(declared, outer: outer))
    }

    /// The body's inputs: the declared ones, then the enclosing graph's values it reads.
    private func bodyInputs<Input>(_ declared: [Input], outer: [String: Input]) throws -> [Input] {
        var inputs = declared
        for name in outerNames {
            guard let value = outer[name] else {
                throw OnyxError.internalError("subgraph reads '\(name)', which its node did not receive")
            }
            inputs.append(value)
        }
        return inputs
    }
}

/// Shared by the control-flow kernels: every input's value is needed to know the output shapes.
private protocol SubgraphKernel: Kernel {
    /// The node's implicit inputs (values its subgraphs read), which follow its own inputs.
    var implicitNames: [String] { get }
    var explicitInputCount: Int { get }
    var opType: String { get }

    /// Computes the outputs from the inputs' values (`nil` for an omitted optional input).
    func evaluate(_ inputs: [OnnxValue?], outer: [String: OnnxValue]) throws -> [OnnxValue]

    /// The declared type of output `index`, which names the element type of an empty sequence.
    func declaredType(ofOutput index: Int) -> ValueType?
}

extension SubgraphKernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let values = try inputs.map { input -> OnnxValue? in
            guard let input else { return nil }
            if input.descriptor.container != nil { return try input.requireValue(op: opType, what: "every") }
            return .tensor(try input.requireConstant(op: opType, what: "every"))
        }
        let (explicit, outer) = split(values)
        return try descriptors(of: evaluate(explicit, outer: outer))
    }

    /// The descriptors of computed outputs.
    func descriptors(of outputs: [OnnxValue]) -> [TensorDescriptor] {
        outputs.enumerated().map { k, value in
            if case .tensor(let tensor) = value { return TensorDescriptor(tensor.dataType, tensor.shape) }
            if let declared = declaredType(ofOutput: k), !declared.isTensor { return TensorDescriptor(container: declared) }
            return TensorDescriptor(container: value.type)
        }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let values: [OnnxValue?] = try (0..<context.inputCount).map { index in
            guard let view = context.input(index) else { return nil }
            if view.isValueHandle { return try context.value(ofInput: index) }
            // The run's own memory, valid until it ends: the bodies read it in place.
            let bytes = UnsafeRawBufferPointer(start: view.data, count: view.byteCount)
            return .tensor(Tensor(dataType: view.dataType, shape: view.shape, storage: TensorStorage(
                lending: bytes, deallocator: .none, strings: view.dataType == .string ? context.strings : nil)))
        }
        let (explicit, outer) = split(values)
        for (index, result) in try evaluate(explicit, outer: outer).enumerated() {
            guard context.optionalOutput(index) != nil else { continue }
            try context.store(result, intoOutput: index)
        }
    }

    private func split(_ values: [OnnxValue?]) -> ([OnnxValue?], [String: OnnxValue]) {
        let explicit = Array(values.prefix(explicitInputCount))
        var outer: [String: OnnxValue] = [:]
        for (name, value) in zip(implicitNames, values.dropFirst(explicitInputCount)) { outer[name] = value }
        return (explicit, outer)
    }
}

/// If: runs `then_branch` or `else_branch` by a boolean scalar.
package struct IfKernel: SubgraphKernel {
    package let thenBranch: Subgraph
    package let elseBranch: Subgraph
    package let implicitNames: [String]
    package let explicitInputCount = 1
    package var opType: String { "If" }

    package init(_ context: NodeContext) throws {
        func branch(_ name: String) throws -> Subgraph {
            guard case .graph(let graph)? = context.attribute(name) else {
                throw context.attributeError("attribute '\(name)' (a graph) is required")
            }
            guard graph.inputs.isEmpty else {
                throw context.attributeError("subgraph '\(name)' must take no inputs, it declares \(graph.inputs.count)")
            }
            return try Subgraph(graph, attribute: name, context: context)
        }
        thenBranch = try branch("then_branch")
        elseBranch = try branch("else_branch")
        guard thenBranch.outputCount == elseBranch.outputCount else {
            throw context.attributeError(
                "then_branch has \(thenBranch.outputCount) outputs, else_branch \(elseBranch.outputCount)")
        }
        implicitNames = context.node.implicitInputs
    }

    /// The taken branch's output shapes, planned from shapes alone when the branches allow it,
    /// so the graph is planned once per input shapes and each run runs one branch.
    ///
    /// With `cond` unknown until the run, both branches are planned: if they agree, or if one
    /// fails on these shapes (a run taking it would fail the same way, so every run that
    /// succeeds takes the other — a streaming model's 16 kHz and 8 kHz branches, say), the
    /// other's shapes are the outputs'. Otherwise the outputs are computed from the values
    /// (``NeedsInputValues`` until they are known).
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        var outer: [String: TensorDescriptor] = [:]
        for (name, input) in zip(implicitNames, inputs.dropFirst(explicitInputCount)) { outer[name] = input?.descriptor }
        if let cond = inputs.first??.constant {
            do {
                return try (try Self.condition(cond) ? thenBranch : elseBranch).outputDescriptors([], outer: outer)
            } catch is NeedsInputValues {
                // The branch's shapes depend on values: computed from them below.
            }
        } else {
            let planned = [thenBranch, elseBranch].map { branch in
                Result { try branch.outputDescriptors([], outer: outer) }
            }
            switch (planned[0], planned[1]) {
            case let (.success(a), .success(b)) where a == b: return a
            case let (.success(a), .failure(error)) where !(error is NeedsInputValues): return a
            case let (.failure(error), .success(b)) where !(error is NeedsInputValues): return b
            default: break  // Shapes that differ or depend on values: computed from the values below.
            }
        }
        let values = try inputs.map { input -> OnnxValue? in
            guard let input else { return nil }
            if input.descriptor.container != nil { return try input.requireValue(op: opType, what: "every") }
            return .tensor(try input.requireConstant(op: opType, what: "every"))
        }
        var outerValues: [String: OnnxValue] = [:]
        for (name, value) in zip(implicitNames, values.dropFirst(explicitInputCount)) { outerValues[name] = value }
        return descriptors(of: try evaluate(Array(values.prefix(explicitInputCount)), outer: outerValues))
    }

    package func declaredType(ofOutput index: Int) -> ValueType? {
        thenBranch.outputTypes[index] ?? elseBranch.outputTypes[index]
    }

    private static func condition(_ cond: Tensor) throws -> Bool {
        guard cond.elementCount == 1, cond.dataType == .bool else {
            throw OnyxError.invalidInput("If: cond must be a bool tensor of one element, got \(cond.dataType)\(cond.shape)")
        }
        return try cond.scalars(as: Bool.self)[0]
    }

    package func evaluate(_ inputs: [OnnxValue?], outer: [String: OnnxValue]) throws -> [OnnxValue] {
        guard let cond = inputs.first??.tensor, cond.elementCount == 1, cond.dataType == .bool else {
            throw OnyxError.invalidInput("If: cond must be a bool tensor of one element")
        }
        let taken = try cond.scalars(as: Bool.self)[0] ? thenBranch : elseBranch
        return try taken.run([], outer: outer, strings: StringTable())
    }
}

/// Loop: runs `body` while the trip count and the condition allow, carrying values from one
/// iteration to the next and stacking the per-iteration scan outputs.
package struct LoopKernel: SubgraphKernel {
    package let body: Subgraph
    package let implicitNames: [String]
    package let explicitInputCount: Int
    package var opType: String { "Loop" }

    /// A loop that would run longer is refused rather than left to hang the server.
    package static let iterationLimit = 1 << 24

    package init(_ context: NodeContext) throws {
        guard case .graph(let graph)? = context.attribute("body") else {
            throw context.attributeError("attribute 'body' (a graph) is required")
        }
        guard context.inputCount >= 2 else {
            throw context.attributeError("Loop takes at least 2 inputs (M, cond), got \(context.inputCount)")
        }
        let carried = context.inputCount - 2
        guard graph.inputs.count == carried + 2, graph.outputs.count >= carried + 1 else {
            throw context.attributeError(
                "body must take \(carried + 2) inputs (iteration, cond, \(carried) carried) and return at least \(carried + 1); "
                    + "it takes \(graph.inputs.count) and returns \(graph.outputs.count)")
        }
        body = try Subgraph(graph, attribute: "body", context: context)
        explicitInputCount = context.inputCount
        implicitNames = context.node.implicitInputs
    }

    package func declaredType(ofOutput index: Int) -> ValueType? {
        index + 1 < body.outputTypes.count ? body.outputTypes[index + 1] : nil
    }

    package func evaluate(_ inputs: [OnnxValue?], outer: [String: OnnxValue]) throws -> [OnnxValue] {
        let tripCount = try inputs[0].map { try Self.scalar($0, as: Int64.self, "M") }
        var condition = try inputs[1].map { try Self.scalar($0, as: Bool.self, "cond") } ?? true
        guard tripCount != nil || inputs[1] != nil else {
            throw OnyxError.invalidModel("Loop: neither a trip count M nor a condition is given, so it never ends")
        }
        var carried = try inputs.dropFirst(2).enumerated().map { index, value -> OnnxValue in
            guard let value else { throw OnyxError.invalidModel("Loop: loop-carried input \(index) is missing") }
            return value
        }
        let limit = tripCount.map { max(0, Int($0)) } ?? Int.max
        let strings = StringTable()  // every iteration's strings, so scan outputs stack
        var scans: [[Tensor]] = []
        var iteration = 0
        while iteration < limit && condition {
            guard iteration < Self.iterationLimit else {
                throw OnyxError.limitExceeded("Loop: more than \(Self.iterationLimit) iterations")
            }
            let outputs = try body.run(
                [.tensor(Tensor(scalar: Int64(iteration))), .tensor(Tensor(scalar: condition))] + carried, outer: outer, strings: strings)
            condition = try Self.scalar(outputs[0], as: Bool.self, "the body's cond output")
            carried = Array(outputs[1...carried.count])
            let scanned = outputs.dropFirst(1 + carried.count)
            if scans.isEmpty { scans = scanned.map { _ in [] } }
            for (k, value) in scanned.enumerated() {
                guard let tensor = value.tensor else { throw OnyxError.unsupportedDataType("Loop: scan output \(k) must be a tensor, got \(value.type)") }
                scans[k].append(tensor)
            }
            iteration += 1
        }
        let scanCount = body.outputCount - 1 - carried.count
        let stacked = try (0..<scanCount).map { k in
            OnnxValue.tensor(scans.isEmpty ? Tensor(zeros: .float, shape: [0]) : try TensorSlicing.stack(scans[k], axis: 0, op: "Loop"))
        }
        return carried + stacked
    }

    package static func scalar<T: TensorElement>(_ value: OnnxValue, as type: T.Type, _ what: String) throws -> T {
        guard let tensor = value.tensor, tensor.elementCount == 1, tensor.dataType == T.dataType else {
            throw OnyxError.invalidInput("Loop: \(what) must be one \(T.dataType), got \(value)")
        }
        return try tensor.scalars(as: T.self)[0]
    }
}

/// SequenceMap: runs `body` once per element of the input sequence; each run reads element `i`
/// of every sequence input (all as long as the first) and the whole of every tensor input, and
/// output `k` collects the body's output `k` of every run into a sequence.
package struct SequenceMapKernel: SubgraphKernel {
    package let body: Subgraph
    package let implicitNames: [String]
    package let explicitInputCount: Int
    package var opType: String { "SequenceMap" }

    package init(_ context: NodeContext) throws {
        guard case .graph(let graph)? = context.attribute("body") else {
            throw context.attributeError("attribute 'body' (a graph) is required")
        }
        guard graph.inputs.count == context.inputCount, context.outputCount == graph.outputs.count else {
            throw context.attributeError(
                "body takes \(graph.inputs.count) inputs and returns \(graph.outputs.count); the node has \(context.inputCount) and \(context.outputCount)")
        }
        body = try Subgraph(graph, attribute: "body", context: context)
        explicitInputCount = context.inputCount
        implicitNames = context.node.implicitInputs
    }

    package func declaredType(ofOutput index: Int) -> ValueType? {
        body.outputTypes[index].map { .sequence($0) }
    }

    package func evaluate(_ inputs: [OnnxValue?], outer: [String: OnnxValue]) throws -> [OnnxValue] {
        guard let first = inputs.first??.sequence else { throw OnyxError.unsupportedDataType("SequenceMap: input 0 must be a sequence") }
        for (k, input) in inputs.enumerated() {
            if let elements = input?.sequence, elements.count != first.count {
                throw OnyxError.invalidInput("SequenceMap: sequence input \(k) has \(elements.count) elements, input 0 has \(first.count)")
            }
        }
        let strings = StringTable()  // every run's strings, so the outputs share one numbering
        var outputs = [[OnnxValue]](repeating: [], count: body.outputCount)
        for i in 0..<first.count {
            let arguments = try inputs.enumerated().map { k, input -> OnnxValue in
                guard let input else { throw OnyxError.invalidModel("SequenceMap: input \(k) is missing") }
                return input.sequence?[i] ?? input
            }
            for (k, value) in try body.run(arguments, outer: outer, strings: strings).enumerated() { outputs[k].append(value) }
        }
        return outputs.map(OnnxValue.sequence)
    }
}

/// Scan: runs `body` once per slice of the scan inputs along their scan axes, carrying state
/// and stacking the scan outputs. Opset 8's form has a leading batch axis on every input and
/// output (each batch entry scanned on its own, axis 0 after it) and an optional first input
/// `sequence_lens`, which must be the full length here.
package struct ScanKernel: SubgraphKernel {
    /// Opset 8: inputs and outputs carry a batch axis and input 0 is `sequence_lens`.
    package let batched: Bool
    package let body: Subgraph
    package let implicitNames: [String]
    package let explicitInputCount: Int
    package let stateCount: Int
    package let scanInputCount: Int
    package let inputAxes: [Int]
    package let inputReversed: [Bool]
    package let outputAxes: [Int]
    package let outputReversed: [Bool]
    package var opType: String { "Scan" }

    package init(_ context: NodeContext, batched: Bool) throws {
        guard case .graph(let graph)? = context.attribute("body") else {
            throw context.attributeError("attribute 'body' (a graph) is required")
        }
        self.batched = batched
        let dataInputs = context.inputCount - (batched ? 1 : 0)
        guard let scanInputs = try context.int("num_scan_inputs"), scanInputs >= 1, scanInputs <= dataInputs else {
            throw context.attributeError("num_scan_inputs must be between 1 and the input count \(dataInputs)")
        }
        scanInputCount = scanInputs
        stateCount = dataInputs - scanInputs
        let scanOutputs = graph.outputs.count - stateCount
        guard graph.inputs.count == dataInputs, scanOutputs >= 0, context.outputCount == graph.outputs.count else {
            throw context.attributeError(
                "body takes \(graph.inputs.count) inputs and returns \(graph.outputs.count); the node has "
                    + "\(context.inputCount) inputs and \(context.outputCount) outputs")
        }
        func list(_ name: String, count: Int) throws -> [Int] {
            let values = try context.ints(name) ?? Array(repeating: 0, count: count)
            guard values.count == count else {
                throw context.attributeError("attribute '\(name)' has \(values.count) entries, expected \(count)")
            }
            return values
        }
        inputAxes = batched ? Array(repeating: 0, count: scanInputs) : try list("scan_input_axes", count: scanInputs)
        inputReversed = try list(batched ? "directions" : "scan_input_directions", count: scanInputs).map { $0 != 0 }
        outputAxes = batched ? Array(repeating: 0, count: scanOutputs) : try list("scan_output_axes", count: scanOutputs)
        outputReversed = try list("scan_output_directions", count: scanOutputs).map { $0 != 0 }
        body = try Subgraph(graph, attribute: "body", context: context)
        explicitInputCount = context.inputCount
        implicitNames = context.node.implicitInputs
    }

    package func declaredType(ofOutput index: Int) -> ValueType? { nil }

    package func evaluate(_ inputs: [OnnxValue?], outer: [String: OnnxValue]) throws -> [OnnxValue] {
        // Scan slices and stacks tensors only.
        let tensors = try inputs.map { value -> Tensor? in
            guard let value else { return nil }
            guard let tensor = value.tensor else { throw OnyxError.unsupportedDataType("Scan: inputs must be tensors, got \(value.type)") }
            return tensor
        }
        var outerTensors: [String: Tensor] = [:]
        for (name, value) in outer {
            guard let tensor = value.tensor else { throw OnyxError.unsupportedDataType("Scan: '\(name)' must be a tensor, got \(value.type)") }
            outerTensors[name] = tensor
        }
        return try evaluate(tensors, outer: outerTensors).map(OnnxValue.tensor)
    }

    private func evaluate(_ inputs: [Tensor?], outer: [String: Tensor]) throws -> [Tensor] {
        let strings = StringTable()  // every step's strings, so scan outputs stack
        guard batched else { return try scan(inputs, outer: outer, strings: strings) }
        // Opset 8: scan each batch entry on its own and stack the results along the batch axis.
        let data = Array(inputs.dropFirst())
        guard let batch = data.first??.shape.first, data.allSatisfy({ $0?.shape.first == batch }) else {
            throw OnyxError.shapeMismatch("Scan (opset 8): every input needs the same leading batch axis")
        }
        if let lengths = inputs[0] {
            let full = data.last??.shape.dropFirst().first ?? 0
            guard lengths.dataType == .int32, try lengths.scalars(as: Int32.self).allSatisfy({ Int($0) == full }) else {
                throw OnyxError.invalidInput("Scan (opset 8): sequence_lens must be int32 and equal the full length \(full)")
            }
        }
        var results: [[Tensor]] = []
        for b in 0..<batch {
            let entry = try data.map { try $0.map { try TensorSlicing.slice($0, axis: 0, index: b) } }
            results.append(try scan(entry, outer: outer, strings: strings))
        }
        return try (results.first ?? []).indices.map { k in try TensorSlicing.stack(results.map { $0[k] }, axis: 0, op: "Scan") }
    }

    private func scan(_ inputs: [Tensor?], outer: [String: Tensor], strings: StringTable) throws -> [Tensor] {
        let given = try inputs.enumerated().map { index, value -> Tensor in
            guard let value else { throw OnyxError.invalidModel("Scan: input \(index) is missing") }
            return value
        }
        var state = Array(given.prefix(stateCount))
        let scanned = Array(given.dropFirst(stateCount))
        let axes = try zip(scanned, inputAxes).map { tensor, axis in
            // A scan input is sliced along its scan axis, so it needs one (normalizedAxis lets
            // axis 0 through for scalars).
            guard tensor.rank >= 1 else {
                throw OnyxError.shapeMismatch("Scan: scan inputs need at least one axis to scan along, got a scalar")
            }
            return try normalizedAxis(axis, rank: tensor.rank, op: "Scan")
        }
        let lengths = zip(scanned, axes).map { $0.shape[$1] }
        guard let length = lengths.first, lengths.allSatisfy({ $0 == length }) else {
            throw OnyxError.shapeMismatch("Scan: the scan inputs have different lengths \(lengths)")
        }
        var outputs: [[Tensor]] = Array(repeating: [], count: outputAxes.count)
        for step in 0..<length {
            let slices = try scanned.indices.map { k in
                try TensorSlicing.slice(scanned[k], axis: axes[k], index: inputReversed[k] ? length - 1 - step : step)
            }
            let results = try body.run(state + slices, outer: outer, strings: strings)
            state = Array(results.prefix(stateCount))
            for (k, value) in results.dropFirst(stateCount).enumerated() { outputs[k].append(value) }
        }
        let stacked = try outputs.enumerated().map { k, slices -> Tensor in
            guard let first = slices.first else { return Tensor(zeros: .float, shape: [0]) }
            let axis = try normalizedAxis(outputAxes[k], rank: first.rank + 1, op: "Scan")
            return try TensorSlicing.stack(outputReversed[k] ? slices.reversed() : slices, axis: axis, op: "Scan")
        }
        return state + stacked
    }
}

/// Taking one slice of a tensor along an axis, and stacking slices along a new axis.
package enum TensorSlicing {
    /// `tensor[..., index, ...]` with `axis` removed.
    package static func slice(_ tensor: Tensor, axis: Int, index: Int) throws -> Tensor {
        let outer = tensor.shape[..<axis].reduce(1, *)
        let inner = tensor.shape[(axis + 1)...].reduce(1, *) * tensor.dataType.byteWidth
        let extent = tensor.shape[axis]
        var shape = tensor.shape
        shape.remove(at: axis)
        var result = Tensor(zerosLike: tensor, shape: shape)
        tensor.withUnsafeBytes { source in
            result.withUnsafeMutableBytes { target in
                for o in 0..<outer where inner > 0 {
                    (target.baseAddress! + o * inner).copyMemory(
                        from: source.baseAddress! + (o * extent + index) * inner, byteCount: inner)
                }
            }
        }
        return result
    }

    /// `tensor[..., range, ...]` along `axis`, the axis kept.
    package static func range(_ tensor: Tensor, axis: Int, range: Range<Int>) throws -> Tensor {
        let outer = tensor.shape[..<axis].reduce(1, *)
        let inner = tensor.shape[(axis + 1)...].reduce(1, *) * tensor.dataType.byteWidth
        let extent = tensor.shape[axis]
        var shape = tensor.shape
        shape[axis] = range.count
        var result = Tensor(zerosLike: tensor, shape: shape)
        tensor.withUnsafeBytes { source in
            result.withUnsafeMutableBytes { target in
                for o in 0..<outer where inner > 0 && !range.isEmpty {
                    (target.baseAddress! + o * range.count * inner).copyMemory(
                        from: source.baseAddress! + (o * extent + range.lowerBound) * inner, byteCount: range.count * inner)
                }
            }
        }
        return result
    }

    /// The tensors (of one type, shapes equal but along `axis`) joined along `axis`.
    package static func concatenate(_ tensors: [Tensor], axis: Int, op: String) throws -> Tensor {
        guard var first = tensors.first else { throw OnyxError.internalError("\(op): nothing to join") }
        var tensors = tensors
        if first.dataType == .string {
            let table = first.stringTable ?? StringTable()
            tensors = try tensors.map { try $0.rebased(into: table) }
            first = tensors[0]
        }
        for tensor in tensors {
            guard tensor.dataType == first.dataType, tensor.rank == first.rank,
                  tensor.shape.indices.allSatisfy({ $0 == axis || tensor.shape[$0] == first.shape[$0] }) else {
                throw OnyxError.shapeMismatch("\(op): cannot join \(first) and \(tensor) along axis \(axis)")
            }
        }
        let outer = first.shape[..<axis].reduce(1, *)
        let inner = first.shape[(axis + 1)...].reduce(1, *) * first.dataType.byteWidth
        var shape = first.shape
        shape[axis] = tensors.reduce(0) { $0 + $1.shape[axis] }
        var result = Tensor(zerosLike: first, shape: shape)
        result.withUnsafeMutableBytes { target in
            var offset = 0
            for o in 0..<outer {
                for tensor in tensors {
                    let chunk = tensor.shape[axis] * inner
                    tensor.withUnsafeBytes { source in
                        if chunk > 0 { (target.baseAddress! + offset).copyMemory(from: source.baseAddress! + o * chunk, byteCount: chunk) }
                    }
                    offset += chunk
                }
            }
        }
        return result
    }

    /// The slices (all of one type and shape) stacked along a new axis `axis`.
    package static func stack(_ slices: [Tensor], axis: Int, op: String) throws -> Tensor {
        guard var first = slices.first else { throw OnyxError.internalError("\(op): nothing to stack") }
        var slices = slices
        if first.dataType == .string {
            // One numbering for all the slices' strings.
            let table = first.stringTable ?? StringTable()
            slices = try slices.map { try $0.rebased(into: table) }
            first = slices[0]
        }
        for slice in slices where slice.shape != first.shape || slice.dataType != first.dataType {
            throw OnyxError.shapeMismatch("\(op): iterations produced \(first) and \(slice); they must agree")
        }
        let outer = first.shape[..<axis].reduce(1, *)
        let inner = first.shape[axis...].reduce(1, *) * first.dataType.byteWidth
        var shape = first.shape
        shape.insert(slices.count, at: axis)
        var result = Tensor(zerosLike: first, shape: shape)
        result.withUnsafeMutableBytes { target in
            for (k, slice) in slices.enumerated() {
                slice.withUnsafeBytes { source in
                    for o in 0..<outer where inner > 0 {
                        (target.baseAddress! + (o * slices.count + k) * inner).copyMemory(
                            from: source.baseAddress! + o * inner, byteCount: inner)
                    }
                }
            }
        }
        return result
    }
}
