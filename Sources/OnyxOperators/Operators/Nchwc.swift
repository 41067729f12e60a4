import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// The operators of the NCHWc layout (domain `onyx.nchwc`), which only ``NchwcLayout`` puts in
    /// a graph. A tensor in the layout is a float tensor `[N, ⌈C/16⌉, H, W, 16]`; lanes past C
    /// hold finite values no real channel reads (see `onyx_kernels.h`).
    package static let nchwcOperators: [OperatorRegistration] = [
        OperatorRegistration("ReorderInput", domain: NchwcFormat.domain) { context in
            NchwcReorderKernel(channels: nil, isa: context.isa)
        },
        OperatorRegistration("ReorderOutput", domain: NchwcFormat.domain) { context in
            guard let channels = try context.int("channels"), channels >= 1 else {
                throw context.attributeError("ReorderOutput needs 'channels' ≥ 1")
            }
            return NchwcReorderKernel(channels: channels, isa: context.isa)
        },
        OperatorRegistration("Conv", domain: NchwcFormat.domain) { context in try NchwcConvKernel(context) },
        OperatorRegistration("MaxPool", domain: NchwcFormat.domain) { context in
            guard context.node.outputs.dropFirst().allSatisfy(\.isEmpty), try context.int("storage_order", default: 0) == 0
            else {
                throw context.attributeError("an NCHWc MaxPool has one output and no storage_order")
            }
            return try NchwcPoolKernel(context, kind: .max)
        },
        OperatorRegistration("AveragePool", domain: NchwcFormat.domain) { context in
            let full = try context.int("count_include_pad", default: 0) != 0
            return try NchwcPoolKernel(context, kind: full ? .averageFull : .average)
        },
        OperatorRegistration("GlobalAveragePool", domain: NchwcFormat.domain) { context in
            NchwcPoolKernel(globalAverage: context.isa)
        },
        OperatorRegistration("Upsample", domain: NchwcFormat.domain) { context in try NchwcUpsampleKernel(context) },
        OperatorRegistration("ScaleShift", domain: NchwcFormat.domain) { context in try NchwcScaleShiftKernel(context) },
        OperatorRegistration("Mul", domain: NchwcFormat.domain) { _ in NchwcMulKernel() },
    ]
}

/// The blocked channel layout NCHWc: an image `[C][H][W]` stored as `[⌈C/16⌉][H][W][16]`.
/// ``NchwcLayout`` (the optimizer pass) puts the operators of ``domain`` in a graph.
package enum NchwcFormat {
    /// The internal operator domain of the layout's kernels.
    package static let domain = "onyx.nchwc"

    /// Floats per pixel of a channel block.
    package static let block = NchwcLoops.block

    /// Channel blocks holding `channels` channels.
    package static func blocks(_ channels: Int) -> Int { channels / block + (channels % block == 0 ? 0 : 1) }

    /// Whether `shape` is an NCHWc tensor's `[N, blocks, H, W, 16]`.
    package static func isBlocked(_ shape: [Int]) -> Bool { shape.count == 5 && shape[4] == block }

    /// Calls `body` with ranges of `0..<count` on the pool's threads, none shorter than about 64 K
    /// multiply-adds (`costPerItem` each, a product of extents: a Double does not overflow): less is
    /// not worth waking a thread for.
    package static func split(_ count: Int, costPerItem: Double, pool: ComputePool, _ body: (Range<Int>) -> Void) {
        let chunk = min(max(65536 / max(costPerItem, 1), 1), Double(max(count, 1)))
        pool.parallelRanges(count, minimumChunk: Int(chunk), body)
    }
}

