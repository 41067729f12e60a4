import OnyxCore
import OnyxKernels
import OnyxOperators
import Synchronization

/// Everything about a run that depends only on the input shapes: every value's type and shape,
/// where its bytes live, which nodes still run, and the arena size. Computed once per input-shape
/// signature and cached by the session.
///
/// A plan covers the graph's steps from ``start`` up to ``end``. It stops short of the last step
/// only where a step's output shape depends on a value known only in a run (NonZero, the
/// Tokenizer's token count, a Reshape fed by a graph input: ``NeedsInputValues``): the session runs
/// this plan, that one step with its inputs' values at hand, and then the plan for the steps after
/// it, made from the shapes it produced (``InferenceSession`` caches each by those shapes).
final class ExecutionPlan: Sendable {
    /// Where a value's bytes are during a run.
    enum Location: Sendable {
        /// Never produced (an omitted output) or never needed.
        case absent
        /// A tensor fixed for the session or for this signature.
        case constant(Tensor)
        /// The caller's input tensor number `k` (bytes shared, shape possibly viewed differently).
        case input(Int)
        /// The freshly allocated graph output number `k`.
        case output(Int)
        /// `offset` bytes into the run's arena.
        case arena(offset: Int)
    }

    /// One node to run.
    struct Step: Sendable {
        let graphStep: Int
        /// First slot of this step's inputs, then its outputs, in the arena's view table.
        let viewStart: Int
        let inputCount: Int
        let outputCount: Int
        let workspaceOffset: Int?
        /// The output already is the input's bytes (an aliased view): nothing to run.
        let isElided: Bool
    }

    let graph: ExecutableGraph
    /// The values the plan's caller supplies, in order: the graph inputs for a plan from step 0,
    /// else what earlier steps produced that this plan's steps or the graph's outputs read.
    let inputIds: [Int]
    /// The values a run of the plan returns, in order: the graph outputs for a plan that runs to
    /// the last step, else what this plan produced (or was given) that later steps or the graph's
    /// outputs read.
    let outputIds: [Int]
    /// The first step the plan covers.
    let start: Int
    /// The step after the last one the plan covers: the graph's step count, or the step whose
    /// output shape needs values known only in a run.
    let end: Int
    /// For a plan that stops short: the values the steps after `end` and the graph's outputs read
    /// (ascending ids), from which the next plan takes its inputs; empty otherwise.
    let readAfterEnd: [Int]
    let descriptors: [TensorDescriptor?]
    let locations: [Location]
    let steps: [Step]
    let arenaByteCount: Int
    /// Per view-table slot: the value it shows, or `nil` for an omitted input.
    let viewValues: [Int?]
    /// View-table slots that show a caller input or a graph output: refreshed each run.
    let perRunSlots: [Int]
    /// Whether some value is a string tensor, so a run needs a string table.
    let usesStrings: Bool
    /// Whether some value is a sequence, map or optional, so a run needs a value store.
    let usesValues: Bool
    private let arenas = Mutex<[RunArena]>([])

