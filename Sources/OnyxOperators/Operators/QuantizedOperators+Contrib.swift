import Foundation
import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// The rest of the com.microsoft operators onnxruntime.quantization.quantize_static writes in
    /// QOperator form: QLinearSigmoid, QLinearLeakyRelu, QLinearConcat, QLinearAveragePool,
    /// QLinearSoftmax (DynamicQuantizeLSTM, from quantize_dynamic, is in QuantizedRecurrent.swift).
    package static let quantizedContribOperators: [OperatorRegistration] = [
        OperatorRegistration("QLinearSigmoid", domain: "com.microsoft", versions: 1...Int.max) { context in
            try QLinearLookupKernel(context, op: "QLinearSigmoid", function: QuantizedLookupTable.logistic)
        },
        OperatorRegistration("QLinearLeakyRelu", domain: "com.microsoft", versions: 1...Int.max) { context in
            let alpha = try context.float("alpha", default: 0.01)
            return try QLinearLookupKernel(context, op: "QLinearLeakyRelu") { v in v >= 0 ? v : alpha * v }
        },
        OperatorRegistration("QLinearUnary", domain: QuantizedLookupTable.domain, versions: 1...Int.max) { context in
            let name = try context.string("function") ?? ""
            guard let function = QuantizedLookupTable.function(
                named: name, alpha: try context.float("alpha"), beta: try context.float("beta"))
            else { throw OnyxError.invalidModel("QLinearUnary: unknown function '\(name)'") }
            return try QLinearLookupKernel(context, op: "QLinearUnary (\(name))", function: function)
        },
        OperatorRegistration("QLinearConcat", domain: "com.microsoft", versions: 1...Int.max) { context in
            try QLinearConcatKernel(context)
        },
        OperatorRegistration("QLinearAveragePool", domain: "com.microsoft", versions: 1...Int.max) { context in
            try QLinearAveragePoolKernel(context)
        },
        OperatorRegistration("QLinearSoftmax", domain: "com.microsoft", versions: 1...Int.max) { context in
            try QLinearSoftmaxKernel(context)
        },
        OperatorRegistration("DynamicQuantizeLSTM", domain: "com.microsoft", versions: 1...Int.max) { context in
            try DynamicQuantizeLSTMKernel(context)
        },
    ]
}

// MARK: - Per-tensor parameters

/// A per-tensor scale and zero point.
struct TensorQuantization: Equatable {
    var scale: Float
    var zero: Int32

    /// The scale (input `scale`) and zero point (input `zero`, 0 when absent) of a run.
    static func read(_ context: borrowing KernelContext, scale: Int, zero: Int) -> TensorQuantization {
        TensorQuantization(
            scale: context.input(scale)!.pointer(as: Float.self).pointee,
            zero: context.input(zero).map { QuantizationLoops.int32($0, at: 0) } ?? 0)
    }

    /// The parameters when both inputs are constants (an absent zero point counts as 0), checked
    /// at load: a float scalar scale, an 8-bit scalar zero point of `type` when given.
    static func constant(_ context: NodeContext, scale: Int, zero: Int, op: String, name: String, type: DataType? = nil)
        throws -> (TensorQuantization, DataType?)?
    {
        guard context.constantInput(scale) != nil, !context.hasInput(zero) || context.constantInput(zero) != nil else { return nil }
        let s = try QuantizationConstant.scales(context, scale, op: op, name: "\(name)_scale")[0]
        let (z, zType) = try QuantizationConstant.zeroPoints(context, zero, op: op, name: "\(name)_zero_point", type: type)
        guard s.isFinite, s > 0 else { throw OnyxError.invalidModel("\(op): \(name)_scale must be finite and > 0, got \(s)") }
        return (TensorQuantization(scale: s, zero: z[0]), zType)
    }

