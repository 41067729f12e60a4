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

/// Unary math (Sqrt, Exp, Erf, the trigonometric family …), activations with attributes
/// (LeakyRelu, Gelu, HardSwish …), IsNaN/IsInf, Not and PRelu.
///
/// The ops' semantics did not change across opsets beyond the types they accept (and legacy
/// `consumed_inputs` attributes, ignored), so each op has one registration from its first opset.
extension OperatorRegistry {
    package static let mathOperators: [OperatorRegistration] = unaryMathOperators + activationOperators + [
        OperatorRegistration("PRelu", versions: 1...6) { _ in PReluKernel(acceptsChannelSlope: true) },
        OperatorRegistration("PRelu", versions: 7...Int.max) { _ in PReluKernel(acceptsChannelSlope: false) },
    ]

    private typealias Function = ElementwiseFunctionKernel.Function

    private static let unaryMathOperators: [OperatorRegistration] = [
        ("Sqrt", 1, Function.sqrt), ("Exp", 1, .exp), ("Log", 1, .log), ("Abs", 1, .abs), ("Neg", 1, .neg),
        ("Reciprocal", 1, .reciprocal), ("Floor", 1, .floor), ("Ceil", 1, .ceil), ("Round", 11, .round),
        ("Sign", 9, .sign), ("Erf", 9, .erf), ("Tanh", 1, .tanh), ("Sigmoid", 1, .sigmoid),
        ("Sin", 7, .sin), ("Cos", 7, .cos), ("Tan", 7, .tan), ("Asin", 7, .asin), ("Acos", 7, .acos), ("Atan", 7, .atan),
        ("Sinh", 9, .sinh), ("Cosh", 9, .cosh), ("Asinh", 9, .asinh), ("Acosh", 9, .acosh), ("Atanh", 9, .atanh),
        ("IsNaN", 9, .isNaN), ("Not", 1, .not), ("HardSwish", 14, .hardSwish), ("Softplus", 1, .softplus),
        ("Softsign", 1, .softsign), ("Mish", 18, .mish),
    ].map { name, since, function in
        OperatorRegistration(name, versions: since...Int.max) { context in
            ElementwiseFunctionKernel(op: name, function: function, isa: context.isa)
        }
    }

    private static let activationOperators: [OperatorRegistration] = [
        OperatorRegistration("IsInf", versions: 10...Int.max) { context in
            ElementwiseFunctionKernel(op: "IsInf", function: .isInf(
                detectPositive: try context.int("detect_positive", default: 1) != 0,
                detectNegative: try context.int("detect_negative", default: 1) != 0))
        },
        OperatorRegistration("HardSigmoid") { context in
            ElementwiseFunctionKernel(op: "HardSigmoid", function: .hardSigmoid(
                alpha: try context.float("alpha", default: 0.2), beta: try context.float("beta", default: 0.5)))
        },
        OperatorRegistration("LeakyRelu") { context in
            ElementwiseFunctionKernel(op: "LeakyRelu", function: .leakyRelu(alpha: try context.float("alpha", default: 0.01)))
        },
        OperatorRegistration("Elu") { context in
            ElementwiseFunctionKernel(op: "Elu", function: .elu(alpha: try context.float("alpha", default: 1)))
        },
        OperatorRegistration("Selu") { context in
            ElementwiseFunctionKernel(op: "Selu", function: .selu(
                alpha: try context.float("alpha", default: 1.673_263_192_176_818_847_656_25),
                gamma: try context.float("gamma", default: 1.050_701_022_148_132_324_218_75)))
        },
        OperatorRegistration("Celu", versions: 12...Int.max) { context in
            let alpha = try context.float("alpha", default: 1)
            guard alpha != 0 else { throw context.attributeError("attribute 'alpha' must not be 0") }
            return ElementwiseFunctionKernel(op: "Celu", function: .celu(alpha: alpha))
        },
        OperatorRegistration("Gelu", versions: 20...Int.max) { context in
            let approximate = try context.string("approximate", default: "none")
            guard approximate == "none" || approximate == "tanh" else {
                throw context.attributeError("attribute 'approximate' must be \"none\" or \"tanh\", found \"\(approximate)\"")
            }
            return ElementwiseFunctionKernel(op: "Gelu", function: .gelu(approximateTanh: approximate == "tanh"))
        },
        OperatorRegistration("ThresholdedRelu", versions: 10...Int.max) { context in
            ElementwiseFunctionKernel(op: "ThresholdedRelu", function: .thresholdedRelu(alpha: try context.float("alpha", default: 1)))
        },
        OperatorRegistration("Shrink", versions: 9...Int.max) { context in
            ElementwiseFunctionKernel(op: "Shrink", function: .shrink(
                bias: try context.float("bias", default: 0), lambd: try context.float("lambd", default: 0.5)))
        },
        OperatorRegistration("Swish", versions: 24...Int.max) { context in
            ElementwiseFunctionKernel(op: "Swish", function: .swish(alpha: try context.float("alpha", default: 1)))
        },
    ]
}