    /// Plans `graph` for inputs of the given descriptors (one per graph input, in order).
    ///
    /// - Parameters:
    ///   - start: The first step to plan; after step 0, `inputIds` names the values earlier steps
    ///     produced, which `inputs` describes.
    ///   - constants: Values known when planning beyond the graph's own constants (what an earlier
    ///     plan folded), by value id; they are not inputs.
    ///   - stopsAtValues: Whether to end the plan at a step whose output shape needs a value known
    ///     only in a run; otherwise such a step throws ``NeedsInputValues``.
    init(
        graph: ExecutableGraph, inputs: [TensorDescriptor], inputIds: [Int]? = nil, start: Int = 0,
        constants seeded: [Int: Tensor] = [:], stopsAtValues: Bool = false, memoryLimit: Int
    ) throws {
        self.graph = graph
        let inputIds = inputIds ?? graph.inputIds
        let valueCount = graph.valueCount
        var descriptors = [TensorDescriptor?](repeating: nil, count: valueCount)
        var locations = [Location](repeating: .absent, count: valueCount)
        var constants = graph.constants
        for (id, tensor) in seeded { constants[id] = tensor }

        for (id, tensor) in constants.enumerated() {
            if let tensor {
                descriptors[id] = TensorDescriptor(tensor.dataType, tensor.shape)
                locations[id] = .constant(tensor)
            }
        }
        for descriptor in inputs { try Self.checkExtents(descriptor, limit: memoryLimit, what: "an input") }
        for (k, (id, descriptor)) in zip(inputIds, inputs).enumerated() {
            descriptors[id] = descriptor
            locations[id] = .input(k)
        }
        // Pass 1: shapes, and plan-time evaluation of nodes whose data inputs are all known
        // (the Shape → Gather → Concat → Reshape chains of exported models).
        var live: [Int] = []
        var end = graph.steps.count
        let pool = ComputePool(threadCount: 1)
        for index in start..<graph.steps.count {
            let step = graph.steps[index]
            let planned: [PlannedInput?] = try step.inputs.map { id in
                guard let id else { return nil }
                guard let descriptor = descriptors[id] else {
                    throw OnyxError.internalError("value '\(graph.valueNames[id])' has no shape when node '\(step.name)' runs")
                }
                return PlannedInput(descriptor: descriptor, constant: constants[id])
            }
            try Self.checkTypes(of: planned.compactMap { $0?.descriptor }, at: step)
            let outputs: [TensorDescriptor]
            do {
                outputs = try ExecutableGraph.annotating(step) { try step.kernel.outputDescriptors(for: planned) }
            } catch is NeedsInputValues where stopsAtValues {
                end = index
                break
            }
            try Self.checkTypes(of: outputs, at: step)
            if let last = step.outputs.lastIndex(where: { $0 != nil }), last >= outputs.count {
                throw OnyxError.invalidModel(
                    "node '\(step.name)' (\(step.opType)) has \(outputs.count) output(s) here; the model uses output \(last)")
            }
            for (id, descriptor) in zip(step.outputs, outputs) {
                guard let id else { continue }
                try Self.checkExtents(descriptor, limit: memoryLimit, what: "output of node '\(step.name)' (\(step.opType))")
                descriptors[id] = descriptor
            }

            let dataKnown = step.inputs.enumerated().allSatisfy { i, id in
                id == nil || constants[id!] != nil || !step.kernel.readsData(ofInput: i)
            }
            // A plan folds no string outputs: it is made while other runs go on, and the session's
            // string table, which their tables extend, must not grow then. The same holds for
            // sequences, maps and optionals.
            let smallOutputs = outputs.allSatisfy {
                $0.byteCount <= Self.planTimeFoldingLimit && $0.dataType != .string && $0.container == nil
            }
            if dataKnown && smallOutputs && !ExecutableGraph.nondeterministicOps.contains(step.opType) {
                let values = try ExecutableGraph.annotating(step) {
                    try step.kernel.evaluate(planned: planned, outputs: outputs, pool: pool, strings: graph.strings, values: nil)
                }
                for (id, value) in zip(step.outputs, values) {
                    guard let id else { continue }
                    constants[id] = value
                    locations[id] = .constant(value)
                }
            } else {
                live.append(index)
            }
        }

        // What the plan hands on: the graph's outputs, and (short of the last step) every value
        // known by now that a later step reads.
        let outputIds = end == graph.steps.count
            ? graph.outputIds
            : graph.valuesRead(from: end).filter { descriptors[$0] != nil && graph.constants[$0] == nil }

        // Steps whose every output went unread once their readers folded (a Transpose only a Shape
        // read, after the optimizer had a MatMul read its input in place) do not run.
        var read = Set(outputIds)
        live = Array(live.reversed().filter { index in
            let step = graph.steps[index]
            guard step.outputs.contains(where: { $0.map(read.contains) ?? false }) else { return false }
            for id in step.inputs { if let id { read.insert(id) } }
            return true
        }.reversed())

        // Pass 2: lifetimes and buffers for the steps that remain.
        var lastUse = [Int](repeating: -1, count: valueCount)
        for (position, index) in live.enumerated() {
            for id in graph.steps[index].inputs { if let id { lastUse[id] = position } }
        }
        for (k, id) in outputIds.enumerated() where constants[id] == nil {
            if case .input = locations[id] { continue }
            locations[id] = .output(k)
        }

        var memory = MemoryPlanner()
        // Arena values sharing one buffer (views), keyed by offset: bytes, and last use of any of them.
        var buffers: [Int: (bytes: Int, end: Int)] = [:]
        let placements = ConcatPlacements(graph, live: live, descriptors: descriptors, locations: locations, lastUse: lastUse)
        // Arena offset of each placed Concat's output, once its first input is produced.
        var concatOffsets: [Int: Int] = [:]
        var planSteps: [Step] = []
        var viewValues: [Int?] = []
        for (position, index) in live.enumerated() {
            let step = graph.steps[index]
            let viewStart = viewValues.count
            viewValues.append(contentsOf: step.inputs)
            viewValues.append(contentsOf: step.outputs)

            var elided = false
            for (slot, id) in step.outputs.enumerated() {
                guard let id, let descriptor = descriptors[id] else { continue }
                if case .output = locations[id] { continue }
                if case .constant = locations[id] { continue }
                let end = max(lastUse[id], position)

                // A Concat whose inputs were written into its output has nothing left to do; an
                // input of such a Concat is written straight into its slice of the output.
                if placements.concats[id] != nil, let offset = concatOffsets[id] {
                    locations[id] = .arena(offset: offset)
                    elided = true
                    continue
                }
                if let (output, byteOffset) = placements.slices[id], let placement = placements.concats[output] {
                    let base: Int
                    if let offset = concatOffsets[output] {
                        base = offset
                    } else {
                        base = memory.allocate(placement.byteCount)
                        buffers[base] = (placement.byteCount, placement.end)
                        concatOffsets[output] = base
                    }
                    locations[id] = .arena(offset: base + byteOffset)
                    continue
                }

                if slot == 0, let source = Self.aliasSource(step, locations, descriptors, lastUse, buffers, position) {
                    switch locations[source] {
                    case .arena(let offset):
                        locations[id] = .arena(offset: offset)
                        buffers[offset]!.end = max(buffers[offset]!.end, end)
                        if case .view = step.kernel.aliasing { elided = true }
                        continue
                    case .input(let k):
                        locations[id] = .input(k)
                        elided = true
                        continue
                    default:
                        break
                    }
                }
                let offset = memory.allocate(descriptor.byteCount)
                buffers[offset] = (descriptor.byteCount, end)
                locations[id] = .arena(offset: offset)
            }

            let workspaceBytes = step.kernel.workspaceByteCount(
                inputs: step.inputs.map { $0.flatMap { descriptors[$0] } },
                outputs: step.outputs.map { $0.flatMap { descriptors[$0] } ?? TensorDescriptor(.float, [0]) })
            var workspaceOffset: Int?
            if workspaceBytes > 0 {
                workspaceOffset = memory.allocate(workspaceBytes)
                memory.release(offset: workspaceOffset!, byteCount: workspaceBytes)
            }
            planSteps.append(Step(
                graphStep: index, viewStart: viewStart, inputCount: step.inputs.count,
                outputCount: step.outputs.count, workspaceOffset: workspaceOffset, isElided: elided))

            // Release every buffer whose last reader was this step.
            for (offset, buffer) in buffers where buffer.end <= position {
                memory.release(offset: offset, byteCount: buffer.bytes)
                buffers[offset] = nil
            }
            guard memory.arenaByteCount <= memoryLimit else {
                throw OnyxError.limitExceeded(
                    "running this model on inputs \(inputs) needs more than the memory limit of \(memoryLimit) bytes")
            }
        }
        for id in outputIds where descriptors[id] == nil {
            throw OnyxError.invalidModel("graph output '\(graph.valueNames[id])' is never computed")
        }

        self.inputIds = inputIds
        self.outputIds = outputIds
        self.start = start
        self.end = end
        self.readAfterEnd = end < graph.steps.count ? graph.valuesRead(from: end + 1) : []
        self.descriptors = descriptors
        self.usesStrings = descriptors.contains { $0?.dataType == .string }
        self.usesValues = descriptors.contains { $0?.container != nil }
        self.locations = locations
        self.steps = planSteps
        self.arenaByteCount = memory.arenaByteCount
        self.viewValues = viewValues
        self.perRunSlots = viewValues.indices.filter { slot in
            guard let id = viewValues[slot] else { return false }
            switch locations[id] {
            case .input, .output: return true
            default: return false
            }
        }
    }

