import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// GridSample, AffineGrid, Col2Im, DeformConv, RoiAlign, NonMaxSuppression.
    package static let visionOperators: [OperatorRegistration] = [
        // GridSample-16 is 4-D only with modes bilinear/bicubic; 20 renamed them linear/cubic and
        // went N-d; 22 only added bfloat16.
        OperatorRegistration("GridSample", versions: 16...19) { context in
            try GridSampleKernel(context, modes: ["nearest": .nearest, "bilinear": .linear, "bicubic": .cubic],
                                 defaultMode: "bilinear", spatialRank: 2)
        },
        OperatorRegistration("GridSample", versions: 20...Int.max) { context in
            try GridSampleKernel(context, modes: ["nearest": .nearest, "linear": .linear, "cubic": .cubic],
                                 defaultMode: "linear", spatialRank: nil)
        },
        OperatorRegistration("AffineGrid", versions: 20...Int.max) { context in
            AffineGridKernel(alignCorners: try context.int("align_corners", default: 0) != 0)
        },
        OperatorRegistration("Col2Im", versions: 18...Int.max) { context in
            Col2ImKernel(dilations: try context.ints("dilations"), pads: try context.ints("pads"),
                         strides: try context.ints("strides"))
        },
        OperatorRegistration("DeformConv", versions: 19...Int.max) { context in try DeformConvKernel(context) },
        OperatorRegistration("RoiAlign", versions: 10...15) { context in try RoiAlignKernel(context, halfPixelDefault: false) },
        OperatorRegistration("RoiAlign", versions: 16...Int.max) { context in try RoiAlignKernel(context, halfPixelDefault: true) },
        OperatorRegistration("NonMaxSuppression", versions: 10...Int.max) { context in
            let format = try context.int("center_point_box", default: 0)
            guard format == 0 || format == 1 else {
                throw context.attributeError("center_point_box must be 0 or 1, got \(format)")
            }
            return NonMaxSuppressionKernel(centerPointBox: format == 1)
        },
    ]
}

private let visionFloatTypes: [DataType] = [.float, .double, .float16]

private func requireFloat(_ input: PlannedInput, _ op: String, _ what: String) throws {
    guard visionFloatTypes.contains(input.dataType) else {
        throw OnyxError.unsupportedDataType("\(op): \(what) must be float, double or float16, found \(input.dataType)")
    }
}

/// The inputs `names` (all required), or an error naming the first one missing.
private func requiredInputs(_ inputs: [PlannedInput?], _ op: String, _ names: [String]) throws -> [PlannedInput] {
    try names.enumerated().map { index, name in
        guard index < inputs.count, let input = inputs[index] else {
            throw OnyxError.invalidModel("\(op): missing input \(index) (\(name))")
        }
        return input
    }
}

// MARK: - GridSample

/// GridSample: samples X (N, C, d1…dr) at the normalised positions of grid (N, D1…Dr, r).
///
/// Float X is computed in Float, double (and 32/64-bit integer) X in Double; integer outputs
/// truncate toward zero like the reference.
package struct GridSampleKernel: Kernel {
    package let mode: GridSampling.Mode
    package let padding: GridSampling.Padding
    package let alignCorners: Bool
    /// Opset 16 takes 4-D input only.
    package let spatialRank: Int?

    package init(_ context: NodeContext, modes: [String: GridSampling.Mode], defaultMode: String, spatialRank: Int?) throws {
        let modeName = try context.string("mode", default: defaultMode)
        guard let mode = modes[modeName] else {
            throw context.attributeError("mode '\(modeName)' is not one of \(modes.keys.sorted().joined(separator: ", "))")
        }
        let paddingName = try context.string("padding_mode", default: "zeros")
        let paddings: [String: GridSampling.Padding] = ["zeros": .zeros, "border": .border, "reflection": .reflection]
        guard let padding = paddings[paddingName] else {
            throw context.attributeError("padding_mode '\(paddingName)' is not zeros, border or reflection")
        }
        self.mode = mode
        self.padding = padding
        self.alignCorners = try context.int("align_corners", default: 0) != 0
        self.spatialRank = spatialRank
    }

    /// Whether the arithmetic runs in Double rather than Float.
    private static func computesInDouble(_ x: DataType, _ grid: DataType) -> Bool {
        x == .double || grid == .double || [.int32, .uint32, .int64, .uint64].contains(x)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let given = try requiredInputs(inputs, "GridSample", ["X", "grid"])
        let x = given[0], grid = given[1]
        try requireFloat(grid, "GridSample", "grid")
        let rank = x.shape.count
        guard rank >= 3 else { throw OnyxError.shapeMismatch("GridSample: X must have rank 3 or more, got \(shapeText(x.shape))") }
        if let spatialRank, rank != spatialRank + 2 {
            throw OnyxError.shapeMismatch("GridSample (opset < 20): X must be 4-D, got \(shapeText(x.shape))")
        }
        let r = rank - 2
        guard grid.shape.count == rank, grid.shape[0] == x.shape[0], grid.shape[rank - 1] == r else {
            throw OnyxError.shapeMismatch(
                "GridSample: grid \(shapeText(grid.shape)) must be [N, D1…D\(r), \(r)] for X \(shapeText(x.shape))")
        }
        var combinations = 1
        for _ in 0..<r {
            combinations *= GridSampling.taps(mode)
            guard combinations <= 1 << 16 else {
                throw OnyxError.limitExceeded("GridSample: \(r) spatial axes need too many interpolation taps per point")
            }
        }
        return [TensorDescriptor(x.dataType, Array(x.shape[0..<2]) + Array(grid.shape[1..<(rank - 1)]))]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        (inputs.count > 1 ? inputs[1]?.elementCount ?? 0 : 0) * MemoryLayout<Double>.size
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, grid = context.input(1)!, y = context.output(0)
        if y.elementCount == 0 { return }
        guard let workspace = context.workspace else { throw OnyxError.internalError("GridSample: missing workspace") }
        let geometry = GridSampling.Geometry(
            mode: mode, padding: padding, alignCorners: alignCorners, batch: x.shape[0], channels: x.shape[1],
            inputExtents: Array(x.shape[2...]), outputPoints: Array(y.shape[2...]).reduce(1, *))
        if Self.computesInDouble(x.dataType, grid.dataType) {
            try sample(Double.self, geometry, x, grid, y, workspace, context.pool)
        } else {
            try sample(Float.self, geometry, x, grid, y, workspace, context.pool)
        }
    }

    private func sample<C: BinaryFloatingPoint>(
        _: C.Type, _ g: GridSampling.Geometry, _ x: TensorView, _ grid: TensorView, _ y: TensorView,
        _ workspace: UnsafeMutableRawPointer, _ pool: ComputePool
    ) throws {
        let locations = workspace.bindMemory(to: C.self, capacity: grid.elementCount)
        for i in 0..<grid.elementCount {
            locations[i] = C(visionReadReal(grid.data, grid.dataType, i) ?? .nan)
        }
        try x.dataType.visitElement(Sampling(g: g, x: x, grid: UnsafePointer(locations), y: y, pool: pool))
    }

    /// GridSampling over X's element type, at locations of type `C`.
    private struct Sampling<C: BinaryFloatingPoint>: ElementVisitor {
        let g: GridSampling.Geometry
        let x: TensorView, grid: UnsafePointer<C>, y: TensorView
        let pool: ComputePool

        func visit<X: VisionElement>(_: X.Type) {
            GridSampling.sample(g, x: UnsafePointer(x.pointer(as: X.self)), grid: grid, y: y.pointer(as: X.self), pool: pool)
        }

        func visitBool() { visit(Bool.self) }
    }
}

