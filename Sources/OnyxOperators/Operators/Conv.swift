import OnyxCore
import OnyxKernels
import Synchronization

extension OperatorRegistry {
    package static let convolutionOperators: [OperatorRegistration] = [
        OperatorRegistration("Conv") { context in try Float32Staged(context) { try ConvKernel($0) } }
    ]
}

/// ONNX Conv (1-D and 2-D, groups, depthwise, strides, pads, dilations, auto_pad), float32.
///
/// Each (image, group) is one GEMM: `Y_g[M/g, OH·OW] = W_g[M/g, C/g·kh·kw] × cols[C/g·kh·kw, OH·OW]`,
/// with the weights packed once as A strips and the image written by im2col straight into packed
/// B panels (a plain copy for 1×1 convolutions). Depthwise convolutions run a direct kernel.
///
/// With `onyx.residual` (see ``ConvAddFusion``) input 3 is added to the output before the fused
/// activation: copied into the output (or already there, when the planner gives the output its
/// buffer) and accumulated onto by the GEMM. A residual of another shape than the convolution's
/// output is broadcast as the Add would have, through a temporary in the workspace.
package struct ConvKernel: Kernel {
    package let spatial: SpatialAttributes
    package let group: Int
    package let activation: FusedActivation?
    package let addsResidual: Bool
    package let isa: KernelISA
    /// Per group, the constant weights packed as A strips.
    package let packedWeights: [PackedPanels]?
    /// Per group, the constant weights as filter panels for the transposed tile, packed by the
    /// first run whose shapes use it (only the few-pixel layers do).
    package let weightPanels: LazyWeightPanels?
    package let constantWeights: Tensor?

    package init(_ context: NodeContext) throws {
        spatial = try SpatialAttributes(context)
        group = try context.int("group", default: 1)
        guard group >= 1 else { throw context.attributeError("group must be ≥ 1, got \(group)") }
        activation = try context.fusedActivation()
        addsResidual = try context.int("onyx.residual", default: 0) != 0
        if addsResidual && !context.hasInput(3) {
            throw context.attributeError("a fused residual (onyx.residual) needs a fourth input")
        }
        isa = context.isa
        if let w = context.constantInput(1), w.dataType == .float, w.rank >= 3, w.shape[0] % group == 0 {
            let perGroup = w.shape[0] / group
            let depth = w.shape[1...].reduce(1, *)
            let base = w.baseAddress.assumingMemoryBound(to: Float.self)
            let isa = context.isa
            packedWeights = (0..<group).map { g in
                Gemm.prepackA(base + g * perGroup * depth, m: perGroup, k: depth, ld: depth, transposed: false, isa: isa)
            }
            constantWeights = w
            weightPanels = Gemm.transposedMR(isa) > 0 ? LazyWeightPanels(w, group: group, isa: isa) : nil
        } else {
            packedWeights = nil
            weightPanels = nil
            constantWeights = nil
        }
    }

    private struct Shapes {
        let batch: Int, channels: Int, filters: Int
        let geometry: ConvolutionGeometry
        /// 1 or 2.
        let spatialAxes: Int

        var outputShape: [Int] {
            [batch, filters] + (spatialAxes == 1 ? [] : [geometry.outputHeight]) + [geometry.outputWidth]
        }

        var outputCount: Int { batch * filters * geometry.outputArea }

        /// One filter per channel: the direct depthwise kernel.
        func isDepthwise(group: Int) -> Bool { channels == group && filters == group }
    }

    private func shapes(_ x: [Int], _ w: [Int], bias: [Int]?) throws -> Shapes {
        guard x.count >= 3, x.count <= 4 else {
            throw OnyxError.shapeMismatch("Conv: input must be N×C×W or N×C×H×W, got \(x)")
        }
        guard w.count == x.count else {
            throw OnyxError.shapeMismatch("Conv: weight \(w) must have the input's rank \(x.count)")
        }
        let channels = x[1], filters = w[0]
        guard channels == w[1] * group else {
            throw OnyxError.shapeMismatch("Conv: input has \(channels) channels but weight \(w) with group \(group) expects \(w[1] * group)")
        }
        guard filters % group == 0 else {
            throw OnyxError.shapeMismatch("Conv: \(filters) filters do not divide into \(group) groups")
        }
        if let bias, bias != [filters] {
            throw OnyxError.shapeMismatch("Conv: bias must have shape [\(filters)], got \(bias)")
        }
        let kernel = Array(w[2...])
        if let declared = spatial.kernelShape, declared != kernel {
            throw OnyxError.shapeMismatch("Conv: kernel_shape \(declared) does not match weight \(w)")
        }
        let geometry = try spatial.geometry(spatial: Array(x[2...]), kernel: kernel, op: "Conv")
        return Shapes(batch: x[0], channels: channels, filters: filters, geometry: geometry, spatialAxes: x.count - 2)
    }

    /// The run's shapes, computed from the views without building arrays when the pads do not
    /// depend on the input size (auto_pad NOTSET or VALID; the plan has checked them).
    private func runShapes(_ x: TensorView, _ w: TensorView, _ y: TensorView, bias: TensorView?) throws -> Shapes {
        guard spatial.autoPad == "NOTSET" || spatial.autoPad == "VALID", !spatial.ceilMode, x.rank == w.rank,
              x.rank == y.rank, x.rank == 3 || x.rank == 4
        else { return try shapes(x.shape, w.shape, bias: bias?.shape) }
        func value(_ list: [Int]?, _ index: Int, _ fallback: Int) -> Int {
            guard let list, index < list.count else { return fallback }
            return list[index]
        }
        let valid = spatial.autoPad == "VALID"
        let axes = x.rank - 2
        // Output extent along spatial axis `axis`, as `SpatialAttributes.resolve` computes it (not
        // read from y, which a fused residual may broadcast to a larger shape).
        func extent(_ axis: Int) -> Int {
            let window = (w.shape[2 + axis] - 1) * value(spatial.dilations, axis, 1) + 1
            let pads = valid ? 0 : value(spatial.pads, axis, 0) + value(spatial.pads, axis + axes, 0)
            return (x.shape[2 + axis] + pads - window) / value(spatial.strides, axis, 1) + 1
        }
        let geometry: ConvolutionGeometry
        if x.rank == 3 {
            geometry = ConvolutionGeometry(
                inputHeight: 1, inputWidth: x.shape[2], kernelHeight: 1, kernelWidth: w.shape[2],
                strideY: 1, strideX: value(spatial.strides, 0, 1), dilationY: 1, dilationX: value(spatial.dilations, 0, 1),
                padTop: 0, padLeft: valid ? 0 : value(spatial.pads, 0, 0), outputHeight: 1, outputWidth: extent(0))
        } else {
            geometry = ConvolutionGeometry(
                inputHeight: x.shape[2], inputWidth: x.shape[3], kernelHeight: w.shape[2], kernelWidth: w.shape[3],
                strideY: value(spatial.strides, 0, 1), strideX: value(spatial.strides, 1, 1),
                dilationY: value(spatial.dilations, 0, 1), dilationX: value(spatial.dilations, 1, 1),
                padTop: valid ? 0 : value(spatial.pads, 0, 0), padLeft: valid ? 0 : value(spatial.pads, 1, 0),
                outputHeight: extent(0), outputWidth: extent(1))
        }
        return Shapes(batch: x.shape[0], channels: x.shape[1], filters: w.shape[0], geometry: geometry, spatialAxes: axes)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 2, let x = inputs[0], let w = inputs[1] else { throw OnyxError.invalidModel("Conv takes X and W") }
        guard x.dataType == .float, w.dataType == .float else {
            throw OnyxError.unsupportedDataType("Conv supports float, got \(x.dataType) and \(w.dataType)")
        }
        let bias = inputs.count > 2 ? inputs[2] : nil
        if let bias, bias.dataType != .float { throw OnyxError.unsupportedDataType("Conv: bias must be float") }
        let output = try shapes(x.shape, w.shape, bias: bias?.shape).outputShape
        guard addsResidual else { return [TensorDescriptor(.float, output)] }
        guard inputs.count > 3, let residual = inputs[3] else {
            throw OnyxError.invalidModel("Conv: the fused residual (input 3) is missing")
        }
        guard residual.dataType == .float else {
            throw OnyxError.unsupportedDataType("Conv: the fused residual must be float like the output, got \(residual.dataType)")
        }
        return [TensorDescriptor(.float, try Broadcasting.shape(output, residual.shape, op: "Conv (fused Add)"))]
    }

    /// Whether the GEMM accumulates onto the residual in the output: neither the residual nor the
    /// convolution's result broadcasts (both have the output's elements), and the convolution is
    /// not depthwise (that kernel cannot accumulate).
    private func accumulatesResidual(_ s: Shapes, residual: [Int], output: [Int], outputCount: Int) -> Bool {
        !s.isDepthwise(group: group) && residual == output && outputCount == s.outputCount
    }

    /// Bytes of `count` floats, rounded up to the workspace parts' 64-byte alignment.
    private static func alignedFloats(_ count: Int) -> Int { (count * 4 + 63) & ~63 }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let x = inputs[0], let w = inputs[1], let s = try? shapes(x.shape, w.shape, bias: nil) else { return 0 }
        var bytes = 0
        if !s.isDepthwise(group: group) {
            let columns = ConvColumns(s.geometry, channels: s.channels / group, filters: s.filters / group, isa: isa,
                                      allowsTransposed: weightPanels != nil)
            bytes = columns.workspaceByteCount(packingWeights: packedWeights == nil) * scratchSlots(s, columns)
        }
        if addsResidual, inputs.count > 3, let residual = inputs[3], let y = outputs.first,
           !accumulatesResidual(s, residual: residual.shape, output: y.shape, outputCount: y.elementCount) {
            bytes += Self.alignedFloats(s.outputCount)
        }
        return bytes
    }

    package var aliasing: KernelAliasing { addsResidual ? .inPlace(input: 3) : .none }

    /// Images convolved at once, each with its own scratch: the whole batch (2 to 8 images) when one
    /// image's products are below ``Gemm/parallelWork`` and would run on one thread (LeNet's
    /// layers), so the batch spreads over the threads instead; else 1.
    private func scratchSlots(_ s: Shapes, _ columns: ConvColumns) -> Int {
        let work = 2 * group * columns.filters * columns.depth * columns.gridColumns
        return (2...8).contains(s.batch) && work < Gemm.parallelWork ? s.batch : 1
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, w = context.input(1)!, y = context.output(0)
        let s = try runShapes(x, w, y, bias: context.input(2))
        let output = y.pointer(as: Float.self)
        guard addsResidual else {
            guard y.elementCount == s.outputCount else {
                throw OnyxError.internalError("Conv: the output has shape \(y.shape), the convolution \(s.outputShape)")
            }
            try convolve(s, context, into: output, accumulating: false, activation: activation, workspace: context.workspace)
            return
        }
        guard let residual = context.input(3) else { throw OnyxError.invalidModel("Conv: the fused residual (input 3) is missing") }
        if accumulatesResidual(s, residual: residual.shape, output: y.shape, outputCount: y.elementCount) {
            if residual.data != y.data { y.data.copyMemory(from: residual.data, byteCount: y.byteCount) }
            try convolve(s, context, into: output, accumulating: true, activation: activation, workspace: context.workspace)
            return
        }
        // The Add as it was: the convolution into the workspace, then the broadcast sum.
        guard let workspace = context.workspace else { throw OnyxError.internalError("Conv: no workspace") }
        let convolved = workspace.assumingMemoryBound(to: Float.self)
        try convolve(s, context, into: convolved, accumulating: false, activation: nil,
                     workspace: workspace + Self.alignedFloats(s.outputCount))
        BinaryBroadcastPlan.withPlan(s.outputShape, residual.shape, output: y.shape) { plan in
            ElementwiseLoops.binary(plan, UnsafePointer(convolved), UnsafePointer(residual.pointer(as: Float.self)), output,
                                    pool: context.pool, FloatingAdd<Float>())
        }
        activation?.apply(output, count: y.elementCount, isa: isa)
    }

    /// The convolution of the run's inputs into `output`, added to what `output` holds when
    /// `accumulating`, then the activation.
    private func convolve(
        _ s: Shapes, _ context: borrowing KernelContext, into output: UnsafeMutablePointer<Float>, accumulating: Bool,
        activation: FusedActivation?, workspace: UnsafeMutableRawPointer?
    ) throws {
        let x = context.input(0)!, w = context.input(1)!
        let g = s.geometry
        let bias = context.input(2).map { UnsafePointer($0.pointer(as: Float.self)) }
        let input = UnsafePointer(x.pointer(as: Float.self))
        let weights = UnsafePointer(w.pointer(as: Float.self))
        let channelsPerGroup = s.channels / group, filtersPerGroup = s.filters / group

        if s.isDepthwise(group: group) {
            guard !accumulating else { throw OnyxError.internalError("Conv: the depthwise kernel cannot accumulate") }
            let planes = s.batch * s.channels
            let isa = self.isa
            let chunk = max(1, (1 << 16) / max(g.outputArea * g.kernelArea, 1))
            context.pool.parallelRanges(planes, minimumChunk: chunk) { range in
                for plane in range {
                    let c = plane % s.channels
                    Convolution.depthwisePlane(
                        input + plane * g.inputArea, weights + c * g.kernelArea, bias: bias?[c] ?? 0,
                        output + plane * g.outputArea, geometry: g, activation: activation, isa: isa)
                }
            }
            return
        }

        guard let workspace else { throw OnyxError.internalError("Conv: no workspace") }
        let columns = ConvColumns(g, channels: channelsPerGroup, filters: filtersPerGroup, isa: isa,
                                  allowsTransposed: weightPanels != nil)
        let panels = columns.layout == .transposed ? weightPanels?.panels : nil
        let mr = Gemm.mr(isa)
        let pool = context.pool
        func convolveImage(_ n: Int, scratch: ConvColumns.Scratch) throws {
            for gi in 0..<group {
                let image = input + (n * s.channels + gi * channelsPerGroup) * g.inputArea
                let a: PackedPanels
                if let packedWeights {
                    a = packedWeights[gi]
                } else {
                    Gemm.packA(weights + gi * filtersPerGroup * columns.depth, m: filtersPerGroup, k: columns.depth,
                               ld: columns.depth, transposed: false, mr: mr, isa: isa, into: scratch.strips)
                    a = PackedPanels(extent: filtersPerGroup, depth: columns.depth, width: mr,
                                     base: UnsafePointer(scratch.strips), owner: nil)
                }
                var epilogue = Gemm.Epilogue()
                epilogue.biasRow = bias.map { $0 + gi * filtersPerGroup }
                epilogue.activation = activation
                let out = output + (n * s.filters + gi * filtersPerGroup) * g.outputArea
                try columns.multiply(image: image, weights: a, weightPanels: panels?[gi], epilogue: epilogue, output: out,
                                     accumulating: accumulating, scratch: scratch, pool: pool)
            }
        }
        let slots = scratchSlots(s, columns)
        if slots > 1 {
            // One image per scratch slot; the products inside run serially (a nested pool call).
            let slotBytes = columns.workspaceByteCount(packingWeights: packedWeights == nil)
            let failure = Mutex<(any Error)?>(nil)
            pool.parallelRanges(s.batch, rangesPerThread: 1) { images in
                for n in images {
                    let scratch = columns.scratch(in: workspace + n * slotBytes)
                    columns.writeRowOffsets(into: scratch.rowOffsets)
                    do { try convolveImage(n, scratch: scratch) } catch { failure.withLock { $0 = error } }
                }
            }
            if let error = failure.withLock({ $0 }) { throw error }
        } else {
            let scratch = columns.scratch(in: workspace)
            columns.writeRowOffsets(into: scratch.rowOffsets)
            for n in 0..<s.batch { try convolveImage(n, scratch: scratch) }
        }
        withExtendedLifetime(constantWeights) {}
    }
}