    /// A shape's extents, zeros skipped, must multiply to a byte count within `limit`: kernels
    /// compute strides from them even when the tensor is empty.
    static func checkExtents(_ descriptor: TensorDescriptor, limit: Int, what: String) throws {
        var span = descriptor.dataType.byteWidth
        for extent in descriptor.shape {
            let (product, overflow) = span.multipliedReportingOverflow(by: max(extent, 1))
            guard extent >= 0, !overflow, product <= limit else {
                throw OnyxError.limitExceeded(
                    "\(what) has shape \(descriptor.shape), whose extents multiply past the memory limit of \(limit) bytes")
            }
            span = product
        }
    }

    /// Largest output (bytes) computed while planning rather than in each run.
    static let planTimeFoldingLimit = 64 << 10

    /// The input whose buffer output 0 of `step` can share, if any.
    private static func aliasSource(
        _ step: ExecutableGraph.Step, _ locations: [Location], _ descriptors: [TensorDescriptor?],
        _ lastUse: [Int], _ buffers: [Int: (bytes: Int, end: Int)], _ position: Int
    ) -> Int? {
        guard let out = step.outputs.first ?? nil, let outDescriptor = descriptors[out] else { return nil }
        switch step.kernel.aliasing {
        case .none:
            return nil
        case .view(let i):
            guard i < step.inputs.count, let source = step.inputs[i], let d = descriptors[source],
                  d.byteCount == outDescriptor.byteCount else { return nil }
            switch locations[source] {
            case .arena, .input: return source
            default: return nil
            }
        case .inPlace(let i):
            guard i < step.inputs.count, let source = step.inputs[i], let d = descriptors[source],
                  d.byteCount == outDescriptor.byteCount,
                  case .arena(let offset) = locations[source],
                  let buffer = buffers[offset], buffer.end <= position,
                  // Another input of the same step must not read the same buffer.
                  step.inputs.filter({ $0 != nil && $0 == source }).count == 1
            else { return nil }
            for (j, other) in step.inputs.enumerated() where j != i {
                if let other, case .arena(let o) = locations[other], o == offset { return nil }
            }
            return source
        }
    }

