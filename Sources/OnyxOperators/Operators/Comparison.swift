import OnyxCore
import OnyxIR
import OnyxKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Comparisons, logical and bitwise ops, Pow, Mod, the variadic Max/Min/Sum/Mean and Where,
/// all with NumPy (multidirectional) broadcasting; before opset 7 (8 for the variadic ops)
/// the older `broadcast`/`axis` form (equal shapes).
extension OperatorRegistry {
    package static let comparisonOperators: [OperatorRegistration] =
        [LogicalKernel.Op.equal, .less, .greater, .and, .or, .xor].flatMap { op in
            legacyAndNumPy(op.rawValue) { legacy in LogicalKernel(op: op, legacyBroadcast: legacy) }
        } + [
            OperatorRegistration("LessOrEqual", versions: 12...Int.max) { _ in LogicalKernel(op: .lessOrEqual, legacyBroadcast: nil) },
            OperatorRegistration("GreaterOrEqual", versions: 12...Int.max) { _ in LogicalKernel(op: .greaterOrEqual, legacyBroadcast: nil) },
            OperatorRegistration("BitShift", versions: 11...Int.max) { context in
                guard let direction = try context.string("direction") else {
                    throw context.attributeError("missing attribute 'direction' (\"LEFT\" or \"RIGHT\")")
                }
                switch direction {
                case "LEFT": return BitwiseKernel(op: .shiftLeft)
                case "RIGHT": return BitwiseKernel(op: .shiftRight)
                default: throw context.attributeError("attribute 'direction' must be \"LEFT\" or \"RIGHT\", found \"\(direction)\"")
                }
            },
            OperatorRegistration("BitwiseAnd", versions: 18...Int.max) { _ in BitwiseKernel(op: .and) },
            OperatorRegistration("BitwiseOr", versions: 18...Int.max) { _ in BitwiseKernel(op: .or) },
            OperatorRegistration("BitwiseXor", versions: 18...Int.max) { _ in BitwiseKernel(op: .xor) },
            OperatorRegistration("BitwiseNot", versions: 18...Int.max) { _ in
                ElementwiseFunctionKernel(op: "BitwiseNot", function: .bitwiseNot)
            },
            OperatorRegistration("Pow", versions: 1...6) { context in
                PowKernel(legacyBroadcast: try legacyBroadcast(context), mixedTypes: false)
            },
            OperatorRegistration("Pow", versions: 7...11) { _ in PowKernel(legacyBroadcast: nil, mixedTypes: false) },
            OperatorRegistration("Pow", versions: 12...Int.max) { _ in PowKernel(legacyBroadcast: nil, mixedTypes: true) },
            OperatorRegistration("Mod", versions: 10...Int.max) { context in
                let fmod = try context.int("fmod", default: 0)
                guard fmod == 0 || fmod == 1 else { throw context.attributeError("attribute 'fmod' must be 0 or 1, found \(fmod)") }
                return ModKernel(truncating: fmod == 1)
            },
            OperatorRegistration("Where", versions: 9...Int.max) { _ in WhereKernel() },
        ] + [VariadicKernel.Op.max, .min, .sum, .mean].flatMap { op in
            [
                OperatorRegistration(op.rawValue, versions: 1...7) { _ in VariadicKernel(op: op, broadcasts: false) },
                OperatorRegistration(op.rawValue, versions: 8...Int.max) { _ in VariadicKernel(op: op, broadcasts: true) },
            ]
        }

    private typealias LegacyBroadcast = BinaryArithmeticKernel.LegacyBroadcast

    private static func legacyBroadcast(_ context: NodeContext) throws -> LegacyBroadcast {
        LegacyBroadcast(broadcast: try context.int("broadcast", default: 0) != 0, axis: try context.int("axis"))
    }

    /// Opsets 1–6 with the `broadcast`/`axis` attributes, then NumPy broadcasting from 7.
    private static func legacyAndNumPy(
        _ name: String, _ make: @escaping @Sendable (LegacyBroadcast?) -> any Kernel
    ) -> [OperatorRegistration] {
        [
            OperatorRegistration(name, versions: 1...6) { context in make(try legacyBroadcast(context)) },
            OperatorRegistration(name, versions: 7...Int.max) { _ in make(nil) },
        ]
    }
}

