import OnyxCore
import OnyxKernels

extension OperatorRegistry {
    /// The integer matrix products on the integer GEMM kernels: MatMulInteger, QLinearMatMul, and
    /// com.microsoft's MatMulIntegerToFloat and DynamicQuantizeMatMul (float outputs), which the
    /// optimizer also makes of onnxruntime.quantization.quantize_dynamic's node chains
    /// (IntegerMatMulFusion).
    package static let integerMatMulOperators: [OperatorRegistration] = [
        OperatorRegistration("MatMulInteger", versions: 10...Int.max) { context in
            try IntegerMatMulKernel(context, quantizedOutput: false)
        },
        // 21 allows float16 scales.
        OperatorRegistration("QLinearMatMul", versions: 10...20) { context in try IntegerMatMulKernel(context, quantizedOutput: true) },
        OperatorRegistration("QLinearMatMul", versions: 21...Int.max) { context in
            try IntegerMatMulKernel(context, quantizedOutput: true)
        },
        OperatorRegistration("MatMulIntegerToFloat", domain: "com.microsoft", versions: 1...Int.max) { context in
            try FloatIntegerMatMulKernel(context, dynamic: false)
        },
        OperatorRegistration("DynamicQuantizeMatMul", domain: "com.microsoft", versions: 1...Int.max) { context in
            try FloatIntegerMatMulKernel(context, dynamic: true)
        },
    ]
}

private let eightBit: [DataType] = [.int8, .uint8]

/// Checks a zero point of B (K × N) against B: its type, and one value or one per column.
private func checkColumnZeroPoint(_ zero: PlannedInput, b: PlannedInput, op: String) throws {
    guard zero.dataType == b.dataType else {
        throw OnyxError.unsupportedDataType("\(op): b_zero_point is \(zero.dataType) but B is \(b.dataType)")
    }
    guard zero.elementCount == 1 || zero.shape == [b.shape[b.shape.count - 1]] else {
        throw OnyxError.shapeMismatch(
            "\(op): b_zero_point of shape \(shapeText(zero.shape)) must be a scalar or [\(b.shape[b.shape.count - 1])], one per column of B \(shapeText(b.shape))")
    }
}

/// A constant 2-D B and its constant (or absent) zero point, packed for `context.isa`; nil when
/// either is only known in a run. A zero point that does not fit B is an error here, at load.
private func prepackConstantB(_ context: NodeContext, b bIndex: Int, zeroPoint zeroIndex: Int, op: String) throws
    -> PackedIntegerMatrix?
{
    guard let b = context.constantInput(bIndex), b.rank == 2, eightBit.contains(b.dataType) else { return nil }
    let (k, n) = (b.shape[0], b.shape[1])
    var zeros: [Int32] = []
    if context.hasInput(zeroIndex) {
        guard let zero = context.constantInput(zeroIndex) else { return nil }
        let planned = { (t: Tensor) in PlannedInput(descriptor: TensorDescriptor(t.dataType, t.shape), constant: t) }
        try checkColumnZeroPoint(planned(zero), b: planned(b), op: op)
        zeros = zero.dataType == .int8 ? try zero.scalars(as: Int8.self).map(Int32.init) : try zero.scalars(as: UInt8.self).map(Int32.init)
    }
    let packed = PackedIntegerMatrix.prepack(
        UnsafeRawPointer(b.baseAddress), signed: b.dataType == .int8, k: k, n: n, ld: n, isa: context.isa
    ) { j in zeros.isEmpty ? 0 : zeros[zeros.count == 1 ? 0 : j] }
    withExtendedLifetime(b) {}
    return packed
}

private func roundedUp(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }

// MARK: - MatMulInteger, QLinearMatMul

