import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// The quantized operators onnxruntime.quantization writes in the com.microsoft domain
    /// (QLinearAdd, QLinearMul, QLinearGlobalAveragePool, QGemm), and the NHWC operators of the
    /// quantized layout (domain `onyx.nhwc`, which only ``QuantizedNhwcLayout`` puts in graphs).
    package static let quantizedOperators: [OperatorRegistration] = [
        OperatorRegistration("QLinearAdd", domain: "com.microsoft", versions: 1...Int.max) { context in
            try QLinearBinaryKernel(context, multiply: false)
        },
        OperatorRegistration("QLinearMul", domain: "com.microsoft", versions: 1...Int.max) { context in
            try QLinearBinaryKernel(context, multiply: true)
        },
        OperatorRegistration("QLinearGlobalAveragePool", domain: "com.microsoft", versions: 1...Int.max) { context in
            try QLinearGlobalAveragePoolKernel(context)
        },
        OperatorRegistration("QGemm", domain: "com.microsoft", versions: 1...Int.max) { context in try QGemmKernel(context) },
        OperatorRegistration("QLinearConv", domain: QuantizedNhwc.domain, versions: 1...Int.max) { context in
            try NhwcQLinearConvKernel(context)
        },
        OperatorRegistration("MaxPool", domain: QuantizedNhwc.domain, versions: 1...Int.max) { context in
            try NhwcMaxPoolKernel(context)
        },
    ]
}

/// The NHWC layout of quantized convolution chains.
package enum QuantizedNhwc {
    package static let domain = "onyx.nhwc"
    /// Transpose permutations into and out of the layout.
    package static let toNhwc = [0, 2, 3, 1]
    package static let toNchw = [0, 3, 1, 2]
}

// MARK: - Constant quantization parameters, checked at load

/// A constant scale (float) or zero point (8-bit) input, checked against what it quantizes.
struct QuantizationConstant {
    /// Input `index` of `context` as floats: one value, or `count` (per channel) when `count` is given.
    static func scales(_ context: NodeContext, _ index: Int, op: String, name: String, count: Int? = nil) throws -> [Float] {
        guard let t = context.constantInput(index) else {
            throw OnyxError.invalidModel("\(op): \(name) must be a constant (an initializer)")
        }
        guard t.dataType == .float else { throw OnyxError.unsupportedDataType("\(op): \(name) must be float, got \(t.dataType)") }
        try checkCount(t, op: op, name: name, count: count)
        return try t.scalars(as: Float.self)
    }

    /// Input `index` as Int32 values (0 when absent), which must be of `type` (nil: int8 or uint8).
    static func zeroPoints(_ context: NodeContext, _ index: Int, op: String, name: String, type: DataType?, count: Int? = nil)
        throws -> (values: [Int32], type: DataType?)
    {
        guard context.hasInput(index) else { return ([0], nil) }
        guard let t = context.constantInput(index) else {
            throw OnyxError.invalidModel("\(op): \(name) must be a constant (an initializer)")
        }
        if let type, t.dataType != type {
            throw OnyxError.unsupportedDataType("\(op): \(name) is \(t.dataType) but must be \(type), the type it quantizes")
        }
        try checkCount(t, op: op, name: name, count: count)
        switch t.dataType {
        case .uint8: return (try t.scalars(as: UInt8.self).map(Int32.init), .uint8)
        case .int8: return (try t.scalars(as: Int8.self).map(Int32.init), .int8)
        default: throw OnyxError.unsupportedDataType("\(op): \(name) must be int8 or uint8, got \(t.dataType)")
        }
    }

    private static func checkCount(_ t: Tensor, op: String, name: String, count: Int?) throws {
        let ok = t.elementCount == 1 && t.rank <= 1 || (count.map { t.shape == [$0] } ?? false)
        guard ok else {
            throw OnyxError.shapeMismatch(
                "\(op): \(name) of shape \(shapeText(t.shape)) must be a scalar\(count.map { " or [\($0)], one per output channel" } ?? "")")
        }
    }
}