// MARK: - AffineGrid

/// AffineGrid: the sampling grid (N, H, W, 2) or (N, D, H, W, 3) of affine matrices theta
/// (N, 2, 3) or (N, 3, 4) over an output of `size` (N, C, H, W) or (N, C, D, H, W).
package struct AffineGridKernel: Kernel {
    package let alignCorners: Bool

    private func extents(_ inputs: [PlannedInput?]) throws -> (theta: PlannedInput, spatial: [Int]) {
        let given = try requiredInputs(inputs, "AffineGrid", ["theta", "size"])
        let theta = given[0]
        try requireFloat(theta, "AffineGrid", "theta")
        guard let size = try constantIntegers(given[1], op: "AffineGrid", what: "size") else {
            throw OnyxError.invalidModel("AffineGrid: missing input 1 (size)")
        }
        guard size.count == 4 || size.count == 5 else {
            throw OnyxError.shapeMismatch("AffineGrid: size must have 4 (2-D) or 5 (3-D) values, got \(shapeText(size))")
        }
        let r = size.count - 2
        guard theta.shape == [size[0], r, r + 1] else {
            throw OnyxError.shapeMismatch("AffineGrid: theta \(shapeText(theta.shape)) must be [\(size[0]), \(r), \(r + 1)] for size \(shapeText(size))")
        }
        guard size.allSatisfy({ $0 >= 0 }) else {
            throw OnyxError.invalidInput("AffineGrid: size \(shapeText(size)) has a negative extent")
        }
        _ = try Tensor.checkedElementCount(Array(size[2...]) + [size[0], r])
        return (theta, Array(size[2...]))
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let (theta, spatial) = try extents(inputs)
        return [TensorDescriptor(theta.dataType, [theta.shape[0]] + spatial + [spatial.count])]
    }

    package func readsData(ofInput index: Int) -> Bool { index == 0 }

    package func run(_ context: borrowing KernelContext) throws {
        let theta = context.input(0)!, y = context.output(0)
        let spatial = Array(y.shape[1..<(y.rank - 1)])
        try theta.dataType.visitFloating(Filling(kernel: self, theta: theta, y: y, spatial: spatial), operation: "AffineGrid")
    }

    /// `fill` in the element type, computing in its wide type (float16 in Float).
    private struct Filling: FloatingElementVisitor {
        let kernel: AffineGridKernel
        let theta: TensorView, y: TensorView
        let spatial: [Int]

        func visit<T: FloatingElement>(_: T.Type) { kernel.fill(T.self, T.Wide.self, theta, y, spatial) }
    }

    /// The base coordinate of index `i` of `length` positions in [-1, 1].
    private func base<C: BinaryFloatingPoint>(_ i: Int, _ length: Int) -> C {
        if alignCorners {
            return length > 1 ? -1 + 2 * C(i) / C(length - 1) : -1
        }
        return -1 + (2 * C(i) + 1) / C(length)
    }

    private func fill<T: VisionElement, C: BinaryFloatingPoint>(
        _: T.Type, _: C.Type, _ theta: TensorView, _ y: TensorView, _ spatial: [Int]
    ) {
        let t = theta.pointer(as: T.self), out = y.pointer(as: T.self)
        let r = spatial.count, points = spatial.reduce(1, *)
        var homogeneous = [C](repeating: 1, count: r + 1)
        var index = [Int](repeating: 0, count: r)
        for n in 0..<theta.shape[0] {
            let matrix = t + n * r * (r + 1)
            for a in 0..<r { index[a] = 0 }
            for p in 0..<points {
                // Homogeneous coordinate (x, y[, z], 1): x follows the last spatial axis.
                for a in 0..<r { homogeneous[r - 1 - a] = base(index[a], spatial[a]) }
                let row = out + (n * points + p) * r
                for i in 0..<r {
                    var sum: C = 0
                    for j in 0...r { sum += matrix[i * (r + 1) + j].real(C.self) * homogeneous[j] }
                    row[i] = T.converting(sum)
                }
                var a = r - 1
                while a >= 0 {
                    index[a] += 1
                    if index[a] < spatial[a] { break }
                    index[a] = 0
                    a -= 1
                }
            }
        }
    }
}

