import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// Einsum.
    package static let einsumOperators: [OperatorRegistration] = [
        OperatorRegistration("Einsum", versions: 12...27) { context in try EinsumKernel(context) },
        OperatorRegistration("Einsum", versions: 28...Int.max) { context in try EinsumKernel(context) },
    ]
}

/// ONNX Einsum: any number of operands, repeated labels (diagonals), ellipsis broadcasting and
/// the implicit output (broadcast axes, then labels used once, alphabetically).
///
/// A float32 product of two operands without diagonals or one-sided sums becomes a batched
/// GEMM: both operands are gathered into `[batch, M, K]` and `[batch, K, N]`, multiplied with
/// the SGEMM driver and scattered to the output's label order. Everything else (and every
/// other type) runs the direct loops, accumulating floats in double and integers with
/// wrapping 64-bit arithmetic.
package struct EinsumKernel: Kernel {
    package let equation: EinsumPlan.Equation
    package let isa: KernelISA

    package static let supportedTypes: [DataType] = [.float, .double, .float16, .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64]

    package init(_ context: NodeContext) throws {
        guard let text = try context.string("equation") else { throw context.attributeError("the equation attribute is required") }
        do {
            equation = try EinsumPlan.Equation(text)
        } catch let error as OnyxError {
            throw context.attributeError(error.message)
        }
        guard context.inputCount == equation.inputs.count else {
            throw OnyxError.invalidModel(
                "Einsum node '\(context.node.name)': equation '\(text)' has \(equation.inputs.count) operands but the node has \(context.inputCount) inputs")
        }
        isa = context.isa
    }

    private func plan(_ inputs: [TensorDescriptor?]) throws -> EinsumPlan {
        let given = inputs.compactMap { $0 }
        guard given.count == inputs.count, let first = given.first else {
            throw OnyxError.invalidModel("Einsum: every operand must be given")
        }
        guard Self.supportedTypes.contains(first.dataType) else {
            throw OnyxError.unsupportedDataType(
                "Einsum does not support \(first.dataType); supported: \(Self.supportedTypes.map(\.onnxName).joined(separator: ", "))")
        }
        for other in given where other.dataType != first.dataType {
            throw OnyxError.unsupportedDataType("Einsum: operands are \(first.dataType) and \(other.dataType); they must match")
        }
        return try EinsumPlan(equation, shapes: given.map(\.shape))
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let p = try plan(inputs.map { $0?.descriptor })
        return [TensorDescriptor(inputs[0]!.dataType, p.outputShape)]
    }

    /// The batched-GEMM form of a two-operand float product: label groups and their extents.
    package struct MatrixForm {
        package var batch: [Int], rows: [Int], depth: [Int], columns: [Int]
        package var batchCount: Int, m: Int, k: Int, n: Int
    }

    private func matrixForm(_ p: EinsumPlan) -> MatrixForm? {
        guard p.operandLabels.count == 2 else { return nil }
        let a = p.operandLabels[0], b = p.operandLabels[1]
        guard Set(a).count == a.count, Set(b).count == b.count else { return nil }
        // Broadcast (stride-0) axes and labels summed within one operand go the direct way.
        for (index, labels) in p.operandLabels.enumerated() {
            for label in labels where p.strides[index][label] == 0 && p.extents[label]! > 1 { return nil }
        }
        let output = Set(p.outputLabels)
        let aSet = Set(a), bSet = Set(b)
        guard a.allSatisfy({ bSet.contains($0) || output.contains($0) }),
              b.allSatisfy({ aSet.contains($0) || output.contains($0) }) else { return nil }
        let batch = a.filter { bSet.contains($0) && output.contains($0) }
        let depth = a.filter { bSet.contains($0) && !output.contains($0) }
        let rows = a.filter { !bSet.contains($0) }
        let columns = b.filter { !aSet.contains($0) }
        guard batch.count + rows.count + columns.count == p.outputLabels.count else { return nil }
        func size(_ labels: [Int]) -> Int { labels.reduce(1) { $0 * p.extents[$1]! } }
        return MatrixForm(batch: batch, rows: rows, depth: depth, columns: columns,
                          batchCount: size(batch), m: size(rows), k: size(depth), n: size(columns))
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard inputs.first??.dataType == .float, let p = try? plan(inputs), let f = matrixForm(p) else { return 0 }
        let floats = f.batchCount * (f.m * f.k + f.k * f.n + f.m * f.n)
            + PackedPanels.floatCount(extent: max(f.m, 1), depth: f.k, width: Gemm.mr(isa))
            + PackedPanels.floatCount(extent: max(f.n, 1), depth: f.k, width: Gemm.nr(isa)) + 64
        return floats * 4 + 64
    }

    package func run(_ context: borrowing KernelContext) throws {
        let views = (0..<context.inputCount).map { context.input($0)! }
        let p = try plan(views.map { TensorDescriptor($0.dataType, $0.shape) })
        let y = context.output(0)
        if views[0].dataType == .float, let f = matrixForm(p), let workspace = context.workspace {
            multiply(p, f, views, y, workspace: workspace.assumingMemoryBound(to: Float.self), pool: context.pool)
            return
        }
        try y.dataType.visitNumeric(Direct(plan: p, operands: views, y: y), operation: "Einsum")
    }

    /// `Einsum.direct`, accumulating floating types in Double and integers in Int64 (wrapping).
    private struct Direct: NumericElementVisitor {
        let plan: EinsumPlan
        let operands: [TensorView], y: TensorView

        func visit<T: FloatingElement>(_: T.Type) {
            Einsum.direct(plan, operands: operands.map { UnsafePointer($0.pointer(as: T.self)) }, output: y.pointer(as: T.self),
                          zero: 0.0, one: 1.0, read: { Double($0) }, write: { T($0) }, add: +, multiply: *)
        }

        func visit<T: IntegerElement>(_: T.Type) {
            Einsum.direct(plan, operands: operands.map { UnsafePointer($0.pointer(as: T.self)) }, output: y.pointer(as: T.self),
                          zero: Int64(0), one: Int64(1), read: { Int64(truncatingIfNeeded: $0) },
                          write: { T(truncatingIfNeeded: $0) }, add: &+, multiply: &*)
        }
    }

    private func multiply(
        _ p: EinsumPlan, _ f: MatrixForm, _ views: [TensorView], _ y: TensorView,
        workspace: UnsafeMutablePointer<Float>, pool: ComputePool
    ) {
        let a = workspace, b = a + f.batchCount * f.m * f.k, c = b + f.batchCount * f.k * f.n
        let strips = c + f.batchCount * f.m * f.n
        let panels = strips + PackedPanels.floatCount(extent: max(f.m, 1), depth: f.k, width: Gemm.mr(isa))
        func gather(_ operand: Int, _ labels: [Int], into destination: UnsafeMutablePointer<Float>) {
            Einsum.gather(UnsafePointer(views[operand].pointer(as: Float.self)),
                          strides: labels.map { p.strides[operand][$0]! }, shape: labels.map { p.extents[$0]! }, into: destination)
        }
        gather(0, f.batch + f.rows + f.depth, into: a)
        gather(1, f.batch + f.depth + f.columns, into: b)
        let (mr, nr) = (Gemm.mr(isa), Gemm.nr(isa))
        for batch in 0..<f.batchCount {
            let out = c + batch * f.m * f.n
            guard f.k > 0 else {
                out.update(repeating: 0, count: f.m * f.n)
                continue
            }
            Gemm.packB(b + batch * f.k * f.n, k: f.k, n: f.n, ld: f.n, transposed: false, nr: nr, into: panels)
            let packedB = PackedPanels(extent: f.n, depth: f.k, width: nr, base: UnsafePointer(panels), owner: nil)
            if f.m == 1 {
                Gemm.multiplyRow(isa: isa, n: f.n, k: f.k, a: a + batch * f.k, b: packedB, c: out,
                                 accumulate: false, epilogue: .none, pool: pool)
                continue
            }
            Gemm.packA(a + batch * f.m * f.k, m: f.m, k: f.k, ld: f.k, transposed: false, mr: mr, isa: isa, into: strips)
            let packedA = PackedPanels(extent: f.m, depth: f.k, width: mr, base: UnsafePointer(strips), owner: nil)
            Gemm.multiply(isa: isa, m: f.m, n: f.n, k: f.k, a: packedA, b: packedB, c: out, ldc: f.n,
                          accumulate: false, epilogue: .none, pool: pool)
        }
        // C is laid out [batch, rows, columns]; read it in the output's label order.
        var productStrides: [Int: Int] = [:]
        var stride = 1
        for label in (f.batch + f.rows + f.columns).reversed() {
            productStrides[label] = stride
            stride *= p.extents[label]!
        }
        Einsum.gather(UnsafePointer(c), strides: p.outputLabels.map { productStrides[$0] ?? 0 },
                      shape: p.outputShape, into: y.pointer(as: Float.self))
    }
}