// MARK: - QLinearConv in NHWC

/// The `onyx.output_range` of a QLinearConv into which QdqFusion folded a Relu or Clip: the
/// requantized output is clamped to `[low, high]`.
func outputRange(_ context: NodeContext) throws -> ClosedRange<Int32>? {
    guard let range = try context.ints("onyx.output_range") else { return nil }
    guard range.count == 2, let low = Int32(exactly: range[0]), let high = Int32(exactly: range[1]), low <= high else {
        throw context.attributeError("onyx.output_range must be [low, high], got \(range)")
    }
    return low...high
}

/// QLinearConv over NHWC uint8 images (``QuantizedNhwcLayout``): x `[N, H, W, C]`, y `[N, OH, OW, F]`,
/// the weights in ONNX's `[F, C/group, kh, kw]`. Group 1 runs as im2col and the integer GEMM with the
/// weights packed at load; depthwise (group = C = F) as a direct loop. Every scale and zero point
/// is a constant; each filter's multiplier `x_scale · w_scale / y_scale` is computed at load.
package struct NhwcQLinearConvKernel: Kernel {
    let spatial: SpatialAttributes
    let kernel: [Int]
    let channels: Int
    let filters: Int
    let depthwise: Bool
    let inputZero: Int32
    let requantization: Requantization
    let outputType: DataType
    let multipliers: [Float]
    let bias: [Int32]?
    let packed: PackedIntegerMatrix?
    let depthwiseFilters: QuantizedConvolution.DepthwiseFilters?
    let isa: KernelISA

    init(_ context: NodeContext) throws {
        let op = "QLinearConv"
        guard let w = context.constantInput(3), w.rank == 4, [.int8, .uint8].contains(w.dataType) else {
            throw OnyxError.invalidModel("\(op) (NHWC): w must be a constant 4-D int8 or uint8 tensor")
        }
        let isa = context.isa
        self.isa = isa
        spatial = try SpatialAttributes(context)
        let group = try context.int("group", default: 1)
        let filters = w.shape[0], channels = group > 1 ? group : w.shape[1]
        self.filters = filters
        self.channels = channels
        kernel = [w.shape[2], w.shape[3]]
        depthwise = group > 1
        guard group == 1 || (group == filters && w.shape[1] == 1) else {
            throw context.attributeError("group \(group): the NHWC kernel runs group 1 or depthwise convolutions")
        }
        let xScale = try QuantizationConstant.scales(context, 1, op: op, name: "x_scale")[0]
        let (xZero, _) = try QuantizationConstant.zeroPoints(context, 2, op: op, name: "x_zero_point", type: .uint8)
        let wScale = try QuantizationConstant.scales(context, 4, op: op, name: "w_scale", count: filters)
        let (wZero, _) = try QuantizationConstant.zeroPoints(context, 5, op: op, name: "w_zero_point", type: w.dataType,
                                                             count: filters)
        let yScale = try QuantizationConstant.scales(context, 6, op: op, name: "y_scale")[0]
        let (yZero, yType) = try QuantizationConstant.zeroPoints(context, 7, op: op, name: "y_zero_point", type: nil)
        inputZero = xZero[0]
        outputType = yType ?? .uint8
        var requantization = Requantization(zeroPoint: yZero[0], signed: outputType == .int8)
        if let range = try outputRange(context) {
            requantization.low = max(requantization.low, range.lowerBound)
            requantization.high = min(requantization.high, range.upperBound)
        }
        self.requantization = requantization
        multipliers = (0..<filters).map { xScale * wScale[wScale.count == 1 ? 0 : $0] / yScale }
        if context.hasInput(8) {
            guard let b = context.constantInput(8), b.dataType == .int32, b.shape == [filters] else {
                throw OnyxError.shapeMismatch("\(op): B must be a constant int32 tensor of shape [\(filters)]")
            }
            bias = try b.scalars(as: Int32.self)
        } else {
            bias = nil
        }
        let zero = { (f: Int) in wZero[wZero.count == 1 ? 0 : f] }
        let signed = w.dataType == .int8
        let area = w.shape[2] * w.shape[3]
        if group > 1 {
            let unpacked = QuantizedConvolution.depthwiseFilters(
                UnsafeRawPointer(w.baseAddress), signed: signed, filters: filters, area: area, zeroPoint: zero)
            depthwiseFilters = QuantizedConvolution.DepthwiseFilters(
                unpacked, taps: area, channels: filters, bias: bias, multiplier: multipliers, inputZero: inputZero)
            packed = nil
        } else {
            // [F][C][kh][kw] → the K × F matrix [kh][kw][C][F], K in the order of NHWC im2col rows
            // (packing reads it along its rows).
            let c = channels, k = area * c
            var reordered = [UInt8](repeating: 0, count: filters * k)
            let source = w.baseAddress.assumingMemoryBound(to: UInt8.self)
            reordered.withUnsafeMutableBufferPointer { out in
                for f in 0..<filters {
                    for ch in 0..<c {
                        for i in 0..<area { out[(i * c + ch) * filters + f] = source[(f * c + ch) * area + i] }
                    }
                }
            }
            packed = reordered.withUnsafeBytes {
                PackedIntegerMatrix.prepack($0.baseAddress!, signed: signed, k: k, n: filters, ld: filters, isa: isa) {
                    zero($0)
                }
            }
            depthwiseFilters = nil
        }
        withExtendedLifetime(w) {}
    }

    private func geometry(_ x: [Int]) throws -> ConvolutionGeometry {
        guard x.count == 4, x[3] == channels else {
            throw OnyxError.shapeMismatch("QLinearConv (NHWC): input \(shapeText(x)) must be [N, H, W, \(channels)]")
        }
        return try spatial.geometry(spatial: [x[1], x[2]], kernel: kernel, op: "QLinearConv")
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try requiredInput(inputs, 0, op: "QLinearConv", name: "x")
        try requireType(x, [.uint8], op: "QLinearConv (NHWC)", name: "x")
        let g = try geometry(x.shape)
        return [TensorDescriptor(outputType, [x.shape[0], g.outputHeight, g.outputWidth, filters])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        depthwise
            ? QuantizedConvolution.depthwiseWorkspaceByteCount(channels: channels)
            : QuantizedConvolution.workspaceByteCount(depth: kernel[0] * kernel[1] * channels, filters: filters, isa: isa)
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0), pool = context.pool
        let g = try geometry(x.shape)
        guard y.elementCount > 0 else { return }
        guard let workspace = context.workspace else { throw OnyxError.internalError("QLinearConv (NHWC): no workspace") }
        let inputImage = g.inputArea * channels, outputImage = g.outputArea * filters
        let xs = UnsafePointer(x.pointer(as: UInt8.self)), ys = UnsafeMutableRawPointer(y.data)
        try multipliers.withUnsafeBufferPointer { multiplier in
            try (bias ?? []).withUnsafeBufferPointer { bias in
                let b = self.bias == nil ? nil : bias.baseAddress
                for n in 0..<x.shape[0] {
                    if let depthwiseFilters {
                        QuantizedConvolution.depthwise(
                            xs + n * inputImage, channels: channels, geometry: g, inputZero: inputZero,
                            filters: depthwiseFilters, requantization: requantization, into: ys + n * outputImage,
                            workspace: workspace, isa: isa, pool: pool)
                    } else {
                        guard let packed else { throw OnyxError.internalError("QLinearConv (NHWC): no packed weights") }
                        QuantizedConvolution.convolve(
                            xs + n * inputImage, channels: channels, geometry: g, inputZero: inputZero,
                            filters: packed.borrowed, bias: b, multiplier: multiplier.baseAddress!,
                            requantization: requantization, into: ys + n * outputImage, workspace: workspace,
                            pool: pool)
                    }
                }
            }
        }
        withExtendedLifetime(packed) {}
    }
}

