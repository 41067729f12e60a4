import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// LSTM, GRU, RNN.
    package static let recurrentOperators: [OperatorRegistration] =
        [(1...6), (7...13), (14...21), (22...Int.max)].flatMap { versions in
            [
                OperatorRegistration("RNN", versions: versions) { context in try RecurrentKernel(context, cell: .rnn) },
                OperatorRegistration("LSTM", versions: versions) { context in
                    try RecurrentKernel(context, cell: .lstm(inputForget: try context.int("input_forget", default: 0) != 0))
                },
            ]
        } + [(1...2), (3...6), (7...13), (14...21), (22...Int.max)].map { versions in
            OperatorRegistration("GRU", versions: versions) { context in
                // linear_before_reset arrived in opset 3.
                let linear = versions.lowerBound >= 3 ? try context.int("linear_before_reset", default: 0) != 0 : false
                return try RecurrentKernel(context, cell: .gru(linearBeforeReset: linear))
            }
        }
}

/// ONNX RNN, GRU and LSTM: forward, reverse or bidirectional over a sequence, with
/// `sequence_lens`, initial states, LSTM peepholes, the `activations` attribute with its
/// alphas and betas, `clip`, and `layout` (opset 14).
///
/// X·Wᵀ for the whole sequence is one matrix product per direction; each step multiplies the
/// batch's hidden states by Rᵀ. Float32 uses the SGEMM driver with the weights packed once
/// when they are constant; float16 computes in float32 and double in double.
///
/// With `sequence_lens`, entry b runs its first `len[b]` steps (a reverse direction starts at
/// step `len[b] − 1`); Y is zero past them and Y_h / Y_c hold the state after the last one.
package struct RecurrentKernel: Kernel {
    package let op: String
    package let cell: RecurrentCell
    package let hiddenSize: Int?
    package let directions: Int
    package let reverse: Bool
    package let activations: [RecurrentActivation]
    package let clip: Float?
    package let batchFirst: Bool
    package let isa: KernelISA
    /// Per direction, constant float weights packed for the SGEMM driver.
    package let packedWeights: [PackedRecurrentWeights]?

    /// One direction's weights as packed B panels.
    package struct PackedRecurrentWeights: Sendable {
        /// Wᵀ: k = input size, n = gates · hidden.
        package var input: PackedPanels
        /// Rᵀ, or GRU's z and r blocks.
        package var hidden: PackedPanels
        /// GRU's h block of Rᵀ.
        package var candidate: PackedPanels?
    }

    private static let inputNames = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]

    /// - Parameter inputLimit: The most inputs the node may have (default: ONNX's 8 for LSTM, 6 otherwise).
    package init(_ context: NodeContext, cell: RecurrentCell, inputLimit: Int? = nil) throws {
        let op = context.node.opType
        self.op = op
        self.cell = cell
        hiddenSize = try context.int("hidden_size")
        if let hiddenSize, hiddenSize < 1 { throw context.attributeError("hidden_size must be ≥ 1, got \(hiddenSize)") }
        switch try context.string("direction", default: "forward") {
        case "forward": (directions, reverse) = (1, false)
        case "reverse": (directions, reverse) = (1, true)
        case "bidirectional": (directions, reverse) = (2, false)
        case let other: throw context.attributeError("direction '\(other)' is not forward, reverse or bidirectional")
        }
        let defaults: [RecurrentActivation] = switch cell {
        case .rnn: [.tanh]
        case .gru: [.sigmoid, .tanh]
        case .lstm: [.sigmoid, .tanh, .tanh]
        }
        do {
            activations = try RecurrentActivation.parse(
                names: try stringList(context, "activations"), alphas: try context.floats("activation_alpha"),
                betas: try context.floats("activation_beta"), defaults: defaults, directions: directions)
        } catch let error as OnyxError {
            throw context.attributeError(error.message)
        }
        clip = try context.float("clip")
        if let clip, !(clip > 0) { throw context.attributeError("clip must be > 0, got \(clip)") }
        let layout = context.opset >= 14 ? try context.int("layout", default: 0) : 0
        guard layout == 0 || layout == 1 else { throw context.attributeError("layout must be 0 or 1, got \(layout)") }
        batchFirst = layout == 1
        let maxInputs = inputLimit ?? (cell.gates == 4 ? 8 : 6)
        guard context.inputCount >= 3, context.inputCount <= maxInputs else {
            throw OnyxError.invalidModel("\(op) node '\(context.node.name)' takes 3 to \(maxInputs) inputs, got \(context.inputCount)")
        }
        isa = context.isa

        // Pack constant float weights once.
        if let w = context.constantInput(1), let r = context.constantInput(2), w.dataType == .float, r.dataType == .float,
           w.rank == 3, r.rank == 3, w.shape[0] == directions, r.shape[0] == directions,
           w.shape[1] == cell.gates * r.shape[2], r.shape[1] == w.shape[1] {
            let (hidden, inputSize, width) = (r.shape[2], w.shape[2], w.shape[1])
            let wBase = w.baseAddress.assumingMemoryBound(to: Float.self)
            let rBase = r.baseAddress.assumingMemoryBound(to: Float.self)
            let isa = context.isa
            packedWeights = (0..<directions).map { d in
                let input = Gemm.prepackB(wBase + d * width * inputSize, k: inputSize, n: width, ld: inputSize,
                                          transposed: true, isa: isa)
                let rd = rBase + d * width * hidden
                if case .gru = cell {
                    return PackedRecurrentWeights(
                        input: input,
                        hidden: Gemm.prepackB(rd, k: hidden, n: 2 * hidden, ld: hidden, transposed: true, isa: isa),
                        candidate: Gemm.prepackB(rd + 2 * hidden * hidden, k: hidden, n: hidden, ld: hidden,
                                                 transposed: true, isa: isa))
                }
                return PackedRecurrentWeights(
                    input: input,
                    hidden: Gemm.prepackB(rd, k: hidden, n: width, ld: hidden, transposed: true, isa: isa),
                    candidate: nil)
            }
            withExtendedLifetime((w, r)) {}
        } else {
            packedWeights = nil
        }
    }

    /// The run's extents, after checking every input against X, W and R.
    ///
    /// - Parameter input: Input `index`'s descriptor, if present, for `index < count`. Taken as
    ///   a function (and shapes compared without array literals) so a run allocates nothing.
    private func shape(count: Int, _ input: (Int) -> TensorDescriptor?) throws -> RecurrentShape {
        guard count >= 3, let x = input(0), let w = input(1), let r = input(2) else {
            throw OnyxError.invalidModel("\(op) needs inputs X, W and R")
        }
        switch x.dataType {
        case .float, .double, .float16: break
        default: throw OnyxError.unsupportedDataType("\(op) supports float, double and float16, got \(x.dataType)")
        }
        for index in 0..<count where index != 4 {
            guard let other = input(index), other.dataType != x.dataType else { continue }
            throw OnyxError.unsupportedDataType(
                "\(op): input \(Self.inputNames[min(index, 7)]) is \(other.dataType) but X is \(x.dataType)")
        }
        guard x.rank == 3, w.rank == 3, r.rank == 3 else {
            throw OnyxError.shapeMismatch("\(op): X, W and R must be 3-D, got \(x.shape), \(w.shape) and \(r.shape)")
        }
        let hidden = r.shape[2]
        let gates = cell.gates
        let shape = RecurrentShape(
            sequenceLength: batchFirst ? x.shape[1] : x.shape[0], batch: batchFirst ? x.shape[0] : x.shape[1],
            inputSize: x.shape[2], hidden: hidden, directions: directions, batchFirst: batchFirst)
        if let hiddenSize, hiddenSize != hidden {
            throw OnyxError.shapeMismatch("\(op): hidden_size is \(hiddenSize) but R has shape \(r.shape)")
        }
        guard Self.has(w.shape, directions, gates * hidden, shape.inputSize) else {
            throw OnyxError.shapeMismatch(
                "\(op): W must have shape \([directions, gates * hidden, shape.inputSize]), got \(w.shape)")
        }
        guard Self.has(r.shape, directions, gates * hidden, hidden) else {
            throw OnyxError.shapeMismatch("\(op): R must have shape \([directions, gates * hidden, hidden]), got \(r.shape)")
        }
        if count > 3, let b = input(3), !Self.has(b.shape, directions, 2 * gates * hidden) {
            throw OnyxError.shapeMismatch("\(op): B must have shape \([directions, 2 * gates * hidden]), got \(b.shape)")
        }
        if count > 4, let lengths = input(4) {
            guard lengths.dataType == .int32, Self.has(lengths.shape, shape.batch) else {
                throw OnyxError.shapeMismatch("\(op): sequence_lens must be int32[\(shape.batch)], got \(lengths)")
            }
        }
        let (outer, inner) = batchFirst ? (shape.batch, directions) : (directions, shape.batch)
        for index in 5...6 where index < count {
            if let s = input(index), !Self.has(s.shape, outer, inner, hidden) {
                throw OnyxError.shapeMismatch(
                    "\(op): \(Self.inputNames[index]) must have shape \([outer, inner, hidden]), got \(s.shape)")
            }
        }
        if count > 7, let p = input(7), !Self.has(p.shape, directions, 3 * hidden) {
            throw OnyxError.shapeMismatch("\(op): P must have shape \([directions, 3 * hidden]), got \(p.shape)")
        }
        return shape
    }

    /// Whether `shape` is `[a, b]`.
    private static func has(_ shape: [Int], _ a: Int, _ b: Int) -> Bool { shape.count == 2 && shape[0] == a && shape[1] == b }

    /// Whether `shape` is `[a, b, c]`.
    private static func has(_ shape: [Int], _ a: Int, _ b: Int, _ c: Int) -> Bool {
        shape.count == 3 && shape[0] == a && shape[1] == b && shape[2] == c
    }

    /// Whether `shape` is `[a]`.
    private static func has(_ shape: [Int], _ a: Int) -> Bool { shape.count == 1 && shape[0] == a }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let s = try shape(count: inputs.count) { inputs[$0]?.descriptor }
        let type = inputs[0]!.dataType
        let y = batchFirst
            ? [s.batch, s.sequenceLength, directions, s.hidden] : [s.sequenceLength, directions, s.batch, s.hidden]
        let state = batchFirst ? [s.batch, directions, s.hidden] : [directions, s.batch, s.hidden]
        var outputs = [TensorDescriptor(type, y), TensorDescriptor(type, state)]
        if cell.gates == 4 { outputs.append(TensorDescriptor(type, state)) }
        return outputs
    }

    /// Scalars of compute-type scratch and floats of SGEMM packing scratch, for every lane
    /// (``concurrentLanes``) together.
    private func scratchCounts(_ s: RecurrentShape, _ type: DataType) -> (scalars: Int, packing: Int) {
        let scalars = RecurrentDirection<Float>.scratchCount(s, cell: cell)
        guard type != .double else { return (scalars, 0) }
        let lanes = concurrentLanes(type)
        var packing = lanes * (stripCount(s) + 32)
        if packedWeights == nil || type != .float {
            let width = cell.gates * s.hidden
            let nr = Gemm.nr(isa)
            packing += PackedPanels.floatCount(extent: width, depth: s.inputSize, width: nr) + 16
            packing += PackedPanels.floatCount(extent: width, depth: s.hidden, width: nr)
                + PackedPanels.floatCount(extent: s.hidden, depth: s.hidden, width: nr) + 32
        }
        return (lanes * (scalars + 16), packing)
    }

    /// Floats of the input product's packed X strips.
    private func stripCount(_ s: RecurrentShape) -> Int {
        PackedPanels.floatCount(extent: max(s.sequenceLength * s.batch, 1), depth: max(s.inputSize, s.hidden), width: Gemm.mr(isa))
    }

    /// Scratch lanes: two when the directions of a bidirectional float node may run at once (their
    /// weights are packed ahead, so each lane needs only its own gates and strips), else one.
    private func concurrentLanes(_ type: DataType) -> Int {
        directions == 2 && packedWeights != nil && type == .float ? 2 : 1
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let s = try? shape(count: inputs.count, { inputs[$0] }), let type = inputs[0]?.dataType else { return 0 }
        let (scalars, packing) = scratchCounts(s, type)
        guard type != .double else { return scalars * 8 + 64 }
        return Float32Staging.byteCount(inputs: inputs, inputLimit: 8, outputs: outputs, widens: Self.widens) + (scalars + packing) * 4 + 128
    }

    /// float16 tensors are computed in float32.
    private static func widens(_ type: DataType) -> Bool { type == .float16 }

    package func run(_ context: borrowing KernelContext) throws {
        let inputs = context.inputs
        let s = try shape(count: inputs.count) { inputs[$0].map { TensorDescriptor($0.dataType, $0.shape) } }
        guard let workspace = context.workspace else { throw OnyxError.internalError("\(op): no workspace") }
        let lengths = try lengths(context, s)
        let type = inputs[0]!.dataType
        switch type {
        case .float, .float16:
            let pool = context.pool
            Float32Staging.run(
                inputs: context.inputs, inputCount: 8, outputs: context.outputs, outputCount: 3, workspace: workspace, widens: Self.widens
            ) { widened, results, rest in
                runFloat(s, lengths: lengths, inputs: widened, outputs: results, workspace: rest!, pool: pool,
                         lanes: concurrentLanes(type))
            }
        case .double:
            runDouble(s, lengths: lengths, inputs: context.inputs, outputs: context.outputs,
                      scratch: workspace.assumingMemoryBound(to: Double.self))
        default:
            throw OnyxError.unsupportedDataType("\(op) supports float, double and float16, got \(type)")
        }
    }

    /// The run's valid steps per batch entry: input 4 (`sequence_lens`), each checked to lie in
    /// `0...sequence_length`, or all of them.
    func lengths(_ context: borrowing KernelContext, _ s: RecurrentShape) throws -> RecurrentLengths {
        let given = context.input(4).map { UnsafePointer($0.pointer(as: Int32.self)) }
        if let given {
            for b in 0..<s.batch where given[b] < 0 || Int(given[b]) > s.sequenceLength {
                throw OnyxError.invalidInput("\(op): sequence_lens[\(b)] = \(given[b]) is outside 0...\(s.sequenceLength)")
            }
        }
        return RecurrentLengths(full: s.sequenceLength, given: given)
    }

    func directionLoop<S: RecurrentScalar>(_ s: RecurrentShape, _ d: Int, lengths: RecurrentLengths) -> RecurrentDirection<S> {
        let per = cell.activationsPerDirection
        return RecurrentDirection<S>(
            cell: cell, shape: s, direction: d, reverse: d == 1 || reverse,
            activations: activations[(d * per)..<(d * per + per)], clip: clip.map { S($0) }, lengths: lengths,
            isa: isa)
    }

    /// Zeroes Y where some entry has fewer than `sequence_length` steps.
    func clearOutput<S>(_ y: UnsafeMutablePointer<S>?, _ s: RecurrentShape, lengths: RecurrentLengths) where S: BinaryFloatingPoint {
        if let y, lengths.isRagged(batch: s.batch) {
            y.update(repeating: 0, count: s.sequenceLength * directions * s.batch * s.hidden)
        }
    }

    private func runFloat(
        _ s: RecurrentShape, lengths: RecurrentLengths, inputs: UnsafeBufferPointer<UnsafePointer<Float>?>,
        outputs: UnsafeBufferPointer<UnsafeMutablePointer<Float>?>, workspace: UnsafeMutableRawPointer, pool: ComputePool,
        lanes: Int
    ) {
        guard let x = inputs[0], let w = inputs[1], let r = inputs[2] else { return }
        clearOutput(outputs[0], s, lengths: lengths)
        let scratch = workspace.assumingMemoryBound(to: Float.self)
        // A lane: one direction's gates and cell scratch, then its packed X strips.
        let scalars = (RecurrentDirection<Float>.scratchCount(s, cell: cell) + 15) / 16 * 16
        let laneCount = scalars + (stripCount(s) + 31) / 16 * 16
        var weightScratch = scratch + laneCount
        let width = cell.gates * s.hidden
        let (isa, nr) = (self.isa, Gemm.nr(isa))

        func pack(_ matrix: UnsafePointer<Float>, n: Int, k: Int) -> PackedPanels {
            Gemm.packB(matrix, k: k, n: n, ld: k, transposed: true, nr: nr, into: weightScratch)
            let panels = PackedPanels(extent: n, depth: k, width: nr, base: UnsafePointer(weightScratch), owner: nil)
            weightScratch += (PackedPanels.floatCount(extent: n, depth: k, width: nr) + 15) / 16 * 16
            return panels
        }
        func weights(_ d: Int) -> PackedRecurrentWeights {
            if let packedWeights { return packedWeights[d] }
            weightScratch = scratch + laneCount
            let rd = r + d * width * s.hidden
            let input = pack(w + d * width * s.inputSize, n: width, k: s.inputSize)
            if case .gru = cell {
                let hidden = pack(rd, n: 2 * s.hidden, k: s.hidden)
                return PackedRecurrentWeights(
                    input: input, hidden: hidden, candidate: pack(rd + 2 * s.hidden * s.hidden, n: s.hidden, k: s.hidden))
            }
            return PackedRecurrentWeights(input: input, hidden: pack(rd, n: width, k: s.hidden), candidate: nil)
        }
        func run(_ d: Int, lane: UnsafeMutablePointer<Float>, pool: ComputePool) {
            let weights = weights(d)
            func product(_ panels: PackedPanels) -> PackedRecurrentProduct {
                PackedRecurrentProduct(panels, isa: isa, strips: lane + scalars, pool: pool)
            }
            let direction: RecurrentDirection<Float> = directionLoop(s, d, lengths: lengths)
            direction.run(
                x: x, inputProduct: product(weights.input), hiddenProduct: product(weights.hidden),
                candidateProduct: weights.candidate.map(product),
                bias: inputs[3].map { $0 + d * 2 * width }, peepholes: inputs[7].map { $0 + d * 3 * s.hidden },
                initialH: inputs[5], initialC: inputs[6],
                y: outputs[0], yH: outputs[1], yC: outputs[2], scratch: lane)
        }

        if lanes == 2 && pool.threadCount > 1 {
            // Each step's product is too small to split well; the two directions are independent,
            // so each runs whole on its own thread (the products inside find the pool busy and
            // run serially), writing disjoint parts of Y, Y_h and Y_c.
            pool.parallelFor(2) { d in run(d, lane: scratch + d * laneCount, pool: pool) }
        } else {
            for d in 0..<directions { run(d, lane: scratch, pool: pool) }
        }
        withExtendedLifetime(packedWeights) {}
    }

    private func runDouble(
        _ s: RecurrentShape, lengths: RecurrentLengths, inputs: UnsafeBufferPointer<TensorView?>,
        outputs: UnsafeBufferPointer<TensorView?>, scratch: UnsafeMutablePointer<Double>
    ) {
        func input(_ i: Int) -> UnsafePointer<Double>? {
            i < inputs.count ? inputs[i].map { UnsafePointer($0.pointer(as: Double.self)) } : nil
        }
        func output(_ i: Int) -> UnsafeMutablePointer<Double>? {
            i < outputs.count ? outputs[i]?.pointer(as: Double.self) : nil
        }
        guard let x = input(0), let w = input(1), let r = input(2) else { return }
        let y = output(0)
        clearOutput(y, s, lengths: lengths)
        let width = cell.gates * s.hidden
        for d in 0..<directions {
            let rd = r + d * width * s.hidden
            let isGRU = cell.gates == 3
            let direction: RecurrentDirection<Double> = directionLoop(s, d, lengths: lengths)
            direction.run(
                x: x, inputProduct: DirectRecurrentProduct(w + d * width * s.inputSize, n: width, k: s.inputSize),
                hiddenProduct: DirectRecurrentProduct(rd, n: isGRU ? 2 * s.hidden : width, k: s.hidden),
                candidateProduct: isGRU ? DirectRecurrentProduct(rd + 2 * s.hidden * s.hidden, n: s.hidden, k: s.hidden) : nil,
                bias: input(3).map { $0 + d * 2 * width }, peepholes: input(7).map { $0 + d * 3 * s.hidden },
                initialH: input(5), initialC: input(6), y: y, yH: output(1), yC: output(2), scratch: scratch)
        }
    }
}

/// A string-list attribute (a single string counts as a list of one).
private func stringList(_ context: NodeContext, _ name: String) throws -> [String]? {
    switch context.attribute(name) {
    case nil: return nil
    case .strings(let v): return v
    case .string(let v): return [v]
    case let other?: throw context.attributeError("attribute '\(name)' must be strings, found \(other.kindName)")
    }
}