/// MatMulInteger (int32 output) and QLinearMatMul (requantized int8/uint8 output): NumPy
/// `matmul` of int8/uint8 operands with zero points subtracted, exact in wrapping Int32.
///
/// Zero points (and QLinearMatMul's scales) are per tensor, per row of A / column of B, or per
/// row / column of each batch matrix. A constant 2-D B is packed with its zero point at load.
package struct IntegerMatMulKernel: Kernel {
    package let quantizedOutput: Bool
    package let isa: KernelISA
    package let packedB: PackedIntegerMatrix?

    package init(_ context: NodeContext, quantizedOutput: Bool) throws {
        self.quantizedOutput = quantizedOutput
        isa = context.isa
        let op = quantizedOutput ? "QLinearMatMul" : "MatMulInteger"
        let (aIndex, aZeroIndex) = (0, 2)
        if let a = context.constantInput(aIndex), let zero = context.constantInput(aZeroIndex), zero.dataType != a.dataType {
            throw OnyxError.unsupportedDataType("\(op): a_zero_point is \(zero.dataType) but A is \(a.dataType)")
        }
        packedB = try prepackConstantB(context, b: quantizedOutput ? 3 : 1, zeroPoint: quantizedOutput ? 5 : 3, op: op)
    }

    private var op: String { quantizedOutput ? "QLinearMatMul" : "MatMulInteger" }
    /// Input indices of A, B and their zero points and scales.
    private var aIndex: Int { 0 }
    private var bIndex: Int { quantizedOutput ? 3 : 1 }
    private var aZeroIndex: Int { 2 }
    private var bZeroIndex: Int { quantizedOutput ? 5 : 3 }

    private struct Layouts {
        var geometry: IntegerMatMulGeometry
        var aZero: MatrixParameterLayout?
        var bZero: MatrixParameterLayout?
        var aScale: MatrixParameterLayout?
        var bScale: MatrixParameterLayout?
        /// B is one matrix for every batch and A's batches are the output's: the product is one of
        /// batchCount · M rows.
        var merged: Bool { geometry.bBatchCount == 1 && geometry.aBatchCount == geometry.batchCount }
        var productRows: Int { merged ? geometry.batchCount * geometry.m : geometry.m }
    }

    private func layouts(_ shape: (Int) -> [Int]?) throws -> Layouts {
        guard let a = shape(aIndex), let b = shape(bIndex) else { throw OnyxError.invalidModel("\(op): missing A or B") }
        let geometry = try IntegerMatMulGeometry(a, b, op: op)
        func parameter(_ index: Int, _ name: String, rows: Bool) throws -> MatrixParameterLayout? {
            try shape(index).map {
                try MatrixParameterLayout(op: op, name: name, operand: rows ? a : b, parameter: $0, rows: rows)
            }
        }
        return Layouts(
            geometry: geometry,
            aZero: try parameter(aZeroIndex, "a_zero_point", rows: true),
            bZero: try parameter(bZeroIndex, "b_zero_point", rows: false),
            aScale: quantizedOutput ? try parameter(1, "a_scale", rows: true) : nil,
            bScale: quantizedOutput ? try parameter(4, "b_scale", rows: false) : nil)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let a = try requiredInput(inputs, aIndex, op: op, name: "A")
        let b = try requiredInput(inputs, bIndex, op: op, name: "B")
        try requireType(a, eightBit, op: op, name: "A")
        try requireType(b, eightBit, op: op, name: "B")
        if let zero = optionalInput(inputs, aZeroIndex), zero.dataType != a.dataType {
            throw OnyxError.unsupportedDataType("\(op): a_zero_point is \(zero.dataType) but A is \(a.dataType)")
        }
        if let zero = optionalInput(inputs, bZeroIndex), zero.dataType != b.dataType {
            throw OnyxError.unsupportedDataType("\(op): b_zero_point is \(zero.dataType) but B is \(b.dataType)")
        }
        let layouts = try layouts { optionalInput(inputs, $0)?.shape }
        guard quantizedOutput else {
            guard (2...4).contains(inputs.count) else { throw OnyxError.invalidModel("\(op) takes 2 to 4 inputs, got \(inputs.count)") }
            return [TensorDescriptor(.int32, layouts.geometry.outputShape)]
        }
        guard inputs.count == 8 else { throw OnyxError.invalidModel("\(op) takes 8 inputs, got \(inputs.count)") }
        let aScale = try requiredInput(inputs, 1, op: op, name: "a_scale")
        let bScale = try requiredInput(inputs, 4, op: op, name: "b_scale")
        let yScale = try requiredInput(inputs, 6, op: op, name: "y_scale")
        try requireType(aScale, [.float, .float16], op: op, name: "a_scale")
        guard bScale.dataType == aScale.dataType, yScale.dataType == aScale.dataType else {
            throw OnyxError.unsupportedDataType(
                "\(op): a_scale, b_scale and y_scale must have one type, got \(aScale.dataType), \(bScale.dataType), \(yScale.dataType)")
        }
        guard yScale.elementCount == 1 else {
            throw OnyxError.shapeMismatch("\(op): y_scale must be a scalar, got shape \(shapeText(yScale.shape))")
        }
        var outputType = a.dataType
        if let yZero = optionalInput(inputs, 7) {
            try requireType(yZero, eightBit, op: op, name: "y_zero_point")
            guard yZero.elementCount == 1 else {
                throw OnyxError.shapeMismatch("\(op): y_zero_point must be a scalar, got shape \(shapeText(yZero.shape))")
            }
            outputType = yZero.dataType
        }
        return [TensorDescriptor(outputType, layouts.geometry.outputShape)]
    }

    /// Scratch: the integer GEMM's (A packed, row terms), B packed unless it was at load, and
    /// (QLinearMatMul) the int32 product before requantizing.
    private func scratch(_ l: Layouts) -> (gemm: Int, b: Int, accumulator: Int) {
        let g = l.geometry
        return (roundedUp(IntegerGemm.workspaceByteCount(m: l.productRows, k: g.k, isa: isa)),
                packedB == nil ? roundedUp(PackedIntegerMatrix.byteCount(k: g.k, n: g.n, isa: isa)) : 0,
                quantizedOutput ? g.batchCount * g.m * g.n * 4 : 0)
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let l = try? layouts({ $0 < inputs.count ? inputs[$0]?.shape : nil }) else { return 0 }
        let parts = scratch(l)
        return max(64, parts.gemm + parts.b + parts.accumulator)
    }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(aIndex)!, b = context.input(bIndex)!, y = context.output(0)
        let l = try layouts { context.input($0)?.shape }
        let g = l.geometry
        guard y.elementCount > 0 else { return }
        guard let workspace = context.workspace else { throw OnyxError.internalError("\(op): no workspace") }
        let parts = scratch(l)
        let bScratch = workspace + parts.gemm
        let accumulator = (bScratch + parts.b).assumingMemoryBound(to: Int32.self)
        let aZero = context.input(aZeroIndex), bZero = context.input(bZeroIndex)
        let aSigned = a.dataType == .int8, bSigned = b.dataType == .int8
        let aBytes = UnsafeRawPointer(a.data), bBytes = UnsafeRawPointer(b.data)

        var packedFor: Int?
        func packed(_ ib: Int) -> PackedIntegerMatrix {
            if let packedB { return packedB.borrowed }
            let layout = l.bZero
            return PackedIntegerMatrix(bBytes + ib * g.k * g.n, signed: bSigned, k: g.k, n: g.n, ld: g.n, isa: isa,
                                       into: bScratch) { j in
                bZero.map { QuantizationLoops.int32($0, at: layout!.index(batch: ib, line: j)) } ?? 0
            }
        }
        func multiply(rows: Int, ia: Int, batch: Int, b: PackedIntegerMatrix) {
            let layout = l.aZero, m = g.m
            let target = quantizedOutput ? accumulator + batch * m * g.n : y.pointer(as: Int32.self) + batch * m * g.n
            IntegerGemm.multiply(
                m: rows, a: aBytes + ia * m * g.k, signed: aSigned, lda: g.k,
                zeroPoint: { i in
                    aZero.map { QuantizationLoops.int32($0, at: layout!.index(batch: ia + i / m, line: i % m)) } ?? 0
                },
                b: b, output: .int32(target, ldc: g.n), workspace: workspace, pool: context.pool)
        }

        if l.merged {
            multiply(rows: l.productRows, ia: 0, batch: 0, b: packed(0))
        } else {
            var b = packedB?.borrowed
            for batch in 0..<g.batchCount {
                let (ia, ib) = g.operandBatches(batch)
                if packedB == nil && packedFor != ib {
                    b = packed(ib)
                    packedFor = ib
                }
                multiply(rows: g.m, ia: ia, batch: batch, b: b!)
            }
        }
        if quantizedOutput {
            for batch in 0..<g.batchCount {
                let (ia, ib) = g.operandBatches(batch)
                requantize(context, l, accumulator + batch * g.m * g.n, batch: batch, ia: ia, ib: ib)
            }
        }
        withExtendedLifetime(packedB) {}
    }

    /// `y = saturate(round_half_even(acc · a_scale · b_scale / y_scale) + y_zero_point)`, the
    /// scale product computed in the scales' type.
    private func requantize(
        _ context: borrowing KernelContext, _ l: Layouts, _ accumulator: UnsafeMutablePointer<Int32>, batch: Int, ia: Int, ib: Int
    ) {
        let g = l.geometry
        let aScale = context.input(1)!, bScale = context.input(4)!, yScale = context.input(6)!
        let y = context.output(0)
        let yZero = context.input(7).map { QuantizationLoops.double($0, at: 0) } ?? 0
        let ys = QuantizationLoops.double(yScale, at: 0)
        let half = aScale.dataType == .float16
        let low: Double = y.dataType == .int8 ? -128 : 0, high: Double = y.dataType == .int8 ? 127 : 255
        for row in 0..<g.m {
            let sa = QuantizationLoops.double(aScale, at: l.aScale!.index(batch: ia, line: row))
            for column in 0..<g.n {
                let sb = QuantizationLoops.double(bScale, at: l.bScale!.index(batch: ib, line: column))
                let multiplier = half
                    ? Double(Float16(sa) * Float16(sb) / Float16(ys))
                    : Double(Float(sa) * Float(sb) / Float(ys))
                let v = Double(accumulator[row * g.n + column]) * multiplier
                let q = v.isNaN ? yZero : v.rounded(.toNearestOrEven) + yZero
                let clamped = q > low ? (q < high ? q : high) : low
                let index = (batch * g.m + row) * g.n + column
                if y.dataType == .int8 {
                    y.pointer(as: Int8.self)[index] = Int8(clamped)
                } else {
                    y.pointer(as: UInt8.self)[index] = UInt8(clamped)
                }
            }
        }
    }
}