/// A 2-D window (a convolution's or a pool's) whose attributes are checked once per node and
/// resolved against each run's extents without building arrays.
package struct NchwcWindow: Sendable {
    /// `[height, width]` each.
    package let kernel: [Int], strides: [Int], dilations: [Int]
    /// `[top, left, bottom, right]`.
    package let pads: [Int]
    package let autoPad: WindowAxis.AutoPad
    package let ceilMode: Bool
    /// Pools require every window to fit in the padded input (as ``PoolingAttributes``);
    /// convolutions require one output at least (as ``SpatialAttributes``).
    package let isPool: Bool
    package let op: String

    /// The largest kernel extent, stride, dilation and pad: far from overflowing the window arithmetic.
    package static let bound = 1 << 24

    package init(kernel: [Int], strides: [Int]?, dilations: [Int]?, pads: [Int]?, autoPad: String, ceilMode: Bool, isPool: Bool,
         op: String) throws {
        let strides = strides ?? [1, 1], dilations = dilations ?? [1, 1], pads = pads ?? [0, 0, 0, 0]
        guard kernel.count == 2, strides.count == 2, dilations.count == 2, pads.count == 4 else {
            throw OnyxError.invalidAttribute(
                "\(op) (NCHWc): kernel \(kernel), strides \(strides), dilations \(dilations) and pads \(pads) must describe 2 spatial axes")
        }
        let bound = Self.bound
        guard kernel.allSatisfy({ 1...bound ~= $0 }), strides.allSatisfy({ 1...bound ~= $0 }),
              dilations.allSatisfy({ 1...bound ~= $0 }), pads.allSatisfy({ 0...bound ~= $0 }) else {
            throw OnyxError.invalidAttribute(
                "\(op) (NCHWc): kernel, strides and dilations must be in 1...\(bound) and pads in 0...\(bound)")
        }
        guard let mode = WindowAxis.AutoPad(rawValue: autoPad) else {
            throw OnyxError.invalidAttribute("\(op) (NCHWc): auto_pad '\(autoPad)' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        }
        self.autoPad = mode
        (self.kernel, self.strides, self.dilations, self.pads) = (kernel, strides, dilations, pads)
        self.ceilMode = ceilMode
        self.isPool = isPool
        self.op = op
    }

    /// Output extent and the pads before and after spatial axis `axis` (0 rows, 1 columns).
    package func resolve(_ axis: Int, input: Int) throws -> (output: Int, begin: Int, end: Int) {
        let r = WindowAxis.resolve(
            input: input, kernel: kernel[axis], stride: strides[axis], dilation: dilations[axis], padBegin: pads[axis],
            padEnd: pads[axis + 2], autoPad: autoPad, ceilMode: ceilMode)
        let extent = (kernel[axis] - 1) * dilations[axis] + 1
        if autoPad == .sameUpper || autoPad == .sameLower {
            guard r.output >= 1 || isPool else {
                throw OnyxError.shapeMismatch("\(op): a window of extent \(extent) does not fit spatial extent \(input)")
            }
        } else {
            guard r.output >= 1, r.span >= 0 || !isPool else {
                throw OnyxError.shapeMismatch(
                    "\(op): a window of extent \(extent) does not fit spatial extent \(input) padded by \(r.begin)+\(r.end)")
            }
        }
        return (r.output, r.begin, r.end)
    }

    /// The geometry of the C kernels for an `height × width` input, NCHWc or (`plainInput`) NCHW.
    func geometry(height: Int, width: Int, inChannels: Int, outChannels: Int, plainInput: Bool = false) throws
        -> NchwcGeometry {
        let rows = try resolve(0, input: height), columns = try resolve(1, input: width)
        return NchwcGeometry(
            inHeight: height, inWidth: width, outHeight: rows.output, outWidth: columns.output, kernelHeight: kernel[0],
            kernelWidth: kernel[1], strideY: strides[0], strideX: strides[1], dilationY: dilations[0],
            dilationX: dilations[1], padTop: rows.begin, padLeft: columns.begin, inChannels: inChannels,
            outChannels: outChannels, plainInput: plainInput)
    }

    /// Whether every window lies inside the padded input (no `ceil_mode` overhang), as
    /// `count_include_pad` averaging over the whole window needs.
    package func fitsPaddedInput(height: Int, width: Int) throws -> Bool {
        for axis in 0..<2 {
            let input = axis == 0 ? height : width
            let r = try resolve(axis, input: input)
            if (r.output - 1) * strides[axis] + (kernel[axis] - 1) * dilations[axis] + 1 > r.begin + input + r.end { return false }
        }
        return true
    }
}

/// ReorderInput (`[N, C, H, W]` → `[N, ⌈C/16⌉, H, W, 16]`, zero lanes past C) and ReorderOutput
/// (back, with the `channels` attribute naming C): the edges of an NCHWc chain.
package struct NchwcReorderKernel: Kernel {
    /// C for ReorderOutput; `nil` for ReorderInput.
    package let channels: Int?
    package let isa: KernelISA

    private var name: String { channels == nil ? "ReorderInput" : "ReorderOutput" }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0], x.dataType == .float else {
            throw OnyxError.invalidModel("\(name) (NCHWc) takes one float tensor")
        }
        let s = x.shape
        guard let channels else {
            guard s.count == 4 else { throw OnyxError.shapeMismatch("ReorderInput: input must be N×C×H×W, got \(s)") }
            return [TensorDescriptor(.float, [s[0], NchwcFormat.blocks(s[1]), s[2], s[3], NchwcFormat.block])]
        }
        guard NchwcFormat.isBlocked(s), s[1] == NchwcFormat.blocks(channels) else {
            throw OnyxError.shapeMismatch(
                "ReorderOutput: input must be N×\(NchwcFormat.blocks(channels))×H×W×16 for \(channels) channels, got \(s)")
        }
        return [TensorDescriptor(.float, [s[0], channels, s[2], s[3]])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let blocked = channels == nil ? y.shape : x.shape
        let channels = self.channels ?? x.shape[1]
        let blocks = blocked[1], area = blocked[2] * blocked[3]
        let image = blocks * area * NchwcFormat.block, plain = channels * area
        let source = UnsafePointer(x.pointer(as: Float.self)), destination = y.pointer(as: Float.self)
        let toBlocks = self.channels == nil
        for n in 0..<blocked[0] {
            NchwcFormat.split(blocks, costPerItem: Double(area * NchwcFormat.block), pool: context.pool) { range in
                if toBlocks {
                    NchwcLoops.reorderIn(source + n * plain, channels: channels, area: area, into: destination + n * image,
                                         blocks: range, isa: isa)
                } else {
                    NchwcLoops.reorderOut(source + n * image, channels: channels, area: area, into: destination + n * plain,
                                          blocks: range, isa: isa)
                }
            }
        }
    }
}

/// Conv in the NCHWc layout: group 1 (`onyx_nchwc_conv`) or depthwise (`onyx_nchwc_depthwise`),
/// with ``ConvKernel``'s fused activation and residual.
///
/// Input 0 is NCHWc, or with `onyx.input_layout` = "NCHW" a plain `[N, C, H, W]` tensor (a chain's
/// first convolution, when C is small). Input 1 is the ONNX weight `[M, C/group, kh, kw]`, a
/// constant packed once here; input 2 the optional constant bias `[M]`; input 3, with
/// `onyx.residual`, an NCHWc tensor added before the activation. The output is `[N, ⌈M/16⌉, OH, OW, 16]`.
package struct NchwcConvKernel: Kernel {
    package let window: NchwcWindow
    package let depthwise: Bool
    /// The input is `[N, C, H, W]`, read through the geometry's strides.
    package let plainInput: Bool
    package let inChannels: Int, outChannels: Int
    package let activation: FusedActivation?
    package let addsResidual: Bool
    package let isa: KernelISA
    /// The filters packed for the C kernels.
    package let filter: TensorStorage
    /// The bias padded with zeros to whole blocks.
    package let bias: TensorStorage?

    /// Floats of the packed filters, or `nil` when padding the channels to whole blocks would make
    /// them more than 16 times the weight (plus 1 M floats): tiny channel counts with huge windows.
    package static func packedFilterFloats(weight shape: [Int], depthwise: Bool) -> Int? {
        guard shape.count == 4, shape.allSatisfy({ $0 >= 1 }) else { return nil }
        let area = shape[2] * shape[3], m = shape[0]
        let floats = depthwise
            ? NchwcFormat.blocks(m) * NchwcFormat.block * area
            : NchwcFormat.blocks(m) * NchwcFormat.blocks(shape[1]) * NchwcFormat.block * NchwcFormat.block * area
        return floats <= 16 * shape.reduce(1, *) + (1 << 20) ? floats : nil
    }

    package init(_ context: NodeContext) throws {
        let spatial = try SpatialAttributes(context)
        guard !spatial.ceilMode else { throw context.attributeError("an NCHWc Conv takes no ceil_mode") }
        let group = try context.int("group", default: 1)
        activation = try context.fusedActivation()
        addsResidual = try context.int("onyx.residual", default: 0) != 0
        switch try context.string("onyx.input_layout", default: "NCHWc") {
        case "NCHWc": plainInput = false
        case "NCHW": plainInput = true
        case let other: throw context.attributeError("onyx.input_layout must be NCHW or NCHWc, found '\(other)'")
        }
        isa = context.isa
        guard let w = context.constantInput(1), w.dataType == .float, w.rank == 4, w.shape.allSatisfy({ $0 >= 1 }) else {
            throw context.attributeError("the weight (input 1) must be a constant float [M, C/group, kh, kw] without empty axes")
        }
        let m = w.shape[0], kernel = Array(w.shape[2...])
        window = try NchwcWindow(kernel: kernel, strides: spatial.strides, dilations: spatial.dilations, pads: spatial.pads,
                                 autoPad: spatial.autoPad, ceilMode: false, isPool: false, op: "Conv")
        if let declared = spatial.kernelShape, declared != kernel {
            throw context.attributeError("kernel_shape \(declared) does not match weight \(w.shape)")
        }
        if group == 1 {
            depthwise = false
            inChannels = w.shape[1]
        } else if group == m && w.shape[1] == 1 {
            depthwise = true
            inChannels = m
        } else {
            throw context.attributeError(
                "only group 1 and depthwise (group = C = M) convolutions run in NCHWc, found group \(group) with weight \(w.shape)")
        }
        if depthwise && (plainInput || addsResidual) {
            throw context.attributeError("a depthwise NCHWc Conv reads NCHWc input and adds no residual")
        }
        if addsResidual && !context.hasInput(3) {
            throw context.attributeError("a fused residual (onyx.residual) needs a fourth input")
        }
        outChannels = m
        guard let floats = Self.packedFilterFloats(weight: w.shape, depthwise: depthwise) else {
            throw context.attributeError("weight \(w.shape) is too small a share of its blocked copy to run in NCHWc")
        }
        let weights = UnsafePointer(w.baseAddress.assumingMemoryBound(to: Float.self))
        filter = TensorStorage(uninitializedByteCount: floats * 4)
        let packed = filter.bytes.assumingMemoryBound(to: Float.self)
        if depthwise {
            NchwcLoops.packDepthwiseFilter(weights, channels: m, kernelHeight: kernel[0], kernelWidth: kernel[1], into: packed)
        } else {
            NchwcLoops.packFilter(
                weights, outChannels: m, inChannels: inChannels, kernelHeight: kernel[0], kernelWidth: kernel[1], into: packed)
        }
        if context.hasInput(2) {
            guard let b = context.constantInput(2), b.dataType == .float, b.shape == [m] else {
                throw context.attributeError("the bias (input 2) must be a constant float [\(m)]")
            }
            let padded = TensorStorage(byteCount: NchwcFormat.blocks(m) * NchwcFormat.block * 4)
            padded.bytes.copyMemory(from: b.baseAddress, byteCount: m * 4)
            bias = padded
        } else {
            bias = nil
        }
    }

    private func geometry(_ x: [Int]) throws -> NchwcGeometry {
        if plainInput {
            guard x.count == 4, x[1] == inChannels else {
                throw OnyxError.shapeMismatch("Conv (NCHWc): input must be N×\(inChannels)×H×W, got \(x)")
            }
        } else {
            guard NchwcFormat.isBlocked(x), x[1] == NchwcFormat.blocks(inChannels) else {
                throw OnyxError.shapeMismatch(
                    "Conv (NCHWc): input must be N×\(NchwcFormat.blocks(inChannels))×H×W×16 for \(inChannels) channels, got \(x)")
            }
        }
        return try window.geometry(height: x[2], width: x[3], inChannels: inChannels, outChannels: outChannels,
                                   plainInput: plainInput)
    }

    /// Whether `shape` is the convolution's own output for `batch` images (no broadcast residual).
    private func isConvolution(_ shape: [Int], batch: Int, _ g: NchwcGeometry) -> Bool {
        shape.count == 5 && shape[0] == batch && shape[1] == NchwcFormat.blocks(outChannels) && shape[2] == g.outHeight
            && shape[3] == g.outWidth && shape[4] == NchwcFormat.block
    }

    private func convolutionShape(batch: Int, _ g: NchwcGeometry) -> [Int] {
        [batch, NchwcFormat.blocks(outChannels), g.outHeight, g.outWidth, NchwcFormat.block]
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 2, let x = inputs[0], x.dataType == .float else {
            throw OnyxError.invalidModel("Conv (NCHWc) takes a float X and W")
        }
        let output = convolutionShape(batch: x.shape[0], try geometry(x.shape))
        guard addsResidual else { return [TensorDescriptor(.float, output)] }
        guard inputs.count > 3, let residual = inputs[3], residual.dataType == .float, NchwcFormat.isBlocked(residual.shape) else {
            throw OnyxError.invalidModel("Conv (NCHWc): the fused residual (input 3) must be a float NCHWc tensor")
        }
        return [TensorDescriptor(.float, try Broadcasting.shape(output, residual.shape, op: "Conv (NCHWc, fused Add)"))]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard addsResidual, let x = inputs[0], inputs.count > 3, let residual = inputs[3], let y = outputs.first,
              let g = try? geometry(x.shape) else { return 0 }
        let batch = x.shape[0]
        if isConvolution(y.shape, batch: batch, g) && residual.shape == y.shape { return 0 }
        return convolutionShape(batch: batch, g).reduce(4, *)
    }

    package var aliasing: KernelAliasing { addsResidual ? .inPlace(input: 3) : .none }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let g = try geometry(x.shape)
        let batch = x.shape[0]
        let input = UnsafePointer(x.pointer(as: Float.self)), output = y.pointer(as: Float.self)
        guard addsResidual else {
            guard isConvolution(y.shape, batch: batch, g) else {
                throw OnyxError.internalError("Conv (NCHWc): the output has shape \(y.shape), the convolution \(convolutionShape(batch: batch, g))")
            }
            convolve(g, batch: batch, input, into: output, accumulating: false, activation: activation, pool: context.pool)
            return
        }
        guard let residual = context.input(3) else { throw OnyxError.invalidModel("Conv (NCHWc): the fused residual (input 3) is missing") }
        if isConvolution(y.shape, batch: batch, g) && residual.shape == y.shape {
            if residual.data != y.data { y.data.copyMemory(from: residual.data, byteCount: y.byteCount) }
            convolve(g, batch: batch, input, into: output, accumulating: true, activation: activation, pool: context.pool)
            return
        }
        // A residual of another shape, broadcast as the Add would have: the convolution into the
        // workspace, then the sum.
        guard let workspace = context.workspace else { throw OnyxError.internalError("Conv (NCHWc): no workspace") }
        let convolved = workspace.assumingMemoryBound(to: Float.self)
        convolve(g, batch: batch, input, into: convolved, accumulating: false, activation: nil, pool: context.pool)
        BinaryBroadcastPlan.withPlan(convolutionShape(batch: batch, g), residual.shape, output: y.shape) { plan in
            ElementwiseLoops.binary(plan, UnsafePointer(convolved), UnsafePointer(residual.pointer(as: Float.self)), output,
                                    pool: context.pool, FloatingAdd<Float>())
        }
        activation?.apply(output, count: y.elementCount, isa: isa)
    }

    /// The convolution of `batch` images into `output`, added to what it holds when `accumulating`, then the activation.
    private func convolve(
        _ geometry: NchwcGeometry, batch: Int, _ input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>,
        accumulating: Bool, activation: FusedActivation?, pool: ComputePool
    ) {
        let block = NchwcFormat.block, outBlocks = NchwcFormat.blocks(outChannels)
        let inputArea = geometry.inHeight * geometry.inWidth, outputArea = geometry.outHeight * geometry.outWidth
        let kernelArea = geometry.kernelHeight * geometry.kernelWidth
        let inputImage = plainInput ? inChannels * inputArea : NchwcFormat.blocks(inChannels) * block * inputArea
        let outputImage = outBlocks * block * outputArea
        let filter = UnsafePointer(self.filter.bytes.assumingMemoryBound(to: Float.self))
        let bias = self.bias.map { UnsafePointer($0.bytes.assumingMemoryBound(to: Float.self)) }
        let isa = self.isa, depthwise = self.depthwise, outChannels = self.outChannels
        let rows = geometry.outHeight, groups = NchwcLoops.filterGroups(outChannels)
        // Multiply-adds of one output row of one filter group, and of one depthwise block.
        let rowCost = Double(min(outBlocks, NchwcLoops.filterGroupBlocks) * block * inChannels)
            * Double(kernelArea) * Double(geometry.outWidth)
        let depthwiseRowCost = Double(block * kernelArea) * Double(geometry.outWidth)
        for n in 0..<batch {
            let x = input + n * inputImage, y = output + n * outputImage
            // Work items are (filter group or channel block, output row), group-major so that
            // a range reuses its filters; a few blocks of a depthwise layer would not split evenly.
            if depthwise {
                Self.forEachRowRun(outBlocks, rows: rows, costPerRow: depthwiseRowCost, pool: pool) { block, first, last in
                    NchwcLoops.depthwise(geometry, x, filter: filter, bias: bias, into: y, blocks: block..<block + 1,
                                         rows: first..<last, activation: activation, isa: isa)
                }
            } else {
                Self.forEachRowRun(groups, rows: rows, costPerRow: rowCost, pool: pool) { group, first, last in
                    NchwcLoops.convolve(geometry, x, filter: filter, bias: bias, into: y, groups: group..<group + 1,
                                        rows: first..<last, accumulate: accumulating, activation: activation, isa: isa)
                }
            }
        }
    }

    /// Splits `parts × rows` work items over the pool's threads and calls `body(part, first, last)`
    /// for each run of rows `first..<last` of one part a thread takes.
    static func forEachRowRun(
        _ parts: Int, rows: Int, costPerRow: Double, pool: ComputePool, _ body: (Int, Int, Int) -> Void
    ) {
        NchwcFormat.split(parts * rows, costPerItem: costPerRow, pool: pool) { range in
            var item = range.lowerBound
            while item < range.upperBound {
                let part = item / rows, first = item % rows
                let last = min(rows, first + range.upperBound - item)
                body(part, first, last)
                item += last - first
            }
        }
    }
}

