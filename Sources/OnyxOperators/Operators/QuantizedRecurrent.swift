import OnyxCore
import OnyxIR
import OnyxKernels

/// com.microsoft DynamicQuantizeLSTM, which onnxruntime.quantization.quantize_dynamic writes for an
/// LSTM: ONNX's LSTM (directions, `sequence_lens`, initial states, peepholes, `activations`,
/// `clip`, `input_forget`; no `layout`) with 8-bit weights W `[directions, input, 4·hidden]` and
/// R `[directions, hidden, 4·hidden]` (ONNX's W and R transposed), each with a scale and zero point
/// per direction (`[directions]`) or per column (`[directions, 4·hidden]`).
///
/// As onnxruntime computes it, every product's float operand (X for the whole sequence, then the
/// hidden state at each step) is quantized to uint8 as DynamicQuantizeLinear does, multiplied by
/// the weights in integers, and scaled back by `a_scale · w_scale`; the gates are float. The
/// weights are packed at load, so they must be constants (as the quantizer writes them). The
/// gate activations are Onyx's own, so results agree with onnxruntime's to float rounding, which a
/// hidden state's requantization can carry one quantization step further.
package struct DynamicQuantizeLSTMKernel: Kernel {
    /// The LSTM's attributes.
    let recurrence: RecurrentKernel
    let inputSize: Int
    let hidden: Int
    /// Per direction: W and R packed, and their per-column scales (4·hidden each).
    let weights: [(input: PackedIntegerMatrix, hidden: PackedIntegerMatrix)]
    let inputScales: [Float]
    let hiddenScales: [Float]
    private static let op = "DynamicQuantizeLSTM"

    init(_ context: NodeContext) throws {
        let op = Self.op
        recurrence = try RecurrentKernel(
            context, cell: .lstm(inputForget: try context.int("input_forget", default: 0) != 0), inputLimit: 12)
        guard context.inputCount == 12 else {
            throw OnyxError.invalidModel("\(op) takes 12 inputs (X, W, R, B, sequence_lens, initial_h, initial_c, P, W_scale, W_zero_point, R_scale, R_zero_point), got \(context.inputCount)")
        }
        let directions = recurrence.directions
        guard let w = context.constantInput(1), let r = context.constantInput(2) else {
            throw OnyxError.invalidModel("\(op): W and R must be constants (initializers)")
        }
        for (t, name) in [(w, "W"), (r, "R")] where ![.int8, .uint8].contains(t.dataType) || t.rank != 3 {
            throw OnyxError.unsupportedDataType("\(op): \(name) must be a 3-D int8 or uint8 tensor, got \(t.dataType)\(shapeText(t.shape))")
        }
        let hidden = r.shape[1], width = 4 * r.shape[1]
        if let size = recurrence.hiddenSize, size != hidden {
            throw OnyxError.shapeMismatch("\(op): hidden_size is \(size) but R has shape \(shapeText(r.shape))")
        }
        guard r.shape == [directions, hidden, width] else {
            throw OnyxError.shapeMismatch("\(op): R must have shape [\(directions), \(hidden), \(width)], got \(shapeText(r.shape))")
        }
        guard w.shape[0] == directions, w.shape[2] == width else {
            throw OnyxError.shapeMismatch("\(op): W must have shape [\(directions), input_size, \(width)], got \(shapeText(w.shape))")
        }
        inputSize = w.shape[1]
        self.hidden = hidden
        /// A weight's scales or zero points: `[directions]` or `[directions, 4·hidden]`, as one value per column.
        func perColumn(_ index: Int, _ name: String, _ type: DataType) throws -> [Float] {
            guard let t = context.constantInput(index) else { throw OnyxError.invalidModel("\(op): \(name) must be a constant (an initializer)") }
            guard t.dataType == type else { throw OnyxError.unsupportedDataType("\(op): \(name) must be \(type), got \(t.dataType)") }
            guard t.shape == [directions] || t.shape == [directions, width] else {
                throw OnyxError.shapeMismatch("\(op): \(name) of shape \(shapeText(t.shape)) must be [\(directions)] or \(shapeText([directions, width]))")
            }
            let values: [Float] = switch type {
            case .float: try t.scalars(as: Float.self)
            case .int8: try t.scalars(as: Int8.self).map(Float.init)
            default: try t.scalars(as: UInt8.self).map(Float.init)
            }
            return t.rank == 1 ? values.flatMap { Array(repeating: $0, count: width) } : values
        }
        let wScale = try perColumn(8, "W_scale", .float), wZero = try perColumn(9, "W_zero_point", w.dataType)
        let rScale = try perColumn(10, "R_scale", .float), rZero = try perColumn(11, "R_zero_point", r.dataType)
        for (name, scales) in [("W_scale", wScale), ("R_scale", rScale)] where !scales.allSatisfy({ $0.isFinite && $0 > 0 }) {
            throw OnyxError.invalidModel("\(op): \(name) must be finite and > 0")
        }
        inputScales = wScale
        hiddenScales = rScale
        let isa = context.isa
        func pack(_ t: Tensor, _ d: Int, k: Int, zeros: [Float]) -> PackedIntegerMatrix {
            PackedIntegerMatrix.prepack(
                UnsafeRawPointer(t.baseAddress) + d * k * width, signed: t.dataType == .int8, k: k, n: width, ld: width, isa: isa
            ) { Int32(zeros[d * width + $0]) }
        }
        weights = (0..<directions).map { d in
            (pack(w, d, k: w.shape[1], zeros: wZero), pack(r, d, k: hidden, zeros: rZero))
        }
        withExtendedLifetime((w, r)) {}
    }

    private func shape(_ inputs: [PlannedInput?]) throws -> RecurrentShape {
        let op = Self.op
        let x = try requiredInput(inputs, 0, op: op, name: "X")
        try requireType(x, [.float], op: op, name: "X")
        guard x.shape.count == 3, x.shape[2] == inputSize else {
            throw OnyxError.shapeMismatch("\(op): X must have shape [seq_length, batch, \(inputSize)], got \(shapeText(x.shape))")
        }
        let directions = recurrence.directions
        let s = RecurrentShape(sequenceLength: x.shape[0], batch: x.shape[1], inputSize: inputSize, hidden: hidden,
                               directions: directions, batchFirst: false)
        let expected: [(Int, String, DataType, [Int])] = [
            (3, "B", .float, [directions, 8 * hidden]), (4, "sequence_lens", .int32, [s.batch]),
            (5, "initial_h", .float, [directions, s.batch, hidden]), (6, "initial_c", .float, [directions, s.batch, hidden]),
            (7, "P", .float, [directions, 3 * hidden]),
        ]
        for (index, name, type, shape) in expected {
            if let input = optionalInput(inputs, index), input.dataType != type || input.shape != shape {
                throw OnyxError.shapeMismatch("\(op): \(name) must be \(type)\(shapeText(shape)), got \(input.descriptor)")
            }
        }
        return s
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let s = try shape(inputs)
        let state = TensorDescriptor(.float, [s.directions, s.batch, hidden])
        return [TensorDescriptor(.float, [s.sequenceLength, s.directions, s.batch, hidden]), state, state]
    }

    /// Bytes of scratch: the direction's floats, the quantized operand, the column scales, the integer GEMM's.
    private func scratch(_ s: RecurrentShape) -> (floats: Int, quantized: Int, scales: Int, gemm: Int) {
        let rows = s.sequenceLength * s.batch
        let gemm = max(IntegerGemm.workspaceByteCount(m: max(rows, 1), k: inputSize, isa: recurrence.isa),
                       IntegerGemm.workspaceByteCount(m: max(s.batch, 1), k: hidden, isa: recurrence.isa))
        func rounded(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }
        return (rounded(RecurrentDirection<Float>.scratchCount(s, cell: recurrence.cell) * 4),
                rounded(max(rows * inputSize, s.batch * hidden, 1)), rounded(4 * hidden * 4), rounded(gemm))
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let x = inputs[0], x.rank == 3 else { return 0 }
        let s = RecurrentShape(sequenceLength: x.shape[0], batch: x.shape[1], inputSize: inputSize, hidden: hidden,
                               directions: recurrence.directions, batchFirst: false)
        let parts = scratch(s)
        return parts.floats + parts.quantized + parts.scales + parts.gemm + 64
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!
        let s = RecurrentShape(sequenceLength: x.shape[0], batch: x.shape[1], inputSize: inputSize, hidden: hidden,
                               directions: recurrence.directions, batchFirst: false)
        guard let workspace = context.workspace else { throw OnyxError.internalError("\(Self.op): no workspace") }
        let lengths = try recurrence.lengths(context, s)
        func input(_ i: Int) -> UnsafePointer<Float>? { context.input(i).map { UnsafePointer($0.pointer(as: Float.self)) } }
        let (bias, initialH, initialC, peepholes) = (input(3), input(5), input(6), input(7))
        let xs = UnsafePointer(x.pointer(as: Float.self))
        let (y, yH, yC) = (context.optionalOutput(0)?.pointer(as: Float.self), context.optionalOutput(1)?.pointer(as: Float.self),
                           context.optionalOutput(2)?.pointer(as: Float.self))
        let pool = context.pool
        recurrence.clearOutput(y, s, lengths: lengths)
        let parts = scratch(s)
        let floats = workspace.assumingMemoryBound(to: Float.self)
        let quantized = (workspace + parts.floats).assumingMemoryBound(to: UInt8.self)
        let columnScale = (workspace + parts.floats + parts.quantized).assumingMemoryBound(to: Float.self)
        let gemm = workspace + parts.floats + parts.quantized + parts.scales
        let width = 4 * hidden
        inputScales.withUnsafeBufferPointer { inputScales in
            hiddenScales.withUnsafeBufferPointer { hiddenScales in
                for d in 0..<s.directions {
                    func product(_ matrix: PackedIntegerMatrix, _ scales: UnsafeBufferPointer<Float>) -> QuantizedRecurrentProduct {
                        QuantizedRecurrentProduct(
                            matrix: matrix.borrowed, scales: scales.baseAddress! + d * width, quantized: quantized,
                            columnScale: columnScale, gemm: gemm, isa: recurrence.isa, pool: pool)
                    }
                    let direction: RecurrentDirection<Float> = recurrence.directionLoop(s, d, lengths: lengths)
                    direction.run(
                        x: xs, inputProduct: product(weights[d].input, inputScales),
                        hiddenProduct: product(weights[d].hidden, hiddenScales), candidateProduct: nil,
                        bias: bias.map { $0 + d * 2 * width }, peepholes: peepholes.map { $0 + d * 3 * hidden },
                        initialH: initialH, initialC: initialC, y: y, yH: yH, yC: yC, scratch: floats)
                }
            }
        }
        withExtendedLifetime(weights) {}
    }
}