// MARK: - Col2Im

/// Col2Im: sums the columns of (N, C·∏block, L) back into images (N, C, image_shape…), the
/// inverse layout of im2col with the given dilations, pads and strides.
package struct Col2ImKernel: Kernel {
    package let dilations: [Int]?
    package let pads: [Int]?
    package let strides: [Int]?

    private struct Layout {
        var image: [Int], block: [Int], dilations: [Int], padBegin: [Int], strides: [Int], blocks: [Int]
    }

    private func layout(_ data: [Int], image: [Int], block: [Int]) throws -> Layout {
        let r = image.count
        guard r >= 1, block.count == r else {
            throw OnyxError.shapeMismatch("Col2Im: image_shape \(shapeText(image)) and block_shape \(shapeText(block)) must have the same length ≥ 1")
        }
        let dilations = self.dilations ?? Array(repeating: 1, count: r)
        let strides = self.strides ?? Array(repeating: 1, count: r)
        let pads = self.pads ?? Array(repeating: 0, count: 2 * r)
        guard dilations.count == r, strides.count == r, pads.count == 2 * r else {
            throw OnyxError.invalidAttribute(
                "Col2Im: dilations \(shapeText(dilations)), strides \(shapeText(strides)) and pads \(shapeText(pads)) do not fit \(r) spatial axes")
        }
        guard dilations.allSatisfy({ $0 >= 1 }), strides.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }) else {
            throw OnyxError.invalidAttribute("Col2Im: dilations and strides must be ≥ 1 and pads ≥ 0")
        }
        guard image.allSatisfy({ $0 >= 1 }), block.allSatisfy({ $0 >= 1 }) else {
            throw OnyxError.invalidInput("Col2Im: image_shape \(shapeText(image)) and block_shape \(shapeText(block)) must be ≥ 1")
        }
        // Bounded so the block arithmetic below cannot overflow.
        guard (image + block + dilations + strides + pads).allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw OnyxError.limitExceeded("Col2Im: image_shape, block_shape, dilations, strides and pads must be below 2³¹")
        }
        _ = try Tensor.checkedElementCount([data.first ?? 0, data.count > 1 ? data[1] : 0] + image)
        var blocks: [Int] = []
        for a in 0..<r {
            let span = image[a] + pads[a] + pads[a + r] - dilations[a] * (block[a] - 1) - 1
            guard span >= 0 else {
                throw OnyxError.shapeMismatch("Col2Im: block \(block[a]) with dilation \(dilations[a]) does not fit image axis \(a) of \(image[a]) plus pads")
            }
            blocks.append(span / strides[a] + 1)
        }
        let blockSize = block.reduce(1, *)
        guard data.count == 3 else { throw OnyxError.shapeMismatch("Col2Im: input must be 3-D (N, C·∏block, L), got \(shapeText(data))") }
        guard data[1] % blockSize == 0 else {
            throw OnyxError.shapeMismatch("Col2Im: input axis 1 (\(data[1])) is not a multiple of the block size \(blockSize)")
        }
        guard data[2] == blocks.reduce(1, *) else {
            throw OnyxError.shapeMismatch("Col2Im: input axis 2 is \(data[2]) but the image has \(shapeText(blocks)) = \(blocks.reduce(1, *)) blocks")
        }
        return Layout(image: image, block: block, dilations: dilations, padBegin: Array(pads[0..<r]), strides: strides, blocks: blocks)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let given = try requiredInputs(inputs, "Col2Im", ["input", "image_shape", "block_shape"])
        guard let image = try constantIntegers(given[1], op: "Col2Im", what: "image_shape"),
              let block = try constantIntegers(given[2], op: "Col2Im", what: "block_shape") else {
            throw OnyxError.invalidModel("Col2Im: missing image_shape or block_shape")
        }
        guard given[0].dataType != .bool else { throw OnyxError.unsupportedDataType("Col2Im does not support bool") }
        let data = given[0].shape
        let l = try layout(data, image: image, block: block)
        return [TensorDescriptor(given[0].dataType, [data[0], data[1] / block.reduce(1, *)] + l.image)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        func values(_ index: Int) -> [Int] {
            guard let view = context.input(index) else { return [] }
            return (0..<view.elementCount).map { i in
                view.dataType == .int32 ? Int(view.pointer(as: Int32.self)[i]) : Int(view.pointer(as: Int64.self)[i])
            }
        }
        let l = try layout(x.shape, image: values(1), block: values(2))
        try x.dataType.visitNumeric(Accumulation(x: x, y: y, layout: l), operation: "Col2Im")
    }

    /// `accumulate` in the element type; integers wrap.
    private struct Accumulation: NumericElementVisitor {
        let x: TensorView, y: TensorView
        let layout: Layout

        func visit<T: FloatingElement>(_: T.Type) {
            Col2ImKernel.accumulate(x.pointer(as: T.self), y.pointer(as: T.self), x.shape, layout, +)
        }

        func visit<T: IntegerElement>(_: T.Type) {
            Col2ImKernel.accumulate(x.pointer(as: T.self), y.pointer(as: T.self), x.shape, layout, &+)
        }
    }

    private static func accumulate<T: AdditiveArithmetic>(
        _ x: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ shape: [Int], _ l: Layout, _ add: (T, T) -> T
    ) {
        let r = l.image.count
        let imageSize = l.image.reduce(1, *), blockSize = l.block.reduce(1, *), columns = shape[2]
        let planes = shape[0] * (shape[1] / blockSize)
        y.initialize(repeating: .zero, count: planes * imageSize)
        var kernelIndex = [Int](repeating: 0, count: r), columnIndex = [Int](repeating: 0, count: r)
        for plane in 0..<planes {
            let source = x + plane * blockSize * columns, target = y + plane * imageSize
            for a in 0..<r { kernelIndex[a] = 0 }
            for k in 0..<blockSize {
                for a in 0..<r { columnIndex[a] = 0 }
                for column in 0..<columns {
                    var offset = 0, inside = true
                    for a in 0..<r {
                        let i = columnIndex[a] * l.strides[a] - l.padBegin[a] + kernelIndex[a] * l.dilations[a]
                        if i < 0 || i >= l.image[a] { inside = false; break }
                        offset = offset * l.image[a] + i
                    }
                    if inside { target[offset] = add(target[offset], source[k * columns + column]) }
                    Self.advance(&columnIndex, l.blocks)
                }
                Self.advance(&kernelIndex, l.block)
            }
        }
    }

    /// Steps a row-major multi-index through `extents`.
    private static func advance(_ index: inout [Int], _ extents: [Int]) {
        var a = index.count - 1
        while a >= 0 {
            index[a] += 1
            if index[a] < extents[a] { return }
            index[a] = 0
            a -= 1
        }
    }
}

