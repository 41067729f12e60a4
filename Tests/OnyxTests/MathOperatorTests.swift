import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Unary math, activations, IsNaN/IsInf, Not and PRelu against libm in Double and hand values.
@Suite struct MathOperatorTests {
    static func run(
        _ op: String, opset: Int = 20, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], threads: Int = 1
    ) throws -> Tensor {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: ["y"], attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs, threads: threads)[0]
    }

    static func f(_ values: [Float], _ shape: [Int]? = nil) -> Tensor { try! Tensor(shape: shape ?? [values.count], scalars: values) }

    /// `count` values spread over −range…range, including awkward ones.
    static func samples(_ count: Int, range: Float) -> [Float] {
        (0..<count).map { i in range * (2 * Float(i) / Float(max(count - 1, 1)) - 1) }
    }

    static func expectClose(_ actual: [Float], _ expected: [Double], rtol: Double, atol: Double, _ what: String) {
        #expect(actual.count == expected.count, "\(what): count")
        for (i, (a, e)) in zip(actual, expected).enumerated() {
            if e.isNaN {
                #expect(a.isNaN, "\(what)[\(i)]: expected NaN, got \(a)")
            } else if e.isInfinite {
                #expect(Double(a) == e, "\(what)[\(i)]: expected \(e), got \(a)")
            } else {
                #expect(abs(Double(a) - e) <= atol + rtol * abs(e), "\(what)[\(i)] at \(i): expected \(e), got \(a)")
            }
        }
    }

    // MARK: - Vectorised float32 functions

    /// Exp, Tanh, Sigmoid, Erf and both Gelus over a wide range and the special values, against
    /// Double libm; 257 elements so the vector loop and its remainder both run.
    @Test func fastFloatFunctionsMatchDoublePrecision() throws {
        let xs = Self.samples(257, range: 12) + [0, -0.0, 1e-6, -1e-6, 1e-30, 88, 88.7, 89, -87, -103, -120, .infinity, -.infinity, .nan]
        // The Gelus' left tails are limited by the float rounding of the argument of e^{…} (x²/2, or the cubic).
        let cases: [(String, [String: Attribute], Double, (Double) -> Double)] = [
            ("Exp", [:], 2e-6, { Foundation.exp($0) }),
            ("Tanh", [:], 2e-6, { Foundation.tanh($0) }),
            ("Sigmoid", [:], 2e-6, { 1 / (1 + Foundation.exp(-$0)) }),
            ("Erf", [:], 2e-6, { Foundation.erf($0) }),
            ("Gelu", [:], 2e-5, { 0.5 * $0 * Foundation.erfc(-$0 / Double(2).squareRoot()) }),
            // x·σ(2y) equals ½x(1 + tanh y) without its cancellation for x < 0.
            ("Gelu", ["approximate": .string("tanh")], 2e-5, { x in
                x / (1 + Foundation.exp(-2 * (2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
            }),
        ]
        for (op, attributes, rtol, reference) in cases {
            let y = try Self.run(op, [Self.f(xs)], attributes).scalars(as: Float.self)
            let expected = xs.map { x -> Double in
                // Rounded to float (exp(89) overflows); subnormal results may flush to 0.
                let v = Double(Float(reference(Double(x))))
                return abs(v) < 1e-37 ? 0 : v
            }
            Self.expectClose(y, expected, rtol: rtol, atol: 1e-37, "\(op) \(attributes)")
        }
    }

    @Test func fastExpIsMonotonicAndExactAtZero() throws {
        let xs = Self.samples(1001, range: 80)
        let y = try Self.run("Exp", [Self.f(xs)]).scalars(as: Float.self)
        #expect(zip(y, y.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(try Self.run("Exp", [Self.f([0])]).scalars(as: Float.self) == [1])
    }

    @Test func largeTensorRunsOnSeveralThreads() throws {
        let xs = (0..<(1 << 20)).map { Float($0 % 1000) / 100 - 5 }
        let y = try Self.run("Sigmoid", [Self.f(xs)], threads: 2).scalars(as: Float.self)
        for i in stride(from: 0, to: xs.count, by: 9973) {
            #expect(abs(Double(y[i]) - 1 / (1 + Foundation.exp(-Double(xs[i])))) < 1e-6)
        }
    }

    // MARK: - Unary math

    @Test func unaryMathMatchesLibm() throws {
        let xs: [Float] = [-2.5, -1.5, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1.5, 2.5]
        let unit: [Float] = [-0.9, -0.5, 0, 0.3, 0.99]
        let cases: [(String, [Float], (Double) -> Double)] = [
            ("Sqrt", xs.map(abs), { $0.squareRoot() }), ("Log", xs.map { abs($0) + 0.1 }, { Foundation.log($0) }),
            ("Abs", xs, { abs($0) }), ("Neg", xs, { -$0 }), ("Reciprocal", xs.map { $0 + 3 }, { 1 / $0 }),
            ("Floor", xs, { $0.rounded(.down) }), ("Ceil", xs, { $0.rounded(.up) }),
            ("Round", xs, { $0.rounded(.toNearestOrEven) }), ("Sign", xs, { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }),
            ("Sin", xs, { Foundation.sin($0) }), ("Cos", xs, { Foundation.cos($0) }), ("Tan", xs, { Foundation.tan($0) }),
            ("Asin", unit, { Foundation.asin($0) }), ("Acos", unit, { Foundation.acos($0) }), ("Atan", xs, { Foundation.atan($0) }),
            ("Sinh", xs, { Foundation.sinh($0) }), ("Cosh", xs, { Foundation.cosh($0) }), ("Asinh", xs, { Foundation.asinh($0) }),
            ("Acosh", xs.map { abs($0) + 1 }, { Foundation.acosh($0) }), ("Atanh", unit, { Foundation.atanh($0) }),
            ("Softplus", xs.map { $0 * 20 }, { Foundation.log1p(Foundation.exp($0)) }),
            ("Softsign", xs, { $0 / (1 + abs($0)) }),
            ("Mish", xs, { $0 * Foundation.tanh(Foundation.log1p(Foundation.exp($0))) }),
        ]
        for (op, input, reference) in cases {
            let y = try Self.run(op, [Self.f(input)]).scalars(as: Float.self)
            Self.expectClose(y, input.map { reference(Double($0)) }, rtol: 1e-6, atol: 1e-7, op)
        }
    }

    @Test func roundIsHalfToEven() throws {
        let y = try Self.run("Round", [Self.f([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6])]).scalars(as: Float.self)
        #expect(y == [0, 2, 2, -0.0, -2, 2, 3])
    }

    @Test func doubleAndHalfTypes() throws {
        let d = try Self.run("Exp", [try Tensor(shape: [3], scalars: [0.0, 1.0, -1.0])]).scalars(as: Double.self)
        #expect(d == [1, Foundation.exp(1.0), Foundation.exp(-1.0)])
        let h = try Self.run("Sqrt", [try Tensor(shape: [3], scalars: [Float16(4), 9, 2])]).scalars(as: Float16.self)
        #expect(h == [2, 3, Float16(Float(2).squareRoot())])
        let gelu = try Self.run("Gelu", [try Tensor(shape: [2], scalars: [Float16(1), -1])]).scalars(as: Float16.self)
        #expect(abs(Float(gelu[0]) - 0.841_344_7) < 1e-3 && abs(Float(gelu[1]) + 0.158_655_3) < 1e-3)
    }

    @Test func integerAbsNegSignErf() throws {
        let x = try Tensor(shape: [5], scalars: [Int32.min, -7, 0, 3, Int32.max])
        #expect(try Self.run("Abs", [x]).scalars(as: Int32.self) == [Int32.min, 7, 0, 3, Int32.max])
        #expect(try Self.run("Neg", [x]).scalars(as: Int32.self) == [Int32.min, 7, 0, -3, -Int32.max])
        #expect(try Self.run("Sign", [x]).scalars(as: Int32.self) == [-1, -1, 0, 1, 1])
        #expect(try Self.run("Erf", opset: 9, [x]).scalars(as: Int32.self) == [-1, -1, 0, 0, 1])
        let u = try Tensor(shape: [3], scalars: [UInt8(0), 5, 255])
        #expect(try Self.run("Sign", [u]).scalars(as: UInt8.self) == [0, 1, 1])
        #expect(try Self.run("Abs", [u]).scalars(as: UInt8.self) == [0, 5, 255])
    }

    @Test func unsupportedTypesAndArity() throws {
        let u = try Tensor(shape: [1], scalars: [UInt8(1)])
        let neg = #expect(throws: OnyxError.self) { try Self.run("Neg", [u]) }
        #expect(neg?.code == .unsupportedDataType)
        #expect(neg?.message == "Neg does not support uint8; supported: float, double, float16, int8, int16, int32, int64")
        let sqrt = #expect(throws: OnyxError.self) { try Self.run("Sqrt", [try Tensor(shape: [1], scalars: [Int32(4)])]) }
        #expect(sqrt?.message == "Sqrt does not support int32; supported: float, double, float16")
        let arity = #expect(throws: OnyxError.self) { try Self.run("Exp", [Self.f([1]), Self.f([2])]) }
        #expect(arity?.message == "Exp takes one input, got 2")
    }

    // MARK: - IsNaN, IsInf, Not

    @Test func isNaNIsInfAndNot() throws {
        let x = Self.f([1, .nan, .infinity, -.infinity, 0])
        #expect(try Self.run("IsNaN", [x]).scalars(as: Bool.self) == [false, true, false, false, false])
        #expect(try Self.run("IsInf", [x]).scalars(as: Bool.self) == [false, false, true, true, false])
        #expect(try Self.run("IsInf", [x], ["detect_negative": .int(0)]).scalars(as: Bool.self) == [false, false, true, false, false])
        #expect(try Self.run("IsInf", [x], ["detect_positive": .int(0)]).scalars(as: Bool.self) == [false, false, false, true, false])
        let h = try Tensor(shape: [4], scalars: [Float16.nan, .infinity, -.infinity, 2])
        #expect(try Self.run("IsNaN", [h]).scalars(as: Bool.self) == [true, false, false, false])
        #expect(try Self.run("IsInf", [h]).scalars(as: Bool.self) == [false, true, true, false])
        let b = try Tensor(shape: [2, 2], scalars: [true, false, false, true])
        #expect(try Self.run("Not", [b]).scalars(as: Bool.self) == [false, true, true, false])
        let notFloat = #expect(throws: OnyxError.self) { try Self.run("Not", [x]) }
        #expect(notFloat?.message == "Not does not support float; supported: bool")
    }

    // MARK: - Activations

    @Test func activationsWithAttributes() throws {
        let xs: [Float] = [-3, -1, -0.5, 0, 0.5, 1, 3]
        func check(_ op: String, _ attributes: [String: Attribute] = [:], opset: Int = 22, _ reference: (Double) -> Double) throws {
            let y = try Self.run(op, opset: opset, [Self.f(xs)], attributes).scalars(as: Float.self)
            Self.expectClose(y, xs.map { reference(Double($0)) }, rtol: 1e-6, atol: 1e-7, "\(op) \(attributes)")
        }
        try check("HardSigmoid") { max(0, min(1, 0.2 * $0 + 0.5)) }
        try check("HardSigmoid", ["alpha": .float(0.5), "beta": .float(0.6)]) { max(0, min(1, 0.5 * $0 + 0.6)) }
        try check("HardSwish") { $0 * max(0, min(1, $0 / 6 + 0.5)) }
        try check("LeakyRelu") { $0 < 0 ? 0.01 * $0 : $0 }
        try check("LeakyRelu", ["alpha": .float(0.1)]) { $0 < 0 ? 0.1 * $0 : $0 }
        try check("Elu", ["alpha": .float(2)]) { $0 < 0 ? 2 * Foundation.expm1($0) : $0 }
        try check("Selu") { $0 <= 0 ? 1.0507009873554805 * 1.6732632423543772 * Foundation.expm1($0) : 1.0507009873554805 * $0 }
        try check("Celu", ["alpha": .float(2)]) { max(0, $0) + min(0, 2 * Foundation.expm1($0 / 2)) }
        try check("ThresholdedRelu", ["alpha": .float(0.5)]) { $0 > 0.5 ? $0 : 0 }
        try check("Shrink", ["lambd": .float(1.5), "bias": .float(0.5)]) { $0 < -1.5 ? $0 + 0.5 : ($0 > 1.5 ? $0 - 0.5 : 0) }
        try check("Swish", ["alpha": .float(2)], opset: 24) { $0 / (1 + Foundation.exp(-2 * $0)) }
    }

    @Test func shrinkOnIntegers() throws {
        let x = try Tensor(shape: [5], scalars: [Int8(-10), -2, 0, 2, 10])
        let y = try Self.run("Shrink", [x], ["lambd": .float(1.5), "bias": .float(1.5)]).scalars(as: Int8.self)
        #expect(y == [-8, 0, 0, 0, 8])  // −2 + 1.5 = −0.5 truncates to 0
    }

    @Test func activationAttributeErrors() throws {
        let gelu = #expect(throws: OnyxError.self) { try Self.run("Gelu", [Self.f([1])], ["approximate": .string("erf")]) }
        #expect(gelu?.code == .invalidAttribute)
        #expect(gelu?.message == "Gelu node 'n': attribute 'approximate' must be \"none\" or \"tanh\", found \"erf\"")
        let celu = #expect(throws: OnyxError.self) { try Self.run("Celu", [Self.f([1])], ["alpha": .float(0)]) }
        #expect(celu?.message == "Celu node 'n': attribute 'alpha' must not be 0")
        let kind = #expect(throws: OnyxError.self) { try Self.run("LeakyRelu", [Self.f([1])], ["alpha": .string("x")]) }
        #expect(kind?.code == .invalidAttribute)
        let old = #expect(throws: OnyxError.self) { try Self.run("Gelu", opset: 19, [Self.f([1])]) }
        #expect(old?.code == .unsupportedOperator)
    }

    @Test func inPlaceActivation() throws {
        let xs = Self.samples(63, range: 6)
        let y = try ElementwiseTests.runInPlace("Tanh", [Self.f(xs)]).scalars(as: Float.self)
        Self.expectClose(y, xs.map { Foundation.tanh(Double($0)) }, rtol: 2e-6, atol: 1e-7, "in-place Tanh")
    }

    // MARK: - PRelu

    @Test func preluBroadcastsSlope() throws {
        let x = Self.f([-2, -1, 0, 1, 2, -3], [2, 3])
        let y = try Self.run("PRelu", opset: 16, [x, Self.f([0.5, 0.25, 2], [3])]).scalars(as: Float.self)
        #expect(y == [-1, -0.25, 0, 1, 2, -6])
        let scalar = try Self.run("PRelu", opset: 16, [x, Self.f([0.1], [1])]).scalars(as: Float.self)
        #expect(scalar == [-0.2, -0.1, 0, 1, 2, -0.3].map { Float($0) })
        let ints = try Self.run("PRelu", opset: 16, [try Tensor(shape: [3], scalars: [Int32(-4), 0, 5]), try Tensor(shape: [1], scalars: [Int32(3)])])
        #expect(try ints.scalars(as: Int32.self) == [-12, 0, 5])
    }

    @Test func preluOpset6TakesAChannelSlope() throws {
        let x = Self.f([-1, -1, -1, -1, -1, -1], [1, 2, 3])
        let y = try Self.run("PRelu", opset: 6, [x, Self.f([0.5, 2], [2])]).scalars(as: Float.self)
        #expect(y == [-0.5, -0.5, -0.5, -2, -2, -2])
        let error = #expect(throws: OnyxError.self) { try Self.run("PRelu", opset: 16, [x, Self.f([0.5, 2], [2])]) }
        #expect(error?.code == .shapeMismatch)
        #expect(error?.message == "PRelu: slope of shape [2] does not broadcast to X of shape [1, 2, 3]")
    }
}