/// MaxPool, AveragePool and GlobalAveragePool in the NCHWc layout (`onyx_nchwc_pool`), each
/// channel block on its own.
package struct NchwcPoolKernel: Kernel {
    package typealias Kind = NchwcPoolKind

    package let kind: Kind
    /// `nil` for GlobalAveragePool: one window over the whole image.
    package let window: NchwcWindow?
    package let isa: KernelISA

    package init(_ context: NodeContext, kind: Kind) throws {
        let attributes = try PoolingAttributes(context)
        self.kind = kind
        window = try NchwcWindow(
            kernel: attributes.kernel, strides: attributes.strides, dilations: attributes.dilations, pads: attributes.pads,
            autoPad: attributes.autoPad.rawValue, ceilMode: attributes.ceilMode, isPool: true, op: context.node.opType)
        isa = context.isa
    }

    package init(globalAverage isa: KernelISA) {
        kind = .average
        window = nil
        self.isa = isa
    }

    private var name: String {
        guard window != nil else { return "GlobalAveragePool" }
        return kind == .max ? "MaxPool" : "AveragePool"
    }

    private func geometry(_ x: [Int]) throws -> NchwcGeometry {
        guard NchwcFormat.isBlocked(x) else { throw OnyxError.shapeMismatch("\(name) (NCHWc): input must be N×blocks×H×W×16, got \(x)") }
        let channels = x[1] * NchwcFormat.block
        guard let window else {
            return NchwcGeometry(
                inHeight: x[2], inWidth: x[3], outHeight: 1, outWidth: 1, kernelHeight: x[2], kernelWidth: x[3],
                strideY: 1, strideX: 1, dilationY: 1, dilationX: 1, padTop: 0, padLeft: 0, inChannels: channels,
                outChannels: channels)
        }
        if kind == .averageFull, try !window.fitsPaddedInput(height: x[2], width: x[3]) {
            throw OnyxError.shapeMismatch(
                "AveragePool (NCHWc): with count_include_pad a ceil_mode window of input \(x) reaches past the padded input")
        }
        return try window.geometry(height: x[2], width: x[3], inChannels: channels, outChannels: channels)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0], x.dataType == .float else {
            throw OnyxError.invalidModel("\(name) (NCHWc) takes one float tensor")
        }
        let g = try geometry(x.shape)
        return [TensorDescriptor(.float, [x.shape[0], x.shape[1], g.outHeight, g.outWidth, NchwcFormat.block])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let geometry = try geometry(x.shape)
        let blocks = x.shape[1], block = NchwcFormat.block
        let inputImage = blocks * block * geometry.inHeight * geometry.inWidth
        let outputImage = blocks * block * geometry.outHeight * geometry.outWidth
        let cost = Double(block * geometry.outHeight * geometry.outWidth) * Double(geometry.kernelHeight * geometry.kernelWidth)
        let input = UnsafePointer(x.pointer(as: Float.self)), output = y.pointer(as: Float.self)
        for n in 0..<x.shape[0] {
            NchwcFormat.split(blocks, costPerItem: cost, pool: context.pool) { range in
                NchwcLoops.pool(kind, geometry, input + n * inputImage, into: output + n * outputImage, blocks: range, isa: isa)
            }
        }
    }
}

