extension OperatorRegistry {
    static let tensorOperators: [OperatorRegistration] = [
        OperatorRegistration("Identity") { _ in IdentityKernel() },
        OperatorRegistration("Dropout") { context in
            if context.opset < 7, try context.int("is_test", default: 0) == 0, context.outputCount > 1 {
                throw context.attributeError("training-mode Dropout (is_test = 0) is not supported for inference")
            }
            if let training = context.constantInput(2), try training.scalars(as: Bool.self).first == true {
                throw context.attributeError("training_mode is true; Onyx runs Dropout in inference mode only")
            }
            return DropoutKernel()
        },
        OperatorRegistration("Constant") { context in ConstantKernel(value: try constantValue(context)) },
        OperatorRegistration("Cast") { context in
            guard let code = try context.int("to") else { throw context.attributeError("missing 'to'") }
            guard let type = DataType(rawValue: Int32(truncatingIfNeeded: code)) else {
                throw OnyxError.unsupportedDataType(
                    "Cast node '\(context.node.name)': target type \(DataType.onnxName(ofCode: Int32(truncatingIfNeeded: code))) is not supported")
            }
            return CastKernel(to: type)
        },
    ]

    /// The value of a Constant node, from whichever attribute its opset allows.
    private static func constantValue(_ context: NodeContext) throws -> Tensor {
        if let tensor = try context.tensor("value") { return tensor }
        if let v = try context.float("value_float") { return Tensor(scalar: v) }
        if let v = try context.floats("value_floats") { return try Tensor(shape: [v.count], scalars: v) }
        if let v = try context.int("value_int") { return Tensor(scalar: Int64(v)) }
        if let v = try context.ints("value_ints") { return try Tensor(shape: [v.count], scalars: v.map(Int64.init)) }
        if context.attribute("value_string") != nil || context.attribute("value_strings") != nil {
            throw OnyxError.unsupportedDataType("Constant node '\(context.node.name)': string tensors are not supported")
        }
        if context.attribute("sparse_value") != nil {
            throw OnyxError.unsupportedDataType("Constant node '\(context.node.name)': sparse tensors are not supported")
        }
        throw context.attributeError("has no value attribute")
    }
}

struct IdentityKernel: Kernel {
    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Identity takes one input") }
        return [x.descriptor]
    }
    var aliasing: KernelAliasing { .view(input: 0) }
    func run(_ context: borrowing KernelContext) throws { copyIfDistinct(context) }
}

/// Inference-mode Dropout: the output is the input; the optional mask is all true.
struct DropoutKernel: Kernel {
    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Dropout takes one input") }
        return [x.descriptor, TensorDescriptor(.bool, x.shape)]
    }
    func readsData(ofInput index: Int) -> Bool { index != 1 }
    var aliasing: KernelAliasing { .view(input: 0) }
    func run(_ context: borrowing KernelContext) throws {
        copyIfDistinct(context)
        if let mask = context.optionalOutput(1) {
            mask.data.initializeMemory(as: UInt8.self, repeating: 1, count: mask.elementCount)
        }
    }
}

struct ConstantKernel: Kernel {
    let value: Tensor
    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        [TensorDescriptor(value.dataType, value.shape)]
    }
    func run(_ context: borrowing KernelContext) throws {
        let y = context.output(0)
        value.withUnsafeBytes { y.data.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }
}

