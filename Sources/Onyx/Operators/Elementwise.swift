extension OperatorRegistry {
    static let elementwiseOperators: [OperatorRegistration] = [
        OperatorRegistration("Add") { _ in BinaryArithmeticKernel(op: .add) },
        OperatorRegistration("Sub") { _ in BinaryArithmeticKernel(op: .sub) },
        OperatorRegistration("Mul") { _ in BinaryArithmeticKernel(op: .mul) },
        OperatorRegistration("Div") { _ in BinaryArithmeticKernel(op: .div) },
        OperatorRegistration("Relu") { _ in ReluKernel() },
        OperatorRegistration("Clip", versions: 1...10) { context in
            ClipKernel(
                attributeMin: try context.float("min", default: -Float.greatestFiniteMagnitude),
                attributeMax: try context.float("max", default: Float.greatestFiniteMagnitude))
        },
        OperatorRegistration("Clip", versions: 11...Int.max) { _ in ClipKernel(attributeMin: nil, attributeMax: nil) },
    ]
}

/// Add, Sub, Mul, Div with multidirectional broadcasting (opset 7+; opset 1–6 `broadcast`/`axis`
/// attributes are honoured only in their common trailing-axes form).
struct BinaryArithmeticKernel: Kernel {
    enum Op: String { case add = "Add", sub = "Sub", mul = "Mul", div = "Div" }
    let op: Op

    static let types: Set<DataType> = [.float, .double, .int32, .int64, .int8, .uint8, .int16, .uint16, .uint32, .uint64]

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 2, let a = inputs[0], let b = inputs[1] else {
            throw OnyxError.invalidModel("\(op.rawValue) takes two inputs")
        }
        guard a.dataType == b.dataType else {
            throw OnyxError.unsupportedDataType("\(op.rawValue): inputs are \(a.dataType) and \(b.dataType); they must match")
        }
        guard Self.types.contains(a.dataType) else {
            throw OnyxError.unsupportedDataType("\(op.rawValue) does not support \(a.dataType)")
        }
        return [TensorDescriptor(a.dataType, try Broadcasting.shape(a.shape, b.shape, op: op.rawValue))]
    }

    var aliasing: KernelAliasing { .inPlace(input: 0) }

    func run(_ context: borrowing KernelContext) throws {
        let a = context.input(0)!, b = context.input(1)!, out = context.output(0)
        let plan = BinaryBroadcastPlan(a.shape, b.shape, outputShape: out.shape)
        let pool = context.pool
        switch a.dataType {
        case .float: compute(Float.self, plan, a, b, out, pool)
        case .double: compute(Double.self, plan, a, b, out, pool)
        case .int32: try computeInteger(Int32.self, plan, a, b, out, pool)
        case .int64: try computeInteger(Int64.self, plan, a, b, out, pool)
        case .int8: try computeInteger(Int8.self, plan, a, b, out, pool)
        case .uint8: try computeInteger(UInt8.self, plan, a, b, out, pool)
        case .int16: try computeInteger(Int16.self, plan, a, b, out, pool)
        case .uint16: try computeInteger(UInt16.self, plan, a, b, out, pool)
        case .uint32: try computeInteger(UInt32.self, plan, a, b, out, pool)
        case .uint64: try computeInteger(UInt64.self, plan, a, b, out, pool)
        default: throw OnyxError.unsupportedDataType("\(op.rawValue) does not support \(a.dataType)")
        }
    }

    private func compute<T: FloatingPoint>(
        _: T.Type, _ plan: BinaryBroadcastPlan, _ a: TensorView, _ b: TensorView, _ out: TensorView, _ pool: ComputePool
    ) {
        let pa = UnsafePointer(a.pointer(as: T.self)), pb = UnsafePointer(b.pointer(as: T.self))
        let po = out.pointer(as: T.self)
        switch op {
        case .add: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool) { $0 + $1 }
        case .sub: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool) { $0 - $1 }
        case .mul: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool) { $0 * $1 }
        case .div: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool) { $0 / $1 }
        }
    }

    /// Integer arithmetic wraps like C; division by zero is an error rather than a trap.
    private func computeInteger<T: FixedWidthInteger>(
        _: T.Type, _ plan: BinaryBroadcastPlan, _ a: TensorView, _ b: TensorView, _ out: TensorView, _ pool: ComputePool
    ) throws {
        let pa = UnsafePointer(a.pointer(as: T.self)), pb = UnsafePointer(b.pointer(as: T.self))
        let po = out.pointer(as: T.self)
        switch op {
        case .add: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool) { $0 &+ $1 }
        case .sub: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool) { $0 &- $1 }
        case .mul: ElementwiseLoops.binary(plan, pa, pb, po, pool: pool) { $0 &* $1 }
        case .div:
            let divisors = UnsafeBufferPointer(start: pb, count: b.elementCount)
            guard !divisors.contains(0) else { throw OnyxError(.invalidInput, "Div: integer division by zero") }
            ElementwiseLoops.binary(plan, pa, pb, po, pool: pool) { x, y in
                // Truncating division; the one overflowing case (min / -1) wraps.
                T.isSigned && y == -1 ? 0 &- x : x / y
            }
        }
    }
}

