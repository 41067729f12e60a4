import OnyxCore
import OnyxKernels

extension OperatorRegistry {
    package static let elementwiseOperators: [OperatorRegistration] =
        BinaryArithmeticKernel.Op.allCases.flatMap { op in
            [
                OperatorRegistration(op.rawValue, versions: 1...6) { context in
                    BinaryArithmeticKernel(
                        op: op,
                        legacyBroadcast: .init(
                            broadcast: try context.int("broadcast", default: 0) != 0,
                            axis: try context.int("axis")))
                },
                OperatorRegistration(op.rawValue, versions: 7...Int.max) { _ in
                    BinaryArithmeticKernel(op: op, legacyBroadcast: nil)
                },
            ]
        } + [
            OperatorRegistration("Relu") { context in ReluKernel(isa: context.isa) },
            OperatorRegistration("Clip", versions: 1...10) { context in
                let low = try context.float("min"), high = try context.float("max")
                for (name, value) in [("min", low), ("max", high)] where value?.isNaN == true {
                    throw context.attributeError("attribute '\(name)' is NaN")
                }
                return ClipKernel(boundsAreAttributes: true, attributeMin: low, attributeMax: high, isa: context.isa)
            },
            OperatorRegistration("Clip", versions: 11...Int.max) { context in
                ClipKernel(boundsAreAttributes: false, attributeMin: nil, attributeMax: nil, isa: context.isa)
            },
        ]
}

/// Add, Sub, Mul, Div with multidirectional (NumPy) broadcasting from opset 7, and the older
/// `broadcast`/`axis` form before it.
///
/// Integer arithmetic wraps like C's unsigned arithmetic; integer division truncates toward
/// zero (as onnxruntime does) and a zero divisor is an error rather than a trap.
package struct BinaryArithmeticKernel: Kernel {
    package enum Op: String, CaseIterable { case add = "Add", sub = "Sub", mul = "Mul", div = "Div" }

    /// Opset 1–6: B broadcasts to A only if `broadcast` is set, aligned at `axis` (or at the trailing axes).
    package struct LegacyBroadcast {
        package var broadcast: Bool
        package var axis: Int?
    }

    package let op: Op
    package let legacyBroadcast: LegacyBroadcast?

    package static let supportedTypes: [DataType] = [.float, .double, .float16, .int32, .int64, .int8, .uint8, .int16, .uint16, .uint32, .uint64]

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 2, let a = inputs[0], let b = inputs[1] else {
            throw OnyxError.invalidModel("\(op.rawValue) takes two inputs, got \(inputs.compactMap { $0 }.count)")
        }
        guard a.dataType == b.dataType else {
            throw OnyxError.unsupportedDataType(
                "\(op.rawValue): inputs are \(a.dataType) and \(b.dataType); they must have the same type")
        }
        guard Self.supportedTypes.contains(a.dataType) else {
            throw OnyxError.unsupportedDataType(
                "\(op.rawValue) does not support \(a.dataType); supported: \(Self.supportedTypes.map(\.onnxName).joined(separator: ", "))")
        }
        let shapeB = try broadcastShapeOfB(a.shape, b.shape)
        return [TensorDescriptor(a.dataType, try Broadcasting.shape(a.shape, shapeB, op: op.rawValue))]
    }

    /// B's shape as it broadcasts: B itself from opset 7; before that, B padded with trailing
    /// 1s to line up with A at `axis`, and A's shape must be the result.
    private func broadcastShapeOfB(_ a: [Int], _ b: [Int]) throws -> [Int] {
        guard let legacy = legacyBroadcast else { return b }
        let name = "\(op.rawValue) (opset < 7)"
        guard legacy.broadcast else {
            guard a == b else {
                throw OnyxError.shapeMismatch("\(name): shapes \(a) and \(b) differ and broadcast = 0")
            }
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
        guard shape.count <= a.count, try Broadcasting.shape(a, shape, op: name) == a else {
            throw OnyxError.shapeMismatch("\(name): B of shape \(b) does not broadcast to A of shape \(a)")
        }
        return shape
    }

    /// The output has input 0's bytes whenever the planner finds equal sizes, and then input
    /// 0 is read element by element at the same index it is written.
    package var aliasing: KernelAliasing { .inPlace(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, b = context.input(1)!, out = context.output(0)
        let pool = context.pool
        let shapeB = legacyBroadcast == nil ? b.shape : try broadcastShapeOfB(a.shape, b.shape)
        try BinaryBroadcastPlan.withPlan(a.shape, shapeB, output: out.shape) { plan in
            let arithmetic = Arithmetic(op: op, plan: plan, a: a, b: b, out: out, pool: pool)
            try a.dataType.visitNumeric(arithmetic, operation: op.rawValue)
        }
    }

    /// The loop of `op` for each element type.
    private struct Arithmetic: NumericElementVisitor {
        let op: Op
        let plan: BinaryBroadcastPlan
        let a: TensorView, b: TensorView, out: TensorView
        let pool: ComputePool

        func visit<T: FloatingElement>(_: T.Type) {
            let pa = UnsafePointer(a.pointer(as: T.self)), pb = UnsafePointer(b.pointer(as: T.self))
            let po = out.pointer(as: T.self)
            switch op {
            case .add: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool, FloatingAdd<T>())
            case .sub: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool, FloatingSubtract<T>())
            case .mul: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool, FloatingMultiply<T>())
            case .div: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool, FloatingDivide<T>())
            }
        }

        func visit<T: IntegerElement>(_: T.Type) throws {
            let pa = UnsafePointer(a.pointer(as: T.self)), pb = UnsafePointer(b.pointer(as: T.self))
            let po = out.pointer(as: T.self)
            switch op {
            case .add: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool, WrappingAdd<T>())
            case .sub: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool, WrappingSubtract<T>())
            case .mul: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool, WrappingMultiply<T>())
            case .div:
                // Checked before any output is written: the output may be input A's buffer.
                if plan.elementCount > 0, UnsafeBufferPointer(start: pb, count: b.elementCount).contains(0) {
                    throw OnyxError.invalidInput("Div: integer division by zero")
                }
                ElementwiseLoops.binary(plan, pa, pb, po, pool: pool, TruncatingDivide<T>())
            }
        }
    }
}