/// Nearest-neighbour upsampling by whole factors in the NCHWc layout (`scales`: `[sy, sx]`):
/// output pixel (y, x) is input pixel (y / sy, x / sx), each a 16-float copy. ``NchwcLayout``
/// puts it where an ONNX Resize computes exactly that (YOLO's ×2 upsampling).
package struct NchwcUpsampleKernel: Kernel {
    package let scaleY: Int, scaleX: Int

    package init(_ context: NodeContext) throws {
        guard let scales = try context.ints("scales"), scales.count == 2, scales.allSatisfy({ (1...64).contains($0) }) else {
            throw context.attributeError("Upsample (NCHWc) needs 'scales': two whole factors in 1...64")
        }
        (scaleY, scaleX) = (scales[0], scales[1])
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0], x.dataType == .float, NchwcFormat.isBlocked(x.shape) else {
            throw OnyxError.invalidModel("Upsample (NCHWc) takes one float N×blocks×H×W×16 tensor")
        }
        let s = x.shape
        let (height, heightOverflow) = s[2].multipliedReportingOverflow(by: scaleY)
        let (width, widthOverflow) = s[3].multipliedReportingOverflow(by: scaleX)
        guard !heightOverflow, !widthOverflow else { throw OnyxError.shapeMismatch("Upsample (NCHWc): \(s) scaled overflows") }
        return [TensorDescriptor(.float, [s[0], s[1], height, width, NchwcFormat.block])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let planes = x.shape[0] * x.shape[1], height = x.shape[2], width = x.shape[3]
        let block = NchwcFormat.block, outWidth = width * scaleX, outRow = outWidth * block
        let source = UnsafePointer(x.pointer(as: Float.self)), destination = y.pointer(as: Float.self)
        let (scaleY, scaleX) = (self.scaleY, self.scaleX)
        NchwcFormat.split(planes * height, costPerItem: Double(outRow * scaleY), pool: context.pool) { rows in
            for item in rows {
                let input = source + item * width * block
                let first = destination + item * scaleY * outRow
                var out = first
                for column in 0..<width {
                    for _ in 0..<scaleX {
                        out.update(from: input + column * block, count: block)
                        out += block
                    }
                }
                for copy in 1..<scaleY { (first + copy * outRow).update(from: first, count: outRow) }
            }
        }
    }
}