/// Relu: `max(0, x)`.
struct ReluKernel: Kernel {
    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Relu takes one input") }
        guard [.float, .double, .int32, .int64, .int8, .int16, .float16].contains(x.dataType) else {
            throw OnyxError.unsupportedDataType("Relu does not support \(x.dataType)")
        }
        return [x.descriptor]
    }

    var aliasing: KernelAliasing { .inPlace(input: 0) }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let n = x.elementCount, pool = context.pool
        switch x.dataType {
        case .float:
            ActivationKernels.clip(UnsafePointer(x.pointer(as: Float.self)), y.pointer(as: Float.self), count: n,
                                   min: 0, max: .infinity, pool: pool)
        case .double: ElementwiseLoops.unary(x.pointer(as: Double.self), y.pointer(as: Double.self), count: n, pool: pool) { Swift.max(0, $0) }
        case .int32: ElementwiseLoops.unary(x.pointer(as: Int32.self), y.pointer(as: Int32.self), count: n, pool: pool) { Swift.max(0, $0) }
        case .int64: ElementwiseLoops.unary(x.pointer(as: Int64.self), y.pointer(as: Int64.self), count: n, pool: pool) { Swift.max(0, $0) }
        case .int8: ElementwiseLoops.unary(x.pointer(as: Int8.self), y.pointer(as: Int8.self), count: n, pool: pool) { Swift.max(0, $0) }
        case .int16: ElementwiseLoops.unary(x.pointer(as: Int16.self), y.pointer(as: Int16.self), count: n, pool: pool) { Swift.max(0, $0) }
        case .float16:
            ElementwiseLoops.unary(x.pointer(as: Float16.self), y.pointer(as: Float16.self), count: n, pool: pool) { $0 > 0 ? $0 : 0 }
        default: throw OnyxError.unsupportedDataType("Relu does not support \(x.dataType)")
        }
    }
}

/// Clip: `min(max(x, low), high)`; bounds are attributes before opset 11 and optional inputs after.
struct ClipKernel: Kernel {
    let attributeMin: Float?
    let attributeMax: Float?

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Clip takes an input") }
        guard [.float, .double, .int32, .int64].contains(x.dataType) else {
            throw OnyxError.unsupportedDataType("Clip does not support \(x.dataType)")
        }
        for index in 1..<min(inputs.count, 3) {
            guard let bound = inputs[index] else { continue }
            guard bound.elementCount == 1, bound.dataType == x.dataType else {
                throw OnyxError.shapeMismatch(
                    "Clip: \(index == 1 ? "min" : "max") must be a scalar of \(x.dataType), got \(bound.descriptor)")
            }
        }
        return [x.descriptor]
    }

    var aliasing: KernelAliasing { .inPlace(input: 0) }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let n = x.elementCount, pool = context.pool
        func bound<T>(_ index: Int, _ type: T.Type, _ fallback: T) -> T {
            context.input(index).map { $0.pointer(as: T.self).pointee } ?? fallback
        }
        switch x.dataType {
        case .float:
            let low = bound(1, Float.self, attributeMin ?? -.infinity)
            let high = bound(2, Float.self, attributeMax ?? .infinity)
            ActivationKernels.clip(UnsafePointer(x.pointer(as: Float.self)), y.pointer(as: Float.self), count: n,
                                   min: low, max: high, pool: pool)
        case .double:
            let low = bound(1, Double.self, -.infinity), high = bound(2, Double.self, .infinity)
            ElementwiseLoops.unary(x.pointer(as: Double.self), y.pointer(as: Double.self), count: n, pool: pool) { Swift.min(Swift.max($0, low), high) }
        case .int32:
            let low = bound(1, Int32.self, .min), high = bound(2, Int32.self, .max)
            ElementwiseLoops.unary(x.pointer(as: Int32.self), y.pointer(as: Int32.self), count: n, pool: pool) { Swift.min(Swift.max($0, low), high) }
        case .int64:
            let low = bound(1, Int64.self, .min), high = bound(2, Int64.self, .max)
            ElementwiseLoops.unary(x.pointer(as: Int64.self), y.pointer(as: Int64.self), count: n, pool: pool) { Swift.min(Swift.max($0, low), high) }
        default:
            throw OnyxError.unsupportedDataType("Clip does not support \(x.dataType)")
        }
    }
}

extension PlannedInput {
    var elementCount: Int { descriptor.elementCount }
}