/// Relu: `max(0, x)`.
package struct ReluKernel: Kernel {
    package let isa: KernelISA

    package static let supportedTypes: [DataType] = [.float, .double, .float16, .int8, .int16, .int32, .int64]

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else {
            throw OnyxError.invalidModel("Relu takes one input, got \(inputs.compactMap { $0 }.count)")
        }
        guard Self.supportedTypes.contains(x.dataType) else {
            throw OnyxError.unsupportedDataType(
                "Relu does not support \(x.dataType); supported: \(Self.supportedTypes.map(\.onnxName).joined(separator: ", "))")
        }
        return [x.descriptor]
    }

    package var aliasing: KernelAliasing { .inPlace(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let n = x.elementCount, pool = context.pool
        if x.dataType == .float {
            ActivationKernels.clip(UnsafePointer(x.pointer(as: Float.self)), y.pointer(as: Float.self), count: n,
                                   min: 0, max: .infinity, pool: pool, isa: isa)
        } else {
            try x.dataType.visitNumeric(Rectifier(x: x, y: y, pool: pool), operation: "Relu")
        }
    }

    /// The generic loop, for every type but float (`supportedTypes` leaves out the unsigned ones).
    private struct Rectifier: NumericElementVisitor {
        let x: TensorView, y: TensorView
        let pool: ComputePool

        func visit<T: Comparable & ExpressibleByIntegerLiteral>(_: T.Type) {
            ElementwiseLoops.unary(UnsafePointer(x.pointer(as: T.self)), y.pointer(as: T.self), count: x.elementCount, pool: pool,
                                   Rectify<T>())
        }
    }
}

