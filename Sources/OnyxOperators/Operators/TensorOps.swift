import OnyxCore
import OnyxIR
import OnyxKernels

/// Operators that pass, make or convert whole tensors: Identity, Dropout (inference), Constant,
/// Cast, CastLike.
extension OperatorRegistry {
    package static let tensorOperators: [OperatorRegistration] = [
        OperatorRegistration("Identity") { _ in IdentityKernel() },

        // Dropout before opset 12 runs in inference mode (opset < 7's `is_test` is ignored, as
        // onnxruntime does). The mask was of the input's type before opset 10.
        OperatorRegistration("Dropout", versions: 1...9) { _ in DropoutKernel(maskIsBool: false, hasTrainingMode: false) },
        OperatorRegistration("Dropout", versions: 10...11) { _ in DropoutKernel(maskIsBool: true, hasTrainingMode: false) },
        OperatorRegistration("Dropout", versions: 12...Int.max) { context in
            var kernel = DropoutKernel(maskIsBool: true, hasTrainingMode: true, seed: try context.int("seed"))
            if let training = context.constantInput(2) {
                try DropoutKernel.checkTrainingMode(PlannedInput(
                    descriptor: TensorDescriptor(training.dataType, training.shape), constant: training))
                kernel.mayTrain = try training.scalars(as: Bool.self)[0]
            } else {
                kernel.mayTrain = context.hasInput(2)
            }
            return kernel
        },

        OperatorRegistration("Constant") { context in ConstantKernel(value: try constantValue(context)) },

        OperatorRegistration("Cast") { context in
            guard let code = try context.int("to") else { throw OnyxError.invalidAttribute("Cast: missing attribute 'to'") }
            return try CastKernel(context, to: try castTarget(code))
        },
        OperatorRegistration("CastLike", versions: 15...Int.max) { context in try CastKernel(context, to: nil) },
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
        case "value_string":
            return try Tensor(strings: [try context.string("value_string")!], shape: [])
        case "value_strings":
            let v = try context.strings("value_strings")!
            return try Tensor(strings: v, shape: [v.count])
        default:
            throw OnyxError.unsupportedDataType("Constant: sparse_value is not supported; expected a dense value")
        }
    }
}

package struct IdentityKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Identity: missing input 0") }
        return [x.descriptor]
    }

    package var aliasing: KernelAliasing { .view(input: 0) }
    package func run(_ context: borrowing KernelContext) throws { copyIfDistinct(context) }
}