/// B's shape as it broadcasts against A: B itself with NumPy broadcasting (`legacy == nil`);
/// before opset 7, B padded with trailing 1s to line up with A at `axis`, and A's shape must
/// be the result.
private func shapeOfB(_ a: [Int], _ b: [Int], legacy: BinaryArithmeticKernel.LegacyBroadcast?, op: String) throws -> [Int] {
    guard let legacy else { return b }
    let name = "\(op) (opset < 7)"
    guard legacy.broadcast else {
        guard a == b else { throw OnyxError.shapeMismatch("\(name): shapes \(a) and \(b) differ and broadcast = 0") }
        return b
    }
    var shape = b
    if let axis = legacy.axis {
        let start = axis < 0 ? axis + a.count : axis
        guard start >= 0, start + b.count <= a.count else {
            throw OnyxError.shapeMismatch("\(name): B of shape \(b) does not fit A of shape \(a) at axis \(axis)")
        }
        shape += Array(repeating: 1, count: a.count - start - b.count)
    }
    guard shape.count <= a.count, Broadcasting.broadcast(a, shape) == a else {
        throw OnyxError.shapeMismatch("\(name): B of shape \(b) does not broadcast to A of shape \(a)")
    }
    return shape
}

/// Checks a binary op's two inputs: both present, same type, a supported type.
private func binaryInputs(
    _ inputs: [PlannedInput?], op: String, supported: [DataType]
) throws -> (PlannedInput, PlannedInput) {
    guard inputs.count == 2, let a = inputs[0], let b = inputs[1] else {
        throw OnyxError.invalidModel("\(op) takes two inputs, got \(inputs.compactMap { $0 }.count)")
    }
    guard a.dataType == b.dataType else {
        throw OnyxError.unsupportedDataType("\(op): inputs are \(a.dataType) and \(b.dataType); they must have the same type")
    }
    guard supported.contains(a.dataType) else {
        throw OnyxError.unsupportedDataType(
            "\(op) does not support \(a.dataType); supported: \(supported.map(\.onnxName).joined(separator: ", "))")
    }
    return (a, b)
}

private let floatingTypes: [DataType] = [.float, .double, .float16]
private let integerTypes: [DataType] = [.int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64]
private let numericTypes = floatingTypes + integerTypes

// MARK: - Comparisons and logic