/// `x · scale + shift` per lane of NCHWc `x` (inputs: x, then `scale` and `shift` of 16 floats
/// per channel block), then the fused activation (`onyx.activation`, see ``NchwcLayout``): an
/// inference-mode BatchNormalization, its parameters laid out as the blocks. It runs as a 1×1
/// depthwise convolution, `scale` its packed filter and `shift` its bias, as onnxruntime's NCHWc
/// transformer runs one.
package struct NchwcScaleShiftKernel: Kernel {
    package let activation: FusedActivation?
    package let isa: KernelISA

    package init(_ context: NodeContext) throws {
        activation = try context.fusedActivation()
        isa = context.isa
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 3, let x = inputs[0], let scale = inputs[1], let shift = inputs[2],
              [x.dataType, scale.dataType, shift.dataType].allSatisfy({ $0 == .float }), NchwcFormat.isBlocked(x.shape)
        else {
            throw OnyxError.invalidModel("ScaleShift (NCHWc) takes a float N×blocks×H×W×16 tensor, a scale and a shift")
        }
        let lanes = x.shape[1] * NchwcFormat.block
        guard scale.shape == [lanes], shift.shape == [lanes] else {
            throw OnyxError.shapeMismatch("ScaleShift (NCHWc): scale and shift must have \(lanes) values for \(x.shape), got \(scale.shape) and \(shift.shape)")
        }
        return [TensorDescriptor(.float, x.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let blocks = x.shape[1], height = x.shape[2], width = x.shape[3], block = NchwcFormat.block
        let image = blocks * height * width * block, channels = blocks * block
        let source = UnsafePointer(x.pointer(as: Float.self)), destination = y.pointer(as: Float.self)
        let scale = UnsafePointer(context.input(1)!.pointer(as: Float.self))
        let shift = UnsafePointer(context.input(2)!.pointer(as: Float.self))
        let geometry = NchwcGeometry(
            inHeight: height, inWidth: width, outHeight: height, outWidth: width, kernelHeight: 1, kernelWidth: 1,
            strideY: 1, strideX: 1, dilationY: 1, dilationX: 1, padTop: 0, padLeft: 0, inChannels: channels,
            outChannels: channels)
        let activation = self.activation, isa = self.isa
        for n in 0..<x.shape[0] {
            let input = source + n * image, output = destination + n * image
            NchwcConvKernel.forEachRowRun(blocks, rows: height, costPerRow: Double(block * width), pool: context.pool) {
                block, first, last in
                NchwcLoops.depthwise(geometry, input, filter: scale, bias: shift, into: output, blocks: block..<block + 1,
                                     rows: first..<last, activation: activation, isa: isa)
            }
        }
    }
}

/// The product of two NCHWc tensors. A squeeze-excitation gate (`[N, blocks, 1, 1, 16]` against
/// `[N, blocks, H, W, 16]`) scales each image block by its 16 lanes, the blocks split over the
/// threads; equal shapes multiply lane by lane; any other broadcast goes through the general loops.
package struct NchwcMulKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 2, let a = inputs[0], let b = inputs[1], a.dataType == .float, b.dataType == .float,
              NchwcFormat.isBlocked(a.shape), NchwcFormat.isBlocked(b.shape)
        else { throw OnyxError.invalidModel("Mul (NCHWc) takes two float N×blocks×H×W×16 tensors") }
        return [TensorDescriptor(.float, try Broadcasting.shape(a.shape, b.shape, op: "Mul (NCHWc)"))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, b = context.input(1)!, y = context.output(0)
        let pa = UnsafePointer(a.pointer(as: Float.self)), pb = UnsafePointer(b.pointer(as: Float.self))
        let out = y.pointer(as: Float.self)
        let block = NchwcFormat.block, stride = MemoryLayout<SIMD16<Float>>.size
        func isGate(_ gate: [Int], of image: [Int]) -> Bool {
            gate[0] == image[0] && gate[1] == image[1] && gate[2] == 1 && gate[3] == 1 && image == y.shape
        }
        let gated: (image: UnsafePointer<Float>, gate: UnsafePointer<Float>)? =
            isGate(b.shape, of: a.shape) ? (pa, pb) : isGate(a.shape, of: b.shape) ? (pb, pa) : nil
        if a.shape == b.shape || gated != nil {
            let shape = y.shape, planes = shape[0] * shape[1], area = shape[2] * shape[3]
            NchwcFormat.split(planes, costPerItem: Double(area * block), pool: context.pool) { range in
                for plane in range {
                    let output = UnsafeMutableRawPointer(out + plane * area * block)
                    if let (image, gate) = gated {
                        let scale = UnsafeRawPointer(gate + plane * block).loadUnaligned(as: SIMD16<Float>.self)
                        let input = UnsafeRawPointer(image + plane * area * block)
                        for pixel in 0..<area {
                            let v = input.loadUnaligned(fromByteOffset: pixel * stride, as: SIMD16<Float>.self)
                            output.storeBytes(of: v * scale, toByteOffset: pixel * stride, as: SIMD16<Float>.self)
                        }
                    } else {
                        let left = UnsafeRawPointer(pa + plane * area * block), right = UnsafeRawPointer(pb + plane * area * block)
                        for pixel in 0..<area {
                            let product = left.loadUnaligned(fromByteOffset: pixel * stride, as: SIMD16<Float>.self)
                                * right.loadUnaligned(fromByteOffset: pixel * stride, as: SIMD16<Float>.self)
                            output.storeBytes(of: product, toByteOffset: pixel * stride, as: SIMD16<Float>.self)
                        }
                    }
                }
            }
            return
        }
        BinaryBroadcastPlan.withPlan(a.shape, b.shape, output: y.shape) { plan in
            ElementwiseLoops.binary(plan, pa, pb, out, pool: context.pool, FloatingMultiply<Float>())
        }
    }
}