/// Dropout. In inference mode (always before opset 12; from 12 unless `training_mode` is true)
/// the output is the input and the optional mask is all ones (true). In training mode each
/// element is kept with probability `1 − ratio` and scaled by `1 / (1 − ratio)`; the `seed`
/// attribute makes the draw repeatable, without it every run draws anew.
package struct DropoutKernel: Kernel {
    /// Opset ≥ 10: the mask is bool; before, it has the input's type.
    package let maskIsBool: Bool
    /// Opset ≥ 12: input 1 is `ratio` and input 2 `training_mode`, which may turn training on.
    package let hasTrainingMode: Bool
    /// The `seed` attribute, for training mode.
    package var seed: Int? = nil

    /// Whether training mode can be on: then the output is not a view of the input.
    package var mayTrain: Bool = false

    package static let trainingTypes: [DataType] = [.float, .double, .float16]

    package static func checkTrainingMode(_ training: PlannedInput) throws {
        guard training.dataType == .bool, training.descriptor.elementCount == 1 else {
            throw OnyxError.unsupportedDataType(
                "Dropout: training_mode must be a bool scalar, found \(training.dataType)\(shapeText(training.shape))")
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Dropout: missing input 0 (data)") }
        if hasTrainingMode, inputs.count > 2, let training = inputs[2] {
            try Self.checkTrainingMode(training)
            guard Self.trainingTypes.contains(x.dataType) else {
                throw OnyxError.unsupportedDataType("Dropout: training mode supports float, double and float16, got \(x.dataType)")
            }
            if inputs.count > 1, let ratio = inputs[1], !Self.trainingTypes.contains(ratio.dataType) || ratio.descriptor.elementCount != 1 {
                throw OnyxError.unsupportedDataType("Dropout: ratio must be a floating-point scalar, found \(ratio.descriptor)")
            }
        }
        return [x.descriptor, TensorDescriptor(maskIsBool ? .bool : x.dataType, x.shape)]
    }

    package func readsData(ofInput index: Int) -> Bool { index == 0 || (mayTrain && index <= 2) }
    package var aliasing: KernelAliasing { mayTrain ? .none : .view(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        if hasTrainingMode, let training = context.input(2), training.data.load(as: UInt8.self) != 0 {
            var ratio = 0.5
            if let r = context.input(1) {
                var value: Double = 0
                Casting.convert(r.data, from: r.dataType, to: &value, .double, count: 1)
                ratio = value
            }
            guard ratio >= 0 && ratio < 1 else {
                throw OnyxError.invalidInput("Dropout: ratio must be in [0, 1), got \(ratio)")
            }
            if ratio > 0 { return try train(context, ratio: ratio) }
        }
        copyIfDistinct(context)
        if let mask = context.optionalOutput(1) { Self.fillOnes(mask) }
    }

    private func train(_ context: borrowing KernelContext, ratio: Double) throws {
        let x = context.input(0)!, y = context.output(0)
        let mask = context.optionalOutput(1)
        let seed = self.seed.map { UInt64(bitPattern: Int64($0)) } ?? UInt64.random(in: .min ... .max)
        let dropping = Dropping(x: x, y: y, mask: mask, seed: seed, ratio: ratio)
        try x.dataType.visitFloating(dropping, operation: "Dropout in training mode")
    }

    /// Drops each element with probability `ratio` and scales the rest by 1 / (1 − ratio).
    private struct Dropping: FloatingElementVisitor {
        let x: TensorView, y: TensorView, mask: TensorView?
        let seed: UInt64
        let ratio: Double

        func visit<T: FloatingElement>(_: T.Type) {
            var generator = SplitMix64(seed: seed)
            let scale = 1 / (1 - ratio)
            let source = x.pointer(as: T.self), target = y.pointer(as: T.self)
            for i in 0..<x.elementCount {
                let keep = Double(generator.next() >> 11) * 0x1p-53 >= ratio
                target[i] = keep ? T(Double(source[i]) * scale) : 0
                if let mask {
                    if mask.dataType == .bool {
                        mask.data.storeBytes(of: keep ? 1 : 0, toByteOffset: i, as: UInt8.self)
                    } else {
                        mask.pointer(as: T.self)[i] = keep ? 1 : 0
                    }
                }
            }
        }
    }

    /// Writes "1" in the mask's type into every element.
    private static func fillOnes(_ mask: TensorView) {
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

/// A small, fast pseudo-random generator (SplitMix64) for Dropout's training-mode draws.
package struct SplitMix64 {
    private var state: UInt64
    package init(seed: UInt64) { state = seed }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

package struct ConstantKernel: Kernel {
    package let value: Tensor

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        [TensorDescriptor(value.dataType, value.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let y = context.output(0)
        if value.dataType == .string { return try context.store(try value.strings(), intoOutput: 0) }
        value.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress, bytes.count > 0 { y.data.copyMemory(from: base, byteCount: bytes.count) }
        }
    }
}

/// Cast to a fixed type, or (CastLike, `to == nil`) to the type of input 1. See ``Casting`` for
/// the conversion rules.
package struct CastKernel: Kernel {
    /// The target type; `nil` for CastLike, which takes input 1's.
    package let to: DataType?
    /// `saturate` (opset ≥ 19): float8 targets clamp out-of-range values to their largest finite value.
    package var saturate = true
    /// `round_mode` (opset ≥ 24): how values round into a float8e8m0 target.
    package var rounding = E8M0.Rounding.up

    package init(to: DataType?) {
        self.to = to
    }

    package init(_ context: NodeContext, to: DataType?) throws {
        self.to = to
        saturate = context.opset >= 19 ? try context.int("saturate", default: 1) != 0 : true
        if context.opset >= 24 {
            let mode = try context.string("round_mode", default: "up")
            guard let rounding = E8M0.Rounding(rawValue: mode) else {
                throw context.attributeError("round_mode must be 'up', 'down' or 'nearest', got '\(mode)'")
            }
            self.rounding = rounding
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Cast: missing input 0") }
        if let to { return [TensorDescriptor(to, x.shape)] }
        guard inputs.count > 1, let like = inputs[1] else {
            throw OnyxError.invalidModel("CastLike: missing input 1 (target_type)")
        }
        return [TensorDescriptor(like.dataType, x.shape)]
    }

    package func readsData(ofInput index: Int) -> Bool { index == 0 }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        if x.dataType != y.dataType && (x.dataType == .string || y.dataType == .string) {
            return try StringCasting.cast(context, saturate: saturate, rounding: rounding)
        }
        Casting.convert(x.data, from: x.dataType, to: y.data, y.dataType, count: x.elementCount,
                        saturate: saturate, rounding: rounding, pool: context.pool)
    }
}