// MARK: - MatMulIntegerToFloat, DynamicQuantizeMatMul (com.microsoft)

/// com.microsoft MatMulIntegerToFloat, `Y = (A − a_zero_point)(B − b_zero_point) · a_scale ·
/// b_scale + bias`, and DynamicQuantizeMatMul, the same with float A quantized to uint8 first as
/// DynamicQuantizeLinear does. B is 2-D; b_scale and b_zero_point are per tensor or per column;
/// a_scale and a_zero_point per tensor.
///
/// Rounded as the ONNX nodes quantize_dynamic writes round: the scale product in float, then
/// `float(C) · scale` and `+ bias` each rounded (no fused multiply-add), so the fused node and the
/// chain it replaces agree exactly. A fused activation (`onyx.activation`, see ActivationFusion) follows.
package struct FloatIntegerMatMulKernel: Kernel {
    package let dynamic: Bool
    package let isa: KernelISA
    package let packedB: PackedIntegerMatrix?
    package let activation: FusedActivation?

    private var op: String { dynamic ? "DynamicQuantizeMatMul" : "MatMulIntegerToFloat" }
    private var bScaleIndex: Int { dynamic ? 2 : 3 }
    private var bZeroIndex: Int { dynamic ? 3 : 5 }
    private var biasIndex: Int { dynamic ? 4 : 6 }

    package init(_ context: NodeContext, dynamic: Bool) throws {
        self.dynamic = dynamic
        isa = context.isa
        let op = dynamic ? "DynamicQuantizeMatMul" : "MatMulIntegerToFloat"
        packedB = try prepackConstantB(context, b: 1, zeroPoint: dynamic ? 3 : 5, op: op)
        if let b = context.constantInput(1), b.rank == 2, let scale = context.constantInput(dynamic ? 2 : 3),
           scale.dataType != .float || (scale.elementCount != 1 && scale.shape != [b.shape[1]]) {
            throw OnyxError.shapeMismatch(
                "\(op): b_scale \(scale.dataType)\(shapeText(scale.shape)) must be a float scalar or [\(b.shape[1])], one per column of B")
        }
        activation = try context.fusedActivation()
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count <= (dynamic ? 5 : 7) else {
            throw OnyxError.invalidModel("\(op) takes at most \(dynamic ? 5 : 7) inputs, got \(inputs.count)")
        }
        let a = try requiredInput(inputs, 0, op: op, name: "A")
        let b = try requiredInput(inputs, 1, op: op, name: "B")
        try requireType(a, dynamic ? [.float] : eightBit, op: op, name: "A")
        try requireType(b, eightBit, op: op, name: "B")
        guard a.shape.count >= 1, b.shape.count == 2, a.shape[a.shape.count - 1] == b.shape[0] else {
            throw OnyxError.shapeMismatch("\(op): A \(shapeText(a.shape)) and a 2-D B \(shapeText(b.shape)) must agree on K")
        }
        let n = b.shape[1]
        let bScale = try requiredInput(inputs, bScaleIndex, op: op, name: "b_scale")
        try requireType(bScale, [.float], op: op, name: "b_scale")
        guard bScale.elementCount == 1 || bScale.shape == [n] else {
            throw OnyxError.shapeMismatch("\(op): b_scale of shape \(shapeText(bScale.shape)) must be a scalar or [\(n)]")
        }
        if let zero = optionalInput(inputs, bZeroIndex) { try checkColumnZeroPoint(zero, b: b, op: op) }
        if !dynamic {
            let aScale = try requiredInput(inputs, 2, op: op, name: "a_scale")
            try requireType(aScale, [.float], op: op, name: "a_scale")
            guard aScale.elementCount == 1 else {
                throw OnyxError.shapeMismatch("\(op): a_scale must be a scalar (per tensor), got shape \(shapeText(aScale.shape))")
            }
            if let zero = optionalInput(inputs, 4) {
                guard zero.dataType == a.dataType, zero.elementCount == 1 else {
                    throw OnyxError.shapeMismatch("\(op): a_zero_point must be a scalar \(a.dataType), got \(zero.descriptor)")
                }
            }
        }
        if let bias = optionalInput(inputs, biasIndex) {
            guard bias.dataType == .float, bias.shape == [n] else {
                throw OnyxError.shapeMismatch("\(op): bias must be float of shape [\(n)], got \(bias.descriptor)")
            }
        }
        return [TensorDescriptor(.float, Array(a.shape.dropLast()) + [n])]
    }

    /// Scratch: A quantized (DynamicQuantizeMatMul), the integer GEMM's, the per-column scales,
    /// and B packed unless it was at load.
    private func scratch(rows: Int, k: Int, n: Int) -> (quantized: Int, gemm: Int, scales: Int, b: Int) {
        (dynamic ? roundedUp(rows * k) : 0, roundedUp(IntegerGemm.workspaceByteCount(m: rows, k: k, isa: isa)),
         roundedUp(n * 4), packedB == nil ? roundedUp(PackedIntegerMatrix.byteCount(k: k, n: n, isa: isa)) : 0)
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let a = inputs[0], let b = inputs[1], b.rank == 2, let k = a.shape.last else { return 0 }
        let parts = scratch(rows: a.elementCount / max(k, 1), k: k, n: b.shape[1])
        return parts.quantized + parts.gemm + parts.scales + parts.b
    }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, b = context.input(1)!, y = context.output(0)
        let (k, n) = (b.shape[0], b.shape[1])
        let rows = k == 0 ? y.elementCount / max(n, 1) : a.elementCount / k
        guard y.elementCount > 0 else { return }
        guard let workspace = context.workspace else { throw OnyxError.internalError("\(op): no workspace") }
        let parts = scratch(rows: rows, k: k, n: n)
        let gemmScratch = workspace + parts.quantized
        let scales = (gemmScratch + parts.gemm).assumingMemoryBound(to: Float.self)
        let bScratch = UnsafeMutableRawPointer(scales) + parts.scales

        let aBytes: UnsafeRawPointer, aScale: Float, aZero: Int32
        if dynamic {
            let quantized = workspace.assumingMemoryBound(to: UInt8.self)
            let (scale, zero) = IntegerGemm.quantizeDynamically(
                UnsafePointer(a.pointer(as: Float.self)), count: rows * k, into: quantized, isa: isa)
            (aBytes, aScale, aZero) = (UnsafeRawPointer(quantized), scale, Int32(zero))
        } else {
            aBytes = UnsafeRawPointer(a.data)
            aScale = context.input(2)!.pointer(as: Float.self).pointee
            aZero = context.input(4).map { QuantizationLoops.int32($0, at: 0) } ?? 0
        }
        let bScale = context.input(bScaleIndex)!
        let bScales = bScale.pointer(as: Float.self), perColumn = bScale.elementCount != 1
        for j in 0..<n { scales[j] = aScale * bScales[perColumn ? j : 0] }

        let packed: PackedIntegerMatrix
        if let packedB {
            packed = packedB.borrowed
        } else {
            let bZero = context.input(bZeroIndex)
            packed = PackedIntegerMatrix(UnsafeRawPointer(b.data), signed: b.dataType == .int8, k: k, n: n, ld: n, isa: isa,
                                         into: bScratch) { j in
                bZero.map { QuantizationLoops.int32($0, at: $0.elementCount == 1 ? 0 : j) } ?? 0
            }
        }
        let bias = context.input(biasIndex).map { UnsafePointer($0.pointer(as: Float.self)) }
        IntegerGemm.multiply(
            m: rows, a: aBytes, signed: !dynamic && a.dataType == .int8, lda: k, zeroPoint: { _ in aZero }, b: packed,
            output: .float(y.pointer(as: Float.self), ldc: n, scale: scales, bias: bias, activation: activation),
            workspace: gemmScratch, pool: context.pool)
        withExtendedLifetime(packedB) {}
    }
}
