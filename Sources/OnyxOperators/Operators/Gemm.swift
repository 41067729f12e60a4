import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    package static let gemmOperators: [OperatorRegistration] = [
        OperatorRegistration("Gemm") { context in try Float32Staged(context) { try GemmKernel($0) } },
        OperatorRegistration("MatMul") { context in try Float32Staged(context) { try MatMulKernel($0) } },
    ]
}

extension NodeContext {
    /// The activation the optimizer fused into this node (`onyx.activation`, see ActivationFusion).
    package func fusedActivation() throws -> FusedActivation? {
        switch try string("onyx.activation") {
        case nil: return nil
        case "Relu": return .relu
        case "Clip":
            return .clip(min: try float("onyx.activation_min", default: -.infinity),
                         max: try float("onyx.activation_max", default: .infinity))
        case "Sigmoid": return .sigmoid
        case "SiLU": return .silu
        case "HardSigmoid":
            return .hardSigmoid(alpha: try float("onyx.activation_alpha", default: 0.2),
                                beta: try float("onyx.activation_beta", default: 0.5))
        case "HardSwish": return .hardSwish
        case "LeakyRelu": return .leakyRelu(alpha: try float("onyx.activation_alpha", default: 0.01))
        case "Gelu": return .gelu
        case "GeluTanh": return .geluTanh
        case let other?: throw attributeError("unknown fused activation '\(other)'")
        }
    }
}