// MARK: - MaxPool in NHWC

/// MaxPool of NHWC uint8 images (``QuantizedNhwcLayout``): floor output sizes, padded taps skipped.
package struct NhwcMaxPoolKernel: Kernel {
    let spatial: SpatialAttributes

    init(_ context: NodeContext) throws {
        spatial = try SpatialAttributes(context)
        guard try context.int("ceil_mode", default: 0) == 0, try context.int("storage_order", default: 0) == 0,
              context.outputCount == 1, let kernel = spatial.kernelShape, kernel.count == 2 else {
            throw context.attributeError("the NHWC MaxPool takes a 2-D kernel_shape, ceil_mode 0, storage_order 0, one output")
        }
    }

    private func geometry(_ x: [Int]) throws -> ConvolutionGeometry {
        guard x.count == 4 else { throw OnyxError.shapeMismatch("MaxPool (NHWC): input \(shapeText(x)) must be [N, H, W, C]") }
        return try spatial.geometry(spatial: [x[1], x[2]], kernel: spatial.kernelShape!, op: "MaxPool")
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try requiredInput(inputs, 0, op: "MaxPool", name: "X")
        try requireType(x, [.uint8], op: "MaxPool (NHWC)", name: "X")
        let g = try geometry(x.shape)
        return [TensorDescriptor(.uint8, [x.shape[0], g.outputHeight, g.outputWidth, x.shape[3]])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let g = try geometry(x.shape)
        let c = x.shape[3]
        for n in 0..<x.shape[0] {
            QuantizedConvolution.maxPool(
                UnsafePointer(x.pointer(as: UInt8.self)) + n * g.inputArea * c, channels: c, geometry: g,
                into: y.pointer(as: UInt8.self) + n * g.outputArea * c, pool: context.pool)
        }
    }
}

// MARK: - QLinearAdd, QLinearMul (com.microsoft)

/// com.microsoft QLinearAdd and QLinearMul: `C = quantize(dequantize(A) ∘ dequantize(B))` with
/// NumPy broadcasting, per-tensor scales and zero points, computed as onnxruntime does in float:
/// `round_half_even(A_scale/C_scale · (A − A_zero) + B_scale/C_scale · (B − B_zero)) + C_zero`
/// (a product: `A_scale·B_scale/C_scale · (A − A_zero)(B − B_zero)`), saturated.
package struct QLinearBinaryKernel: Kernel {
    let multiply: Bool
    let isa: KernelISA
    private var op: String { multiply ? "QLinearMul" : "QLinearAdd" }

    init(_ context: NodeContext, multiply: Bool) throws {
        self.multiply = multiply
        isa = context.isa
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard (7...8).contains(inputs.count) else { throw OnyxError.invalidModel("\(op) takes 7 or 8 inputs, got \(inputs.count)") }
        let a = try requiredInput(inputs, 0, op: op, name: "A")
        let b = try requiredInput(inputs, 3, op: op, name: "B")
        try requireType(a, [.int8, .uint8], op: op, name: "A")
        guard b.dataType == a.dataType else { throw OnyxError.unsupportedDataType("\(op): B is \(b.dataType) but A is \(a.dataType)") }
        for (index, name) in [(1, "A_scale"), (4, "B_scale"), (6, "C_scale")] {
            let scale = try requiredInput(inputs, index, op: op, name: name)
            guard scale.dataType == .float, scale.elementCount == 1 else {
                throw OnyxError.shapeMismatch("\(op): \(name) must be a float scalar, got \(scale.descriptor)")
            }
        }
        for (index, name) in [(2, "A_zero_point"), (5, "B_zero_point"), (7, "C_zero_point")] {
            if let zero = optionalInput(inputs, index), zero.dataType != a.dataType || zero.elementCount != 1 {
                throw OnyxError.shapeMismatch("\(op): \(name) must be a scalar \(a.dataType), got \(zero.descriptor)")
            }
        }
        return [TensorDescriptor(a.dataType, try Broadcasting.shape(a.shape, b.shape, op: op))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, b = context.input(3)!, y = context.output(0), pool = context.pool, isa = self.isa
        func scalar(_ i: Int) -> Float { context.input(i)!.pointer(as: Float.self).pointee }
        func zero(_ i: Int) -> Int32 { context.input(i).map { QuantizationLoops.int32($0, at: 0) } ?? 0 }
        let (aScale, bScale, yScale) = (scalar(1), scalar(4), scalar(6))
        let (aZero, bZero) = (zero(2), zero(5))
        let signed = a.dataType == .int8
        let q = Requantization(zeroPoint: zero(7), signed: signed)
        let aRatio = multiply ? aScale * bScale / yScale : aScale / yScale, bRatio = bScale / yScale
        QuantizedConvolution.binary(
            multiply: multiply, UnsafeRawPointer(a.data), shape: a.shape, aZero: aZero, aRatio: aRatio,
            UnsafeRawPointer(b.data), shape: b.shape, bZero: bZero, bRatio: bRatio, requantization: q,
            into: UnsafeMutableRawPointer(y.data), shape: y.shape, inputSigned: signed, isa: isa, pool: pool)
    }
}

// MARK: - QLinearGlobalAveragePool (com.microsoft)

/// com.microsoft QLinearGlobalAveragePool: the mean of each image channel, requantized:
/// `round_half_even((Σ x − area · x_zero) · x_scale / (y_scale · area)) + y_zero`, saturated.
/// `channels_last` 1 reads `[N, D…, C]` and writes `[N, 1…, C]`; 0 reads `[N, C, D…]`.
package struct QLinearGlobalAveragePoolKernel: Kernel {
    let channelsLast: Bool
    let isa: KernelISA

    init(_ context: NodeContext) throws {
        channelsLast = try context.int("channels_last", default: 0) != 0
        isa = context.isa
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let op = "QLinearGlobalAveragePool"
        guard inputs.count == 5 else { throw OnyxError.invalidModel("\(op) takes 5 inputs, got \(inputs.count)") }
        let x = try requiredInput(inputs, 0, op: op, name: "X")
        try requireType(x, [.int8, .uint8], op: op, name: "X")
        guard x.shape.count >= 3 else { throw OnyxError.shapeMismatch("\(op): X must have rank 3 at least, got \(shapeText(x.shape))") }
        for (index, name) in [(1, "x_scale"), (3, "y_scale")] {
            let scale = try requiredInput(inputs, index, op: op, name: name)
            guard scale.dataType == .float, scale.elementCount == 1 else {
                throw OnyxError.shapeMismatch("\(op): \(name) must be a float scalar, got \(scale.descriptor)")
            }
        }
        for (index, name) in [(2, "x_zero_point"), (4, "y_zero_point")] {
            let zero = try requiredInput(inputs, index, op: op, name: name)
            guard zero.dataType == x.dataType, zero.elementCount == 1 else {
                throw OnyxError.shapeMismatch("\(op): \(name) must be a scalar \(x.dataType), got \(zero.descriptor)")
            }
        }
        var shape = x.shape.map { _ in 1 }
        shape[0] = x.shape[0]
        shape[channelsLast ? shape.count - 1 : 1] = x.shape[channelsLast ? shape.count - 1 : 1]
        return [TensorDescriptor(x.dataType, shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        Self.average(
            context.input(0)!, xScale: context.input(1)!.pointer(as: Float.self).pointee,
            xZero: QuantizationLoops.int32(context.input(2)!, at: 0), yScale: context.input(3)!.pointer(as: Float.self).pointee,
            yZero: QuantizationLoops.int32(context.input(4)!, at: 0), channelsLast: channelsLast, into: context.output(0), isa: isa)
    }

    /// The per-channel means of x into y (also QLinearAveragePool's, for a window covering the image).
    static func average(
        _ x: TensorView, xScale: Float, xZero: Int32, yScale: Float, yZero: Int32, channelsLast: Bool, into y: TensorView,
        isa: KernelISA
    ) {
        let batch = x.shape[0], channels = channelsLast ? x.shape[x.rank - 1] : x.shape[1]
        let area = x.elementCount / max(batch * channels, 1)
        let signed = x.dataType == .int8
        let q = Requantization(zeroPoint: yZero, signed: signed)
        let multiplier = [Float](repeating: xScale / (yScale * Float(area)), count: channels)
        var sums = [Int32](repeating: 0, count: channels)
        // Sums of one image's channels, in loops over typed pointers the compiler vectorises.
        func accumulate<T: FixedWidthInteger>(_: T.Type, image: Int, into sums: UnsafeMutablePointer<Int32>) {
            let pixels = UnsafeRawPointer(x.data).assumingMemoryBound(to: T.self) + image
            if channelsLast {
                for p in 0..<area {
                    let row = pixels + p * channels
                    for c in 0..<channels { sums[c] &+= Int32(row[c]) }
                }
            } else {
                for c in 0..<channels {
                    let plane = pixels + c * area
                    var sum: Int32 = 0
                    for p in 0..<area { sum &+= Int32(plane[p]) }
                    sums[c] &+= sum
                }
            }
        }
        for n in 0..<batch {
            let image = n * area * channels
            sums.withUnsafeMutableBufferPointer { sums in
                for c in 0..<channels { sums[c] = -Int32(area) * xZero }
                if signed {
                    accumulate(Int8.self, image: image, into: sums.baseAddress!)
                } else {
                    accumulate(UInt8.self, image: image, into: sums.baseAddress!)
                }
            }
            QuantizedConvolution.requantize(
                sums, ldAcc: channels, bias: nil, multiplier: multiplier, requantization: q,
                into: UnsafeMutableRawPointer(y.data) + n * channels, ldY: channels, rows: 1, n: channels, isa: isa)
        }
    }
}

// MARK: - QGemm (com.microsoft)

/// com.microsoft QGemm: `Y = alpha · (A − a_zero)(B − b_zero) · a_scale · b_scale + C` with C an
/// int32 bias of scale `alpha · a_scale · b_scale`, requantized with y_scale and y_zero_point, or
/// float when those are absent. A 2-D (transA 0), B a constant 2-D matrix (transB either way)
/// with a per-tensor or per-column scale and zero point, packed at load.
package struct QGemmKernel: Kernel {
    let packed: PackedIntegerMatrix
    let columnScale: [Float]
    let bias: [Int32]?
    let isa: KernelISA
    let n: Int
    let k: Int

    init(_ context: NodeContext) throws {
        let op = "QGemm"
        let isa = context.isa
        self.isa = isa
        guard try context.int("transA", default: 0) == 0 else { throw context.attributeError("transA 1 is not supported") }
        let transB = try context.int("transB", default: 0) != 0
        let alpha = try context.float("alpha", default: 1)
        guard let b = context.constantInput(3), b.rank == 2, [.int8, .uint8].contains(b.dataType) else {
            throw OnyxError.invalidModel("\(op): B must be a constant 2-D int8 or uint8 matrix")
        }
        let (k, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        self.k = k
        self.n = n
        let aScale = try QuantizationConstant.scales(context, 1, op: op, name: "a_scale")[0]
        let bScale = try QuantizationConstant.scales(context, 4, op: op, name: "b_scale", count: n)
        let (bZero, _) = try QuantizationConstant.zeroPoints(context, 5, op: op, name: "b_zero_point", type: b.dataType, count: n)
        var yScale: Float = 1
        if context.hasInput(7) { yScale = try QuantizationConstant.scales(context, 7, op: op, name: "y_scale")[0] }
        columnScale = (0..<n).map { alpha * aScale * bScale[bScale.count == 1 ? 0 : $0] / yScale }
        if context.hasInput(6) {
            guard let c = context.constantInput(6), c.dataType == .int32, c.elementCount == n else {
                throw OnyxError.shapeMismatch("\(op): C must be a constant int32 tensor of \(n) values")
            }
            bias = try c.scalars(as: Int32.self)
        } else {
            bias = nil
        }
        packed = PackedIntegerMatrix.prepack(
            UnsafeRawPointer(b.baseAddress), signed: b.dataType == .int8, k: k, n: n, ld: transB ? k : n,
            transposed: transB, isa: isa
        ) { bZero[bZero.count == 1 ? 0 : $0] }
        withExtendedLifetime(b) {}
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let op = "QGemm"
        let a = try requiredInput(inputs, 0, op: op, name: "A")
        try requireType(a, [.int8, .uint8], op: op, name: "A")
        guard a.shape.count == 2, a.shape[1] == k else {
            throw OnyxError.shapeMismatch("\(op): A \(shapeText(a.shape)) must be [M, \(k)]")
        }
        if let zero = optionalInput(inputs, 2), zero.dataType != a.dataType || zero.elementCount != 1 {
            throw OnyxError.shapeMismatch("\(op): a_zero_point must be a scalar \(a.dataType), got \(zero.descriptor)")
        }
        var type = DataType.float
        if optionalInput(inputs, 7) != nil {
            type = optionalInput(inputs, 8)?.dataType ?? .uint8
            guard [.int8, .uint8].contains(type) else { throw OnyxError.unsupportedDataType("\(op): y_zero_point must be int8 or uint8") }
        }
        return [TensorDescriptor(type, [a.shape[0], n])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let a = inputs[0] else { return 0 }
        let m = a.shape[0]
        return (IntegerGemm.workspaceByteCount(m: m, k: k, isa: isa) + 63) / 64 * 64 + m * n * 4
    }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, y = context.output(0)
        let m = a.shape[0]
        guard m > 0, let workspace = context.workspace else { return }
        let gemmBytes = (IntegerGemm.workspaceByteCount(m: m, k: k, isa: isa) + 63) / 64 * 64
        let sums = (workspace + gemmBytes).assumingMemoryBound(to: Int32.self)
        let aZero = context.input(2).map { QuantizationLoops.int32($0, at: 0) } ?? 0
        IntegerGemm.multiply(
            m: m, a: UnsafeRawPointer(a.data), signed: a.dataType == .int8, lda: k, zeroPoint: { _ in aZero },
            b: packed.borrowed, output: .int32(sums, ldc: n), workspace: workspace, pool: context.pool)
        if y.dataType == .float {
            let out = y.pointer(as: Float.self)
            for i in 0..<m {
                for j in 0..<n { out[i * n + j] = Float(sums[i * n + j] &+ (bias?[j] ?? 0)) * columnScale[j] }
            }
        } else {
            let zero = context.input(8).map { QuantizationLoops.int32($0, at: 0) } ?? 0
            let q = Requantization(zeroPoint: zero, signed: y.dataType == .int8)
            columnScale.withUnsafeBufferPointer { scale in
                (bias ?? []).withUnsafeBufferPointer { b in
                    QuantizedConvolution.requantize(
                        sums, ldAcc: n, bias: bias == nil ? nil : b.baseAddress, multiplier: scale.baseAddress!,
                        requantization: q, into: UnsafeMutableRawPointer(y.data), ldY: n, rows: m, n: n, isa: isa)
                }
            }
        }
        withExtendedLifetime(packed) {}
    }
}