/// One elementwise function of one input: output shape = input shape, output type = input
/// type (bool for IsNaN and IsInf).
///
/// float32 runs Exp, Tanh, Sigmoid, Erf, Gelu and Swish through ``FastMath`` in loops the
/// compiler vectorises; float64 calls libm; float16 computes in Float. Integer Erf and Shrink
/// compute in Double and convert back truncating toward zero (as NumPy's `astype`), saturating.
package struct ElementwiseFunctionKernel: Kernel {
    package enum Function {
        case sqrt, exp, log, abs, neg, reciprocal, floor, ceil, round, sign, erf, tanh, sigmoid
        case sin, cos, tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh
        case hardSigmoid(alpha: Float, beta: Float), hardSwish, leakyRelu(alpha: Float), elu(alpha: Float)
        case selu(alpha: Float, gamma: Float), celu(alpha: Float), gelu(approximateTanh: Bool)
        case softplus, softsign, thresholdedRelu(alpha: Float), shrink(bias: Float, lambd: Float)
        case mish, swish(alpha: Float)
        case isNaN, isInf(detectPositive: Bool, detectNegative: Bool), not, bitwiseNot
    }

    package let op: String
    package let function: Function
    /// The C micro-kernels' variant, for the functions that have one (float32 Sigmoid).
    package var isa: KernelISA = .portable

    package init(op: String, function: Function, isa: KernelISA = .portable) {
        self.op = op
        self.function = function
        self.isa = isa
    }

    package static let floatingTypes: [DataType] = [.float, .double, .float16]
    package static let signedTypes: [DataType] = [.int8, .int16, .int32, .int64]
    package static let integerTypes: [DataType] = signedTypes + [.uint8, .uint16, .uint32, .uint64]

    package var supportedTypes: [DataType] {
        switch function {
        case .abs, .sign, .erf, .shrink: Self.floatingTypes + Self.integerTypes
        case .neg: Self.floatingTypes + Self.signedTypes
        case .not: [.bool]
        case .bitwiseNot: Self.integerTypes
        default: Self.floatingTypes
        }
    }

    private var outputIsBool: Bool {
        switch function {
        case .isNaN, .isInf: true
        default: false
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else {
            throw OnyxError.invalidModel("\(op) takes one input, got \(inputs.compactMap { $0 }.count)")
        }
        guard supportedTypes.contains(x.dataType) else {
            throw OnyxError.unsupportedDataType(
                "\(op) does not support \(x.dataType); supported: \(supportedTypes.map(\.onnxName).joined(separator: ", "))")
        }
        return [TensorDescriptor(outputIsBool ? .bool : x.dataType, x.shape)]
    }

    package var aliasing: KernelAliasing { outputIsBool ? .none : .inPlace(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let n = x.elementCount, pool = context.pool
        switch x.dataType {
        case .float:
            if !runFast(UnsafePointer(x.pointer(as: Float.self)), y, count: n, pool: pool) {
                try runFloating(UnsafePointer(x.pointer(as: Float.self)), y, count: n, pool: pool)
            }
        case .double: try runFloating(UnsafePointer(x.pointer(as: Double.self)), y, count: n, pool: pool)
        case .float16: try runHalf(UnsafePointer(x.pointer(as: UInt16.self)), y, count: n, pool: pool)
        case .int8: try runInteger(UnsafePointer(x.pointer(as: Int8.self)), y, count: n, pool: pool)
        case .int16: try runInteger(UnsafePointer(x.pointer(as: Int16.self)), y, count: n, pool: pool)
        case .int32: try runInteger(UnsafePointer(x.pointer(as: Int32.self)), y, count: n, pool: pool)
        case .int64: try runInteger(UnsafePointer(x.pointer(as: Int64.self)), y, count: n, pool: pool)
        case .uint8: try runInteger(UnsafePointer(x.pointer(as: UInt8.self)), y, count: n, pool: pool)
        case .uint16: try runInteger(UnsafePointer(x.pointer(as: UInt16.self)), y, count: n, pool: pool)
        case .uint32: try runInteger(UnsafePointer(x.pointer(as: UInt32.self)), y, count: n, pool: pool)
        case .uint64: try runInteger(UnsafePointer(x.pointer(as: UInt64.self)), y, count: n, pool: pool)
        case .string, .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1,
             .int4, .uint4, .int2, .uint2:
            throw unsupported(x.dataType)
        case .bool:
            guard case .not = function else { throw unsupported(x.dataType) }
            MathLoops.map(UnsafePointer(x.pointer(as: UInt8.self)), y.pointer(as: UInt8.self), count: n, pool: pool) {
                $0 == 0 ? 1 : 0
            }
        }
    }

    private func unsupported(_ type: DataType) -> OnyxError {
        OnyxError.unsupportedDataType("\(op) does not support \(type)")
    }

    /// The float32 functions transformer models lean on, in vectorised loops. Returns false
    /// for every other function.
    private func runFast(_ x: UnsafePointer<Float>, _ y: TensorView, count n: Int, pool: ComputePool) -> Bool {
        let out = y.pointer(as: Float.self)
        switch function {
        case .exp: ElementwiseLoops.unary(x, out, count: n, pool: pool, FastExp())
        case .tanh: ElementwiseLoops.unary(x, out, count: n, pool: pool, FastTanh())
        case .sigmoid:
            let isa = self.isa
            if n >= ElementwiseLoops.parallelThreshold && pool.threadCount > 1 {
                pool.parallelRanges(n, minimumChunk: ElementwiseLoops.parallelThreshold / 2) { range in
                    FusedActivation.sigmoid.apply(x + range.lowerBound, out + range.lowerBound, count: range.count, isa: isa)
                }
            } else {
                FusedActivation.sigmoid.apply(x, out, count: n, isa: isa)
            }
        case .erf: ElementwiseLoops.unary(x, out, count: n, pool: pool, FastErf())
        case .gelu(let approximateTanh):
            if approximateTanh {
                ElementwiseLoops.unary(x, out, count: n, pool: pool, FastGeluTanh())
            } else {
                ElementwiseLoops.unary(x, out, count: n, pool: pool, FastGelu())
            }
        case .swish(let alpha): ElementwiseLoops.unary(x, out, count: n, pool: pool, FastSwish(alpha: alpha))
        default: return false
        }
        return true
    }

    private func runFloating<T: RealFunctions>(
        _ x: UnsafePointer<T>, _ y: TensorView, count n: Int, pool: ComputePool
    ) throws {
        switch function {
        case .isNaN:
            MathLoops.map(x, y.pointer(as: UInt8.self), count: n, pool: pool) { $0.isNaN ? 1 : 0 }
            return
        case .isInf(let positive, let negative):
            MathLoops.map(x, y.pointer(as: UInt8.self), count: n, pool: pool) {
                ($0 == .infinity && positive) || ($0 == -.infinity && negative) ? 1 : 0
            }
            return
        case .not, .bitwiseNot:
            throw unsupported(T.dataType)
        default: break
        }
        let out = y.pointer(as: T.self)
        // Cheap functions get a loop of their own; the rest share one that calls libm anyway.
        switch function {
        case .sqrt: MathLoops.map(x, out, count: n, pool: pool) { $0.squareRoot() }
        case .abs: MathLoops.map(x, out, count: n, pool: pool) { $0.magnitude }
        case .neg: MathLoops.map(x, out, count: n, pool: pool) { -$0 }
        case .reciprocal: MathLoops.map(x, out, count: n, pool: pool) { 1 / $0 }
        case .floor: MathLoops.map(x, out, count: n, pool: pool) { $0.rounded(.down) }
        case .ceil: MathLoops.map(x, out, count: n, pool: pool) { $0.rounded(.up) }
        case .round: MathLoops.map(x, out, count: n, pool: pool) { $0.rounded(.toNearestOrEven) }
        case .leakyRelu(let alpha):
            let a = T(alpha)
            MathLoops.map(x, out, count: n, pool: pool) { $0 < 0 ? $0 * a : $0 }
        case .hardSigmoid(let alpha, let beta):
            let a = T(alpha), b = T(beta)
            MathLoops.map(x, out, count: n, pool: pool) { unitClamp($0 * a + b) }
        case .hardSwish:
            MathLoops.map(x, out, count: n, pool: pool) { $0 * unitClamp($0 * (1 / 6 as T) + 0.5) }
        default:
            let f = function
            MathLoops.map(x, out, count: n, pool: pool) { f.value($0) }
        }
    }

    private func runHalf(_ x: UnsafePointer<UInt16>, _ y: TensorView, count n: Int, pool: ComputePool) throws {
        switch function {
        case .isNaN:
            MathLoops.map(x, y.pointer(as: UInt8.self), count: n, pool: pool) { $0 & 0x7FFF > 0x7C00 ? 1 : 0 }
        case .isInf(let positive, let negative):
            MathLoops.map(x, y.pointer(as: UInt8.self), count: n, pool: pool) {
                ($0 == 0x7C00 && positive) || ($0 == 0xFC00 && negative) ? 1 : 0
            }
        case .not, .bitwiseNot:
            throw unsupported(.float16)
        default:
            let f = function
            MathLoops.mapHalf(x, y.pointer(as: UInt16.self), count: n, pool: pool) { f.value($0) }
        }
    }

    private func runInteger<T: FixedWidthInteger & CastInteger & TensorElement>(
        _ x: UnsafePointer<T>, _ y: TensorView, count n: Int, pool: ComputePool
    ) throws {
        let out = y.pointer(as: T.self)
        switch function {
        case .abs: MathLoops.map(x, out, count: n, pool: pool) { $0 < 0 ? 0 &- $0 : $0 }
        case .neg: MathLoops.map(x, out, count: n, pool: pool) { 0 &- $0 }
        case .sign: MathLoops.map(x, out, count: n, pool: pool) { $0 > 0 ? 1 : ($0 == 0 ? 0 : 0 &- 1) }
        case .bitwiseNot: MathLoops.map(x, out, count: n, pool: pool) { ~$0 }
        case .erf: MathLoops.map(x, out, count: n, pool: pool) { T.saturating(Double.libm(.erf, Double($0))) }
        case .shrink(let bias, let lambd):
            let b = Double(bias), l = Double(lambd)
            MathLoops.map(x, out, count: n, pool: pool) {
                let v = Double($0)
                return T.saturating(v < -l ? v + b : (v > l ? v - b : 0))
            }
        default: throw unsupported(T.dataType)
        }
    }
}

/// `min(max(v, 0), 1)`, NaN staying NaN.
@inline(__always)
private func unitClamp<T: BinaryFloatingPoint>(_ v: T) -> T {
    v < 0 ? 0 : (v > 1 ? 1 : v)
}

extension ElementwiseFunctionKernel.Function {
    /// The function at one floating-point value (not for IsNaN, IsInf, Not, BitwiseNot, which
    /// change the type; they give NaN here).
    @inline(__always)
    package func value<T: RealFunctions>(_ x: T) -> T {
        switch self {
        case .sqrt: return x.squareRoot()
        case .exp: return T.libm(.exp, x)
        case .log: return T.libm(.log, x)
        case .abs: return x.magnitude
        case .neg: return -x
        case .reciprocal: return 1 / x
        case .floor: return x.rounded(.down)
        case .ceil: return x.rounded(.up)
        case .round: return x.rounded(.toNearestOrEven)
        case .sign: return x > 0 ? 1 : (x < 0 ? -1 : x)
        case .erf: return T.libm(.erf, x)
        case .tanh: return T.libm(.tanh, x)
        case .sigmoid: return 1 / (1 + T.libm(.exp, -x))
        case .sin: return T.libm(.sin, x)
        case .cos: return T.libm(.cos, x)
        case .tan: return T.libm(.tan, x)
        case .asin: return T.libm(.asin, x)
        case .acos: return T.libm(.acos, x)
        case .atan: return T.libm(.atan, x)
        case .sinh: return T.libm(.sinh, x)
        case .cosh: return T.libm(.cosh, x)
        case .asinh: return T.libm(.asinh, x)
        case .acosh: return T.libm(.acosh, x)
        case .atanh: return T.libm(.atanh, x)
        case .hardSigmoid(let alpha, let beta): return unitClamp(x * T(alpha) + T(beta))
        case .hardSwish: return x * unitClamp(x * (1 / 6 as T) + 0.5)
        case .leakyRelu(let alpha): return x < 0 ? x * T(alpha) : x
        case .elu(let alpha): return x < 0 ? T(alpha) * T.libm(.expm1, x) : x
        case .selu(let alpha, let gamma): return x <= 0 ? T(gamma) * T(alpha) * T.libm(.expm1, x) : T(gamma) * x
        case .celu(let alpha):
            let a = T(alpha)
            return (x > 0 ? x : 0) + Swift.min(0, a * T.libm(.expm1, x / a))
        case .gelu(let approximateTanh):
            if approximateTanh {
                let y = (0.797_884_560_802_865_4 as T) * (x + (0.044_715 as T) * x * x * x)
                return x / (1 + T.libm(.exp, -2 * y))
            }
            let z = x * (0.707_106_781_186_547_5 as T)
            // 1 + erf(z) = erfc(−z), which keeps its precision where erf(z) is near −1.
            return 0.5 * x * (z < 0 ? T.libm(.erfc, -z) : 1 + T.libm(.erf, z))
        case .softplus:
            return x > 0 ? x + T.libm(.log1p, T.libm(.exp, -x)) : T.libm(.log1p, T.libm(.exp, x))
        case .softsign: return x / (1 + x.magnitude)
        case .thresholdedRelu(let alpha): return x > T(alpha) ? x : 0
        case .shrink(let bias, let lambd):
            let l = T(lambd)
            return x < -l ? x + T(bias) : (x > l ? x - T(bias) : 0)
        case .mish:
            let softplus = x > 0 ? x + T.libm(.log1p, T.libm(.exp, -x)) : T.libm(.log1p, T.libm(.exp, x))
            return x * T.libm(.tanh, softplus)
        case .swish(let alpha): return x / (1 + T.libm(.exp, -T(alpha) * x))
        case .isNaN, .isInf, .not, .bitwiseNot: return .nan
        }
    }
}

// MARK: - Scalar functions per floating-point type

/// The C library functions the kernels use, by name.
package enum LibmFunction {
    case exp, expm1, log, log1p, erf, erfc, tanh, sin, cos, tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh
}

/// Float and Double with their libm functions (float32's exp, expm1, tanh and erf come from
/// ``FastMath``, so float32 and float16 agree with the vectorised loops).
package protocol RealFunctions: BinaryFloatingPoint, TensorElement {
    static func libm(_ function: LibmFunction, _ x: Self) -> Self
}

extension Float: RealFunctions {
    @inline(__always)
    package static func libm(_ function: LibmFunction, _ x: Float) -> Float {
        switch function {
        case .exp: FastMath.exp(x)
        case .expm1: x < 88 ? FastMath.expm1(x) : FastMath.exp(x)
        case .log: log(x)
        case .log1p: log1p(x)
        case .erf: FastMath.erf(x)
        case .erfc: erfc(x)
        case .tanh: FastMath.tanh(x)
        case .sin: sin(x)
        case .cos: cos(x)
        case .tan: tan(x)
        case .asin: asin(x)
        case .acos: acos(x)
        case .atan: atan(x)
        case .sinh: sinh(x)
        case .cosh: cosh(x)
        case .asinh: asinh(x)
        case .acosh: acosh(x)
        case .atanh: atanh(x)
        }
    }
}

extension Double: RealFunctions {
    @inline(__always)
    package static func libm(_ function: LibmFunction, _ x: Double) -> Double {
        switch function {
        case .exp: exp(x)
        case .expm1: expm1(x)
        case .log: log(x)
        case .log1p: log1p(x)
        case .erf: erf(x)
        case .erfc: erfc(x)
        case .tanh: tanh(x)
        case .sin: sin(x)
        case .cos: cos(x)
        case .tan: tan(x)
        case .asin: asin(x)
        case .acos: acos(x)
        case .atan: atan(x)
        case .sinh: sinh(x)
        case .cosh: cosh(x)
        case .asinh: asinh(x)
        case .acosh: acosh(x)
        case .atanh: atanh(x)
        }
    }
}

// MARK: - Vectorised float32 operations

private struct FastExp: UnaryElementOperation {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { FastMath.exp(x) }
}
private struct FastTanh: UnaryElementOperation {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { FastMath.tanh(x) }
}
private struct FastErf: UnaryElementOperation {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { FastMath.erf(x) }
}
private struct FastGelu: UnaryElementOperation {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { FastMath.gelu(x) }
}
private struct FastGeluTanh: UnaryElementOperation {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { FastMath.geluTanh(x) }
}
private struct FastSwish: UnaryElementOperation {
    let alpha: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x * FastMath.sigmoid(alpha * x) }
}

// MARK: - PRelu

/// PRelu: `x < 0 ? slope·x : x`, the slope broadcasting unidirectionally to X. Before opset 7
/// a 1-D slope of X's channel count (axis 1) is also accepted and applies per channel.
package struct PReluKernel: Kernel {
    package let acceptsChannelSlope: Bool

    package static let supportedTypes: [DataType] = [.float, .double, .float16, .int32, .int64, .uint32, .uint64]

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 2, let x = inputs[0], let slope = inputs[1] else {
            throw OnyxError.invalidModel("PRelu takes two inputs (X, slope), got \(inputs.compactMap { $0 }.count)")
        }
        guard x.dataType == slope.dataType else {
            throw OnyxError.unsupportedDataType("PRelu: X is \(x.dataType) and slope is \(slope.dataType); they must have the same type")
        }
        guard Self.supportedTypes.contains(x.dataType) else {
            throw OnyxError.unsupportedDataType(
                "PRelu does not support \(x.dataType); supported: \(Self.supportedTypes.map(\.onnxName).joined(separator: ", "))")
        }
        _ = try slopeShape(x.shape, slope.shape)
        return [x.descriptor]
    }

    /// The slope's shape as it broadcasts to X.
    private func slopeShape(_ x: [Int], _ slope: [Int]) throws -> [Int] {
        if slope.count <= x.count, Broadcasting.broadcast(x, slope) == x { return slope }
        if acceptsChannelSlope, slope.count == 1, x.count >= 2, slope[0] == x[1] {
            return [slope[0]] + Array(repeating: 1, count: x.count - 2)
        }
        throw OnyxError.shapeMismatch("PRelu: slope of shape \(slope) does not broadcast to X of shape \(x)")
    }

    package var aliasing: KernelAliasing { .inPlace(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, slope = context.input(1)!, y = context.output(0)
        let pool = context.pool
        try BinaryBroadcastPlan.withPlan(x.shape, try slopeShape(x.shape, slope.shape), output: y.shape) { plan in
            func prelu<T: Comparable & Numeric>(_: T.Type) {
                MathLoops.binary(plan, UnsafePointer(x.pointer(as: T.self)), UnsafePointer(slope.pointer(as: T.self)),
                                 y.pointer(as: T.self), pool: pool) { v, s in v < 0 ? v * s : v }
            }
            switch x.dataType {
            case .float: prelu(Float.self)
            case .double: prelu(Double.self)
            case .float16:
                MathLoops.binary(plan, UnsafePointer(x.pointer(as: UInt16.self)), UnsafePointer(slope.pointer(as: UInt16.self)),
                                 y.pointer(as: UInt16.self), pool: pool) { v, s in
                    let f = Half.float(v)
                    return f < 0 ? Half.bits(f * Half.float(s)) : v
                }
            case .int32:
                MathLoops.binary(plan, UnsafePointer(x.pointer(as: Int32.self)), UnsafePointer(slope.pointer(as: Int32.self)),
                                 y.pointer(as: Int32.self), pool: pool) { v, s in v < 0 ? v &* s : v }
            case .int64:
                MathLoops.binary(plan, UnsafePointer(x.pointer(as: Int64.self)), UnsafePointer(slope.pointer(as: Int64.self)),
                                 y.pointer(as: Int64.self), pool: pool) { v, s in v < 0 ? v &* s : v }
            case .uint32, .uint64:
                // Unsigned X is never negative: the output is X.
                if y.data != x.data { y.data.copyMemory(from: x.data, byteCount: x.byteCount) }
            default: throw OnyxError.unsupportedDataType("PRelu does not support \(x.dataType)")
            }
        }
    }
}