/// How a convolution's GEMM reads its columns (`B`: one row per kernel tap and input channel, one
/// column per output pixel), chosen from the geometry.
///
/// - `pointwise`: a 1×1, stride-1, unpadded convolution reads the input planes as they are.
/// - `shiftedRows`: the input is copied once into zero-padded planes split by stride phase (for
///   stride s, phase (py, px) holds the padded input's rows py, py+s, … and columns px, px+s, …).
///   Output pixel (oy, ox) of tap (ky, kx) then reads its phase plane at (oy + ky·dy/s, ox + kx·dx/s),
///   so with outputs laid out on the phase planes' width, row `(c, ky, kx)` of B is a phase plane
///   shifted by a constant and is read in place. The extra `(kw-1)·dx/s` columns of each output row
///   are computed and dropped afterwards. With stride 1, unpadded inputs are read without a copy.
/// - `packed`: im2col into packed panels, when the extra columns would cost more than the copy saves.
/// - `transposed`: few output pixels (7×7, 14×14 maps) fill 32-wide pixel panels badly; im2col into
///   strips of 7 pixels, filters as the vector side, and the tile stored transposed (AVX-512, constant
///   weights).
package struct ConvColumns {
    package enum Layout: Equatable {
        case pointwise
        /// Phase plane extents and whether the input must be copied into them.
        case shiftedRows(height: Int, width: Int, copiesInput: Bool)
        case packed
        case transposed
    }

    package let geometry: ConvolutionGeometry
    package let channels: Int, filters: Int
    package let depth: Int
    package let layout: Layout
    package let isa: KernelISA

    package init(_ g: ConvolutionGeometry, channels: Int, filters: Int, isa: KernelISA, allowsTransposed: Bool) {
        geometry = g
        self.channels = channels
        self.filters = filters
        depth = channels * g.kernelArea
        self.isa = isa
        let width = g.outputWidth + (g.kernelWidth - 1) * g.dilationX / g.strideX
        let height = g.outputHeight + (g.kernelHeight - 1) * g.dilationY / g.strideY
        let mr = Gemm.mr(isa), nr = Gemm.nr(isa)
        func padded(_ count: Int, _ step: Int) -> Int { (count + step - 1) / step * step }
        // Estimated cost per tap, in multiply-adds: the tiles computed (padding included), plus
        // about 16 per element im2col gathers (measured on ResNet-18's layers).
        let n = g.outputArea
        let gather = 16 * n
        let shiftedCost = padded((g.outputHeight - 1) * width + g.outputWidth, nr) * padded(filters, mr)
        let packedCost = padded(n, nr) * padded(filters, mr) + gather
        var layout: Layout
        var cost: Double
        if g.isPointwise {
            layout = .pointwise
            cost = Double(padded(n, nr) * padded(filters, mr))
        } else if shiftedCost <= packedCost {
            let copies = g.strideX != 1 || g.strideY != 1 || g.padTop != 0 || g.padLeft != 0
                || width != g.inputWidth || height != g.inputHeight
            layout = .shiftedRows(height: height, width: width, copiesInput: copies)
            cost = Double(shiftedCost)
        } else {
            layout = .packed
            cost = Double(packedCost)
        }
        // The transposed tile pads few pixels less (strips of 7), but it is ~15 % slower per
        // multiply-add (14 accumulators), stores through a scatter (~24/depth of the work) and
        // needs im2col. It pays on 7×7 maps with many filters.
        let transposedMR = Gemm.transposedMR(isa)
        if allowsTransposed && transposedMR > 0 {
            let tiles = Double(padded(n, transposedMR) * padded(filters, nr))
            let transposedCost = tiles * 1.15 * (1 + 24 / Double(depth)) + Double(gather)
            if transposedCost < cost { layout = .transposed }
        }
        self.layout = layout
    }

    private var phases: Int { geometry.strideY * geometry.strideX }

    /// Columns of the product: output pixels, on the padded grid for `shiftedRows` (the last row
    /// stops at the output width, so no row reads past the padded plane).
    package var gridColumns: Int {
        if case .shiftedRows(_, let width, _) = layout {
            return (geometry.outputHeight - 1) * width + geometry.outputWidth
        }
        return geometry.outputArea
    }

    /// The workspace's parts, each 64-byte aligned.
    package struct Scratch {
        package let rowOffsets: UnsafeMutablePointer<Int>
        /// im2col panels (`packed`) or the zero-padded input planes (`shiftedRows` with a copy).
        package let columns: UnsafeMutablePointer<Float>
        /// Outputs on the padded grid before their extra columns are dropped (`shiftedRows`).
        package let gridOutput: UnsafeMutablePointer<Float>
        /// The weights packed per run when they are not constant.
        package let strips: UnsafeMutablePointer<Float>
    }

    /// Bytes of the row offsets, the columns and the grid output.
    private var byteCounts: (rowOffsets: Int, columns: Int, gridOutput: Int) {
        let columnFloats: Int
        var gridFloats = 0
        switch layout {
        case .pointwise: columnFloats = 0
        case .shiftedRows(let height, let width, let copies):
            columnFloats = copies ? channels * phases * height * width : 0
            gridFloats = width == geometry.outputWidth ? 0 : filters * gridColumns
        case .packed:
            columnFloats = PackedPanels.floatCount(extent: geometry.outputArea, depth: depth, width: Gemm.nr(isa))
        case .transposed:
            columnFloats = PackedPanels.floatCount(extent: geometry.outputArea, depth: depth, width: Gemm.transposedMR(isa))
        }
        return (depth * MemoryLayout<Int>.stride, columnFloats * 4, gridFloats * 4)
    }

    package func workspaceByteCount(packingWeights: Bool) -> Int {
        let sizes = byteCounts
        let strips = packingWeights ? PackedPanels.floatCount(extent: filters, depth: depth, width: Gemm.mr(isa)) * 4 : 0
        return Self.aligned(sizes.rowOffsets) + Self.aligned(sizes.columns) + Self.aligned(sizes.gridOutput)
            + Self.aligned(strips)
    }

    package func scratch(in workspace: UnsafeMutableRawPointer) -> Scratch {
        let sizes = byteCounts
        let columnsAt = Self.aligned(sizes.rowOffsets)
        let gridAt = columnsAt + Self.aligned(sizes.columns)
        let stripsAt = gridAt + Self.aligned(sizes.gridOutput)
        return Scratch(
            rowOffsets: workspace.assumingMemoryBound(to: Int.self),
            columns: (workspace + columnsAt).assumingMemoryBound(to: Float.self),
            gridOutput: (workspace + gridAt).assumingMemoryBound(to: Float.self),
            strips: (workspace + stripsAt).assumingMemoryBound(to: Float.self))
    }

    private static func aligned(_ bytes: Int) -> Int { (bytes + 63) & ~63 }

    /// Where row `(c, ky, kx)` of B starts, for the layouts that read B in place.
    package func writeRowOffsets(into offsets: UnsafeMutablePointer<Int>) {
        let g = geometry
        switch layout {
        case .pointwise:
            for c in 0..<channels { offsets[c] = c * g.inputArea }
        case .shiftedRows(let height, let width, _):
            var p = 0
            for c in 0..<channels {
                for ky in 0..<g.kernelHeight {
                    let y = ky * g.dilationY
                    for kx in 0..<g.kernelWidth {
                        let x = kx * g.dilationX
                        let phase = (y % g.strideY) * g.strideX + x % g.strideX
                        offsets[p] = ((c * phases + phase) * height + y / g.strideY) * width + x / g.strideX
                        p += 1
                    }
                }
            }
        case .packed, .transposed:
            break
        }
    }

    /// `output (filters × OH·OW) (=|+=) weights × columns(image)` with the epilogue, for one image
    /// and group.
    ///
    /// - Parameters:
    ///   - weights: The group's weights as A strips.
    ///   - weightPanels: The group's weights as filter panels, for the `transposed` layout.
    ///   - accumulating: Add the product to what `output` holds (a fused residual), before the activation.
    package func multiply(
        image: UnsafePointer<Float>, weights a: PackedPanels, weightPanels: PackedPanels?, epilogue: Gemm.Epilogue,
        output: UnsafeMutablePointer<Float>, accumulating: Bool, scratch: Scratch, pool: ComputePool
    ) throws {
        let g = geometry
        let rowOffsets = UnsafePointer(scratch.rowOffsets)
        switch layout {
        case .pointwise:
            Gemm.multiply(isa: isa, m: filters, n: g.outputArea, k: depth, a: a,
                          b: .rows(base: image, rowOffsets: rowOffsets), c: output, ldc: g.outputArea,
                          accumulate: accumulating, epilogue: epilogue, pool: pool)

        case .shiftedRows(let height, let width, let copies):
            let planes: UnsafePointer<Float>
            if copies {
                padPlanes(image, height: height, width: width, into: scratch.columns, pool: pool)
                planes = UnsafePointer(scratch.columns)
            } else {
                planes = image
            }
            let n = gridColumns
            guard width != g.outputWidth else {
                Gemm.multiply(isa: isa, m: filters, n: n, k: depth, a: a, b: .rows(base: planes, rowOffsets: rowOffsets),
                              c: output, ldc: g.outputArea, accumulate: accumulating, epilogue: epilogue, pool: pool)
                return
            }
            // Outputs on the padded grid; a residual and the activation join as the extra columns are dropped.
            var gridEpilogue = epilogue
            if accumulating { gridEpilogue.activation = nil }
            Gemm.multiply(isa: isa, m: filters, n: n, k: depth, a: a, b: .rows(base: planes, rowOffsets: rowOffsets),
                          c: scratch.gridOutput, ldc: n, accumulate: false, epilogue: gridEpilogue, pool: pool)
            let grid = UnsafePointer(scratch.gridOutput)
            let activation = accumulating ? epilogue.activation : nil
            let isa = self.isa
            pool.forEachChunk(filters, costPerItem: g.outputArea) { range in
                for f in range {
                    let plane = output + f * g.outputArea
                    for oy in 0..<g.outputHeight {
                        let row = plane + oy * g.outputWidth, source = grid + f * n + oy * width
                        if accumulating {
                            VectorKernels.add(row, source, row, count: g.outputWidth, isa: isa)
                        } else {
                            row.update(from: source, count: g.outputWidth)
                        }
                    }
                    // Once per plane: a call per row costs more than a clip itself.
                    activation?.apply(plane, count: g.outputArea, isa: isa)
                }
            }

        case .packed:
            let nr = Gemm.nr(isa)
            gatherColumns(image, width: nr, into: scratch.columns, pool: pool)
            let b = PackedPanels(extent: g.outputArea, depth: depth, width: nr, base: UnsafePointer(scratch.columns), owner: nil)
            Gemm.multiply(isa: isa, m: filters, n: g.outputArea, k: depth, a: a, b: b, c: output,
                          ldc: g.outputArea, accumulate: accumulating, epilogue: epilogue, pool: pool)

        case .transposed:
            guard let weightPanels else { throw OnyxError.internalError("Conv: the transposed layout has no weight panels") }
            let mr = Gemm.transposedMR(isa)
            gatherColumns(image, width: mr, into: scratch.columns, pool: pool)
            let pixels = PackedPanels(extent: g.outputArea, depth: depth, width: mr, base: UnsafePointer(scratch.columns), owner: nil)
            var perFilter = epilogue
            perFilter.biasColumn = epilogue.biasRow
            perFilter.biasRow = nil
            Gemm.multiply(isa: isa, m: g.outputArea, n: filters, k: depth, a: pixels, b: .packed(weightPanels),
                          c: output, ldc: g.outputArea, accumulate: accumulating, epilogue: perFilter, pool: pool,
                          transposingOutput: true)
        }
    }

    /// im2col of the image into k-major panels `width` pixels wide.
    private func gatherColumns(_ image: UnsafePointer<Float>, width: Int, into columns: UnsafeMutablePointer<Float>,
                               pool: ComputePool) {
        let g = geometry, channels = self.channels
        // Small images are gathered on one thread: waking another costs more than the copy.
        let chunk = max(8, (1 << 16) / max(g.outputArea, 1))
        pool.parallelRanges(depth, minimumChunk: chunk) { rows in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: g.outputArea) { line in
                Convolution.packImageColumns(
                    image, channels: channels, geometry: g, nr: width, into: columns, rows: rows,
                    line: line.baseAddress!)
            }
        }
    }

    /// Copies the image's planes into `height × width` phase planes with the convolution's zero padding.
    private func padPlanes(_ image: UnsafePointer<Float>, height: Int, width: Int,
                           into padded: UnsafeMutablePointer<Float>, pool: ComputePool) {
        let g = geometry
        let sy = g.strideY, sx = g.strideX
        pool.forEachChunk(channels * phases, costPerItem: height * width) { range in
            for plane in range {
                let c = plane / phases, py = (plane % phases) / sx, px = plane % sx
                // A 1×1 stride-2 convolution, say, reads only phase (0, 0).
                guard (0..<g.kernelHeight).contains(where: { $0 * g.dilationY % sy == py }),
                      (0..<g.kernelWidth).contains(where: { $0 * g.dilationX % sx == px }) else { continue }
                let source = image + c * g.inputArea
                // Phase columns x whose input column x·sx + px - padLeft lies inside the image.
                let first = min(width, max(0, (g.padLeft - px + sx - 1) / sx))
                let last = max(first, min(width, (g.inputWidth + g.padLeft - px + sx - 1) / sx))
                var row = padded + plane * height * width
                for y in 0..<height {
                    let iy = y * sy + py - g.padTop
                    if iy < 0 || iy >= g.inputHeight || first == last {
                        row.update(repeating: 0, count: width)
                    } else {
                        let inRow = source + iy * g.inputWidth + px - g.padLeft
                        if first > 0 { row.update(repeating: 0, count: first) }
                        if sx == 1 {
                            (row + first).update(from: inRow + first, count: last - first)
                        } else {
                            VectorKernels.gather(inRow + first * sx, stride: sx, into: row + first, count: last - first, isa: isa)
                        }
                        if last < width { (row + last).update(repeating: 0, count: width - last) }
                    }
                    row += width
                }
            }
        }
    }
}

/// A convolution's constant weights as filter panels (`W` transposed: k-major, NR filters wide),
/// packed once by the first run that asks for them.
package final class LazyWeightPanels: Sendable {
    private let weights: Tensor
    private let group: Int
    private let isa: KernelISA
    private let packed = Mutex<[PackedPanels]?>(nil)

    package init(_ weights: Tensor, group: Int, isa: KernelISA) {
        self.weights = weights
        self.group = group
        self.isa = isa
    }

    package var panels: [PackedPanels] {
        packed.withLock { packed in
            if let packed { return packed }
            let perGroup = weights.shape[0] / group
            let depth = weights.shape[1...].reduce(1, *)
            let base = weights.baseAddress.assumingMemoryBound(to: Float.self)
            let panels = (0..<group).map { g in
                Gemm.prepackB(base + g * perGroup * depth, k: depth, n: perGroup, ld: depth, transposed: true, isa: isa)
            }
            packed = panels
            return panels
        }
    }
}
