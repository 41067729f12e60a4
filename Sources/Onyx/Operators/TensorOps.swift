/// Operators that pass, make or convert whole tensors: Identity, Dropout (inference), Constant,
/// Cast, CastLike.
extension OperatorRegistry {
    static let tensorOperators: [OperatorRegistration] = [
        OperatorRegistration("Identity") { _ in IdentityKernel() },

        // Dropout runs in inference mode only, as onnxruntime's CPU kernel does for every opset
        // (opset < 7's `is_test` is ignored). The mask was of the input's type before opset 10.
        OperatorRegistration("Dropout", versions: 1...9) { _ in DropoutKernel(maskIsBool: false, hasTrainingMode: false) },
        OperatorRegistration("Dropout", versions: 10...11) { _ in DropoutKernel(maskIsBool: true, hasTrainingMode: false) },
        OperatorRegistration("Dropout", versions: 12...Int.max) { context in
            if let training = context.constantInput(2) { try DropoutKernel.checkInferenceMode(training) }
            return DropoutKernel(maskIsBool: true, hasTrainingMode: true)
        },

        OperatorRegistration("Constant") { context in ConstantKernel(value: try constantValue(context)) },

        OperatorRegistration("Cast") { context in
            guard let code = try context.int("to") else { throw OnyxError.invalidAttribute("Cast: missing attribute 'to'") }
            _ = try context.int("saturate")  // opset 19: only affects float8 targets, which Onyx refuses anyway
            return CastKernel(to: try castTarget(code))
        },
        OperatorRegistration("CastLike", versions: 15...Int.max) { context in
            _ = try context.int("saturate")
            return CastKernel(to: nil)
        },
    ]

    /// The ``DataType`` of a Cast target code, or an error naming the unsupported type.
    private static func castTarget(_ code: Int) throws -> DataType {
        guard let type = DataType(rawValue: Int32(truncatingIfNeeded: code)), Int(type.rawValue) == code else {
            throw OnyxError.unsupportedDataType(
                "Cast: target type \(DataType.onnxName(ofCode: Int32(truncatingIfNeeded: code))) is not supported; "
                    + "expected one of \(DataType.allCases.map(\.onnxName).joined(separator: ", "))")
        }
        return type
    }

    /// The value of a Constant node, from whichever attribute it uses (opset 12 added the
    /// `value_*` forms; any opset is accepted).
    private static func constantValue(_ context: NodeContext) throws -> Tensor {
        let kinds = ["value", "sparse_value", "value_float", "value_floats", "value_int", "value_ints", "value_string", "value_strings"]
        let given = kinds.filter { context.attribute($0) != nil }
        guard given.count == 1 else {
            throw OnyxError.invalidAttribute(
                given.isEmpty
                    ? "Constant: expected one of the attributes \(kinds.joined(separator: ", ")), found none"
                    : "Constant: expected exactly one value attribute, found \(given.joined(separator: ", "))")
        }
        switch given[0] {
        case "value":
            return try context.tensor("value")!
        case "value_float":
            return Tensor(scalar: try context.float("value_float")!)
        case "value_floats":
            let v = try context.floats("value_floats")!
            return try Tensor(shape: [v.count], scalars: v)
        case "value_int":
            return Tensor(scalar: Int64(try context.int("value_int")!))
        case "value_ints":
            let v = try context.ints("value_ints")!
            return try Tensor(shape: [v.count], scalars: v.map { Int64($0) })
        case "sparse_value":
            throw OnyxError.unsupportedDataType("Constant: sparse_value is not supported; expected a dense value")
        default:
            throw OnyxError.unsupportedDataType("Constant: \(given[0]) is not supported; Onyx has no string tensors")
        }
    }
}

struct IdentityKernel: Kernel {
    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Identity: missing input 0") }
        return [x.descriptor]
    }

    var aliasing: KernelAliasing { .view(input: 0) }
    func run(_ context: borrowing KernelContext) throws { copyIfDistinct(context) }
}

/// Inference-mode Dropout: the output is the input; the optional mask is all ones (true).
struct DropoutKernel: Kernel {
    /// Opset ≥ 10: the mask is bool; before, it has the input's type.
    let maskIsBool: Bool
    /// Opset ≥ 12: input 2 is `training_mode`, which must be false.
    let hasTrainingMode: Bool

    static func checkInferenceMode(_ training: Tensor) throws {
        guard training.dataType == .bool, training.elementCount == 1 else {
            throw OnyxError.unsupportedDataType(
                "Dropout: training_mode must be a bool scalar, found \(training.dataType)\(shapeText(training.shape))")
        }
        if try training.scalars(as: Bool.self)[0] { throw trainingModeError }
    }

    static let trainingModeError = OnyxError.invalidInput(
        "Dropout: training_mode is true; Onyx runs Dropout in inference mode only (expected false or no input)")

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Dropout: missing input 0 (data)") }
        if hasTrainingMode, inputs.count > 2, let training = inputs[2] {
            if let value = training.constant {
                try Self.checkInferenceMode(value)
            } else if training.dataType != .bool || training.descriptor.elementCount != 1 {
                throw OnyxError.unsupportedDataType(
                    "Dropout: training_mode must be a bool scalar, found \(training.dataType)\(shapeText(training.shape))")
            }
        }
        return [x.descriptor, TensorDescriptor(maskIsBool ? .bool : x.dataType, x.shape)]
    }

    /// The ratio is never read; training_mode is, when it is not constant.
    func readsData(ofInput index: Int) -> Bool { index == 0 || (index == 2 && hasTrainingMode) }
    var aliasing: KernelAliasing { .view(input: 0) }

    func run(_ context: borrowing KernelContext) throws {
        if hasTrainingMode, let training = context.input(2), training.data.load(as: UInt8.self) != 0 {
            throw Self.trainingModeError
        }
        copyIfDistinct(context)
        if let mask = context.optionalOutput(1) {
            let count = mask.elementCount
            guard count > 0 else { return }
            // One element of "1" in the mask's type, then doubled until the mask is full.
            var one = BoolByte(raw: 1)
            Casting.convert(&one, from: .bool, to: mask.data, mask.dataType, count: 1)
            let total = mask.byteCount
            var filled = mask.dataType.byteWidth
            while filled < total {
                let n = min(filled, total - filled)
                (mask.data + filled).copyMemory(from: mask.data, byteCount: n)
                filled += n
            }
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
        value.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress, bytes.count > 0 { y.data.copyMemory(from: base, byteCount: bytes.count) }
        }
    }
}

/// Cast to a fixed type, or (CastLike, `to == nil`) to the type of input 1. See ``Casting`` for
/// the conversion rules.
struct CastKernel: Kernel {
    let to: DataType?

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Cast: missing input 0") }
        if let to { return [TensorDescriptor(to, x.shape)] }
        guard inputs.count > 1, let like = inputs[1] else {
            throw OnyxError.invalidModel("CastLike: missing input 1 (target_type)")
        }
        return [TensorDescriptor(like.dataType, x.shape)]
    }

    func readsData(ofInput index: Int) -> Bool { index == 0 }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        Casting.convert(x.data, from: x.dataType, to: y.data, y.dataType, count: x.elementCount, pool: context.pool)
    }
}