    // MARK: - Arenas

    func borrowArena() -> RunArena {
        if let arena = arenas.withLock({ $0.popLast() }) { return arena }
        return RunArena(plan: self)
    }

    func returnArena(_ arena: RunArena) {
        arenas.withLock { pool in
            if pool.count < Self.idleArenaLimit { pool.append(arena) }
        }
    }

    static let idleArenaLimit = 4

    /// Whether the plan runs every step to the graph's outputs.
    var coversGraph: Bool { start == 0 && end == graph.steps.count }

    /// Refuses values a step's operator does not take: the narrow element types, strings, and
    /// sequences, maps and optionals each go only to the operators listed for them, so no kernel
    /// reads such bytes as numbers.
    static func checkTypes(of values: [TensorDescriptor], at step: ExecutableGraph.Step) throws {
        try OperatorRegistry.checkElementTypes(domain: step.domain, opType: step.opType, nodeName: step.name, values.map(\.dataType))
        if values.contains(where: { $0.container != nil }), !OperatorRegistry.takesContainers(domain: step.domain, opType: step.opType) {
            throw OnyxError.unsupportedDataType("node '\(step.name)' (\(step.opType)) does not take sequences, maps or optionals in Onyx")
        }
        if values.contains(where: { $0.dataType == .string && $0.container == nil }),
           !OperatorRegistry.takesStrings(domain: step.domain, opType: step.opType) {
            throw OnyxError.unsupportedDataType("node '\(step.name)' (\(step.opType)) does not take string tensors in Onyx")
        }
    }
}