/// Cast between every numeric type and bool. Float to integer truncates toward zero (NaN and
/// out-of-range values saturate rather than trap); anything to bool is `x != 0`.
struct CastKernel: Kernel {
    let to: DataType

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Cast takes one input") }
        return [TensorDescriptor(to, x.shape)]
    }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let n = x.elementCount
        if x.dataType == to {
            if x.data != y.data { y.data.copyMemory(from: x.data, byteCount: x.byteCount) }
            return
        }
        // Go through Double for floats and Int64/UInt64 for integers: exact for every value of
        // the source type except 64-bit integers beyond 2^53 into floats, which round as in C.
        switch x.dataType {
        case .float: Self.convert(x.pointer(as: Float.self), n, into: y, to) { Double($0) }
        case .double: Self.convert(x.pointer(as: Double.self), n, into: y, to) { $0 }
        case .float16: Self.convert(x.pointer(as: Float16.self), n, into: y, to) { Double($0) }
        case .int8: Self.convertInteger(x.pointer(as: Int8.self), n, into: y, to)
        case .uint8: Self.convertInteger(x.pointer(as: UInt8.self), n, into: y, to)
        case .int16: Self.convertInteger(x.pointer(as: Int16.self), n, into: y, to)
        case .uint16: Self.convertInteger(x.pointer(as: UInt16.self), n, into: y, to)
        case .int32: Self.convertInteger(x.pointer(as: Int32.self), n, into: y, to)
        case .uint32: Self.convertInteger(x.pointer(as: UInt32.self), n, into: y, to)
        case .int64: Self.convertInteger(x.pointer(as: Int64.self), n, into: y, to)
        case .uint64: Self.convertInteger(x.pointer(as: UInt64.self), n, into: y, to)
        case .bool: Self.convertInteger(x.pointer(as: UInt8.self), n, into: y, to)
        }
    }

    private static func convert<S>(
        _ source: UnsafeMutablePointer<S>, _ n: Int, into y: TensorView, _ to: DataType, _ value: (S) -> Double
    ) {
        func store<T>(_ type: T.Type, _ f: (Double) -> T) {
            let out = y.pointer(as: T.self)
            for i in 0..<n { out[i] = f(value(source[i])) }
        }
        switch to {
        case .float: store(Float.self) { Float($0) }
        case .double: store(Double.self) { $0 }
        case .float16: store(Float16.self) { Float16($0) }
        case .bool: store(UInt8.self) { $0 != 0 ? 1 : 0 }
        case .int8: store(Int8.self) { saturating($0) }
        case .uint8: store(UInt8.self) { saturating($0) }
        case .int16: store(Int16.self) { saturating($0) }
        case .uint16: store(UInt16.self) { saturating($0) }
        case .int32: store(Int32.self) { saturating($0) }
        case .uint32: store(UInt32.self) { saturating($0) }
        case .int64: store(Int64.self) { saturating($0) }
        case .uint64: store(UInt64.self) { saturating($0) }
        }
    }

    private static func convertInteger<S: BinaryInteger>(
        _ source: UnsafeMutablePointer<S>, _ n: Int, into y: TensorView, _ to: DataType
    ) {
        func store<T>(_ type: T.Type, _ f: (S) -> T) {
            let out = y.pointer(as: T.self)
            for i in 0..<n { out[i] = f(source[i]) }
        }
        switch to {
        case .float: store(Float.self) { Float($0) }
        case .double: store(Double.self) { Double($0) }
        case .float16: store(Float16.self) { Float16(Float($0)) }
        case .bool: store(UInt8.self) { $0 != 0 ? 1 : 0 }
        case .int8: store(Int8.self) { Int8(truncatingIfNeeded: $0) }
        case .uint8: store(UInt8.self) { UInt8(truncatingIfNeeded: $0) }
        case .int16: store(Int16.self) { Int16(truncatingIfNeeded: $0) }
        case .uint16: store(UInt16.self) { UInt16(truncatingIfNeeded: $0) }
        case .int32: store(Int32.self) { Int32(truncatingIfNeeded: $0) }
        case .uint32: store(UInt32.self) { UInt32(truncatingIfNeeded: $0) }
        case .int64: store(Int64.self) { Int64(truncatingIfNeeded: $0) }
        case .uint64: store(UInt64.self) { UInt64(truncatingIfNeeded: $0) }
        }
    }

    /// Truncates toward zero, clamping to the type's range; NaN becomes 0.
    private static func saturating<T: FixedWidthInteger>(_ v: Double) -> T {
        if v.isNaN { return 0 }
        if v <= Double(T.min) { return T.min }
        if v >= Double(T.max) { return T.max }
        return T(v.rounded(.towardZero))
    }
}