// MARK: - DeformConv

/// DeformConv (2-D): a convolution whose every kernel tap samples X bilinearly at its regular
/// position plus a learned offset, scaled by an optional mask; taps outside X read zero.
///
/// Per image the sampled taps form an im2col matrix (C·kh·kw, OH·OW) in the workspace; each group
/// is then a small matrix product with W.
package struct DeformConvKernel: Kernel {
    package let kernelShape: [Int]?
    package let strides: [Int]
    package let dilations: [Int]
    package let pads: [Int]
    package let group: Int
    package let offsetGroup: Int

    package init(_ context: NodeContext) throws {
        kernelShape = try context.ints("kernel_shape")
        strides = try context.ints("strides") ?? [1, 1]
        dilations = try context.ints("dilations") ?? [1, 1]
        pads = try context.ints("pads") ?? [0, 0, 0, 0]
        group = try context.int("group", default: 1)
        offsetGroup = try context.int("offset_group", default: 1)
        guard strides.count == 2, dilations.count == 2, pads.count == 4 else {
            throw context.attributeError("strides, dilations and pads must describe 2 spatial axes (2-D DeformConv only)")
        }
        guard strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }) else {
            throw context.attributeError("strides and dilations must be ≥ 1 and pads ≥ 0")
        }
        guard group >= 1, offsetGroup >= 1 else {
            throw context.attributeError("group (\(group)) and offset_group (\(offsetGroup)) must be ≥ 1")
        }
        guard (strides + dilations + pads).allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw context.attributeError("strides, dilations and pads must be below 2³¹")
        }
    }

    private struct Geometry {
        var batch: Int, channels: Int, height: Int, width: Int
        var filters: Int, kh: Int, kw: Int, oh: Int, ow: Int
    }

    private func geometry(_ x: [Int], _ w: [Int]) throws -> Geometry {
        guard x.count == 4 else { throw OnyxError.shapeMismatch("DeformConv: X must be 4-D (N, C, H, W), got \(shapeText(x))") }
        guard w.count == 4 else { throw OnyxError.shapeMismatch("DeformConv: W must be 4-D, got \(shapeText(w))") }
        guard x[1] == w[1] * group, w[0] % group == 0 else {
            throw OnyxError.shapeMismatch("DeformConv: X \(shapeText(x)) and W \(shapeText(w)) do not agree with group \(group)")
        }
        guard x[1] % offsetGroup == 0 else {
            throw OnyxError.shapeMismatch("DeformConv: \(x[1]) channels do not divide into offset_group \(offsetGroup)")
        }
        if let kernelShape, kernelShape != Array(w[2...]) {
            throw OnyxError.shapeMismatch("DeformConv: kernel_shape \(shapeText(kernelShape)) does not match W \(shapeText(w))")
        }
        let kh = w[2], kw = w[3]
        let spanH = x[2] + pads[0] + pads[2] - (kh - 1) * dilations[0] - 1
        let spanW = x[3] + pads[1] + pads[3] - (kw - 1) * dilations[1] - 1
        guard spanH >= 0, spanW >= 0 else {
            throw OnyxError.shapeMismatch("DeformConv: kernel \(kh)×\(kw) does not fit X \(shapeText(x)) with pads \(shapeText(pads))")
        }
        return Geometry(batch: x[0], channels: x[1], height: x[2], width: x[3], filters: w[0], kh: kh, kw: kw,
                        oh: spanH / strides[0] + 1, ow: spanW / strides[1] + 1)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let given = try requiredInputs(inputs, "DeformConv", ["X", "W", "offset"])
        let x = given[0], w = given[1], offset = given[2]
        try requireFloat(x, "DeformConv", "X")
        let named: [(String, PlannedInput?)] = [("W", w), ("offset", offset), ("B", inputs.count > 3 ? inputs[3] : nil),
                                                ("mask", inputs.count > 4 ? inputs[4] : nil)]
        for (name, input) in named {
            if let input, input.dataType != x.dataType {
                throw OnyxError.unsupportedDataType("DeformConv: \(name) is \(input.dataType); expected \(x.dataType) like X")
            }
        }
        let g = try geometry(x.shape, w.shape)
        let taps = g.kh * g.kw
        guard offset.shape == [g.batch, offsetGroup * taps * 2, g.oh, g.ow] else {
            throw OnyxError.shapeMismatch(
                "DeformConv: offset \(shapeText(offset.shape)) must be \(shapeText([g.batch, offsetGroup * taps * 2, g.oh, g.ow]))")
        }
        if inputs.count > 3, let b = inputs[3], b.shape != [g.filters] {
            throw OnyxError.shapeMismatch("DeformConv: B must have shape [\(g.filters)], got \(shapeText(b.shape))")
        }
        if inputs.count > 4, let mask = inputs[4], mask.shape != [g.batch, offsetGroup * taps, g.oh, g.ow] {
            throw OnyxError.shapeMismatch(
                "DeformConv: mask \(shapeText(mask.shape)) must be \(shapeText([g.batch, offsetGroup * taps, g.oh, g.ow]))")
        }
        return [TensorDescriptor(x.dataType, [g.batch, g.filters, g.oh, g.ow])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let x = inputs.first ?? nil, inputs.count > 1, let w = inputs[1], w.rank == 4, x.rank == 4,
              let y = outputs.first, y.rank == 4 else { return 0 }
        return x.shape[1] * w.shape[2] * w.shape[3] * y.shape[2] * y.shape[3] * MemoryLayout<Double>.size
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, w = context.input(1)!, offset = context.input(2)!, y = context.output(0)
        let g = try geometry(x.shape, w.shape)
        let bias = context.input(3), mask = context.input(4)
        if y.elementCount == 0 { return }
        // With no columns at all (zero input channels) the output is just the bias.
        let workspace = context.workspace ?? UnsafeMutableRawPointer(y.data)
        let computation = Computation(kernel: self, g: g, x: x, w: w, offset: offset, bias: bias, mask: mask, y: y,
                                      workspace: workspace)
        try x.dataType.visitFloating(computation, operation: "DeformConv")
    }

    /// `compute` in the element type, computing in its wide type (float16 in Float).
    private struct Computation: FloatingElementVisitor {
        let kernel: DeformConvKernel
        let g: Geometry
        let x: TensorView, w: TensorView, offset: TensorView, bias: TensorView?, mask: TensorView?, y: TensorView
        let workspace: UnsafeMutableRawPointer

        func visit<T: FloatingElement>(_: T.Type) {
            kernel.compute(T.self, T.Wide.self, g, x, w, offset, bias, mask, y, workspace)
        }
    }

    private func compute<T: VisionElement, C: BinaryFloatingPoint>(
        _: T.Type, _: C.Type, _ g: Geometry, _ xv: TensorView, _ wv: TensorView, _ offsetView: TensorView,
        _ biasView: TensorView?, _ maskView: TensorView?, _ yv: TensorView, _ workspace: UnsafeMutableRawPointer
    ) {
        let x = xv.pointer(as: T.self), w = wv.pointer(as: T.self), offsets = offsetView.pointer(as: T.self)
        let bias = biasView?.pointer(as: T.self), mask = maskView?.pointer(as: T.self), y = yv.pointer(as: T.self)
        let taps = g.kh * g.kw, points = g.oh * g.ow, rows = g.channels * taps
        let columns = workspace.bindMemory(to: C.self, capacity: rows * points)
        let channelsPerOffsetGroup = g.channels / offsetGroup
        let channelsPerGroup = g.channels / group, filtersPerGroup = g.filters / group
        let plane = g.height * g.width
        let accumulator = UnsafeMutablePointer<C>.allocate(capacity: max(points, 1))
        defer { accumulator.deallocate() }
        for n in 0..<g.batch {
            for c in 0..<g.channels {
                let og = c / channelsPerOffsetGroup
                let image = x + (n * g.channels + c) * plane
                for i in 0..<g.kh {
                    for j in 0..<g.kw {
                        let tap = i * g.kw + j
                        let offsetBase = offsets + ((n * offsetGroup + og) * taps * 2 + tap * 2) * points
                        let maskBase = mask.map { $0 + ((n * offsetGroup + og) * taps + tap) * points }
                        let row = columns + (c * taps + tap) * points
                        for oy in 0..<g.oh {
                            for ox in 0..<g.ow {
                                let p = oy * g.ow + ox
                                let h = C(oy * strides[0] - pads[0] + i * dilations[0]) + offsetBase[p].real(C.self)
                                let wpos = C(ox * strides[1] - pads[1] + j * dilations[1]) + offsetBase[points + p].real(C.self)
                                var value = Self.bilinear(image, g.height, g.width, h, wpos)
                                if let maskBase { value *= maskBase[p].real(C.self) }
                                row[p] = value
                            }
                        }
                    }
                }
            }
            for f in 0..<g.filters {
                let out = y + (n * g.filters + f) * points
                let group = f / filtersPerGroup
                let b: C = bias.map { $0[f].real(C.self) } ?? 0
                accumulator.initialize(repeating: b, count: points)
                let weights = w + f * channelsPerGroup * taps
                let firstRow = group * channelsPerGroup * taps
                for k in 0..<(channelsPerGroup * taps) {
                    let weight = weights[k].real(C.self)
                    let row = columns + (firstRow + k) * points
                    for p in 0..<points { accumulator[p] += weight * row[p] }
                }
                for p in 0..<points { out[p] = T.converting(accumulator[p]) }
            }
        }
    }

    /// X at the real position (h, w), bilinear between the four neighbours; outside reads zero.
    @inline(__always)
    private static func bilinear<T: VisionElement, C: BinaryFloatingPoint>(
        _ image: UnsafeMutablePointer<T>, _ height: Int, _ width: Int, _ h: C, _ w: C
    ) -> C {
        guard h.isFinite, w.isFinite, h > -1, w > -1, h < C(height), w < C(width) else { return 0 }
        let h0 = h.rounded(.down), w0 = w.rounded(.down)
        let fh = h - h0, fw = w - w0
        let y0 = Int(h0), x0 = Int(w0)
        var sum: C = 0
        for (dy, wy) in [(0, 1 - fh), (1, fh)] where y0 + dy >= 0 && y0 + dy < height {
            for (dx, wx) in [(0, 1 - fw), (1, fw)] where x0 + dx >= 0 && x0 + dx < width {
                sum += wy * wx * image[(y0 + dy) * width + x0 + dx].real(C.self)
            }
        }
        return sum
    }
}