/// `c = a · W` with W 8-bit and packed, a float: a quantized to uint8 as DynamicQuantizeLinear
/// does (one scale and zero point for the whole product), the integer product scaled back per
/// column by `a_scale · w_scale[j]` (onnxruntime's quantized recurrent GEMM).
struct QuantizedRecurrentProduct: RecurrentProduct {
    let matrix: PackedIntegerMatrix
    /// W's scale per column.
    let scales: UnsafePointer<Float>
    /// Scratch: the quantized operand (rows · k bytes), the column scales (n floats), the GEMM's.
    let quantized: UnsafeMutablePointer<UInt8>
    let columnScale: UnsafeMutablePointer<Float>
    let gemm: UnsafeMutableRawPointer
    let isa: KernelISA
    let pool: ComputePool

    func multiply(_ a: UnsafePointer<Float>, rows: Int, into c: UnsafeMutablePointer<Float>) {
        let (k, n) = (matrix.k, matrix.n)
        let (scale, zero) = IntegerGemm.quantizeDynamically(a, count: rows * k, into: quantized, isa: isa)
        for j in 0..<n { columnScale[j] = scale * scales[j] }
        IntegerGemm.multiply(
            m: rows, a: UnsafeRawPointer(quantized), signed: false, lda: k, zeroPoint: { _ in Int32(zero) }, b: matrix,
            output: .float(c, ldc: n, scale: columnScale, bias: nil, activation: nil), workspace: gemm, pool: pool)
    }
}
