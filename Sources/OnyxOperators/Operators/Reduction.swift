import OnyxCore
import OnyxKernels

extension OperatorRegistry {
    /// ReduceSum, ReduceMean, ReduceProd, ReduceMax, ReduceMin, ReduceL1, ReduceL2,
    /// ReduceLogSum, ReduceLogSumExp and ReduceSumSquare: the axes are an attribute until the
    /// op's opset 18 (ReduceSum: 13), then an optional input with `noop_with_empty_axes`.
    package static let reductionOperators: [OperatorRegistration] = ReduceKernel.Operation.allCases.flatMap { operation in
        let inputFrom = operation == .sum ? 13 : 18
        return [
            OperatorRegistration(operation.rawValue, versions: 1...(inputFrom - 1)) { context in
                ReduceKernel(
                    operation: operation, axes: .attribute(try context.ints("axes")),
                    keepDims: try context.int("keepdims", default: 1) != 0, noopWithEmptyAxes: false)
            },
            OperatorRegistration(operation.rawValue, versions: inputFrom...Int.max) { context in
                ReduceKernel(
                    operation: operation, axes: .input,
                    keepDims: try context.int("keepdims", default: 1) != 0,
                    noopWithEmptyAxes: try context.int("noop_with_empty_axes", default: 0) != 0)
            },
        ]
    }
}