// MARK: - RoiAlign

/// RoiAlign: average- or max-pools each region of interest (x1, y1, x2, y2, scaled by
/// `spatial_scale`) of image `batch_indices[r]` into an output_height × output_width grid of
/// bilinear samples, as onnxruntime does (max mode takes the largest weighted corner).
package struct RoiAlignKernel: Kernel {
    package let halfPixel: Bool
    package let maxMode: Bool
    package let outputHeight: Int
    package let outputWidth: Int
    package let samplingRatio: Int
    package let spatialScale: Double

    package init(_ context: NodeContext, halfPixelDefault: Bool) throws {
        if halfPixelDefault {
            let transform = try context.string("coordinate_transformation_mode", default: "half_pixel")
            guard transform == "half_pixel" || transform == "output_half_pixel" else {
                throw context.attributeError("coordinate_transformation_mode '\(transform)' is not half_pixel or output_half_pixel")
            }
            halfPixel = transform == "half_pixel"
        } else {
            halfPixel = false
        }
        let mode = try context.string("mode", default: "avg")
        guard mode == "avg" || mode == "max" else { throw context.attributeError("mode '\(mode)' is not avg or max") }
        maxMode = mode == "max"
        outputHeight = try context.int("output_height", default: 1)
        outputWidth = try context.int("output_width", default: 1)
        samplingRatio = try context.int("sampling_ratio", default: 0)
        spatialScale = Double(try context.float("spatial_scale", default: 1))
        guard outputHeight >= 1, outputWidth >= 1 else {
            throw context.attributeError("output_height and output_width must be ≥ 1, got \(outputHeight) and \(outputWidth)")
        }
        guard samplingRatio >= 0 else { throw context.attributeError("sampling_ratio must be ≥ 0, got \(samplingRatio)") }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let given = try requiredInputs(inputs, "RoiAlign", ["X", "rois", "batch_indices"])
        let x = given[0], rois = given[1], indices = given[2]
        try requireFloat(x, "RoiAlign", "X")
        guard rois.dataType == x.dataType else {
            throw OnyxError.unsupportedDataType("RoiAlign: rois is \(rois.dataType); expected \(x.dataType) like X")
        }
        guard indices.dataType == .int64 || indices.dataType == .int32 else {
            throw OnyxError.unsupportedDataType("RoiAlign: batch_indices must be int64, found \(indices.dataType)")
        }
        guard x.shape.count == 4 else { throw OnyxError.shapeMismatch("RoiAlign: X must be 4-D (N, C, H, W), got \(shapeText(x.shape))") }
        guard rois.shape.count == 2, rois.shape[1] == 4, indices.shape == [rois.shape[0]] else {
            throw OnyxError.shapeMismatch(
                "RoiAlign: rois \(shapeText(rois.shape)) must be [R, 4] and batch_indices \(shapeText(indices.shape)) must be [R]")
        }
        return [TensorDescriptor(x.dataType, [rois.shape[0], x.shape[1], outputHeight, outputWidth])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, rois = context.input(1)!, indices = context.input(2)!, y = context.output(0)
        try x.dataType.visitFloating(Pooling(kernel: self, x: x, rois: rois, indices: indices, y: y), operation: "RoiAlign")
    }

    private struct Pooling: FloatingElementVisitor {
        let kernel: RoiAlignKernel
        let x: TensorView, rois: TensorView, indices: TensorView, y: TensorView

        func visit<T: FloatingElement>(_: T.Type) throws { try kernel.pool(T.self, x, rois, indices, y) }
    }

    private func pool<T: VisionElement>(
        _: T.Type, _ xv: TensorView, _ roisView: TensorView, _ indicesView: TensorView, _ yv: TensorView
    ) throws {
        let x = xv.pointer(as: T.self), rois = roisView.pointer(as: T.self), y = yv.pointer(as: T.self)
        let batch = xv.shape[0], channels = xv.shape[1], height = xv.shape[2], width = xv.shape[3]
        let bins = outputHeight * outputWidth
        for r in 0..<roisView.shape[0] {
            let b = indicesView.dataType == .int32 ? Int(indicesView.pointer(as: Int32.self)[r]) : Int(indicesView.pointer(as: Int64.self)[r])
            guard b >= 0 && b < batch else {
                throw OnyxError.invalidInput("RoiAlign: batch index \(b) of roi \(r) is out of range for \(batch) images")
            }
            let shift = halfPixel ? 0.5 : 0
            let startW = rois[r * 4].real(Double.self) * spatialScale - shift
            let startH = rois[r * 4 + 1].real(Double.self) * spatialScale - shift
            var roiWidth = rois[r * 4 + 2].real(Double.self) * spatialScale - shift - startW
            var roiHeight = rois[r * 4 + 3].real(Double.self) * spatialScale - shift - startH
            if !halfPixel {
                roiWidth = max(roiWidth, 1)
                roiHeight = max(roiHeight, 1)
            }
            let binH = roiHeight / Double(outputHeight), binW = roiWidth / Double(outputWidth)
            let gridH = try samples(binH, r), gridW = try samples(binW, r)
            let count = Double(max(gridH * gridW, 1))
            for c in 0..<channels {
                let image = x + (b * channels + c) * height * width
                let out = y + (r * channels + c) * bins
                for ph in 0..<outputHeight {
                    for pw in 0..<outputWidth {
                        var sum = 0.0, best = 0.0, first = true
                        for iy in 0..<gridH {
                            let yy = startH + Double(ph) * binH + (Double(iy) + 0.5) * binH / Double(gridH)
                            for ix in 0..<gridW {
                                let xx = startW + Double(pw) * binW + (Double(ix) + 0.5) * binW / Double(gridW)
                                let corners = Self.corners(yy, xx, height, width)
                                var values = (0.0, 0.0, 0.0, 0.0)
                                if let k = corners {
                                    values = (k.w1 * image[k.p1].real(Double.self), k.w2 * image[k.p2].real(Double.self),
                                              k.w3 * image[k.p3].real(Double.self), k.w4 * image[k.p4].real(Double.self))
                                }
                                if maxMode {
                                    let v = max(max(values.0, values.1), max(values.2, values.3))
                                    best = first ? v : max(best, v)
                                    first = false
                                } else {
                                    sum += values.0 + values.1 + values.2 + values.3
                                }
                            }
                        }
                        out[ph * outputWidth + pw] = T.converting(maxMode ? best : sum / count)
                    }
                }
            }
        }
    }

    /// Samples per bin along one axis: `sampling_ratio`, or ⌈bin size⌉ when it is 0.
    private func samples(_ bin: Double, _ roi: Int) throws -> Int {
        if samplingRatio > 0 { return samplingRatio }
        let n = bin.rounded(.up)
        guard n.isFinite, n <= 1_048_576 else {
            throw OnyxError.invalidInput("RoiAlign: roi \(roi) needs \(n) samples per bin; its coordinates are not usable")
        }
        return max(Int(n), 0)
    }

    private struct Corners { var p1, p2, p3, p4: Int; var w1, w2, w3, w4: Double }

    /// The four neighbours of (y, x) and their bilinear weights; `nil` when the point lies
    /// more than one pixel outside the image.
    private static func corners(_ yIn: Double, _ xIn: Double, _ height: Int, _ width: Int) -> Corners? {
        guard yIn >= -1, yIn <= Double(height), xIn >= -1, xIn <= Double(width), height > 0, width > 0 else { return nil }
        var y = max(yIn, 0), x = max(xIn, 0)
        var yLow = Int(y), xLow = Int(x)
        let yHigh: Int, xHigh: Int
        if yLow >= height - 1 {
            yLow = height - 1; yHigh = yLow; y = Double(yLow)
        } else {
            yHigh = yLow + 1
        }
        if xLow >= width - 1 {
            xLow = width - 1; xHigh = xLow; x = Double(xLow)
        } else {
            xHigh = xLow + 1
        }
        let ly = y - Double(yLow), lx = x - Double(xLow), hy = 1 - ly, hx = 1 - lx
        return Corners(p1: yLow * width + xLow, p2: yLow * width + xHigh, p3: yHigh * width + xLow, p4: yHigh * width + xHigh,
                       w1: hy * hx, w2: hy * lx, w3: ly * hx, w4: ly * lx)
    }
}

// MARK: - NonMaxSuppression

/// NonMaxSuppression: per image and class, greedily keeps the highest-scoring boxes (above
/// `score_threshold`) whose IoU with every kept box is at most `iou_threshold`, up to
/// `max_output_boxes_per_class`. Output (selected, 3) rows of [batch, class, box].
///
/// The output size depends on every input's values, so planning reads them all.
package struct NonMaxSuppressionKernel: Kernel {
    package let centerPointBox: Bool

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        _ = try requiredInputs(inputs, "NonMaxSuppression", ["boxes", "scores"])
        var tensors: [Tensor?] = []
        for (index, name) in ["boxes", "scores", "max_output_boxes_per_class", "iou_threshold", "score_threshold"].enumerated() {
            guard index < inputs.count, let input = inputs[index] else { tensors.append(nil); continue }
            tensors.append(try input.requireConstant(op: "NonMaxSuppression", what: name))
        }
        let views = tensors.map { $0.map { TensorView(dataType: $0.dataType, shape: $0.shape, data: $0.baseAddress) } }
        let selected = try withExtendedLifetime(tensors) { try select(views) }
        return [TensorDescriptor(.int64, [selected.count / 3, 3])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let views = (0..<5).map { context.input($0) }
        let selected = try select(views)
        let y = context.output(0)
        guard y.elementCount == selected.count else {
            throw OnyxError.internalError("NonMaxSuppression: planned \(y.shape[0]) boxes, selected \(selected.count / 3)")
        }
        let out = y.pointer(as: Int64.self)
        for (i, v) in selected.enumerated() { out[i] = Int64(v) }
    }

    /// The selected (batch, class, box) triples, flattened.
    private func select(_ inputs: [TensorView?]) throws -> [Int] {
        guard let boxes = inputs[0], let scores = inputs[1] else { throw OnyxError.invalidModel("NonMaxSuppression: missing boxes or scores") }
        guard boxes.dataType == .float || boxes.dataType == .double, scores.dataType == boxes.dataType else {
            throw OnyxError.unsupportedDataType("NonMaxSuppression: boxes and scores must be float, found \(boxes.dataType) and \(scores.dataType)")
        }
        guard boxes.rank == 3, boxes.shape[2] == 4, scores.rank == 3, scores.shape[0] == boxes.shape[0],
              scores.shape[2] == boxes.shape[1] else {
            throw OnyxError.shapeMismatch(
                "NonMaxSuppression: boxes \(shapeText(boxes.shape)) must be [B, N, 4] and scores \(shapeText(scores.shape)) [B, C, N]")
        }
        func scalar(_ index: Int, _ name: String) throws -> Double? {
            guard index < inputs.count, let view = inputs[index], view.elementCount > 0 else { return nil }
            guard view.elementCount == 1, let value = visionReadReal(view.data, view.dataType, 0) else {
                throw OnyxError.invalidInput("NonMaxSuppression: \(name) must be a single number, got \(view.dataType)\(shapeText(view.shape))")
            }
            return value
        }
        let maxPerClass = try scalar(2, "max_output_boxes_per_class").map { $0.isNaN ? 0 : Int(max(min($0, 1e15), 0)) } ?? 0
        let iouThreshold = try scalar(3, "iou_threshold") ?? 0
        let scoreThreshold = try scalar(4, "score_threshold")
        let batches = boxes.shape[0], classes = scores.shape[1], count = boxes.shape[1]
        var selected: [Int] = []
        guard maxPerClass > 0 else { return selected }
        var candidates: [(score: Double, index: Int)] = []
        var kept: [Int] = []
        for b in 0..<batches {
            let boxBase = b * count * 4
            for c in 0..<classes {
                candidates.removeAll(keepingCapacity: true)
                for i in 0..<count {
                    let s = visionReadReal(scores.data, scores.dataType, (b * classes + c) * count + i) ?? .nan
                    if let scoreThreshold, !(s > scoreThreshold) { continue }
                    candidates.append((s.isNaN ? -.infinity : s, i))
                }
                // Highest score first; equal scores keep the lower box index first.
                candidates.sort { $0.score > $1.score || ($0.score == $1.score && $0.index < $1.index) }
                kept.removeAll(keepingCapacity: true)
                for candidate in candidates where kept.count < maxPerClass {
                    let box = self.box(boxes, boxBase + candidate.index * 4)
                    if kept.allSatisfy({ !Self.overlaps(box, self.box(boxes, boxBase + $0 * 4), iouThreshold) }) {
                        kept.append(candidate.index)
                        selected += [b, c, candidate.index]
                    }
                }
            }
        }
        return selected
    }

    /// (yMin, xMin, yMax, xMax) of the box at element `offset`.
    private func box(_ boxes: TensorView, _ offset: Int) -> (Double, Double, Double, Double) {
        let v = (0..<4).map { visionReadReal(boxes.data, boxes.dataType, offset + $0) ?? .nan }
        if centerPointBox {
            // [x_center, y_center, width, height]
            return (v[1] - v[3] / 2, v[0] - v[2] / 2, v[1] + v[3] / 2, v[0] + v[2] / 2)
        }
        return (min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3]))
    }

    /// Whether two boxes' intersection over union exceeds `threshold`.
    private static func overlaps(_ a: (Double, Double, Double, Double), _ b: (Double, Double, Double, Double), _ threshold: Double) -> Bool {
        let top = max(a.0, b.0), left = max(a.1, b.1), bottom = min(a.2, b.2), right = min(a.3, b.3)
        guard right > left, bottom > top else { return false }
        let intersection = (right - left) * (bottom - top)
        let areaA = (a.2 - a.0) * (a.3 - a.1), areaB = (b.2 - b.0) * (b.3 - b.1)
        let union = areaA + areaB - intersection
        guard intersection > 0, areaA > 0, areaB > 0, union > 0 else { return false }
        return intersection / union > threshold
    }
}
