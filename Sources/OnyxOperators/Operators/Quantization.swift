import OnyxCore
import OnyxKernels

extension OperatorRegistry {
    /// QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, the integer convolutions, BitCast, Det
    /// (the integer matrix products are in IntegerMatMul.swift).
    package static let quantizationOperators: [OperatorRegistration] =
        // 10: per tensor; 13: axis; 19: float16 and saturate; 21: block_size, output_dtype,
        // 16-bit types; 23: precision (Quantize) and output_dtype (Dequantize).
        [10...12, 13...18, 19...20, 21...22, 23...Int.max].flatMap { versions in
            [
                OperatorRegistration("QuantizeLinear", versions: versions) { context in try QuantizeLinearKernel(context) },
                OperatorRegistration("DequantizeLinear", versions: versions) { context in try DequantizeLinearKernel(context) },
            ]
        } + [
            OperatorRegistration("DynamicQuantizeLinear", versions: 11...Int.max) { context in
                DynamicQuantizeLinearKernel(isa: context.isa)
            },
            OperatorRegistration("ConvInteger", versions: 10...Int.max) { context in
                try IntegerConvKernel(context, quantizedOutput: false)
            },
            OperatorRegistration("QLinearConv", versions: 10...Int.max) { context in
                try IntegerConvKernel(context, quantizedOutput: true)
            },
            OperatorRegistration("BitCast", versions: 26...Int.max) { context in try BitCastKernel(context) },
            // Det-22 only adds bfloat16.
            OperatorRegistration("Det", versions: 11...Int.max) { _ in DetKernel() },
        ]
}

// MARK: - Shared helpers

/// The data type an attribute's ONNX type code names, or an error naming the op and attribute.
package func quantizationAttributeType(code: Int, op: String, attribute: String) throws -> DataType {
    guard let raw = Int32(exactly: code), let type = DataType(rawValue: raw) else {
        let name = Int32(exactly: code).map { DataType.onnxName(ofCode: $0) } ?? "type code \(code)"
        throw OnyxError.unsupportedDataType("\(op): \(attribute) \(code) (\(name)) is not a type Onyx supports")
    }
    return type
}

/// Checks that input `name` of `op` has one of `allowed` types.
func requireType(_ input: PlannedInput, _ allowed: [DataType], op: String, name: String) throws {
    guard allowed.contains(input.dataType) else {
        throw OnyxError.unsupportedDataType(
            "\(op): \(name) must be \(allowed.map(\.onnxName).joined(separator: ", ")), got \(input.dataType)")
    }
}

/// Input `index`, or an error saying `op` needs it.
func requiredInput(_ inputs: [PlannedInput?], _ index: Int, op: String, name: String) throws -> PlannedInput {
    guard let input = optionalInput(inputs, index) else {
        throw OnyxError.invalidModel("\(op): missing input \(index) (\(name))")
    }
    return input
}

/// The types QuantizeLinear writes and DequantizeLinear reads at `opset`, besides the 16-bit
/// integers (opset 21; QuantizeLinear in Onyx takes them at every opset) and int32 (Dequantize).
private func quantizedTypes(opset: Int) -> [DataType] {
    var types: [DataType] = [.int8, .uint8]
    if opset >= 19 { types += [.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz] }
    if opset >= 21 { types += [.uint4, .int4] }
    if opset >= 23 { types.append(.float4e2m1) }
    if opset >= 25 { types += [.uint2, .int2] }
    return types
}

/// The values an integer quantized type holds, which QuantizeLinear saturates to.
private func integerBounds(_ type: DataType) -> ClosedRange<Int32>? {
    switch type {
    case .uint8: 0...255
    case .int8: -128...127
    case .uint16: 0...65535
    case .int16: -32768...32767
    case .uint4: 0...15
    case .int4: -8...7
    case .uint2: 0...3
    case .int2: -2...1
    default: nil
    }
}


// MARK: - QuantizeLinear