/// The Reduce* family over the given axes (negative ones count from the end), sharing one
/// reduction engine (``ReductionLoops/reduce(_:_:shape:reduced:pool:_:)``).
///
/// No axes (or an empty list) reduce every axis, unless `noop_with_empty_axes` is set, which
/// reduces none: each output is its element mapped and finished (ReduceSumSquare squares,
/// ReduceL1 takes the absolute value …). From the input form, the axes must be known when the
/// session plans, since the output shape depends on them.
///
/// Over an empty set the result is the operation's identity finished: 0 for sums, 1 for
/// ReduceProd, −∞ for ReduceMax (the type's minimum for integers, false for bool), +∞ for
/// ReduceMin, −∞ for ReduceLogSum and ReduceLogSumExp, NaN for ReduceMean (0 for integers).
/// Float16 accumulates in Float. Integer sums and products wrap; integer means truncate toward
/// zero; the logarithmic results of integer inputs are computed in Double and truncated.
package struct ReduceKernel: Kernel {
    package enum Operation: String, CaseIterable, Sendable {
        case sum = "ReduceSum", mean = "ReduceMean", product = "ReduceProd", max = "ReduceMax", min = "ReduceMin"
        case l1 = "ReduceL1", l2 = "ReduceL2", logSum = "ReduceLogSum", logSumExp = "ReduceLogSumExp"
        case sumSquare = "ReduceSumSquare"

        package var supportedTypes: [DataType] {
            let common: [DataType] = [.float, .double, .float16, .int32, .int64, .uint32, .uint64]
            return self == .max || self == .min ? common + [.int8, .uint8, .bool] : common
        }
    }

    package enum Axes: Sendable { case attribute([Int]?), input }

    package let operation: Operation
    package let axes: Axes
    package let keepDims: Bool
    package let noopWithEmptyAxes: Bool

    private var name: String { operation.rawValue }

    /// Marks the reduced axes of a rank-`rank` input in `mask`, from the axes `given` (`nil` if none).
    private func markReduced<S: Sequence<Int>>(_ given: S?, rank: Int, into mask: UnsafeMutablePointer<Bool>) throws {
        guard let given, given.contains(where: { _ in true }) else {
            mask.update(repeating: !noopWithEmptyAxes, count: rank)
            return
        }
        mask.update(repeating: false, count: rank)
        for axis in given {
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0 && a < rank else {
                throw OnyxError.invalidAttribute("\(name): axis \(axis) is out of range for an input of rank \(rank)")
            }
            guard !mask[a] else {
                throw OnyxError.invalidAttribute("\(name): axes \(Array(given)) name axis \(a) more than once")
            }
            mask[a] = true
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard (1...2).contains(inputs.count), let x = inputs[0] else {
            throw OnyxError.invalidModel("\(name) takes data and optional axes")
        }
        guard operation.supportedTypes.contains(x.dataType) else {
            throw OnyxError.unsupportedDataType(
                "\(name) does not support \(x.dataType); supported: \(operation.supportedTypes.map(\.onnxName).joined(separator: ", "))")
        }
        let given: [Int]?
        switch axes {
        case .attribute(let values):
            guard inputs.count == 1 else { throw OnyxError.invalidModel("\(name) at this opset takes one input; the axes are an attribute") }
            given = values
        case .input:
            if inputs.count > 1, let axesInput = inputs[1] {
                guard axesInput.shape.count <= 1 else {
                    throw OnyxError.shapeMismatch("\(name): axes must be a 1-D int64 tensor, got \(axesInput.descriptor)")
                }
                given = try constantIntegers(axesInput, op: name, what: "axes")
            } else {
                given = nil
            }
        }
        let rank = x.shape.count
        var mask = [Bool](repeating: false, count: rank)
        try mask.withUnsafeMutableBufferPointer { try markReduced(given, rank: rank, into: $0.baseAddress!) }
        var shape: [Int] = []
        for (axis, extent) in x.shape.enumerated() {
            if !mask[axis] { shape.append(extent) } else if keepDims { shape.append(1) }
        }
        return [TensorDescriptor(x.dataType, shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let rank = x.rank
        let base = UnsafeMutablePointer<Bool>.allocate(capacity: max(rank, 1))
        defer { base.deallocate() }
        switch axes {
        case .attribute(let values):
            try markReduced(values, rank: rank, into: base)
        case .input:
            if let axesInput = context.input(1) {
                let n = axesInput.elementCount
                if axesInput.dataType == .int32 {
                    let p = axesInput.pointer(as: Int32.self)
                    try markReduced((0..<n).lazy.map { Int(p[$0]) }, rank: rank, into: base)
                } else {
                    let p = axesInput.pointer(as: Int64.self)
                    try markReduced((0..<n).lazy.map { Int(p[$0]) }, rank: rank, into: base)
                }
            } else {
                try markReduced([Int]?.none, rank: rank, into: base)
            }
        }
        var count = 1
        for axis in 0..<rank where base[axis] { count *= x.shape[axis] }
        let shape = ReductionShape(shape: x.shape, reduced: UnsafePointer(base), count: count, pool: context.pool)
        try x.dataType.visitElement(Reduction(kernel: self, x: x, y: y, shape: shape))
    }

    /// The loops for each element type (the supported ones are checked in `outputDescriptors`);
    /// bool is reduced as bytes.
    private struct Reduction: ElementVisitor {
        let kernel: ReduceKernel
        let x: TensorView, y: TensorView
        let shape: ReductionShape

        func visit<T: FloatingElement>(_: T.Type) { kernel.floating(T.self, x, y, shape) }
        func visit<T: IntegerElement>(_: T.Type) { kernel.integer(T.self, x, y, shape) }
        func visitBool() { kernel.integer(UInt8.self, x, y, shape, bool: true) }
    }

    /// The reduction's layout, passed on to the loops.
    private struct ReductionShape {
        let shape: [Int]
        let reduced: UnsafePointer<Bool>
        /// Elements folded into each output.
        let count: Int
        let pool: ComputePool
    }

    private func floating<E: WideningFloat>(_: E.Type, _ x: TensorView, _ y: TensorView, _ s: ReductionShape) {
        let input = UnsafePointer(x.pointer(as: E.self)), output = y.pointer(as: E.self)
        func reduce<Op: ReductionOperation>(_ op: Op) where Op.Element == E, Op.Output == E {
            ReductionLoops.reduce(input, output, shape: s.shape, reduced: s.reduced, pool: s.pool, op)
        }
        switch operation {
        case .sum: reduce(FloatSum<E>(scale: 1))
        case .mean: reduce(FloatSum<E>(scale: 1 / E.Wide(s.count)))
        case .product: reduce(FloatProduct<E>())
        case .max: reduce(FloatMax<E>())
        case .min: reduce(FloatMin<E>())
        case .l1: reduce(FloatAbsoluteSum<E>())
        case .l2: reduce(FloatSquareSum<E>(root: true))
        case .sumSquare: reduce(FloatSquareSum<E>(root: false))
        case .logSum: reduce(FloatLogSum<E>())
        case .logSumExp:
            // Two passes: each output's largest finite element, then log Σ exp(x − max) + max.
            let outputs = y.elementCount
            let c = UnsafeMutablePointer<E.Wide>.allocate(capacity: max(outputs, 1))
            defer { c.deallocate() }
            ReductionLoops.reduce(input, c, shape: s.shape, reduced: s.reduced, pool: s.pool, FloatFiniteMax<E>())
            reduce(FloatLogSumExp<E>(centers: UnsafePointer(c)))
        }
    }

    private func integer<T: FixedWidthInteger & CastInteger & CastSource>(
        _: T.Type, _ x: TensorView, _ y: TensorView, _ s: ReductionShape, bool: Bool = false
    ) {
        let input = UnsafePointer(x.pointer(as: T.self)), output = y.pointer(as: T.self)
        func reduce<Op: ReductionOperation>(_ op: Op) where Op.Element == T, Op.Output == T {
            ReductionLoops.reduce(input, output, shape: s.shape, reduced: s.reduced, pool: s.pool, op)
        }
        switch operation {
        case .sum: reduce(IntegerSum<T>(map: .identity, divisor: 1))
        case .mean: reduce(IntegerSum<T>(map: .identity, divisor: T(clamping: s.count)))
        case .l1: reduce(IntegerSum<T>(map: .magnitude, divisor: 1))
        case .sumSquare: reduce(IntegerSum<T>(map: .square, divisor: 1))
        case .product: reduce(IntegerProduct<T>())
        case .max: reduce(IntegerExtreme<T>(largest: true, identity: bool ? 0 : T.min))
        case .min: reduce(IntegerExtreme<T>(largest: false, identity: bool ? 1 : T.max))
        case .l2: reduce(IntegerInDouble<T>(kind: .l2, centers: nil))
        case .logSum: reduce(IntegerInDouble<T>(kind: .logSum, centers: nil))
        case .logSumExp:
            let outputs = y.elementCount
            let c = UnsafeMutablePointer<Double>.allocate(capacity: max(outputs, 1))
            defer { c.deallocate() }
            ReductionLoops.reduce(input, c, shape: s.shape, reduced: s.reduced, pool: s.pool, IntegerCenter<T>())
            reduce(IntegerInDouble<T>(kind: .logSumExp, centers: UnsafePointer(c)))
        }
    }
}

// MARK: - Floating-point operations (accumulating in E.Wide)

/// `Σ x · scale` (ReduceSum with scale 1, ReduceMean with 1/count).
private struct FloatSum<E: WideningFloat>: ReductionOperation {
    let scale: E.Wide
    var identity: E.Wide { 0 }
    @inline(__always) func load(_ x: E, at _: Int) -> E.Wide { x.widened }
    @inline(__always) func combine(_ a: E.Wide, _ b: E.Wide) -> E.Wide { a + b }
    @inline(__always) func finish(_ total: E.Wide, at _: Int) -> E { E(narrowing: total * scale) }
}

private struct FloatProduct<E: WideningFloat>: ReductionOperation {
    var identity: E.Wide { 1 }
    @inline(__always) func load(_ x: E, at _: Int) -> E.Wide { x.widened }
    @inline(__always) func combine(_ a: E.Wide, _ b: E.Wide) -> E.Wide { a * b }
    @inline(__always) func finish(_ total: E.Wide, at _: Int) -> E { E(narrowing: total) }
}

/// The largest element; NaN wins, as NumPy's `maximum` propagates it.
private struct FloatMax<E: WideningFloat>: ReductionOperation {
    var identity: E.Wide { -.infinity }
    @inline(__always) func load(_ x: E, at _: Int) -> E.Wide { x.widened }
    @inline(__always) func combine(_ a: E.Wide, _ b: E.Wide) -> E.Wide { a.isNaN || a >= b ? a : b }
    @inline(__always) func finish(_ total: E.Wide, at _: Int) -> E { E(narrowing: total) }
}

private struct FloatMin<E: WideningFloat>: ReductionOperation {
    var identity: E.Wide { .infinity }
    @inline(__always) func load(_ x: E, at _: Int) -> E.Wide { x.widened }
    @inline(__always) func combine(_ a: E.Wide, _ b: E.Wide) -> E.Wide { a.isNaN || a <= b ? a : b }
    @inline(__always) func finish(_ total: E.Wide, at _: Int) -> E { E(narrowing: total) }
}

private struct FloatAbsoluteSum<E: WideningFloat>: ReductionOperation {
    var identity: E.Wide { 0 }
    @inline(__always) func load(_ x: E, at _: Int) -> E.Wide { x.widened.magnitude }
    @inline(__always) func combine(_ a: E.Wide, _ b: E.Wide) -> E.Wide { a + b }
    @inline(__always) func finish(_ total: E.Wide, at _: Int) -> E { E(narrowing: total) }
}

/// `Σ x²`, or its square root (ReduceL2).
private struct FloatSquareSum<E: WideningFloat>: ReductionOperation {
    let root: Bool
    var identity: E.Wide { 0 }
    @inline(__always) func load(_ x: E, at _: Int) -> E.Wide { x.widened * x.widened }
    @inline(__always) func combine(_ a: E.Wide, _ b: E.Wide) -> E.Wide { a + b }
    @inline(__always) func finish(_ total: E.Wide, at _: Int) -> E { E(narrowing: root ? total.squareRoot() : total) }
}

private struct FloatLogSum<E: WideningFloat>: ReductionOperation {
    var identity: E.Wide { 0 }
    @inline(__always) func load(_ x: E, at _: Int) -> E.Wide { x.widened }
    @inline(__always) func combine(_ a: E.Wide, _ b: E.Wide) -> E.Wide { a + b }
    @inline(__always) func finish(_ total: E.Wide, at _: Int) -> E { E(narrowing: E.Wide.logarithm(total)) }
}

/// Each output's largest finite element (0 if it has none): ReduceLogSumExp's shift.
private struct FloatFiniteMax<E: WideningFloat>: ReductionOperation {
    var identity: E.Wide { -.infinity }
    @inline(__always) func load(_ x: E, at _: Int) -> E.Wide { x.isFinite ? x.widened : -.infinity }
    @inline(__always) func combine(_ a: E.Wide, _ b: E.Wide) -> E.Wide { a >= b ? a : b }
    @inline(__always) func finish(_ total: E.Wide, at _: Int) -> E.Wide { total == -.infinity ? 0 : total }
}

/// `log Σ exp(x − c) + c` with `c` the output's ``FloatFiniteMax``.
private struct FloatLogSumExp<E: WideningFloat>: ReductionOperation {
    let centers: UnsafePointer<E.Wide>
    var identity: E.Wide { 0 }
    @inline(__always) func load(_ x: E, at output: Int) -> E.Wide { E.Wide.exponential(x.widened - centers[output]) }
    @inline(__always) func combine(_ a: E.Wide, _ b: E.Wide) -> E.Wide { a + b }
    @inline(__always) func finish(_ total: E.Wide, at output: Int) -> E {
        E(narrowing: E.Wide.logarithm(total) + centers[output])
    }
}

// MARK: - Integer operations

/// `Σ map(x)`, wrapping, divided (toward zero) by `divisor` for ReduceMean.
private struct IntegerSum<T: FixedWidthInteger>: ReductionOperation {
    enum Map { case identity, magnitude, square }
    let map: Map
    let divisor: T
    var identity: T { 0 }
    @inline(__always) func load(_ x: T, at _: Int) -> T {
        switch map {
        case .identity: x
        case .magnitude: x < 0 ? 0 &- x : x
        case .square: x &* x
        }
    }
    @inline(__always) func combine(_ a: T, _ b: T) -> T { a &+ b }
    @inline(__always) func finish(_ total: T, at _: Int) -> T {
        // A zero divisor is the mean of an empty set; `min / -1` cannot occur (divisor > 0).
        divisor == 1 ? total : divisor == 0 ? 0 : total / divisor
    }
}

private struct IntegerProduct<T: FixedWidthInteger>: ReductionOperation {
    var identity: T { 1 }
    @inline(__always) func load(_ x: T, at _: Int) -> T { x }
    @inline(__always) func combine(_ a: T, _ b: T) -> T { a &* b }
    @inline(__always) func finish(_ total: T, at _: Int) -> T { total }
}

/// ReduceMax (`largest`) or ReduceMin; bool is a byte of 0 or 1, with identities false and true.
private struct IntegerExtreme<T: FixedWidthInteger>: ReductionOperation {
    let largest: Bool
    let identity: T
    @inline(__always) func load(_ x: T, at _: Int) -> T { x }
    @inline(__always) func combine(_ a: T, _ b: T) -> T { largest ? Swift.max(a, b) : Swift.min(a, b) }
    @inline(__always) func finish(_ total: T, at _: Int) -> T { total }
}

/// Each output's largest element, as a Double: ReduceLogSumExp's shift for integers.
private struct IntegerCenter<T: FixedWidthInteger & CastSource>: ReductionOperation {
    var identity: T { T.min }
    @inline(__always) func load(_ x: T, at _: Int) -> T { x }
    @inline(__always) func combine(_ a: T, _ b: T) -> T { Swift.max(a, b) }
    @inline(__always) func finish(_ total: T, at _: Int) -> Double { total.castDouble }
}

/// ReduceL2, ReduceLogSum and ReduceLogSumExp of integers, computed in Double and truncated.
private struct IntegerInDouble<T: FixedWidthInteger & CastInteger & CastSource>: ReductionOperation {
    enum Kind { case l2, logSum, logSumExp }
    let kind: Kind
    let centers: UnsafePointer<Double>?
    var identity: Double { 0 }
    @inline(__always) func load(_ x: T, at output: Int) -> Double {
        switch kind {
        case .l2: x.castDouble * x.castDouble
        case .logSum: x.castDouble
        case .logSumExp: Double.exponential(x.castDouble - (centers?[output] ?? 0))
        }
    }
    @inline(__always) func combine(_ a: Double, _ b: Double) -> Double { a + b }
    @inline(__always) func finish(_ total: Double, at output: Int) -> T {
        switch kind {
        case .l2: T.saturating(total.squareRoot())
        case .logSum: T.saturating(Double.logarithm(total))
        case .logSumExp: T.saturating(Double.logarithm(total) + (centers?[output] ?? 0))
        }
    }
}
