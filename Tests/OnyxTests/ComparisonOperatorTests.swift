import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Comparisons, logic, bitwise ops, Pow, Mod, Max/Min/Sum/Mean and Where.
@Suite struct ComparisonOperatorTests {
    static func run(
        _ op: String, opset: Int = 18, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], threads: Int = 1
    ) throws -> Tensor {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: ["y"], attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs, threads: threads)[0]
    }

    static func t<T: TensorElement>(_ values: [T], _ shape: [Int]? = nil) -> Tensor {
        try! Tensor(shape: shape ?? [values.count], scalars: values)
    }

    // MARK: - Comparisons and logic

    @Test(arguments: ElementwiseTests.shapePairs)
    func comparisonsMatchReference(_ shapes: ([Int], [Int])) throws {
        let (sa, sb) = shapes
        let a = ElementwiseTests.values(sa.reduce(1, *), seed: 5), b = ElementwiseTests.values(sb.reduce(1, *), seed: 6)
        let ops: [(String, (Int, Int) -> Bool)] = [
            ("Equal", { $0 == $1 }), ("Less", { $0 < $1 }), ("Greater", { $0 > $1 }),
            ("LessOrEqual", { $0 <= $1 }), ("GreaterOrEqual", { $0 >= $1 }),
        ]
        for (op, f) in ops {
            let expected = ElementwiseTests.reference(a, sa, b, sb) { f($0, $1) ? 1 : 0 }
                .map { $0 == 1 }
            let yf = try Self.run(op, [Self.t(a.map(Float.init), sa), Self.t(b.map(Float.init), sb)])
            #expect(yf.dataType == .bool && yf.shape == ElementwiseTests.broadcastShape(sa, sb))
            #expect(try yf.scalars(as: Bool.self) == expected, "\(op) float \(sa) \(sb)")
            let yi = try Self.run(op, [Self.t(a.map(Int8.init), sa), Self.t(b.map(Int8.init), sb)])
            #expect(try yi.scalars(as: Bool.self) == expected, "\(op) int8 \(sa) \(sb)")
        }
    }

    @Test func comparisonsWithNaNAndHalf() throws {
        let a: [Float] = [1, .nan, 2], b: [Float] = [1, .nan, 3]
        #expect(try Self.run("Equal", [Self.t(a), Self.t(b)]).scalars(as: Bool.self) == [true, false, false])
        #expect(try Self.run("Less", [Self.t(a), Self.t(b)]).scalars(as: Bool.self) == [false, false, true])
        let h = try Self.run("GreaterOrEqual", [Self.t([Float16(1), 2, 3]), Self.t([Float16(2)], [1])])
        #expect(try h.scalars(as: Bool.self) == [false, true, true])
        let u = try Self.run("Less", [Self.t([UInt64.max, 0]), Self.t([UInt64(1), 1])])
        #expect(try u.scalars(as: Bool.self) == [false, true])
    }

    @Test func logicOnBool() throws {
        let a = Self.t([true, true, false, false], [2, 2]), b = Self.t([true, false], [2])
        #expect(try Self.run("And", [a, b]).scalars(as: Bool.self) == [true, false, false, false])
        #expect(try Self.run("Or", [a, b]).scalars(as: Bool.self) == [true, true, true, false])
        #expect(try Self.run("Xor", [a, b]).scalars(as: Bool.self) == [false, true, true, false])
        #expect(try Self.run("Equal", [a, b]).scalars(as: Bool.self) == [true, false, false, true])
        let wrong = #expect(throws: OnyxError.self) { try Self.run("And", [Self.t([Int32(1)]), Self.t([Int32(1)])]) }
        #expect(wrong?.code == .unsupportedDataType)
        #expect(wrong?.message == "And does not support int32; supported: bool")
        let mixed = #expect(throws: OnyxError.self) { try Self.run("Less", [Self.t([Float(1)]), Self.t([Int32(1)])]) }
        #expect(mixed?.message == "Less: inputs are float and int32; they must have the same type")
        let shapes = #expect(throws: OnyxError.self) { try Self.run("Greater", [Self.t([Float(1), 2]), Self.t([Float(1), 2, 3])]) }
        #expect(shapes?.message == "Greater: shapes [2] and [3] are not broadcastable")
    }

    @Test func legacyBroadcastBeforeOpset7() throws {
        let a = Self.t([Float(1), 2, 3, 4, 5, 6], [2, 3]), b = Self.t([Float(2), 5], [2])
        let y = try Self.run("Greater", opset: 6, [a, b], ["broadcast": .int(1), "axis": .int(0)])
        #expect(try y.scalars(as: Bool.self) == [false, false, true, false, false, true])
        let error = #expect(throws: OnyxError.self) { try Self.run("Greater", opset: 6, [a, b]) }
        #expect(error?.message == "Greater (opset < 7): shapes [2, 3] and [2] differ and broadcast = 0")
    }

    // MARK: - Bitwise

    @Test func bitwiseOps() throws {
        let a = Self.t([Int16(0b1100), -1, 7]), b = Self.t([Int16(0b1010), 5, 0])
        #expect(try Self.run("BitwiseAnd", [a, b]).scalars(as: Int16.self) == [0b1000, 5, 0])
        #expect(try Self.run("BitwiseOr", [a, b]).scalars(as: Int16.self) == [0b1110, -1, 7])
        #expect(try Self.run("BitwiseXor", [a, b]).scalars(as: Int16.self) == [0b0110, -6, 7])
        #expect(try Self.run("BitwiseNot", [Self.t([UInt8(0), 0xF0])]).scalars(as: UInt8.self) == [0xFF, 0x0F])
        let float = #expect(throws: OnyxError.self) { try Self.run("BitwiseAnd", [Self.t([Float(1)]), Self.t([Float(1)])]) }
        #expect(float?.code == .unsupportedDataType)
    }

    @Test func bitShift() throws {
        let x = Self.t([UInt8(16), 4, 1]), s = Self.t([UInt8(1), 2, 8])
        #expect(try Self.run("BitShift", opset: 11, [x, s], ["direction": .string("RIGHT")]).scalars(as: UInt8.self) == [8, 1, 0])
        #expect(try Self.run("BitShift", opset: 11, [x, s], ["direction": .string("LEFT")]).scalars(as: UInt8.self) == [32, 16, 0])
        let signed = Self.t([Int8(-128), -7, 64, 5]), amounts = Self.t([Int8(1), 9, 1, -1])
        #expect(try Self.run("BitShift", opset: 28, [signed, amounts], ["direction": .string("RIGHT")]).scalars(as: Int8.self) == [-64, -1, 32, 0])
        #expect(try Self.run("BitShift", opset: 28, [signed, amounts], ["direction": .string("LEFT")]).scalars(as: Int8.self) == [0, 0, -128, 0])
        let missing = #expect(throws: OnyxError.self) { try Self.run("BitShift", [x, s]) }
        #expect(missing?.message == "BitShift node 'n': missing attribute 'direction' (\"LEFT\" or \"RIGHT\")")
        let bad = #expect(throws: OnyxError.self) { try Self.run("BitShift", [x, s], ["direction": .string("UP")]) }
        #expect(bad?.code == .invalidAttribute)
    }

    // MARK: - Pow

    @Test func powTypes() throws {
        let f = try Self.run("Pow", [Self.t([Float(2), 3, 4]), Self.t([Float(3)], [1])]).scalars(as: Float.self)
        #expect(f == [8, 27, 64])
        let fi = try Self.run("Pow", [Self.t([Float(2), 0.5]), Self.t([Int64(2), -1])]).scalars(as: Float.self)
        #expect(fi == [4, 2])
        let ii = try Self.run("Pow", [Self.t([Int32(2), -3, 7, 2, -1, 5]), Self.t([Int32(10), 3, 0, -1, -3, 40])]).scalars(as: Int32.self)
        #expect(ii == [1024, -27, 1, 0, -1, Int32(truncatingIfNeeded: (0..<40).reduce(Int64(1)) { r, _ in r &* 5 })])
        let iF = try Self.run("Pow", [Self.t([Int64(2), 9]), Self.t([Float(0.5), 0.5])]).scalars(as: Int64.self)
        #expect(iF == [1, 3])
        let d = try Self.run("Pow", opset: 7, [Self.t([2.0]), Self.t([0.5])]).scalars(as: Double.self)
        #expect(d == [Double(2).squareRoot()])
        let old = #expect(throws: OnyxError.self) { try Self.run("Pow", opset: 7, [Self.t([Float(2)]), Self.t([Int64(2)])]) }
        #expect(old?.message == "Pow (opset < 12): base is float and exponent is int64; they must have the same type")
        let intBase = #expect(throws: OnyxError.self) { try Self.run("Pow", [Self.t([Int8(2)]), Self.t([Int8(2)])]) }
        #expect(intBase?.message == "Pow does not support a base of int8; supported: float, double, float16, int32, int64")
    }

    /// A float base to a scalar 2 or 3 is multiplied out; it agrees with `pow` to an ulp, and
    /// keeps the signs, infinities and NaN of `pow`.
    @Test func powBySquaringAndCubing() throws {
        let base: [Float] = [0, -0, 1.5, -2.25, 3.1e12, -7e-20, .infinity, -.infinity, .nan] + (0..<40).map { Float($0) * 0.37 - 7 }
        for exponent: Float in [2, 3] {
            let y = try Self.run("Pow", [Self.t(base, [1, base.count]), Self.t([exponent])]).scalars(as: Float.self)
            for (x, value) in zip(base, y) {
                let expected = Foundation.pow(x, exponent)
                if expected.isNaN {
                    #expect(value.isNaN)
                } else {
                    #expect(value == expected || abs(value - expected) <= expected.magnitude.ulp, "\(x)^\(exponent) = \(value), pow gives \(expected)")
                }
            }
        }
    }

    // MARK: - Mod

    @Test func modSignFollowsDivisorOrDividend() throws {
        let a = Self.t([Int32(-7), 7, -7, 7, Int32.min]), b = Self.t([Int32(3), -3, -3, 3, -1])
        #expect(try Self.run("Mod", [a, b]).scalars(as: Int32.self) == [2, -2, -1, 1, 0])
        #expect(try Self.run("Mod", [a, b], ["fmod": .int(1)]).scalars(as: Int32.self) == [-1, 1, -1, 1, 0])
        let fa = Self.t([Float(-7.5), 7.5, 6, -0.0, 1]), fb = Self.t([Float(2), -2, 3, 2, 0])
        let floor = try Self.run("Mod", [fa, fb]).scalars(as: Float.self)
        #expect(floor[0...2] == [0.5, -0.5, 0] && floor[4].isNaN)
        let trunc = try Self.run("Mod", [fa, fb], ["fmod": .int(1)]).scalars(as: Float.self)
        #expect(trunc[0...2] == [-1.5, 1.5, 0])
        let u = try Self.run("Mod", [Self.t([UInt8(250), 7]), Self.t([UInt8(7)], [1])]).scalars(as: UInt8.self)
        #expect(u == [5, 0])
    }

    @Test func modErrors() throws {
        let zero = #expect(throws: OnyxError.self) { try Self.run("Mod", [Self.t([Int64(1), 2]), Self.t([Int64(1), 0])]) }
        #expect(zero?.code == .invalidInput)
        #expect(zero?.message == "Mod: integer division by zero")
        let fmod = #expect(throws: OnyxError.self) { try Self.run("Mod", [Self.t([Int64(1)]), Self.t([Int64(1)])], ["fmod": .int(2)]) }
        #expect(fmod?.message == "Mod node 'n': attribute 'fmod' must be 0 or 1, found 2")
    }

    // MARK: - Variadic

    @Test func maxMinSumMeanBroadcast() throws {
        let a = Self.t([Float(1), 5, 3], [3]), b = Self.t([Float(2), 4], [2, 1]), c = Self.t([Float(0)], [1])
        #expect(try Self.run("Max", [a, b, c]).scalars(as: Float.self) == [2, 5, 3, 4, 5, 4])
        #expect(try Self.run("Min", [a, b, c]).scalars(as: Float.self) == [0, 0, 0, 0, 0, 0])
        #expect(try Self.run("Sum", [a, b, c]).scalars(as: Float.self) == [3, 7, 5, 5, 9, 7])
        #expect(try Self.run("Mean", [a, b]).scalars(as: Float.self) == [1.5, 3.5, 2.5, 2.5, 4.5, 3.5])
        // The output is larger than input 0 and input 1 together broadcast.
        let y = try Self.run("Sum", [c, a, b])
        #expect(y.shape == [2, 3])
        #expect(try y.scalars(as: Float.self) == [3, 7, 5, 5, 9, 7])
        #expect(try Self.run("Max", [a]).scalars(as: Float.self) == [1, 5, 3])
    }

    @Test func maxMinPropagateNaNAndTakeIntegers() throws {
        let a = Self.t([Float.nan, 1, 2]), b = Self.t([Float(0), .nan, 3])
        let mx = try Self.run("Max", [a, b]).scalars(as: Float.self)
        #expect(mx[0].isNaN && mx[1].isNaN && mx[2] == 3)
        let mn = try Self.run("Min", [a, b]).scalars(as: Float.self)
        #expect(mn[0].isNaN && mn[1].isNaN && mn[2] == 2)
        let i = try Self.run("Max", opset: 13, [Self.t([UInt32(1), 9]), Self.t([UInt32(5)], [1])]).scalars(as: UInt32.self)
        #expect(i == [5, 9])
        let h = try Self.run("Mean", [Self.t([Float16(1), 2]), Self.t([Float16(2), 4])]).scalars(as: Float16.self)
        #expect(h == [1.5, 3])
    }

    @Test func variadicErrors() throws {
        let shapes = #expect(throws: OnyxError.self) { try Self.run("Sum", opset: 6, [Self.t([Float(1), 2]), Self.t([Float(1)])]) }
        #expect(shapes?.message == "Sum (opset < 8): input 1 has shape [1], input 0 has [2]; they must be equal")
        let types = #expect(throws: OnyxError.self) { try Self.run("Sum", [Self.t([Int32(1)]), Self.t([Int32(1)])]) }
        #expect(types?.message == "Sum does not support int32; supported: float, double, float16")
        let mixed = #expect(throws: OnyxError.self) { try Self.run("Max", [Self.t([Float(1)]), Self.t([1.0])]) }
        #expect(mixed?.message == "Max: input 1 is double, input 0 is float; they must have the same type")
    }

    // MARK: - Where

    @Test func whereBroadcastsThreeWays() throws {
        let condition = Self.t([true, false, true], [1, 3])
        let x = Self.t([Int64(1), 2], [2, 1]), y = Self.t([Int64(-1)], [])
        let out = try Self.run("Where", [condition, x, y])
        #expect(out.shape == [2, 3])
        #expect(try out.scalars(as: Int64.self) == [1, -1, 1, 2, -1, 2])
        let bools = try Self.run("Where", [Self.t([true, false]), Self.t([true, true]), Self.t([false, false])])
        #expect(try bools.scalars(as: Bool.self) == [true, false])
        let h = try Self.run("Where", [Self.t([false, true]), Self.t([Float16(1), 2]), Self.t([Float16(3), 4])])
        #expect(try h.scalars(as: Float16.self) == [3, 2])
        let cond = #expect(throws: OnyxError.self) { try Self.run("Where", [Self.t([Int32(1)]), Self.t([Float(1)]), Self.t([Float(2)])]) }
        #expect(cond?.message == "Where: condition must be bool, got int32")
        let shape = #expect(throws: OnyxError.self) { try Self.run("Where", [Self.t([true, false]), Self.t([Float(1), 2, 3]), Self.t([Float(2)])]) }
        #expect(shape?.code == .shapeMismatch)
    }

    /// Each kind of row (every operand contiguous, X or Y or both a scalar, a condition that is one
    /// value per row, a strided operand) against the element-by-element definition.
    @Test(arguments: [
        ([2, 3, 5], [2, 3, 5], [2, 3, 5]),  // all contiguous
        ([2, 3, 5], [], [2, 3, 5]),  // X a scalar: NaN → 0 after a Softmax
        ([2, 3, 5], [2, 3, 5], [1]),  // Y a scalar
        ([1, 3, 5], [], []),  // both scalars: a mask from constants
        ([2, 3, 1], [2, 3, 5], [2, 3, 5]),  // one condition per row
        ([2, 3, 1], [], [3, 1]),  // one condition per row, scalar X, Y one per row
        ([2, 1, 5], [3, 1], [5]),  // X strided within the row
    ])
    func whereRowsMatchTheDefinition(_ shapes: ([Int], [Int], [Int])) throws {
        let (cs, xs, ys) = shapes
        let count = { (shape: [Int]) in shape.reduce(1, *) }
        let condition = Self.t((0..<count(cs)).map { ($0 * 7 + 3) % 5 < 2 }, cs)
        let x = Self.t((0..<count(xs)).map { Float($0) + 0.5 }, xs), y = Self.t((0..<count(ys)).map { -Float($0) - 1 }, ys)
        let out = try Self.run("Where", [condition, x, y])
        let shape = try Broadcasting.shape([cs, xs, ys], op: "Where")
        #expect(out.shape == shape)
        let c = try condition.scalars(as: Bool.self), xv = try x.scalars(as: Float.self), yv = try y.scalars(as: Float.self)
        func at(_ flat: Int, _ of: [Int]) -> Int {  // the flat index into a broadcast operand
            var rest = flat, index = 0, stride = 1
            for axis in (0..<shape.count).reversed() {
                let coordinate = rest % shape[axis]
                rest /= shape[axis]
                let local = axis - (shape.count - of.count)
                if local >= 0 {
                    if of[local] != 1 { index += coordinate * stride }
                    stride *= of[local]
                }
            }
            return index
        }
        let expected = (0..<count(shape)).map { i in c[at(i, cs)] ? xv[at(i, xs)] : yv[at(i, ys)] }
        #expect(try out.scalars(as: Float.self) == expected)
    }
}