    /// Checks at planning that input `scale` is a float scalar and input `zero`, if present (or
    /// whenever `zeroRequired`), a scalar of `type`.
    static func check(_ inputs: [PlannedInput?], scale: Int, zero: Int, type: DataType, op: String, name: String,
                      zeroRequired: Bool = false) throws {
        let s = try requiredInput(inputs, scale, op: op, name: "\(name)_scale")
        guard s.dataType == .float, s.elementCount == 1 else {
            throw OnyxError.shapeMismatch("\(op): \(name)_scale must be a float scalar, got \(s.descriptor)")
        }
        let z = zeroRequired ? try requiredInput(inputs, zero, op: op, name: "\(name)_zero_point") : optionalInput(inputs, zero)
        if let z, z.dataType != type || z.elementCount != 1 {
            throw OnyxError.shapeMismatch("\(op): \(name)_zero_point must be a scalar \(type), got \(z.descriptor)")
        }
    }
}

// MARK: - Lookup tables (QLinearSigmoid, QLinearLeakyRelu, QLinearConcat)

/// The 256 outputs of an 8-bit elementwise operator, one per input byte, built as onnxruntime
/// builds them: each input value dequantized in float (`x_scale · (q − x_zero)`), mapped, then
/// quantized as MLAS quantizes (`round_half_even(clamp(v / y_scale, qmin − y_zero, qmax − y_zero))
/// + y_zero`). Running the table is then exactly onnxruntime's result.
package enum QuantizedLookupTable {
    /// Writes the table for `function` into `table` (256 bytes), indexed by the input's bit pattern.
    static func build(
        into table: UnsafeMutablePointer<UInt8>, signed: Bool, x: TensorQuantization, y: TensorQuantization,
        _ function: (Float) -> Float
    ) {
        let (qmin, qmax): (Int32, Int32) = signed ? (-128, 127) : (0, 255)
        let low = Float(qmin - y.zero), high = Float(qmax - y.zero)
        for byte in 0..<256 {
            let q = signed ? Int32(Int8(truncatingIfNeeded: byte)) : Int32(byte)
            var v = function(x.scale * Float(q - x.zero)) / y.scale
            // MLAS's MAXPS/MINPS order: a NaN quotient becomes the low bound.
            v = v > low ? v : low
            v = v < high ? v : high
            table[byte] = UInt8(truncatingIfNeeded: Int32(v.rounded(.toNearestOrEven)) + y.zero)
        }
    }

    /// A table built at load.
    static func make(signed: Bool, x: TensorQuantization, y: TensorQuantization, _ function: (Float) -> Float) -> [UInt8] {
        var table = [UInt8](repeating: 0, count: 256)
        table.withUnsafeMutableBufferPointer { build(into: $0.baseAddress!, signed: signed, x: x, y: y, function) }
        return table
    }

    /// The domain of `QLinearUnary`, which only ``QdqFusion`` puts in graphs: `Q(f(DQ(x)))` for a
    /// float function onnxruntime has no quantized operator for, through the same table.
    package static let domain = "onyx.quantized"

    /// The float functions `QLinearUnary` tabulates (attribute `function`, with `alpha` and `beta`
    /// as the ONNX operator of that name takes them), or nil.
    package static func function(named name: String, alpha: Float?, beta: Float?) -> (@Sendable (Float) -> Float)? {
        switch name {
        case "HardSigmoid":
            let (a, b) = (alpha ?? 0.2, beta ?? 0.5)
            return { x in max(0, min(1, a * x + b)) }
        case "HardSwish":
            return { x in x * max(0, min(1, Float(1.0 / 6.0) * x + 0.5)) }
        case "Tanh":
            return { x in tanh(x) }
        default:
            return nil
        }
    }

    static func apply(
        _ table: UnsafePointer<UInt8>, _ x: UnsafePointer<UInt8>, into y: UnsafeMutablePointer<UInt8>, count: Int, isa: KernelISA
    ) {
        QuantizationLoops.lookup(table, x, into: y, count: count, isa: isa)
    }

    /// MLAS's logistic (`MlasComputeLogistic`, Eigen's rational approximation), the function
    /// onnxruntime's QLinearSigmoid tabulates: x clamped to ±18, `p(x²)·x / q(x²) + ½` with
    /// fused multiply-adds (its AVX2 kernel's), clamped to [0, 1].
    static func logistic(_ x: Float) -> Float {
        let v = x < -18 ? -18 : (x > 18 ? 18 : x)
        let v2 = v * v
        var p = Float(1.15627324459942e-07).addingProduct(v2, Float(4.37031012579801e-11))
        p = Float(6.08574864600143e-05).addingProduct(p, v2)
        p = Float(8.51377133304701e-03).addingProduct(p, v2)
        p = Float(2.48287947061529e-01).addingProduct(p, v2)
        p *= v
        var q = Float(5.76102136993427e-09).addingProduct(v2, Float(6.10247389755681e-13))
        q = Float(6.29106785017040e-06).addingProduct(q, v2)
        q = Float(1.70198817374094e-03).addingProduct(q, v2)
        q = Float(1.16817656904453e-01).addingProduct(q, v2)
        q = Float(9.93151921023180e-01).addingProduct(q, v2)
        return min(max(p / q + 0.5, 0), 1)
    }
}