/// QuantizeLinear: `y = saturate(round_half_even(x / y_scale) + y_zero_point)` per tensor,
/// per axis or per block, into the 8- and 16-bit integers, int4, uint4, int2 and uint2; into
/// the float8 formats and float4e2m1 `y = cast(x / y_scale + y_zero_point)`, rounding to
/// nearest even and, for float8, saturating unless `saturate` is 0.
package struct QuantizeLinearKernel: Kernel {
    package let opset: Int
    package let axis: Int
    package let blockSize: Int
    /// `saturate` (opset ≥ 19): float8 outputs clamp out-of-range values to their largest finite value.
    package let saturate: Bool
    /// `output_dtype` (opset ≥ 21), when given.
    package let outputType: DataType?
    /// The type the division runs in: `precision` (opset ≥ 23) or else the scale's type.
    package let precision: DataType?
    package let isa: KernelISA

    package init(_ context: NodeContext) throws {
        let opset = context.opset
        self.opset = opset
        isa = context.isa
        axis = opset >= 13 ? try context.int("axis", default: 1) : 1
        blockSize = opset >= 21 ? try context.int("block_size", default: 0) : 0
        guard blockSize >= 0 else { throw context.attributeError("block_size must be ≥ 0, got \(blockSize)") }
        saturate = opset >= 19 ? try context.int("saturate", default: 1) != 0 : true
        let outputCode = opset >= 21 ? try context.int("output_dtype", default: 0) : 0
        outputType = outputCode == 0 ? nil : try quantizationAttributeType(code: outputCode, op: "QuantizeLinear", attribute: "output_dtype")
        let allowed = quantizedTypes(opset: opset) + [.uint16, .int16]
        if let outputType, !allowed.contains(outputType) {
            throw context.attributeError(
                "output_dtype \(outputType) is not one of \(allowed.map(\.onnxName).joined(separator: ", ")) at opset \(opset)")
        }
        let precisionCode = opset >= 23 ? try context.int("precision", default: 0) : 0
        precision = precisionCode == 0 ? nil : try quantizationAttributeType(code: precisionCode, op: "QuantizeLinear", attribute: "precision")
        if let precision, ![.float, .float16, .bfloat16, .int32, .double].contains(precision) {
            throw context.attributeError("precision \(precision) is not float, float16, bfloat16 or int32")
        }
    }

    private func layout(_ x: [Int], _ scale: [Int]) throws -> QuantizationParameterLayout {
        try QuantizationParameterLayout(op: "QuantizeLinear", data: x, parameter: scale, axis: axis, blockSize: blockSize)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let op = "QuantizeLinear"
        guard (2...3).contains(inputs.count) else { throw OnyxError.invalidModel("\(op) takes x, y_scale and an optional y_zero_point") }
        let x = try requiredInput(inputs, 0, op: op, name: "x")
        let scale = try requiredInput(inputs, 1, op: op, name: "y_scale")
        // float16 came with opset 19; Onyx takes it at every opset.
        let wide: [DataType] = opset >= 19 ? [.float, .float16, .bfloat16, .int32] : [.float, .float16, .int32]
        try requireType(x, wide, op: op, name: "x")
        try requireType(scale, opset >= 24 ? wide + [.float8e8m0] : wide, op: op, name: "y_scale")
        _ = try layout(x.shape, scale.shape)
        var type = outputType ?? .uint8
        if let zeroPoint = optionalInput(inputs, 2) {
            try requireType(zeroPoint, quantizedTypes(opset: opset) + [.uint16, .int16], op: op, name: "y_zero_point")
            if let outputType, outputType != zeroPoint.dataType {
                throw OnyxError.unsupportedDataType(
                    "\(op): output_dtype \(outputType) differs from y_zero_point's type \(zeroPoint.dataType)")
            }
            guard zeroPoint.shape == scale.shape || (zeroPoint.elementCount == 1 && scale.elementCount == 1) else {
                throw OnyxError.shapeMismatch(
                    "\(op): y_zero_point of shape \(shapeText(zeroPoint.shape)) must have y_scale's shape \(shapeText(scale.shape))")
            }
            type = zeroPoint.dataType
        }
        return [TensorDescriptor(type, x.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, scale = context.input(1)!, zeroPoint = context.input(2), y = context.output(0)
        let layout = try layout(x.shape, scale.shape)
        // A float8e8m0 scale is a power of two: dividing by it in float is exact.
        let precision = self.precision ?? (scale.dataType == .float8e8m0 ? .float : scale.dataType)
        let pool = context.pool, saturate = self.saturate, isa = self.isa
        let bounds = integerBounds(y.dataType)
        let format = MiniFloat.of(y.dataType)
        layout.forEachRun { offset, parameter, count in
            let s = QuantizationLoops.double(scale, at: parameter)
            if y.dataType == .uint8 && x.dataType == .float && precision == .float {
                // The common case (an int8 network's input) on the vector kernel.
                let z = zeroPoint.map { QuantizationLoops.int32($0, at: parameter) } ?? 0
                let xs = UnsafePointer(x.pointer(as: Float.self) + offset), ys = y.pointer(as: UInt8.self) + offset
                pool.forEachChunk(count, costPerItem: 2) { r in
                    IntegerGemm.quantize(xs + r.lowerBound, count: r.count, into: ys + r.lowerBound, scale: Float(s),
                                         zeroPoint: z, isa: isa)
                }
            } else if let bounds {
                let z = zeroPoint.map { QuantizationLoops.int32($0, at: parameter) } ?? 0
                switch y.dataType {
                case .uint8, .uint4, .uint2: Self.quantize(x, y.pointer(as: UInt8.self), offset, count, s, z, bounds, precision, pool)
                case .int8, .int4, .int2: Self.quantize(x, y.pointer(as: Int8.self), offset, count, s, z, bounds, precision, pool)
                case .uint16: Self.quantize(x, y.pointer(as: UInt16.self), offset, count, s, z, bounds, precision, pool)
                default: Self.quantize(x, y.pointer(as: Int16.self), offset, count, s, z, bounds, precision, pool)
                }
            } else if let format {
                let z = zeroPoint.map { QuantizationLoops.double($0, at: parameter) } ?? 0
                let ys = y.pointer(as: UInt8.self) + offset
                Self.divide(x, offset, count, s, precision, pool) { start in
                    MiniFloatQuantizedStore(ys + start, format: format, zeroPoint: z, saturate: saturate)
                }
            }
        }
    }

    private static func quantize<Q: FixedWidthInteger>(
        _ x: TensorView, _ y: UnsafeMutablePointer<Q>, _ offset: Int, _ count: Int, _ scale: Double, _ zeroPoint: Int32,
        _ bounds: ClosedRange<Int32>, _ precision: DataType, _ pool: ComputePool
    ) {
        let ys = y + offset
        if x.dataType == .float && precision == .float {
            let xs = UnsafePointer(x.pointer(as: Float.self) + offset)
            pool.forEachChunk(count, costPerItem: 4) { r in
                QuantizationLoops.quantizeFloat(xs + r.lowerBound, ys + r.lowerBound, count: r.count, scale: Float(scale),
                                                zeroPoint: zeroPoint, bounds: bounds)
            }
            return
        }
        divide(x, offset, count, scale, precision, pool) { start in
            IntegerQuantizedStore(ys + start, zeroPoint: zeroPoint, bounds: bounds)
        }
    }

    /// Divides `count` elements of x from `offset` by `scale` in `precision`, in chunks on
    /// `pool`, storing each chunk's quotients through `store(chunkStart)`.
    private static func divide<S: QuantizedStore>(
        _ x: TensorView, _ offset: Int, _ count: Int, _ scale: Double, _ precision: DataType, _ pool: ComputePool,
        _ store: @escaping (Int) -> S
    ) {
        func typed<X: QuantizationSource>(_ source: UnsafeMutablePointer<X>) {
            let xs = UnsafePointer(source + offset)
            pool.forEachChunk(count, costPerItem: 8) { r in
                let n = r.count, xr = xs + r.lowerBound, out = store(r.lowerBound)
                switch precision {
                case .float16: QuantizationLoops.quantize(xr, count: n, division: NativeDivision<Float16>(scale: scale), into: out)
                case .float: QuantizationLoops.quantize(xr, count: n, division: NativeDivision<Float>(scale: scale), into: out)
                case .bfloat16: QuantizationLoops.quantize(xr, count: n, division: BFloat16Division(scale: scale), into: out)
                default: QuantizationLoops.quantize(xr, count: n, division: NativeDivision<Double>(scale: scale), into: out)
                }
            }
        }
        switch x.dataType {
        case .float: typed(x.pointer(as: Float.self))
        case .float16: typed(x.pointer(as: Float16.self))
        case .bfloat16: typed(x.pointer(as: BFloat16Bits.self))
        default: typed(x.pointer(as: Int32.self))
        }
    }
}

// MARK: - DequantizeLinear

/// DequantizeLinear: `y = (x - x_zero_point) · x_scale` per tensor, per axis or per block, x of
/// any quantized type (its value, for the float8 formats and float4e2m1), computed in float and
/// rounded to y's type.
package struct DequantizeLinearKernel: Kernel {
    package let axis: Int
    package let blockSize: Int
    /// `output_dtype` (opset ≥ 23), when given; otherwise the scale's type.
    package let outputType: DataType?
    package let inputTypes: [DataType]
    package let scaleTypes: [DataType]

    package init(_ context: NodeContext) throws {
        let opset = context.opset
        axis = opset >= 13 ? try context.int("axis", default: 1) : 1
        blockSize = opset >= 21 ? try context.int("block_size", default: 0) : 0
        guard blockSize >= 0 else { throw context.attributeError("block_size must be ≥ 0, got \(blockSize)") }
        let outputCode = opset >= 23 ? try context.int("output_dtype", default: 0) : 0
        outputType = outputCode == 0 ? nil : try quantizationAttributeType(code: outputCode, op: "DequantizeLinear", attribute: "output_dtype")
        if let outputType, ![.float, .float16, .bfloat16].contains(outputType) {
            throw context.attributeError("output_dtype \(outputType) is not float, float16 or bfloat16")
        }
        inputTypes = quantizedTypes(opset: opset) + (opset >= 21 ? [.int16, .uint16, .int32] : [.int32])
        scaleTypes = opset >= 24 ? [.float, .float16, .bfloat16, .float8e8m0] : opset >= 19 ? [.float, .float16, .bfloat16] : [.float]
    }

    private func layout(_ x: [Int], _ scale: [Int]) throws -> QuantizationParameterLayout {
        try QuantizationParameterLayout(op: "DequantizeLinear", data: x, parameter: scale, axis: axis, blockSize: blockSize)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let op = "DequantizeLinear"
        guard (2...3).contains(inputs.count) else { throw OnyxError.invalidModel("\(op) takes x, x_scale and an optional x_zero_point") }
        let x = try requiredInput(inputs, 0, op: op, name: "x")
        let scale = try requiredInput(inputs, 1, op: op, name: "x_scale")
        try requireType(x, inputTypes, op: op, name: "x")
        try requireType(scale, scaleTypes, op: op, name: "x_scale")
        _ = try layout(x.shape, scale.shape)
        if let zeroPoint = optionalInput(inputs, 2) {
            guard zeroPoint.dataType == x.dataType else {
                throw OnyxError.unsupportedDataType("\(op): x_zero_point is \(zeroPoint.dataType) but x is \(x.dataType)")
            }
            guard zeroPoint.shape == scale.shape || (zeroPoint.elementCount == 1 && scale.elementCount == 1) else {
                throw OnyxError.shapeMismatch(
                    "\(op): x_zero_point of shape \(shapeText(zeroPoint.shape)) must have x_scale's shape \(shapeText(scale.shape))")
            }
        }
        guard let type = outputType ?? (scale.dataType == .float8e8m0 ? nil : scale.dataType) else {
            throw OnyxError.invalidAttribute("\(op): a float8e8m0 x_scale needs output_dtype (float, float16 or bfloat16)")
        }
        return [TensorDescriptor(type, x.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, scale = context.input(1)!, zeroPoint = context.input(2), y = context.output(0)
        let layout = try layout(x.shape, scale.shape)
        let pool = context.pool
        layout.forEachRun { offset, parameter, count in
            let s = Float(QuantizationLoops.double(scale, at: parameter))
            switch y.dataType {
            case .float16: Self.dequantize(x, y.pointer(as: Float16.self), offset, count, s, zeroPoint, parameter, pool)
            case .bfloat16: Self.dequantize(x, y.pointer(as: BFloat16Bits.self), offset, count, s, zeroPoint, parameter, pool)
            default: Self.dequantize(x, y.pointer(as: Float.self), offset, count, s, zeroPoint, parameter, pool)
            }
        }
    }

    private static func dequantize<O: DequantizedElement>(
        _ x: TensorView, _ y: UnsafeMutablePointer<O>, _ offset: Int, _ count: Int, _ scale: Float, _ zeroPoint: TensorView?,
        _ parameter: Int, _ pool: ComputePool
    ) {
        let ys = y + offset
        if let format = MiniFloat.of(x.dataType) {
            let xs = UnsafePointer(x.pointer(as: UInt8.self) + offset)
            let z = zeroPoint.map { Float(QuantizationLoops.double($0, at: parameter)) } ?? 0
            pool.forEachChunk(count, costPerItem: 8) { r in
                QuantizationLoops.dequantize(xs + r.lowerBound, format: format, ys + r.lowerBound, count: r.count, scale: scale, zeroPoint: z)
            }
            return
        }
        let z = zeroPoint.map { QuantizationLoops.int32($0, at: parameter) } ?? 0
        func typed<X: FixedWidthInteger>(_ source: UnsafeMutablePointer<X>) {
            let xs = UnsafePointer(source + offset)
            pool.forEachChunk(count, costPerItem: 4) { r in
                QuantizationLoops.dequantize(xs + r.lowerBound, ys + r.lowerBound, count: r.count, scale: scale, zeroPoint: z)
            }
        }
        switch x.dataType {
        // The 4- and 2-bit integers hold their value in a whole byte.
        case .int8, .int4, .int2: typed(x.pointer(as: Int8.self))
        case .uint8, .uint4, .uint2: typed(x.pointer(as: UInt8.self))
        case .int16: typed(x.pointer(as: Int16.self))
        case .uint16: typed(x.pointer(as: UInt16.self))
        default:
            let xs = UnsafePointer(x.pointer(as: Int32.self) + offset)
            pool.forEachChunk(count, costPerItem: 4) { r in
                QuantizationLoops.dequantizeWide(xs + r.lowerBound, ys + r.lowerBound, count: r.count, scale: scale, zeroPoint: z)
            }
        }
    }
}

// MARK: - DynamicQuantizeLinear

/// DynamicQuantizeLinear: uint8 quantization of float x with a scale and zero point chosen so
/// the range `[min(0, min x), max(0, max x)]` covers 0…255.
package struct DynamicQuantizeLinearKernel: Kernel {
    package let isa: KernelISA

    package init(isa: KernelISA) { self.isa = isa }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else { throw OnyxError.invalidModel("DynamicQuantizeLinear takes one input") }
        try requireType(x, [.float], op: "DynamicQuantizeLinear", name: "x")
        return [TensorDescriptor(.uint8, x.shape), TensorDescriptor(.float, []), TensorDescriptor(.uint8, [])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!
        let (scale, zero) = IntegerGemm.quantizeDynamically(
            UnsafePointer(x.pointer(as: Float.self)), count: x.elementCount, into: context.output(0).pointer(as: UInt8.self),
            isa: isa)
        context.optionalOutput(1)?.pointer(as: Float.self).pointee = scale
        context.optionalOutput(2)?.pointer(as: UInt8.self).pointee = zero
    }
}

// MARK: - ConvInteger, QLinearConv

/// ConvInteger (int32 output) and QLinearConv (requantized output): N-D convolution of
/// int8/uint8 data and weights with zero points subtracted, accumulated in wrapping Int32,
/// computed per (image, group) as im2col and an integer matrix product.
package struct IntegerConvKernel: Kernel {
    package let quantizedOutput: Bool
    package let spatial: SpatialAttributes
    package let group: Int
    /// QLinearConv's output clamped further (a Relu or Clip QdqFusion folded in).
    package let outputRange: ClosedRange<Int32>?

    package init(_ context: NodeContext, quantizedOutput: Bool) throws {
        self.quantizedOutput = quantizedOutput
        outputRange = quantizedOutput ? try OnyxOperators.outputRange(context) : nil
        spatial = try SpatialAttributes(context)
        // Constant scales and zero points that cannot fit the weights are refused here, at load.
        if quantizedOutput, let w = context.constantInput(3), w.rank >= 1 {
            let op = "QLinearConv", filters = w.shape[0]
            for (index, name) in [(1, "x_scale"), (4, "w_scale"), (6, "y_scale")] where context.constantInput(index) != nil {
                _ = try QuantizationConstant.scales(context, index, op: op, name: name, count: index == 4 ? filters : nil)
            }
            for (index, name) in [(2, "x_zero_point"), (5, "w_zero_point"), (7, "y_zero_point")]
            where context.constantInput(index) != nil {
                _ = try QuantizationConstant.zeroPoints(context, index, op: op, name: name, type: index == 5 ? w.dataType : nil,
                                                        count: index == 5 ? filters : nil)
            }
        }
        group = try context.int("group", default: 1)
        guard group >= 1 else { throw context.attributeError("group must be ≥ 1, got \(group)") }
    }

    private var op: String { quantizedOutput ? "QLinearConv" : "ConvInteger" }
    private var wIndex: Int { quantizedOutput ? 3 : 1 }
    private var xZeroIndex: Int { quantizedOutput ? 2 : 2 }
    private var wZeroIndex: Int { quantizedOutput ? 5 : 3 }

    private struct Shapes {
        var batch: Int, channels: Int, filters: Int
        var geometry: IntegerConvolution.Geometry
        var outputShape: [Int]
    }

    private func shapes(_ x: [Int], _ w: [Int]) throws -> Shapes {
        guard x.count >= 3 else { throw OnyxError.shapeMismatch("\(op): input must be N×C×D1×…, got \(shapeText(x))") }
        guard w.count == x.count else {
            throw OnyxError.shapeMismatch("\(op): weight \(shapeText(w)) must have the input's rank \(x.count)")
        }
        let channels = x[1], filters = w[0]
        guard channels == w[1] * group else {
            throw OnyxError.shapeMismatch(
                "\(op): input has \(channels) channels but weight \(shapeText(w)) with group \(group) expects \(w[1] * group)")
        }
        guard filters % group == 0 else {
            throw OnyxError.shapeMismatch("\(op): \(filters) filters do not divide into \(group) groups")
        }
        let kernel = Array(w[2...]), input = Array(x[2...])
        if let declared = spatial.kernelShape, declared != kernel {
            throw OnyxError.shapeMismatch("\(op): kernel_shape \(shapeText(declared)) does not match weight \(shapeText(w))")
        }
        let (output, padBegin) = try spatial.resolve(spatial: input, kernel: kernel, op: op)
        let rank = input.count
        let geometry = IntegerConvolution.Geometry(
            input: input, kernel: kernel, output: output, padBegin: padBegin,
            strides: spatial.strides ?? Array(repeating: 1, count: rank),
            dilations: spatial.dilations ?? Array(repeating: 1, count: rank))
        return Shapes(batch: x[0], channels: channels, filters: filters, geometry: geometry, outputShape: [x[0], filters] + output)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let eight: [DataType] = [.int8, .uint8]
        let x = try requiredInput(inputs, 0, op: op, name: "x")
        let w = try requiredInput(inputs, wIndex, op: op, name: "w")
        try requireType(x, eight, op: op, name: "x")
        try requireType(w, eight, op: op, name: "w")
        let s = try shapes(x.shape, w.shape)
        if let zero = optionalInput(inputs, xZeroIndex) {
            guard zero.dataType == x.dataType, zero.elementCount == 1 else {
                throw OnyxError.shapeMismatch("\(op): x_zero_point must be a scalar of \(x.dataType), got \(zero.descriptor)")
            }
        }
        if let zero = optionalInput(inputs, wZeroIndex) {
            guard zero.dataType == w.dataType, zero.elementCount == 1 || zero.shape == [s.filters] else {
                throw OnyxError.shapeMismatch(
                    "\(op): w_zero_point must be a scalar or [\(s.filters)] of \(w.dataType), got \(zero.descriptor)")
            }
        }
        guard quantizedOutput else {
            guard (2...4).contains(inputs.count) else { throw OnyxError.invalidModel("\(op) takes 2 to 4 inputs, got \(inputs.count)") }
            return [TensorDescriptor(.int32, s.outputShape)]
        }
        guard (8...9).contains(inputs.count) else { throw OnyxError.invalidModel("\(op) takes 8 or 9 inputs, got \(inputs.count)") }
        for (index, name) in [(1, "x_scale"), (4, "w_scale"), (6, "y_scale")] {
            let scale = try requiredInput(inputs, index, op: op, name: name)
            try requireType(scale, [.float], op: op, name: name)
            guard scale.elementCount == 1 || (index == 4 && scale.shape == [s.filters]) else {
                throw OnyxError.shapeMismatch("\(op): \(name) of shape \(shapeText(scale.shape)) must be a scalar\(index == 4 ? " or [\(s.filters)]" : "")")
            }
        }
        if let bias = optionalInput(inputs, 8) {
            guard bias.dataType == .int32, bias.shape == [s.filters] else {
                throw OnyxError.shapeMismatch("\(op): B must be int32 of shape [\(s.filters)], got \(bias.descriptor)")
            }
        }
        var outputType = x.dataType
        if let yZero = optionalInput(inputs, 7) {
            guard eight.contains(yZero.dataType), yZero.elementCount == 1 else {
                throw OnyxError.shapeMismatch("\(op): y_zero_point must be a scalar int8 or uint8, got \(yZero.descriptor)")
            }
            outputType = yZero.dataType
        }
        return [TensorDescriptor(outputType, s.outputShape)]
    }

    /// Int32 elements of scratch: the image minus its zero point, the weights minus theirs,
    /// the im2col matrix, and (QLinearConv) the accumulator of one group.
    private func scratch(_ s: Shapes) -> (image: Int, weights: Int, columns: Int, accumulator: Int) {
        let g = s.geometry, perGroup = s.channels / group
        return (s.channels * g.inputArea, s.filters * perGroup * g.kernelArea, perGroup * g.kernelArea * g.outputArea,
                quantizedOutput ? (s.filters / group) * g.outputArea : 0)
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let x = inputs[0], wIndex < inputs.count, let w = inputs[wIndex], let s = try? shapes(x.shape, w.shape) else { return 0 }
        let parts = scratch(s)
        return (parts.image + parts.weights + parts.columns + parts.accumulator) * 4
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, w = context.input(wIndex)!, y = context.output(0)
        let s = try shapes(x.shape, w.shape)
        let g = s.geometry, parts = scratch(s)
        guard let workspace = context.workspace?.assumingMemoryBound(to: Int32.self) else {
            if y.elementCount == 0 { return }
            throw OnyxError.internalError("\(op): no workspace")
        }
        let image = workspace, weights = image + parts.image, columns = weights + parts.weights
        let accumulator = columns + parts.columns
        let channelsPerGroup = s.channels / group, filtersPerGroup = s.filters / group
        let depth = channelsPerGroup * g.kernelArea

        let xZero = context.input(xZeroIndex).map { QuantizationLoops.int32($0, at: 0) } ?? 0
        let wZero = context.input(wZeroIndex)
        for f in 0..<s.filters {
            let zero = wZero.map { QuantizationLoops.int32($0, at: $0.elementCount == 1 ? 0 : f) } ?? 0
            QuantizationLoops.widen(w, offset: f * depth, into: weights + f * depth, count: depth, zeroPoint: zero)
        }
        for n in 0..<s.batch {
            QuantizationLoops.widen(x, offset: n * parts.image, into: image, count: parts.image, zeroPoint: xZero)
            for gi in 0..<group {
                IntegerConvolution.im2col(
                    image + gi * channelsPerGroup * g.inputArea, channels: channelsPerGroup, g, into: columns)
                let firstFilter = gi * filtersPerGroup
                let target = quantizedOutput ? accumulator : y.pointer(as: Int32.self) + (n * s.filters + firstFilter) * g.outputArea
                QuantizationLoops.multiply(
                    m: filtersPerGroup, n: g.outputArea, k: depth, a: weights + firstFilter * depth, b: columns, c: target,
                    pool: context.pool)
                if quantizedOutput {
                    requantize(context, accumulator, filters: firstFilter..<(firstFilter + filtersPerGroup),
                               output: (n * s.filters + firstFilter) * g.outputArea, area: g.outputArea)
                }
            }
        }
    }

    /// `y = saturate(round_half_even((acc + B) · x_scale · w_scale / y_scale) + y_zero_point)`.
    private func requantize(
        _ context: borrowing KernelContext, _ accumulator: UnsafeMutablePointer<Int32>, filters: Range<Int>, output: Int, area: Int
    ) {
        let xScale = context.input(1)!.pointer(as: Float.self).pointee
        let wScale = context.input(4)!, yScale = context.input(6)!.pointer(as: Float.self).pointee
        let bias = context.input(8)
        let y = context.output(0)
        let yZero = context.input(7).map { QuantizationLoops.double($0, at: 0) } ?? 0
        var low: Double = y.dataType == .int8 ? -128 : 0, high: Double = y.dataType == .int8 ? 127 : 255
        if let outputRange { (low, high) = (max(low, Double(outputRange.lowerBound)), min(high, Double(outputRange.upperBound))) }
        for (row, f) in filters.enumerated() {
            let ws = wScale.pointer(as: Float.self)[wScale.elementCount == 1 ? 0 : f]
            let multiplier = Double(xScale * ws / yScale)
            let b = bias.map { $0.pointer(as: Int32.self)[f] } ?? 0
            for i in 0..<area {
                let v = Double(accumulator[row * area + i] &+ b) * multiplier
                let q = v.isNaN ? yZero : v.rounded(.toNearestOrEven) + yZero
                let clamped = q > low ? (q < high ? q : high) : low
                if y.dataType == .int8 {
                    y.pointer(as: Int8.self)[output + row * area + i] = Int8(clamped)
                } else {
                    y.pointer(as: UInt8.self)[output + row * area + i] = UInt8(clamped)
                }
            }
        }
    }
}

// MARK: - BitCast

/// BitCast: the input's bytes reinterpreted as another type of the same width.
///
/// A bool output holds 0 or 1 in every byte: a nonzero byte cast to bool becomes 1, so the
/// tensor stays a valid bool tensor for the operators that read it.
package struct BitCastKernel: Kernel {
    package let target: DataType

    package init(_ context: NodeContext) throws {
        guard let code = try context.int("to") else { throw context.attributeError("missing attribute 'to'") }
        target = try quantizationAttributeType(code: code, op: "BitCast", attribute: "to")
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else { throw OnyxError.invalidModel("BitCast takes one input") }
        guard x.dataType.bitWidth == target.bitWidth, x.dataType != .string, target != .string else {
            throw OnyxError.unsupportedDataType(
                "BitCast: \(x.dataType) (\(x.dataType.bitWidth) bits) and \(target) (\(target.bitWidth) bits) differ in width")
        }
        return [TensorDescriptor(target, x.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        if target == .bool && x.dataType != .bool {
            let source = x.pointer(as: UInt8.self), destination = y.pointer(as: UInt8.self)
            for i in 0..<x.elementCount { destination[i] = source[i] != 0 ? 1 : 0 }
        } else if x.dataType.bitWidth < 8 && x.dataType != target {
            // Unpacked, each byte holds its element's value: keep the low bits, sign-extended for
            // a signed target (int4 −1 is uint4 15 and back).
            let source = x.pointer(as: UInt8.self), destination = y.pointer(as: UInt8.self)
            let unused = UInt8(8 - target.bitWidth)
            let signed = target == .int4 || target == .int2
            for i in 0..<x.elementCount {
                let field = source[i] << unused
                destination[i] = signed ? UInt8(bitPattern: Int8(bitPattern: field) >> unused) : field >> unused
            }
        } else if x.data != y.data {
            y.data.copyMemory(from: x.data, byteCount: x.byteCount)
        }
    }
}

// MARK: - Det

/// Det: the determinant of each trailing `M×M` matrix, by LU decomposition with partial
/// pivoting in Double.
package struct DetKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else { throw OnyxError.invalidModel("Det takes one input") }
        try requireType(x, [.float, .double, .float16], op: "Det", name: "X")
        guard x.shape.count >= 2, x.shape[x.shape.count - 1] == x.shape[x.shape.count - 2] else {
            throw OnyxError.shapeMismatch("Det: input must be [*, M, M], got \(shapeText(x.shape))")
        }
        return [TensorDescriptor(x.dataType, Array(x.shape.dropLast(2)))]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let x = inputs.first ?? nil, let n = x.shape.last else { return 0 }
        return n * n * 8
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let n = x.shape[x.rank - 1], count = y.elementCount
        let matrix = context.workspace?.assumingMemoryBound(to: Double.self)
        for index in 0..<count {
            var determinant = 1.0
            if n > 0, let matrix {
                for i in 0..<(n * n) { matrix[i] = QuantizationLoops.double(x, at: index * n * n + i) }
                determinant = Determinant.compute(matrix, n: n)
            }
            switch y.dataType {
            case .double: y.pointer(as: Double.self)[index] = determinant
            case .float16: y.pointer(as: Float16.self)[index] = Float16(Float(determinant))
            default: y.pointer(as: Float.self)[index] = Float(determinant)
            }
        }
    }
}