/// ONNX Gemm: `Y = alpha · op(A) · op(B) + beta · C`, with `C` broadcast to M × N.
package struct GemmKernel: Kernel {
    package let alpha: Float
    package let beta: Float
    package let transA: Bool
    package let transB: Bool
    package let activation: FusedActivation?
    package let isa: KernelISA
    /// B (scaled by alpha) packed at session creation when it is constant.
    package let packedB: PackedPanels?
    /// `beta · C` as a per-column bias when C is a constant of N (or 1 × N) elements.
    package let columnBias: Tensor?

    package init(_ context: NodeContext) throws {
        alpha = try context.float("alpha", default: 1)
        beta = try context.float("beta", default: 1)
        transA = try context.int("transA", default: 0) != 0
        transB = try context.int("transB", default: 0) != 0
        activation = try context.fusedActivation()
        isa = context.isa
        if let b = context.constantInput(1), b.dataType == .float, b.rank == 2 {
            let (k, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
            packedB = Gemm.prepackB(
                b.baseAddress.assumingMemoryBound(to: Float.self), k: k, n: n, ld: b.shape[1],
                transposed: transB, scale: alpha, isa: isa)
            withExtendedLifetime(b) {}
        } else {
            packedB = nil
        }
        if let c = context.constantInput(2), c.dataType == .float, c.rank <= 2,
           c.rank == 1 || (c.rank == 2 && c.shape[0] == 1), c.elementCount > 1 {
            let scale = beta
            columnBias = try Tensor(shape: [c.elementCount], scalars: try c.scalars(as: Float.self).map { $0 * scale })
        } else {
            columnBias = nil
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 2, let a = inputs[0], let b = inputs[1] else { throw OnyxError.invalidModel("Gemm takes A and B") }
        guard a.dataType == .float, b.dataType == .float else {
            throw OnyxError.unsupportedDataType("Gemm supports float, got \(a.dataType) and \(b.dataType)")
        }
        guard a.shape.count == 2, b.shape.count == 2 else {
            throw OnyxError.shapeMismatch("Gemm: A and B must be 2-D, got \(a.shape) and \(b.shape)")
        }
        let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kb else {
            throw OnyxError.shapeMismatch("Gemm: op(A) is \(m)×\(k) but op(B) is \(kb)×\(n); inner dimensions differ")
        }
        if inputs.count > 2, let c = inputs[2] {
            guard c.dataType == .float else { throw OnyxError.unsupportedDataType("Gemm: C must be float, got \(c.dataType)") }
            let broadcast = try Broadcasting.shape(c.shape, [m, n], op: "Gemm")
            guard broadcast == [m, n] else {
                throw OnyxError.shapeMismatch("Gemm: C of shape \(c.shape) does not broadcast to \([m, n])")
            }
        }
        return [TensorDescriptor(.float, [m, n])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let a = inputs[0], let out = outputs.first, out.rank == 2 else { return 0 }
        let (m, n) = (out.shape[0], out.shape[1])
        let k = transA ? a.shape[0] : a.shape[1]
        var floats = m == 1 && !transA && alpha == 1 ? 0 : PackedPanels.floatCount(extent: m, depth: k, width: Gemm.mr(isa))
        if packedB == nil { floats += PackedPanels.floatCount(extent: n, depth: k, width: Gemm.nr(isa)) }
        return floats * 4 + 64
    }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, b = context.input(1)!, y = context.output(0)
        let (m, n) = (y.shape[0], y.shape[1])
        let k = transA ? a.shape[0] : a.shape[1]
        let out = y.pointer(as: Float.self)
        var workspace = context.workspace?.assumingMemoryBound(to: Float.self)

        let packedB: PackedPanels
        if self.packedB != nil {
            packedB = self.packedB!.borrowed
        } else {
            let nr = Gemm.nr(isa)
            Gemm.packB(UnsafePointer(b.pointer(as: Float.self)), k: k, n: n, ld: b.shape[1], transposed: transB,
                       scale: alpha, nr: nr, into: workspace!)
            packedB = PackedPanels(extent: n, depth: k, width: nr, base: UnsafePointer(workspace!), owner: nil)
            workspace! += PackedPanels.floatCount(extent: n, depth: k, width: nr)
        }

        // C: a per-column bias goes into the epilogue; any other shape is written first and accumulated onto.
        var epilogue = Gemm.Epilogue()
        epilogue.activation = activation
        var accumulate = false
        let c = context.input(2)
        if let columnBias {
            epilogue.biasColumn = UnsafePointer(columnBias.baseAddress.assumingMemoryBound(to: Float.self))
        } else if let c, beta != 0 {
            Self.fill(out, m: m, n: n, with: c, scale: beta)
            accumulate = true
        }

        try withExtendedLifetime(columnBias) {
            if Gemm.prefersRows(m: m, n: n, k: k) && !transA && alpha == 1 {
                Gemm.multiplyRows(isa: isa, m: m, n: n, k: k, a: UnsafePointer(a.pointer(as: Float.self)), b: packedB,
                                  c: out, accumulate: accumulate, epilogue: epilogue, pool: context.pool)
                return
            }
            guard let strips = workspace else { throw OnyxError.internalError("Gemm: no workspace") }
            let mr = Gemm.mr(isa)
            // alpha is folded into B when B was prepacked; otherwise into A here.
            Gemm.packA(UnsafePointer(a.pointer(as: Float.self)), m: m, k: k, ld: a.shape[1], transposed: transA,
                       scale: 1, mr: mr, isa: isa, into: strips)
            let packedA = PackedPanels(extent: m, depth: k, width: mr, base: UnsafePointer(strips), owner: nil)
            Gemm.multiply(isa: isa, m: m, n: n, k: k, a: packedA, b: packedB, c: out, ldc: n,
                          accumulate: accumulate, epilogue: epilogue, pool: context.pool)
        }
    }

    /// Writes `scale · C` broadcast to M × N.
    package static func fill(_ out: UnsafeMutablePointer<Float>, m: Int, n: Int, with c: TensorView, scale: Float) {
        let src = c.pointer(as: Float.self)
        let strides = Broadcasting.strides(of: c.shape, in: [m, n])
        for i in 0..<m {
            for j in 0..<n { out[i * n + j] = scale * src[i * strides[0] + j * strides[1]] }
        }
    }
}

/// ONNX MatMul: NumPy `matmul` semantics (1-D promotion, broadcast batch axes), float32.
package struct MatMulKernel: Kernel {
    package let activation: FusedActivation?
    package let isa: KernelISA
    /// A constant 2-D B, packed at session creation.
    package let packedB: PackedPanels?
    /// The N per-column values of a bias the optimizer fused in (`onyx.bias`: input 2 is a constant
    /// of shape `[N]`, `[1, …, 1, N]` or one element, see ``MatMulAddFusion``).
    package let columnBias: Tensor?
    /// Transposes the optimizer folded in (`onyx.perm_a`, `onyx.perm_b`, see
    /// ``TransposeIntoMatMul``): the operand is its input read through this perm, in place.
    package let permA: [Int]?, permB: [Int]?
    /// A factor on the product the optimizer folded in (`onyx.alpha`: scalar Muls of the operands),
    /// applied as A is packed.
    package let alpha: Float

    package init(_ context: NodeContext) throws {
        activation = try context.fusedActivation()
        isa = context.isa
        alpha = try context.float("onyx.alpha", default: 1)
        permA = try context.ints("onyx.perm_a")
        permB = try context.ints("onyx.perm_b")
        for perm in [permA, permB].compactMap({ $0 }) {
            guard Self.readsInPlace(perm) else {
                throw context.attributeError("a folded transpose's perm \(perm) must keep the last axis among the last two")
            }
        }
        if permB == nil, let b = context.constantInput(1), b.dataType == .float, b.rank == 2 {
            packedB = Gemm.prepackB(b.baseAddress.assumingMemoryBound(to: Float.self), k: b.shape[0], n: b.shape[1],
                                    ld: b.shape[1], transposed: false, isa: isa)
            withExtendedLifetime(b) {}
        } else {
            packedB = nil
        }
        if try context.int("onyx.bias", default: 0) != 0 {
            guard let b = context.constantInput(1), b.dataType == .float, b.rank == 2,
                  let bias = context.constantInput(2), bias.dataType == .float,
                  Broadcasting.broadcastsAlongColumns(bias.shape, columns: b.shape[1])
            else { throw context.attributeError("a fused bias needs a constant 2-D B and a constant float bias of N or 1 elements") }
            let values = try bias.scalars(as: Float.self)
            let n = b.shape[1]
            columnBias = try Tensor(shape: [n], scalars: values.count == n ? values : [Float](repeating: values.first ?? 0, count: n))
        } else {
            columnBias = nil
        }
    }

    /// Whether an operand transposed by `perm` can be packed in place: a permutation of rank ≥ 2
    /// that keeps the last axis (unit stride) among the last two.
    package static func readsInPlace(_ perm: [Int]) -> Bool {
        let rank = perm.count
        return rank >= 2 && Set(perm) == Set(0..<rank) && (perm[rank - 1] == rank - 1 || perm[rank - 2] == rank - 1)
    }

    /// The product's geometry for one pair of input shapes.
    package struct Geometry {
        package var m = 1, n = 1, k = 1
        package var batchShape: [Int] = []
        package var aBatchStrides: [Int] = []
        package var bBatchStrides: [Int] = []
        package var outputShape: [Int] = []
        package var batchCount: Int { batchShape.reduce(1, *) }
        /// A's batch axes fold into M (B is a single matrix).
        package var foldsBatchIntoM = false

        package init(_ a: [Int], _ b: [Int]) throws {
            guard !a.isEmpty, !b.isEmpty else { throw OnyxError.shapeMismatch("MatMul: inputs must not be scalars") }
            let a2 = a.count == 1 ? [1, a[0]] : a
            let b2 = b.count == 1 ? [b[0], 1] : b
            m = a2[a2.count - 2]
            k = a2[a2.count - 1]
            n = b2[b2.count - 1]
            guard b2[b2.count - 2] == k else {
                throw OnyxError.shapeMismatch("MatMul: shapes \(a) and \(b) do not agree on the inner dimension (\(k) vs \(b2[b2.count - 2]))")
            }
            let aBatch = Array(a2.dropLast(2)), bBatch = Array(b2.dropLast(2))
            batchShape = try Broadcasting.shape(aBatch, bBatch, op: "MatMul")
            let aStrides = Broadcasting.strides(of: aBatch, in: batchShape)
            let bStrides = Broadcasting.strides(of: bBatch, in: batchShape)
            aBatchStrides = aStrides.map { $0 * m * k }
            bBatchStrides = bStrides.map { $0 * k * n }
            outputShape = batchShape + (a.count == 1 ? [] : [m]) + (b.count == 1 ? [] : [n])
            foldsBatchIntoM = bBatch.reduce(1, *) == 1 && aBatch == batchShape
        }

        /// The geometry of operands read through views (rank ≥ 2): their batch strides are the
        /// views' own (0 where broadcast), and no batch folds into M.
        init(_ a: OperandView, _ b: OperandView) throws {
            try self.init(a.shape, b.shape)
            func strides(_ view: OperandView) -> [Int] {
                let leading = batchShape.count - (view.shape.count - 2)
                return batchShape.indices.map { axis in
                    axis < leading || view.shape[axis - leading] == 1 ? 0 : view.strides[axis - leading]
                }
            }
            aBatchStrides = strides(a)
            bBatchStrides = strides(b)
            foldsBatchIntoM = false
        }
    }

    /// An operand as the product sees it: its input's extents and element strides, permuted.
    package struct OperandView {
        package var shape: [Int]
        package var strides: [Int]
        /// How packing reads each matrix: the input's last axis (unit stride) is the matrix's
        /// columns, or (`transposed`) its rows.
        var matrix: MatrixLayout

        init(_ shape: [Int], perm: [Int]?) throws {
            let rank = shape.count
            var contiguous = [Int](repeating: 1, count: rank)
            for axis in stride(from: rank - 2, through: 0, by: -1) { contiguous[axis] = contiguous[axis + 1] * shape[axis + 1] }
            guard let perm else {
                (self.shape, strides) = (shape, contiguous)
                matrix = MatrixLayout(ld: shape.last ?? 1, transposed: false)
                return
            }
            guard perm.count == rank else {
                throw OnyxError.shapeMismatch("MatMul: a folded transpose's perm \(perm) does not fit an input of shape \(shape)")
            }
            self.shape = perm.map { shape[$0] }
            strides = perm.map { contiguous[$0] }
            // The perm keeps the input's last axis among the last two (checked when the kernel is made).
            matrix = perm[rank - 1] == rank - 1
                ? MatrixLayout(ld: strides[rank - 2], transposed: false)
                : MatrixLayout(ld: strides[rank - 1], transposed: true)
        }
    }

    /// One matrix of an operand in memory: row-major with leading dimension `ld`, or (`transposed`)
    /// its transpose stored row-major.
    struct MatrixLayout {
        var ld: Int
        var transposed: Bool
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == (columnBias == nil ? 2 : 3), let a = inputs[0], let b = inputs[1] else {
            throw OnyxError.invalidModel("MatMul takes two inputs")
        }
        guard a.dataType == .float, b.dataType == .float else {
            throw OnyxError.unsupportedDataType("MatMul supports float, got \(a.dataType) and \(b.dataType)")
        }
        let product = try Geometry(try OperandView(a.shape, perm: permA), try OperandView(b.shape, perm: permB)).outputShape
        // A fused bias of higher rank than the product prepends axes of extent 1, as the Add did.
        guard columnBias != nil, let bias = inputs[2] else { return [TensorDescriptor(.float, product)] }
        return [TensorDescriptor(.float, try Broadcasting.shape(product, bias.shape, op: "MatMul"))]
    }

    /// Workspace floats for one product: A's strips, then B's panels unless B was prepacked.
    private func sliceFloats(rows: Int, k: Int, n: Int) -> (strips: Int, panels: Int) {
        (PackedPanels.floatCount(extent: rows, depth: k, width: Gemm.mr(isa)),
         packedB == nil ? PackedPanels.floatCount(extent: n, depth: k, width: Gemm.nr(isa)) : 0)
    }

    /// Products of two computed operands per batch (attention's `Q·Kᵀ` and `P·V`, one per head)
    /// pack every batch into its own slice, so the batches run in parallel, each on one thread.
    /// Up to this much workspace; past it they run one after another, each split over the threads.
    static let parallelBatchWorkspace = 16 << 20

    /// The product's geometry, through the folded transposes when there are any.
    private func geometry(_ a: [Int], _ b: [Int]) throws -> Geometry {
        if permA == nil && permB == nil { return try Geometry(a, b) }
        return try Geometry(try OperandView(a, perm: permA), try OperandView(b, perm: permB))
    }

    private func batchesInParallel(_ g: Geometry) -> Bool {
        guard packedB == nil, !g.foldsBatchIntoM, g.batchCount > 1 else { return false }
        let slice = sliceFloats(rows: g.m, k: g.k, n: g.n)
        return g.batchCount * (slice.strips + slice.panels) * 4 <= Self.parallelBatchWorkspace
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let a = inputs[0], let b = inputs[1], let g = try? geometry(a.shape, b.shape) else { return 0 }
        let slice = sliceFloats(rows: g.foldsBatchIntoM ? g.m * g.batchCount : g.m, k: g.k, n: g.n)
        return (batchesInParallel(g) ? g.batchCount : 1) * (slice.strips + slice.panels) * 4 + 64
    }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, b = context.input(1)!, y = context.output(0)
        guard let workspace = context.workspace?.assumingMemoryBound(to: Float.self) else {
            throw OnyxError.internalError("MatMul: no workspace")
        }
        var epilogue = Gemm.Epilogue()
        epilogue.activation = activation
        epilogue.biasColumn = columnBias.map { UnsafePointer($0.baseAddress.assumingMemoryBound(to: Float.self)) }
        let pa = UnsafePointer(a.pointer(as: Float.self)), pb = UnsafePointer(b.pointer(as: Float.self))
        let out = y.pointer(as: Float.self)
        let products = Products(isa: isa, alpha: alpha, epilogue: epilogue, prepacked: packedB?.borrowed, pool: context.pool)

        if permA != nil || permB != nil {
            let aView = try OperandView(a.shape, perm: permA), bView = try OperandView(b.shape, perm: permB)
            let g = try Geometry(aView, bView)
            try withExtendedLifetime(columnBias) {
                try batchedProduct(g, pa, pb, out, products, workspace, aMatrix: aView.matrix, bMatrix: bView.matrix)
            }
            return
        }
        // One matrix B (the usual weight): A's leading axes fold into M; no geometry to build.
        if b.rank == 2, let k = a.shape.last {
            let n = b.shape[1]
            let rows = a.shape.dropLast().reduce(1, *)
            try withExtendedLifetime(columnBias) {
                guard k == b.shape[0] else { throw OnyxError.shapeMismatch("MatMul: shapes \(a.shape) and \(b.shape) differ on the inner dimension") }
                let slice = sliceFloats(rows: rows, k: k, n: n)
                products.multiply(pa, rows: rows, k: k, n: n, b: pb, c: out, strips: workspace + slice.panels, panels: workspace)
            }
            return
        }
        let g = try Geometry(a.shape, b.shape)
        try withExtendedLifetime(columnBias) { try batchedProduct(g, pa, pb, out, products, workspace) }
    }

    /// The products of one run: A packed (or read row by row) and B packed unless prepacked.
    private struct Products {
        let isa: KernelISA
        let alpha: Float
        let epilogue: Gemm.Epilogue
        let prepacked: PackedPanels?
        let pool: ComputePool

        /// `c = a × b` (rows × k by k × n), packing into `strips` and `panels` (B not again when
        /// `panelsHoldB`: the previous product's B was the same matrix).
        func multiply(
            _ a: UnsafePointer<Float>, rows: Int, k: Int, n: Int, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>,
            strips: UnsafeMutablePointer<Float>, panels: UnsafeMutablePointer<Float>, panelsHoldB: Bool = false,
            aMatrix: MatrixLayout? = nil, bMatrix: MatrixLayout? = nil
        ) {
            let (mr, nr) = (Gemm.mr(isa), Gemm.nr(isa))
            let aLayout = aMatrix ?? MatrixLayout(ld: k, transposed: false), bLayout = bMatrix ?? MatrixLayout(ld: n, transposed: false)
            let packedB: PackedPanels
            if let prepacked {
                packedB = prepacked
            } else {
                if !panelsHoldB { Gemm.packB(b, k: k, n: n, ld: bLayout.ld, transposed: bLayout.transposed, nr: nr, into: panels) }
                packedB = PackedPanels(extent: n, depth: k, width: nr, base: UnsafePointer(panels), owner: nil)
            }
            if Gemm.prefersRows(m: rows, n: n, k: k) && !aLayout.transposed && aLayout.ld == k && alpha == 1 {
                Gemm.multiplyRows(isa: isa, m: rows, n: n, k: k, a: a, b: packedB, c: c, accumulate: false,
                                  epilogue: epilogue, pool: pool)
                return
            }
            Gemm.packA(a, m: rows, k: k, ld: aLayout.ld, transposed: aLayout.transposed, scale: alpha, mr: mr, isa: isa, into: strips)
            let packedA = PackedPanels(extent: rows, depth: k, width: mr, base: UnsafePointer(strips), owner: nil)
            Gemm.multiply(isa: isa, m: rows, n: n, k: k, a: packedA, b: packedB, c: c, ldc: n,
                          accumulate: false, epilogue: epilogue, pool: pool)
        }
    }

    private func batchedProduct(
        _ g: Geometry, _ pa: UnsafePointer<Float>, _ pb: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
        _ products: Products, _ workspace: UnsafeMutablePointer<Float>,
        aMatrix: MatrixLayout? = nil, bMatrix: MatrixLayout? = nil
    ) throws {
        if g.foldsBatchIntoM {
            let slice = sliceFloats(rows: g.m * g.batchCount, k: g.k, n: g.n)
            products.multiply(pa, rows: g.m * g.batchCount, k: g.k, n: g.n, b: pb, c: out,
                              strips: workspace + slice.panels, panels: workspace)
            return
        }
        let slice = sliceFloats(rows: g.m, k: g.k, n: g.n)
        func offsets(_ batch: Int) -> (a: Int, b: Int) {
            var rest = batch, offsetA = 0, offsetB = 0
            for axis in stride(from: g.batchShape.count - 1, through: 0, by: -1) {
                let i = rest % g.batchShape[axis]
                rest /= g.batchShape[axis]
                offsetA += i * g.aBatchStrides[axis]
                offsetB += i * g.bBatchStrides[axis]
            }
            return (offsetA, offsetB)
        }
        if batchesInParallel(g) && products.pool.threadCount > 1 {
            // Each batch packs into its own slice and runs on one thread (a nested call of the busy
            // pool runs serially): no hand-off per batch, and no thread waits while one packs.
            products.pool.parallelRanges(g.batchCount, rangesPerThread: 1) { range in
                for batch in range {
                    let (offsetA, offsetB) = offsets(batch)
                    let panels = workspace + batch * (slice.strips + slice.panels)
                    products.multiply(pa + offsetA, rows: g.m, k: g.k, n: g.n, b: pb + offsetB, c: out + batch * g.m * g.n,
                                      strips: panels + slice.panels, panels: panels, aMatrix: aMatrix, bMatrix: bMatrix)
                }
            }
            return
        }
        var lastB: Int?
        for batch in 0..<g.batchCount {
            let (offsetA, offsetB) = offsets(batch)
            products.multiply(pa + offsetA, rows: g.m, k: g.k, n: g.n, b: pb + offsetB, c: out + batch * g.m * g.n,
                              strips: workspace + slice.panels, panels: workspace, panelsHoldB: lastB == offsetB,
                              aMatrix: aMatrix, bMatrix: bMatrix)
            lastB = offsetB
        }
    }
}