/// Equal, Less, Greater, LessOrEqual, GreaterOrEqual, And, Or, Xor: a bool output. NaN
/// compares unequal and unordered, as in IEEE arithmetic.
package struct LogicalKernel: Kernel {
    package enum Op: String {
        case equal = "Equal", less = "Less", greater = "Greater", lessOrEqual = "LessOrEqual"
        case greaterOrEqual = "GreaterOrEqual", and = "And", or = "Or", xor = "Xor"
    }

    package let op: Op
    package let legacyBroadcast: BinaryArithmeticKernel.LegacyBroadcast?

    package var supportedTypes: [DataType] {
        switch op {
        case .equal: numericTypes + [.bool, .string]
        case .and, .or, .xor: [.bool]
        default: numericTypes
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let (a, b) = try binaryInputs(inputs, op: op.rawValue, supported: supportedTypes)
        let shapeB = try shapeOfB(a.shape, b.shape, legacy: legacyBroadcast, op: op.rawValue)
        return [TensorDescriptor(.bool, try Broadcasting.shape(a.shape, shapeB, op: op.rawValue))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, b = context.input(1)!, out = context.output(0)
        let pool = context.pool, op = self.op
        let shapeB = try shapeOfB(a.shape, b.shape, legacy: legacyBroadcast, op: op.rawValue)
        try BinaryBroadcastPlan.withPlan(a.shape, shapeB, output: out.shape) { plan in
            let comparison = Comparison(op: op, plan: plan, a: a, b: b, out: out, pool: pool)
            // A run's table gives equal strings equal handles, so strings compare as their handles.
            if a.dataType == .string { return comparison.visit(Int64.self) }
            try a.dataType.visitElement(comparison)
        }
    }

    /// The loop of `op` for each element type; the output is bool.
    private struct Comparison: ElementVisitor {
        let op: Op
        let plan: BinaryBroadcastPlan
        let a: TensorView, b: TensorView, out: TensorView
        let pool: ComputePool

        func visit<T: Comparable>(_: T.Type) {
            let pa = UnsafePointer(a.pointer(as: T.self)), pb = UnsafePointer(b.pointer(as: T.self))
            let po = out.pointer(as: UInt8.self)
            switch op {
            case .equal: MathLoops.binary(plan, pa, pb, po, pool: pool) { $0 == $1 ? 1 : 0 }
            case .less: MathLoops.binary(plan, pa, pb, po, pool: pool) { $0 < $1 ? 1 : 0 }
            case .greater: MathLoops.binary(plan, pa, pb, po, pool: pool) { $0 > $1 ? 1 : 0 }
            case .lessOrEqual: MathLoops.binary(plan, pa, pb, po, pool: pool) { $0 <= $1 ? 1 : 0 }
            case .greaterOrEqual: MathLoops.binary(plan, pa, pb, po, pool: pool) { $0 >= $1 ? 1 : 0 }
            case .and, .or, .xor: break  // bool only; checked in outputDescriptors
            }
        }

        func visitBool() throws {
            // Any nonzero byte is true.
            let pa = UnsafePointer(a.pointer(as: UInt8.self)), pb = UnsafePointer(b.pointer(as: UInt8.self))
            let po = out.pointer(as: UInt8.self)
            switch op {
            case .equal: MathLoops.binary(plan, pa, pb, po, pool: pool) { ($0 != 0) == ($1 != 0) ? 1 : 0 }
            case .and: MathLoops.binary(plan, pa, pb, po, pool: pool) { $0 != 0 && $1 != 0 ? 1 : 0 }
            case .or: MathLoops.binary(plan, pa, pb, po, pool: pool) { $0 != 0 || $1 != 0 ? 1 : 0 }
            case .xor: MathLoops.binary(plan, pa, pb, po, pool: pool) { ($0 != 0) != ($1 != 0) ? 1 : 0 }
            default: throw OnyxError.unsupportedDataType("\(op.rawValue) does not support bool")
            }
        }
    }
}

// MARK: - Bitwise

/// BitwiseAnd/Or/Xor and BitShift on integers.
///
/// BitShift by a negative amount or by at least the bit width gives what the sign fill alone
/// gives (−1 for a right shift of a negative value, else 0), as opset 28 specifies; a left
/// shift of a signed value discards the bits shifted past the sign.
package struct BitwiseKernel: Kernel {
    package enum Op { case and, or, xor, shiftLeft, shiftRight }

    package let op: Op

    private var name: String {
        switch op {
        case .and: "BitwiseAnd"
        case .or: "BitwiseOr"
        case .xor: "BitwiseXor"
        case .shiftLeft, .shiftRight: "BitShift"
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let (a, b) = try binaryInputs(inputs, op: name, supported: integerTypes)
        return [TensorDescriptor(a.dataType, try Broadcasting.shape(a.shape, b.shape, op: name))]
    }

    package var aliasing: KernelAliasing { .inPlace(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, b = context.input(1)!, out = context.output(0)
        let pool = context.pool, op = self.op
        try BinaryBroadcastPlan.withPlan(a.shape, b.shape, output: out.shape) { plan in
            try a.dataType.visitInteger(Bitwise(op: op, plan: plan, a: a, b: b, out: out, pool: pool), operation: name)
        }
    }

    private struct Bitwise: IntegerElementVisitor {
        let op: Op
        let plan: BinaryBroadcastPlan
        let a: TensorView, b: TensorView, out: TensorView
        let pool: ComputePool

        func visit<T: IntegerElement>(_: T.Type) {
            let pa = UnsafePointer(a.pointer(as: T.self)), pb = UnsafePointer(b.pointer(as: T.self))
            let po = out.pointer(as: T.self)
            let width = T(truncatingIfNeeded: T.bitWidth)
            switch op {
            case .and: MathLoops.binary(plan, pa, pb, po, pool: pool) { $0 & $1 }
            case .or: MathLoops.binary(plan, pa, pb, po, pool: pool) { $0 | $1 }
            case .xor: MathLoops.binary(plan, pa, pb, po, pool: pool) { $0 ^ $1 }
            case .shiftLeft:
                MathLoops.binary(plan, pa, pb, po, pool: pool) { x, s in s >= 0 && s < width ? x &<< s : 0 }
            case .shiftRight:
                MathLoops.binary(plan, pa, pb, po, pool: pool) { x, s in
                    s >= 0 && s < width ? x &>> s : (x < 0 ? ~0 : 0)
                }
            }
        }
    }
}

// MARK: - Pow

/// Pow: `base^exponent` in the base's type. From opset 12 the exponent may be of another
/// type (any number type), as NumPy computes `power(a, b).astype(a.dtype)`:
/// - a floating base: computed in Double (float32 ^ float32 in Float) and rounded to the base's type;
/// - an integer base with an integer exponent: repeated multiplication, wrapping; a negative
///   exponent gives 1 for base 1, ±1 for base −1 and 0 otherwise (the truncated exact value);
/// - an integer base with a floating exponent: computed in Double, truncated toward zero and
///   saturated to the base's range.
package struct PowKernel: Kernel {
    package let legacyBroadcast: BinaryArithmeticKernel.LegacyBroadcast?
    package let mixedTypes: Bool

    package static let baseTypes: [DataType] = [.float, .double, .float16, .int32, .int64]

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 2, let a = inputs[0], let b = inputs[1] else {
            throw OnyxError.invalidModel("Pow takes two inputs, got \(inputs.compactMap { $0 }.count)")
        }
        let bases = mixedTypes ? Self.baseTypes : floatingTypes
        guard bases.contains(a.dataType) else {
            throw OnyxError.unsupportedDataType(
                "Pow does not support a base of \(a.dataType); supported: \(bases.map(\.onnxName).joined(separator: ", "))")
        }
        if mixedTypes {
            guard numericTypes.contains(b.dataType) else {
                throw OnyxError.unsupportedDataType("Pow does not support an exponent of \(b.dataType)")
            }
        } else if a.dataType != b.dataType {
            throw OnyxError.unsupportedDataType("Pow (opset < 12): base is \(a.dataType) and exponent is \(b.dataType); they must have the same type")
        }
        let shapeB = try shapeOfB(a.shape, b.shape, legacy: legacyBroadcast, op: "Pow")
        return [TensorDescriptor(a.dataType, try Broadcasting.shape(a.shape, shapeB, op: "Pow"))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, b = context.input(1)!, out = context.output(0)
        let pool = context.pool
        // x² and x³ by multiplication (GELU's tanh form cubes every activation), as onnxruntime
        // does: a vectorised loop instead of a libm call per element.
        if a.dataType == .float, b.dataType == .float, b.elementCount == 1, out.elementCount == a.elementCount {
            let exponent = b.pointer(as: Float.self)[0]
            let x = UnsafePointer(a.pointer(as: Float.self)), y = out.pointer(as: Float.self)
            if exponent == 2 {
                ElementwiseLoops.unary(x, y, count: a.elementCount, pool: pool, Square())
                return
            }
            if exponent == 3 {
                ElementwiseLoops.unary(x, y, count: a.elementCount, pool: pool, Cube())
                return
            }
        }
        let shapeB = try shapeOfB(a.shape, b.shape, legacy: legacyBroadcast, op: "Pow")
        try BinaryBroadcastPlan.withPlan(a.shape, shapeB, output: out.shape) { plan in
            try b.dataType.visitNumeric(Power(plan: plan, a: a, b: b, out: out, pool: pool), operation: "Pow")
        }
    }

    private struct Square: UnaryElementOperation {
        @inline(__always) func callAsFunction(_ x: Float) -> Float { x * x }
    }

    private struct Cube: UnaryElementOperation {
        @inline(__always) func callAsFunction(_ x: Float) -> Float { x * x * x }
    }

    /// The loops for each exponent type `E`, by the base's type.
    private struct Power: NumericElementVisitor {
        let plan: BinaryBroadcastPlan
        let a: TensorView, b: TensorView, out: TensorView
        let pool: ComputePool

        func visit<E: FloatingElement>(_: E.Type) throws { try power(E.self, isInteger: false) }
        func visit<E: IntegerElement>(_: E.Type) throws { try power(E.self, isInteger: true) }

        private func power<E: CastSource>(_: E.Type, isInteger: Bool) throws {
            let pb = UnsafePointer(b.pointer(as: E.self))
            func floating<T: BinaryFloatingPoint & CastSource>(_: T.Type, _ make: (Double) -> T) {
                MathLoops.binary(plan, UnsafePointer(a.pointer(as: T.self)), pb, out.pointer(as: T.self), pool: pool) {
                    make(pow($0.castDouble, $1.castDouble))
                }
            }
            func integer<T: FixedWidthInteger & CastSource & CastInteger>(_: T.Type) {
                let pa = UnsafePointer(a.pointer(as: T.self)), po = out.pointer(as: T.self)
                if isInteger {
                    MathLoops.binary(plan, pa, pb, po, pool: pool) { integerPower($0, $1.castInteger(Int64.self)) }
                } else {
                    MathLoops.binary(plan, pa, pb, po, pool: pool) { T.saturating(pow($0.castDouble, $1.castDouble)) }
                }
            }
            switch a.dataType {
            case .float:
                if E.self == Float.self {
                    MathLoops.binary(plan, UnsafePointer(a.pointer(as: Float.self)), UnsafePointer(b.pointer(as: Float.self)),
                                     out.pointer(as: Float.self), pool: pool) { pow($0, $1) }
                } else {
                    floating(Float.self) { Float($0) }
                }
            case .double: floating(Double.self) { $0 }
            case .float16: floating(Float16.self) { Float16(Float($0)) }
            case .int32: integer(Int32.self)
            case .int64: integer(Int64.self)
            default: throw OnyxError.unsupportedDataType("Pow does not support a base of \(a.dataType)")
            }
        }
    }
}

/// `base^exponent` by repeated squaring, wrapping on overflow.
@inline(__always)
private func integerPower<T: FixedWidthInteger>(_ base: T, _ exponent: Int64) -> T {
    if exponent < 0 {
        if base == 1 { return 1 }
        if T.isSigned && base == 0 &- 1 { return exponent & 1 == 0 ? 1 : base }
        return 0
    }
    var result: T = 1, square = base, e = exponent
    while e > 0 {
        if e & 1 != 0 { result = result &* square }
        square = square &* square
        e >>= 1
    }
    return result
}

// MARK: - Mod

/// Mod: with `fmod = 1` the remainder of truncating division (C's `fmod`, sign of the dividend);
/// with `fmod = 0` the remainder of floor division (Python's `%`, sign of the divisor), for
/// integers and floats alike. An integer zero divisor is an error; a floating one gives NaN.
package struct ModKernel: Kernel {
    package let truncating: Bool

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let (a, b) = try binaryInputs(inputs, op: "Mod", supported: numericTypes)
        return [TensorDescriptor(a.dataType, try Broadcasting.shape(a.shape, b.shape, op: "Mod"))]
    }

    package var aliasing: KernelAliasing { .inPlace(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, b = context.input(1)!, out = context.output(0)
        let pool = context.pool, truncating = self.truncating
        try BinaryBroadcastPlan.withPlan(a.shape, b.shape, output: out.shape) { plan in
            if a.dataType == .float16 {
                // float16 as bits, computed in Float (Half), like the other float16 loops here.
                let pa = UnsafePointer(a.pointer(as: UInt16.self)), pb = UnsafePointer(b.pointer(as: UInt16.self))
                MathLoops.binary(plan, pa, pb, out.pointer(as: UInt16.self), pool: pool) {
                    let x = Half.float($0), y = Half.float($1)
                    return Half.bits(truncating ? x.truncatingRemainder(dividingBy: y) : floorRemainder(x, y))
                }
            } else {
                let remainder = Remainder(truncating: truncating, plan: plan, a: a, b: b, out: out, pool: pool)
                try a.dataType.visitNumeric(remainder, operation: "Mod")
            }
        }
    }

    /// The loop for each element type but float16.
    private struct Remainder: NumericElementVisitor {
        let truncating: Bool
        let plan: BinaryBroadcastPlan
        let a: TensorView, b: TensorView, out: TensorView
        let pool: ComputePool

        func visit<T: FloatingElement>(_: T.Type) {
            let pa = UnsafePointer(a.pointer(as: T.self)), pb = UnsafePointer(b.pointer(as: T.self))
            MathLoops.binary(plan, pa, pb, out.pointer(as: T.self), pool: pool) {
                truncating ? $0.truncatingRemainder(dividingBy: $1) : floorRemainder($0, $1)
            }
        }

        func visit<T: IntegerElement>(_: T.Type) throws {
            let pa = UnsafePointer(a.pointer(as: T.self)), pb = UnsafePointer(b.pointer(as: T.self))
            // Checked before any output is written: the output may be input A's buffer.
            if plan.elementCount > 0, UnsafeBufferPointer(start: pb, count: b.elementCount).contains(0) {
                throw OnyxError.invalidInput("Mod: integer division by zero")
            }
            MathLoops.binary(plan, pa, pb, out.pointer(as: T.self), pool: pool) { x, y in
                // `min % -1` overflows in the division; the remainder is 0.
                let r = T.isSigned && y == 0 &- 1 ? 0 : x % y
                return !truncating && r != 0 && (r < 0) != (y < 0) ? r &+ y : r
            }
        }
    }
}

/// `x − floor(x/y)·y`, computed exactly as `fmod` adjusted toward the divisor's sign; a zero
/// result takes the divisor's sign.
@inline(__always)
private func floorRemainder<T: BinaryFloatingPoint>(_ x: T, _ y: T) -> T {
    let r = x.truncatingRemainder(dividingBy: y)
    if r == 0 { return y.sign == .minus ? -0.0 : 0 }
    return (r < 0) != (y < 0) ? r + y : r
}

// MARK: - Variadic

/// Max, Min, Sum, Mean of one or more inputs, broadcast together from opset 8 (equal shapes
/// before). Max and Min propagate NaN, as NumPy's `maximum`/`minimum` do.
package struct VariadicKernel: Kernel {
    package enum Op: String { case max = "Max", min = "Min", sum = "Sum", mean = "Mean" }

    package let op: Op
    package let broadcasts: Bool

    package var supportedTypes: [DataType] {
        switch op {
        case .max, .min: numericTypes
        case .sum, .mean: floatingTypes
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let present = inputs.compactMap { $0 }
        guard !inputs.isEmpty, present.count == inputs.count else {
            throw OnyxError.invalidModel("\(op.rawValue) takes one or more inputs, got \(present.count) of \(inputs.count)")
        }
        let type = present[0].dataType
        guard supportedTypes.contains(type) else {
            throw OnyxError.unsupportedDataType(
                "\(op.rawValue) does not support \(type); supported: \(supportedTypes.map(\.onnxName).joined(separator: ", "))")
        }
        for (index, input) in present.enumerated() where input.dataType != type {
            throw OnyxError.unsupportedDataType("\(op.rawValue): input \(index) is \(input.dataType), input 0 is \(type); they must have the same type")
        }
        if !broadcasts {
            for (index, input) in present.enumerated() where input.shape != present[0].shape {
                throw OnyxError.shapeMismatch(
                    "\(op.rawValue) (opset < 8): input \(index) has shape \(input.shape), input 0 has \(present[0].shape); they must be equal")
            }
        }
        return [TensorDescriptor(type, try Broadcasting.shape(present.map(\.shape), op: op.rawValue))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let out = context.output(0)
        var inputs: [TensorView] = []
        for index in 0..<context.inputCount {
            inputs.append(context.input(index)!)
        }
        let pool = context.pool
        switch (op, out.dataType) {
        case (.max, .float): Self.fold(Float.self, inputs, out, pool) { $0 > $1 || $0.isNaN ? $0 : $1 }
        case (.min, .float): Self.fold(Float.self, inputs, out, pool) { $0 < $1 || $0.isNaN ? $0 : $1 }
        case (.sum, .float), (.mean, .float): Self.fold(Float.self, inputs, out, pool) { $0 + $1 }
        case (.max, .double): Self.fold(Double.self, inputs, out, pool) { $0 > $1 || $0.isNaN ? $0 : $1 }
        case (.min, .double): Self.fold(Double.self, inputs, out, pool) { $0 < $1 || $0.isNaN ? $0 : $1 }
        case (.sum, .double), (.mean, .double): Self.fold(Double.self, inputs, out, pool) { $0 + $1 }
        case (.max, .float16):
            Self.fold(UInt16.self, inputs, out, pool) { a, b in
                let x = Half.float(a), y = Half.float(b)
                return x > y || x.isNaN ? a : b
            }
        case (.min, .float16):
            Self.fold(UInt16.self, inputs, out, pool) { a, b in
                let x = Half.float(a), y = Half.float(b)
                return x < y || x.isNaN ? a : b
            }
        case (.sum, .float16), (.mean, .float16):
            Self.fold(UInt16.self, inputs, out, pool) { Half.bits(Half.float($0) + Half.float($1)) }
        case (.max, _), (.min, _):
            try out.dataType.visitInteger(IntegerExtreme(isMax: op == .max, inputs: inputs, out: out, pool: pool),
                                          operation: op.rawValue)
        default:
            throw OnyxError.unsupportedDataType("\(op.rawValue) does not support \(out.dataType)")
        }
        if op == .mean {
            let n = out.elementCount, count = inputs.count
            switch out.dataType {
            case .float:
                let divisor = Float(count), p = out.pointer(as: Float.self)
                MathLoops.map(UnsafePointer(p), p, count: n, pool: pool) { $0 / divisor }
            case .double:
                let divisor = Double(count), p = out.pointer(as: Double.self)
                MathLoops.map(UnsafePointer(p), p, count: n, pool: pool) { $0 / divisor }
            default:
                let divisor = Float(count), p = out.pointer(as: UInt16.self)
                MathLoops.map(UnsafePointer(p), p, count: n, pool: pool) { Half.bits(Half.float($0) / divisor) }
            }
        }
    }

    /// Max or Min of integers.
    private struct IntegerExtreme: IntegerElementVisitor {
        let isMax: Bool
        let inputs: [TensorView], out: TensorView
        let pool: ComputePool

        func visit<T: IntegerElement>(_: T.Type) {
            if isMax {
                VariadicKernel.fold(T.self, inputs, out, pool) { $0 > $1 ? $0 : $1 }
            } else {
                VariadicKernel.fold(T.self, inputs, out, pool) { $0 < $1 ? $0 : $1 }
            }
        }
    }

    /// `out = f(…f(f(x₀, x₁), x₂)…, xₙ)` with broadcasting; one input is copied.
    @inline(__always)
    private static func fold<T>(
        _: T.Type, _ inputs: [TensorView], _ out: TensorView, _ pool: ComputePool, _ f: (T, T) -> T
    ) {
        let po = out.pointer(as: T.self)
        var next = 1
        let first = UnsafePointer(inputs[0].pointer(as: T.self))
        if inputs.count >= 2, Broadcasting.broadcast(inputs[0].shape, inputs[1].shape) == out.shape {
            BinaryBroadcastPlan.withPlan(inputs[0].shape, inputs[1].shape, output: out.shape) { plan in
                MathLoops.binary(plan, first, UnsafePointer(inputs[1].pointer(as: T.self)), po, pool: pool, f)
            }
            next = 2
        } else {
            // Input 0 broadcast to the output shape; the output is read as B only by the plan, never used.
            BinaryBroadcastPlan.withPlan(inputs[0].shape, out.shape, output: out.shape) { plan in
                MathLoops.binary(plan, first, UnsafePointer(po), po, pool: pool) { a, _ in a }
            }
        }
        for input in inputs.dropFirst(next) {
            BinaryBroadcastPlan.withPlan(out.shape, input.shape, output: out.shape) { plan in
                MathLoops.binary(plan, UnsafePointer(po), UnsafePointer(input.pointer(as: T.self)), po, pool: pool, f)
            }
        }
    }
}

// MARK: - Where

/// Where: `condition ? X : Y` elementwise, the three broadcast together. Works on any type by
/// moving elements of its width.
package struct WhereKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 3, let condition = inputs[0], let x = inputs[1], let y = inputs[2] else {
            throw OnyxError.invalidModel("Where takes three inputs (condition, X, Y), got \(inputs.compactMap { $0 }.count)")
        }
        guard condition.dataType == .bool else {
            throw OnyxError.unsupportedDataType("Where: condition must be bool, got \(condition.dataType)")
        }
        guard x.dataType == y.dataType else {
            throw OnyxError.unsupportedDataType("Where: X is \(x.dataType) and Y is \(y.dataType); they must have the same type")
        }
        return [TensorDescriptor(x.dataType, try Broadcasting.shape([condition.shape, x.shape, y.shape], op: "Where"))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let condition = context.input(0)!, x = context.input(1)!, y = context.input(2)!, out = context.output(0)
        let pc = UnsafePointer(condition.pointer(as: UInt8.self))
        func select<T>(_: T.Type) {
            MathLoops.select(pc, conditionShape: condition.shape, UnsafePointer(x.pointer(as: T.self)), xShape: x.shape,
                             UnsafePointer(y.pointer(as: T.self)), yShape: y.shape, out.pointer(as: T.self), outShape: out.shape)
        }
        switch x.dataType.byteWidth {
        case 1: select(UInt8.self)
        case 2: select(UInt16.self)
        case 4: select(UInt32.self)
        default: select(UInt64.self)
        }
    }
}