/// Clip: `min(max(x, low), high)`. Before opset 11 the bounds are float attributes; from
/// opset 11 they are optional scalar inputs of the input's type, read in each run.
///
/// When `low > high` every element becomes `high`, as the specification asks (the bounds are
/// normalised so every micro-kernel variant agrees).
package struct ClipKernel: Kernel {
    /// Opset < 11: the bounds are `attributeMin`/`attributeMax` and the op takes floating-point input only.
    package let boundsAreAttributes: Bool
    package let attributeMin: Float?
    package let attributeMax: Float?
    package let isa: KernelISA

    package static let supportedTypes: [DataType] = [.float, .double, .int8, .uint8, .int16, .uint16, .int32, .uint32, .int64, .uint64]

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard (1...(boundsAreAttributes ? 1 : 3)).contains(inputs.count), let x = inputs[0] else {
            throw OnyxError.invalidModel(
                boundsAreAttributes ? "Clip (opset < 11) takes one input" : "Clip takes an input and optional min and max")
        }
        guard !boundsAreAttributes || x.dataType == .float || x.dataType == .double else {
            throw OnyxError.unsupportedDataType("Clip (opset < 11) supports float and double, got \(x.dataType)")
        }
        guard Self.supportedTypes.contains(x.dataType) else {
            throw OnyxError.unsupportedDataType(
                "Clip does not support \(x.dataType); supported: \(Self.supportedTypes.map(\.onnxName).joined(separator: ", "))")
        }
        for index in 1..<inputs.count {
            guard let bound = inputs[index] else { continue }
            guard bound.descriptor.elementCount == 1, bound.shape.count <= 1, bound.dataType == x.dataType else {
                throw OnyxError.shapeMismatch(
                    "Clip: \(index == 1 ? "min" : "max") must be a scalar of \(x.dataType), got \(bound.descriptor)")
            }
        }
        return [x.descriptor]
    }

    package var aliasing: KernelAliasing { .inPlace(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let n = x.elementCount, pool = context.pool
        func bound<T>(_ index: Int, _: T.Type) -> T? {
            context.input(index).map { $0.pointer(as: T.self).pointee }
        }
        switch x.dataType {
        case .float:
            let high = bound(2, Float.self) ?? attributeMax ?? .infinity
            let low = Swift.min(bound(1, Float.self) ?? attributeMin ?? -.infinity, high)
            ActivationKernels.clip(UnsafePointer(x.pointer(as: Float.self)), y.pointer(as: Float.self), count: n,
                                   min: low, max: high, pool: pool, isa: isa)
        case .double:
            let high = bound(2, Double.self) ?? attributeMax.map(Double.init) ?? .infinity
            let low = Swift.min(bound(1, Double.self) ?? attributeMin.map(Double.init) ?? -.infinity, high)
            ElementwiseLoops.unary(UnsafePointer(x.pointer(as: Double.self)), y.pointer(as: Double.self), count: n, pool: pool,
                                   Bound(low: low, high: high))
        default:
            let clip = IntegerClip(x: x, low: context.input(1), high: context.input(2), y: y, pool: pool)
            try x.dataType.visitInteger(clip, operation: "Clip")
        }
    }

    /// Integers: the bounds default to the type's range.
    private struct IntegerClip: IntegerElementVisitor {
        let x: TensorView, low: TensorView?, high: TensorView?, y: TensorView
        let pool: ComputePool

        func visit<T: IntegerElement>(_: T.Type) {
            let high = self.high?.pointer(as: T.self).pointee ?? .max
            let low = Swift.min(self.low?.pointer(as: T.self).pointee ?? .min, high)
            ElementwiseLoops.unary(UnsafePointer(x.pointer(as: T.self)), y.pointer(as: T.self), count: x.elementCount,
                                   pool: pool, Bound(low: low, high: high))
        }
    }
}

// MARK: - Element operations

package struct FloatingAdd<T: BinaryFloatingPoint>: BinaryElementOperation {
    @inline(__always) package func callAsFunction(_ a: T, _ b: T) -> T { a + b }
}
private struct FloatingSubtract<T: BinaryFloatingPoint>: BinaryElementOperation {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a - b }
}
package struct FloatingMultiply<T: BinaryFloatingPoint>: BinaryElementOperation {
    @inline(__always) package func callAsFunction(_ a: T, _ b: T) -> T { a * b }
}
private struct FloatingDivide<T: BinaryFloatingPoint>: BinaryElementOperation {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a / b }
}
private struct WrappingAdd<T: FixedWidthInteger>: BinaryElementOperation {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a &+ b }
}
private struct WrappingSubtract<T: FixedWidthInteger>: BinaryElementOperation {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a &- b }
}
private struct WrappingMultiply<T: FixedWidthInteger>: BinaryElementOperation {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a &* b }
}
/// Division toward zero; the divisor is checked for 0 beforehand.
private struct TruncatingDivide<T: FixedWidthInteger>: BinaryElementOperation {
    // `min / -1` overflows; it wraps to `min` as in two's-complement hardware.
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.isSigned && b == -1 ? 0 &- a : a / b }
}
private struct Rectify<T: Comparable & ExpressibleByIntegerLiteral>: UnaryElementOperation {
    @inline(__always) func callAsFunction(_ x: T) -> T { x > 0 ? x : 0 }
}
/// `min(max(x, low), high)` with `low ≤ high`.
private struct Bound<T: Comparable>: UnaryElementOperation {
    let low: T, high: T
    @inline(__always) func callAsFunction(_ x: T) -> T {
        let v = x < low ? low : x
        return v > high ? high : v
    }
}

extension PlannedInput {
    package var elementCount: Int { descriptor.elementCount }
}