/// com.microsoft QLinearSigmoid and QLinearLeakyRelu: `Y = quantize(f(dequantize(X)))`, per-tensor
/// parameters, through a 256-entry table (built at load when the scales and zero points are
/// constants, as onnxruntime's quantizer writes them; else per run). Bit-identical to onnxruntime.
package struct QLinearLookupKernel: Kernel {
    let op: String
    let function: @Sendable (Float) -> Float
    /// Tables built at load, for uint8 and int8 data.
    let tables: (unsigned: [UInt8], signed: [UInt8])?
    let constantType: DataType?
    let isa: KernelISA

    init(_ context: NodeContext, op: String, function: @escaping @Sendable (Float) -> Float) throws {
        self.op = op
        isa = context.isa
        self.function = function
        guard (4...5).contains(context.inputCount) else { throw OnyxError.invalidModel("\(op) takes 4 or 5 inputs, got \(context.inputCount)") }
        let x = try TensorQuantization.constant(context, scale: 1, zero: 2, op: op, name: "X")
        let y = try TensorQuantization.constant(context, scale: 3, zero: 4, op: op, name: "Y", type: x?.1)
        if let x, let y {
            constantType = x.1 ?? y.1
            tables = (QuantizedLookupTable.make(signed: false, x: x.0, y: y.0, function),
                      QuantizedLookupTable.make(signed: true, x: x.0, y: y.0, function))
        } else {
            (tables, constantType) = (nil, nil)
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try requiredInput(inputs, 0, op: op, name: "X")
        try requireType(x, [.int8, .uint8], op: op, name: "X")
        if let constantType, constantType != x.dataType {
            throw OnyxError.unsupportedDataType("\(op): X is \(x.dataType) but its zero points are \(constantType)")
        }
        try TensorQuantization.check(inputs, scale: 1, zero: 2, type: x.dataType, op: op, name: "X")
        try TensorQuantization.check(inputs, scale: 3, zero: 4, type: x.dataType, op: op, name: "Y")
        return [x.descriptor]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int { tables == nil ? 256 : 0 }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let signed = x.dataType == .int8
        let xs = UnsafePointer(x.pointer(as: UInt8.self)), ys = y.pointer(as: UInt8.self)
        if let tables {
            (signed ? tables.signed : tables.unsigned).withUnsafeBufferPointer {
                QuantizedLookupTable.apply($0.baseAddress!, xs, into: ys, count: x.elementCount, isa: isa)
            }
            return
        }
        guard let workspace = context.workspace else { throw OnyxError.internalError("\(op): no workspace") }
        let table = workspace.assumingMemoryBound(to: UInt8.self)
        QuantizedLookupTable.build(
            into: table, signed: signed, x: .read(context, scale: 1, zero: 2), y: .read(context, scale: 3, zero: 4), function)
        QuantizedLookupTable.apply(table, xs, into: ys, count: x.elementCount, isa: isa)
    }
}

// MARK: - QLinearConcat

/// com.microsoft QLinearConcat: inputs `Y_scale, Y_zero_point, (X, X_scale, X_zero_point)…`,
/// each X requantized to Y's parameters, then concatenated along `axis`. An X with Y's own scale
/// and zero point is copied; any other goes through the identity's lookup table (onnxruntime's
/// method, so the result is bit-identical). Tables are built at load when the parameters are constants.
package struct QLinearConcatKernel: Kernel {
    let axis: Int
    let parts: Int
    /// Per input, when Y's and its parameters are constants: nil (a copy) or its table.
    let tables: [[UInt8]?]?
    let constantType: DataType?
    let isa: KernelISA
    private static let op = "QLinearConcat"

    init(_ context: NodeContext) throws {
        let op = Self.op
        isa = context.isa
        guard let axis = try context.int("axis") else { throw context.attributeError("missing 'axis'") }
        self.axis = axis
        guard context.inputCount >= 5, (context.inputCount - 2) % 3 == 0 else {
            throw OnyxError.invalidModel("\(op) takes Y_scale, Y_zero_point and (X, X_scale, X_zero_point) triples; got \(context.inputCount) inputs")
        }
        guard context.hasInput(1) else { throw OnyxError.invalidModel("\(op): Y_zero_point is required") }
        parts = (context.inputCount - 2) / 3
        guard let constantY = try TensorQuantization.constant(context, scale: 0, zero: 1, op: op, name: "Y") else {
            (tables, constantType) = (nil, nil)
            return
        }
        let (y, yType) = constantY
        var tables: [[UInt8]?] = []
        for part in 0..<parts {
            let base = 2 + 3 * part
            guard let x = try TensorQuantization.constant(context, scale: base + 1, zero: base + 2, op: op, name: "X\(part)",
                                                          type: yType)?.0
            else { (self.tables, constantType) = (nil, nil); return }
            tables.append(x == y ? nil : QuantizedLookupTable.make(signed: yType == .int8, x: x, y: y) { $0 })
        }
        self.tables = tables
        constantType = yType
    }

    private func normalizedAxis(rank: Int) throws -> Int {
        guard (-rank..<rank).contains(axis) else { throw OnyxError.invalidModel("\(Self.op): axis \(axis) is outside rank \(rank)") }
        return axis < 0 ? axis + rank : axis
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let op = Self.op
        let zero = try requiredInput(inputs, 1, op: op, name: "Y_zero_point")
        try requireType(zero, [.int8, .uint8], op: op, name: "Y_zero_point")
        let type = zero.dataType
        try TensorQuantization.check(inputs, scale: 0, zero: 1, type: type, op: op, name: "Y", zeroRequired: true)
        var shape: [Int] = []
        for part in 0..<parts {
            let base = 2 + 3 * part
            let x = try requiredInput(inputs, base, op: op, name: "X\(part)")
            guard x.dataType == type else { throw OnyxError.unsupportedDataType("\(op): input \(base) is \(x.dataType) but Y is \(type)") }
            try TensorQuantization.check(inputs, scale: base + 1, zero: base + 2, type: type, op: op, name: "X\(part)", zeroRequired: true)
            if part == 0 {
                shape = x.shape
                _ = try normalizedAxis(rank: shape.count)
                continue
            }
            let a = try normalizedAxis(rank: shape.count)
            guard x.shape.count == shape.count, (0..<shape.count).allSatisfy({ $0 == a || x.shape[$0] == shape[$0] }) else {
                throw OnyxError.shapeMismatch("\(op): input \(base) of shape \(shapeText(x.shape)) does not concatenate with \(shapeText(shape)) along axis \(axis)")
            }
            shape[a] += x.shape[a]
        }
        return [TensorDescriptor(type, shape)]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int { tables == nil ? 256 * parts : 0 }

    package func run(_ context: borrowing KernelContext) throws {
        let y = context.output(0)
        guard y.elementCount > 0 else { return }
        let a = try normalizedAxis(rank: y.rank)
        let outer = y.shape[..<a].reduce(1, *), outputPitch = y.shape[a...].reduce(1, *)
        let yq = TensorQuantization.read(context, scale: 0, zero: 1)
        let signed = y.dataType == .int8
        var offset = 0
        for part in 0..<parts {
            let base = 2 + 3 * part
            let x = context.input(base)!
            let pitch = x.shape[a...].reduce(1, *)
            defer { offset += pitch }
            guard pitch > 0 else { continue }
            let xs = UnsafePointer(x.pointer(as: UInt8.self)), ys = y.pointer(as: UInt8.self) + offset
            func each(_ body: (UnsafePointer<UInt8>, UnsafeMutablePointer<UInt8>) -> Void) {
                for o in 0..<outer { body(xs + o * pitch, ys + o * outputPitch) }
            }
            if let tables {
                if let table = tables[part] {
                    table.withUnsafeBufferPointer { t in each { QuantizedLookupTable.apply(t.baseAddress!, $0, into: $1, count: pitch, isa: isa) } }
                } else {
                    each { $1.update(from: $0, count: pitch) }
                }
                continue
            }
            let xq = TensorQuantization.read(context, scale: base + 1, zero: base + 2)
            if xq == yq {
                each { $1.update(from: $0, count: pitch) }
                continue
            }
            guard let workspace = context.workspace else { throw OnyxError.internalError("\(Self.op): no workspace") }
            let table = workspace.assumingMemoryBound(to: UInt8.self) + 256 * part
            QuantizedLookupTable.build(into: table, signed: signed, x: xq, y: yq) { $0 }
            each { QuantizedLookupTable.apply(table, $0, into: $1, count: pitch, isa: isa) }
        }
    }
}

// MARK: - QLinearAveragePool

/// com.microsoft QLinearAveragePool over 1 to 3 spatial axes, `[N, C, D…]` or (`channels_last`)
/// `[N, D…, C]`, computed as onnxruntime does: each value dequantized to float, the window's
/// in-bounds values summed in float in row-major order, divided by the kernel's size
/// (`count_include_pad`) or the in-bounds count, then `round_half_even(v / y_scale + y_zero)`,
/// saturated; a window covering the whole image without pads takes the integer global-average
/// path, as onnxruntime's does. Bit-identical to onnxruntime.
package struct QLinearAveragePoolKernel: Kernel {
    let attributes: PoolingAttributes
    let countIncludePad: Bool
    let channelsLast: Bool
    let isa: KernelISA
    private static let op = "QLinearAveragePool"

    init(_ context: NodeContext) throws {
        attributes = try PoolingAttributes(context)
        guard attributes.kernel.count <= 3 else { throw context.attributeError("kernel_shape \(attributes.kernel): 1 to 3 spatial axes") }
        guard attributes.dilations.allSatisfy({ $0 == 1 }) else { throw context.attributeError("dilations are not supported") }
        countIncludePad = try context.int("count_include_pad", default: 0) != 0
        channelsLast = try context.int("channels_last", default: 0) != 0
        guard (4...5).contains(context.inputCount) else {
            throw OnyxError.invalidModel("\(Self.op) takes 4 or 5 inputs, got \(context.inputCount)")
        }
        isa = context.isa
    }

    /// The input's shape as `[N, C, spatial…]`.
    private func channelsFirst(_ shape: [Int]) -> [Int] {
        guard channelsLast, shape.count >= 2 else { return shape }
        return [shape[0], shape[shape.count - 1]] + shape[1..<(shape.count - 1)]
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let op = Self.op
        let x = try requiredInput(inputs, 0, op: op, name: "X")
        try requireType(x, [.int8, .uint8], op: op, name: "X")
        try TensorQuantization.check(inputs, scale: 1, zero: 2, type: x.dataType, op: op, name: "x")
        try TensorQuantization.check(inputs, scale: 3, zero: 4, type: x.dataType, op: op, name: "y")
        let window = try attributes.window(input: channelsFirst(x.shape), op: op)
        let shape = channelsLast ? [x.shape[0]] + window.output + [x.shape[x.shape.count - 1]] : Array(x.shape[0..<2]) + window.output
        return [TensorDescriptor(x.dataType, shape)]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int { 256 * 4 }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        guard y.elementCount > 0 else { return }
        let shape = channelsFirst(x.shape)
        let window = try attributes.window(input: shape, op: Self.op)
        let xq = TensorQuantization.read(context, scale: 1, zero: 2), yq = TensorQuantization.read(context, scale: 3, zero: 4)
        let signed = x.dataType == .int8
        if window.input == attributes.kernel, window.begin.allSatisfy({ $0 == 0 }), window.paddedInput == window.input {
            QLinearGlobalAveragePoolKernel.average(x, xScale: xq.scale, xZero: xq.zero, yScale: yq.scale, yZero: yq.zero,
                                                   channelsLast: channelsLast, into: y, isa: isa)
            return
        }
        // Up to three spatial axes; missing ones have extent 1.
        func padded(_ v: [Int], _ fill: Int) -> [Int] { v + Array(repeating: fill, count: 3 - v.count) }
        let input = padded(window.input, 1), output = padded(window.output, 1), kernel = padded(attributes.kernel, 1)
        let strides = padded(attributes.strides, 1), begin = padded(window.begin, 0)
        let (batch, channels) = (shape[0], shape[1])
        let inputArea = input.reduce(1, *), outputArea = output.reduce(1, *), kernelSize = kernel.reduce(1, *)
        // Element (n, c, p) of an image: NCHW puts channels outermost, NHWC innermost.
        let (channelStride, pixelStride) = channelsLast ? (1, channels) : (inputArea, 1)
        let (outChannelStride, outPixelStride) = channelsLast ? (1, channels) : (outputArea, 1)
        let (qmin, qmax): (Int32, Int32) = signed ? (-128, 127) : (0, 255)
        let xs = UnsafeRawPointer(x.data), ys = UnsafeMutableRawPointer(y.data)
        guard let workspace = context.workspace else { throw OnyxError.internalError("\(Self.op): no workspace") }
        // The dequantized value of each byte, as onnxruntime's dequantization table holds it.
        let table = workspace.assumingMemoryBound(to: Float.self)
        for byte in 0..<256 {
            let q = signed ? Int32(Int8(truncatingIfNeeded: byte)) : Int32(byte)
            table[byte] = xq.scale * Float(q - xq.zero)
        }
        do {
            for n in 0..<batch {
                for c in 0..<channels {
                    let image = xs + n * channels * inputArea + c * channelStride
                    let out = ys + n * channels * outputArea + c * outChannelStride
                    for oh in 0..<output[0] {
                        let h0 = max(oh * strides[0] - begin[0], 0), h1 = min(oh * strides[0] - begin[0] + kernel[0], input[0])
                        for ow in 0..<output[1] {
                            let w0 = max(ow * strides[1] - begin[1], 0), w1 = min(ow * strides[1] - begin[1] + kernel[1], input[1])
                            for od in 0..<output[2] {
                                let d0 = max(od * strides[2] - begin[2], 0), d1 = min(od * strides[2] - begin[2] + kernel[2], input[2])
                                var sum: Float = 0
                                for h in h0..<max(h0, h1) {
                                    for w in w0..<max(w0, w1) {
                                        for d in d0..<max(d0, d1) {
                                            let p = (h * input[1] + w) * input[2] + d
                                            sum += table[Int(image.load(fromByteOffset: p * pixelStride, as: UInt8.self))]
                                        }
                                    }
                                }
                                let count = countIncludePad ? kernelSize : max(h1 - h0, 0) * max(w1 - w0, 0) * max(d1 - d0, 0)
                                let mean = sum / Float(count)
                                let q = (mean / yq.scale + Float(yq.zero)).rounded(.toNearestOrEven)
                                let value = q.isNaN ? qmin : Int32(min(max(q, Float(qmin)), Float(qmax)))
                                let o = (oh * output[1] + ow) * output[2] + od
                                out.storeBytes(of: UInt8(truncatingIfNeeded: value), toByteOffset: o * outPixelStride, as: UInt8.self)
                            }
                        }
                    }
                }
            }
        }
    }
}

// MARK: - QLinearSoftmax

/// com.microsoft QLinearSoftmax as onnxruntime computes it: a table of
/// `exp((i − 255 + shift) · x_scale)` over the 256 distances from the row's maximum (shift keeps
/// the row's float sum in range), the row summed in float, each output
/// `round_half_even(e · ⌊1 / y_scale⌋ / sum) + y_zero`. x_zero_point cancels. `opset` < 13 takes the
/// values from `axis` on as one row, else the rows run along `axis` alone. Bit-identical to
/// onnxruntime, except where onnxruntime's int8 result wraps (a row's top value reaching 128 + y_zero
/// over 127): Onyx saturates to 127.
package struct QLinearSoftmaxKernel: Kernel {
    let axis: Int
    let opset: Int
    private static let op = "QLinearSoftmax"

    init(_ context: NodeContext) throws {
        guard let opset = try context.int("opset") else { throw context.attributeError("missing 'opset' (the Softmax's opset)") }
        self.opset = opset
        axis = try context.int("axis") ?? (opset < 13 ? 1 : -1)
        guard (4...5).contains(context.inputCount) else {
            throw OnyxError.invalidModel("\(Self.op) takes 4 or 5 inputs, got \(context.inputCount)")
        }
        if let scale = try TensorQuantization.constant(context, scale: 3, zero: 4, op: Self.op, name: "y")?.0.scale, !(1 / scale >= 1) {
            throw OnyxError.invalidModel("\(Self.op): y_scale \(scale) must be at most 1 (softmax outputs lie in [0, 1])")
        }
    }

    /// Rows, row length, and the step between a row's elements.
    private func rows(_ shape: [Int]) throws -> (outer: Int, length: Int, inner: Int) {
        let rank = shape.count
        guard (-rank..<rank).contains(axis) || (rank == 0 && axis == 0) else {
            throw OnyxError.invalidModel("\(Self.op): axis \(axis) is outside rank \(rank)")
        }
        let a = axis < 0 ? axis + rank : axis
        if opset < 13 { return (shape[..<a].reduce(1, *), shape[a...].reduce(1, *), 1) }
        return (shape[..<a].reduce(1, *), shape[a], shape[(a + 1)...].reduce(1, *))
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let op = Self.op
        let x = try requiredInput(inputs, 0, op: op, name: "X")
        try requireType(x, [.int8, .uint8], op: op, name: "X")
        guard x.shape.count >= 1 else { throw OnyxError.shapeMismatch("\(op): X must have rank 1 at least") }
        try TensorQuantization.check(inputs, scale: 1, zero: 2, type: x.dataType, op: op, name: "x")
        try TensorQuantization.check(inputs, scale: 3, zero: 4, type: x.dataType, op: op, name: "y")
        _ = try rows(x.shape)
        return [x.descriptor]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int { 256 * 4 }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        guard x.elementCount > 0 else { return }
        guard let workspace = context.workspace else { throw OnyxError.internalError("\(Self.op): no workspace") }
        let (outer, length, inner) = try rows(x.shape)
        let xScale = context.input(1)!.pointer(as: Float.self).pointee
        let yq = TensorQuantization.read(context, scale: 3, zero: 4)
        let table = workspace.assumingMemoryBound(to: Float.self)
        // onnxruntime reserves 5 bits of float range for the sum of `length` values.
        let shift = max(0, log(Double(Float.greatestFiniteMagnitude / Float(length))) - 5) / Double(xScale)
        for i in 0..<256 { table[i] = Float(exp((Double(i) - 255 + shift) * Double(xScale))) }
        let yScale = (1 / yq.scale).rounded(.down)
        let signed = x.dataType == .int8
        let (qmin, qmax): (Int32, Int32) = signed ? (-128, 127) : (0, 255)
        let xs = UnsafeRawPointer(x.data), ys = UnsafeMutableRawPointer(y.data)
        func value(_ i: Int) -> Int {
            let raw = xs.load(fromByteOffset: i, as: UInt8.self)
            return signed ? Int(Int8(bitPattern: raw)) : Int(raw)
        }
        for o in 0..<outer {
            for i in 0..<inner {
                let start = o * length * inner + i
                var top = Int.min
                for k in 0..<length { top = max(top, value(start + k * inner)) }
                var sum: Float = 0
                for k in 0..<length { sum += table[255 + value(start + k * inner) - top] }
                for k in 0..<length {
                    let e = table[255 + value(start + k * inner) - top]
                    // Saturated in float: a tiny y_scale must not overflow the conversion.
                    let q = (e * yScale / sum).rounded(.toNearestOrEven) + Float(yq.zero)
                    let v = q.isNaN ? qmin : Int32(min(max(q, Float(qmin)), Float(qmax)))
                    ys.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: start + k * inner, as: UInt8.self)
                }
            }
        }
    }
}