extension Kernel {
    /// Runs the kernel at plan time on inputs whose data is known (or unread), returning new tensors.
    /// String inputs index `strings`; the plan never folds a node with string outputs.
    func evaluate(
        planned: [PlannedInput?], outputs: [TensorDescriptor], pool: ComputePool, strings: StringTable, values: ValueStore?
    ) throws -> [Tensor] {
        let results = outputs.map { d in
            Tensor(dataType: d.dataType, shape: d.shape,
                   storage: TensorStorage(byteCount: d.byteCount, strings: d.dataType == .string ? strings : nil))
        }
        let workspaceBytes = workspaceByteCount(inputs: planned.map { $0?.descriptor }, outputs: outputs)
        let workspace = workspaceBytes > 0
            ? UnsafeMutableRawPointer.allocate(byteCount: workspaceBytes, alignment: TensorStorage.alignment)
            : nil
        defer { workspace?.deallocate() }
        let placeholder = TensorStorage(byteCount: 64)
        let inputViews: [TensorView?] = planned.map { input in
            input.map {
                TensorView($0.descriptor, data: $0.constant?.baseAddress ?? placeholder.bytes)
            }
        }
        let outputViews: [TensorView?] = zip(outputs, results).map { TensorView($0, data: $1.baseAddress) }
        try withExtendedLifetime((planned, results, placeholder)) {
            try inputViews.withUnsafeBufferPointer { inputBuffer in
                try outputViews.withUnsafeBufferPointer { outputBuffer in
                    try run(KernelContext(inputs: inputBuffer, outputs: outputBuffer, workspace: workspace, pool: pool,
                                          strings: strings, values: values))
                }
            }
        }
        return results
    }
}

/// Concats whose inputs can be written straight into their slices of the output, so the copy
/// disappears (SqueezeNet's fire modules, whose two branches meet in a Concat along channels).
///
/// A Concat qualifies when every axis before its own has extent 1 (so each input is one
/// contiguous slice of the output), its output lives in the arena, and each input is a distinct
/// value produced by an earlier step of the run, read by no other placed Concat, not itself a placed
/// Concat's output, not a graph output, whose byte count keeps the next slice 64-byte aligned.
struct ConcatPlacements {
    struct Concat {
        /// The output's bytes.
        let byteCount: Int
        /// The last step (position in the run) reading the output or any input.
        let end: Int
    }

    /// Placed Concats by output value id.
    private(set) var concats: [Int: Concat] = [:]
    /// For each input of a placed Concat: the Concat's output id and the input's byte offset in it.
    private(set) var slices: [Int: (output: Int, byteOffset: Int)] = [:]

    init(
        _ graph: ExecutableGraph, live: [Int], descriptors: [TensorDescriptor?], locations: [ExecutionPlan.Location],
        lastUse: [Int]
    ) {
        var producedInRun = Set<Int>()
        for (position, index) in live.enumerated() {
            let step = graph.steps[index]
            defer { for case let id? in step.outputs { producedInRun.insert(id) } }
            guard let concat = step.kernel as? ConcatKernel, step.outputs.count == 1, let out = step.outputs[0],
                  let output = descriptors[out], !Self.isFixed(locations[out]), output.rank > 0, !step.inputs.isEmpty
            else { continue }
            let axis = concat.axis < 0 ? concat.axis + output.rank : concat.axis
            guard (0..<output.rank).contains(axis), output.shape[..<axis].allSatisfy({ $0 == 1 }) else { continue }
            var inputs: [(id: Int, byteOffset: Int)] = []
            var byteOffset = 0
            var end = max(position, lastUse[out])
            for (k, input) in step.inputs.enumerated() {
                // A placed Concat's output is not placed again as a slice of another (nested Concats,
                // Inception's): it already lives in its own Concat's buffer.
                guard let id = input, let d = descriptors[id], d.rank == output.rank, producedInRun.contains(id),
                      !Self.isFixed(locations[id]), slices[id] == nil, concats[id] == nil,
                      !inputs.contains(where: { $0.id == id }),
                      k == step.inputs.count - 1 || d.byteCount % MemoryPlanner.alignment == 0
                else { break }
                inputs.append((id, byteOffset))
                byteOffset += d.byteCount
                end = max(end, lastUse[id])
            }
            guard inputs.count == step.inputs.count, byteOffset == output.byteCount else { continue }
            concats[out] = Concat(byteCount: output.byteCount, end: end)
            for input in inputs { slices[input.id] = (out, input.byteOffset) }
        }
    }

    /// Values whose bytes the run does not place: constants, caller inputs, graph outputs.
    private static func isFixed(_ location: ExecutionPlan.Location) -> Bool {
        switch location {
        case .constant, .input, .output: true
        case .absent, .arena: false
        }
    }
}
