import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Each operator of the first set against hand-computed results, including opset variants.
@Suite struct OperatorTests {
    static func f(_ shape: [Int], _ values: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: values) }
    static func i64(_ shape: [Int], _ values: [Int64]) -> Tensor { try! Tensor(shape: shape, scalars: values) }

    static func run(_ op: String, opset: Int = 17, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], outputs: Int = 1) throws -> [Tensor] {
        let node = Node(
            name: op.lowercased(), opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "in\($0.offset)" },
            outputs: (0..<outputs).map { "out\($0)" }, attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs)
    }

    static func floats(_ t: Tensor) throws -> [Float] { try t.scalars(as: Float.self) }

    static func expectClose(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-5) {
        #expect(a.count == b.count, "\(a) vs \(b)")
        for (x, y) in zip(a, b) { #expect(abs(x - y) <= tolerance * (1 + abs(y)), "\(a) vs \(b)") }
    }

    // MARK: - Elementwise

    @Test func binaryArithmeticBroadcasts() throws {
        let a = Self.f([2, 3], [1, 2, 3, 4, 5, 6])
        #expect(try Self.floats(Self.run("Add", [a, Self.f([3], [10, 20, 30])])[0]) == [11, 22, 33, 14, 25, 36])
        #expect(try Self.floats(Self.run("Sub", [a, Self.f([2, 1], [1, 2])])[0]) == [0, 1, 2, 2, 3, 4])
        #expect(try Self.floats(Self.run("Mul", [a, Self.f([], [2])])[0]) == [2, 4, 6, 8, 10, 12])
        #expect(try Self.floats(Self.run("Div", [Self.f([], [12]), a])[0]) == [12, 6, 4, 3, 2.4, 2])
        let outer = try Self.run("Mul", [Self.f([3, 1], [1, 2, 3]), Self.f([1, 4], [1, 10, 100, 1000])])[0]
        #expect(outer.shape == [3, 4])
        #expect(try Self.floats(outer) == [1, 10, 100, 1000, 2, 20, 200, 2000, 3, 30, 300, 3000])
        // Per-channel bias against N×C×H×W, and a rank-different operand.
        let image = Self.f([1, 2, 2, 2], [1, 1, 1, 1, 2, 2, 2, 2])
        #expect(try Self.floats(Self.run("Add", [image, Self.f([2, 1, 1], [10, 20])])[0]) == [11, 11, 11, 11, 22, 22, 22, 22])
        let mixed = try Self.run("Sub", [Self.f([2, 1, 3], [1, 2, 3, 4, 5, 6]), Self.f([2, 1], [1, 2])])[0]
        #expect(mixed.shape == [2, 2, 3])
        #expect(try Self.floats(mixed) == [0, 1, 2, -1, 0, 1, 3, 4, 5, 2, 3, 4])
    }

    @Test func integerArithmetic() throws {
        let a = Self.i64([3], [7, -7, 9])
        #expect(try Self.run("Div", [a, Self.i64([], [2])])[0].scalars(as: Int64.self) == [3, -3, 4])
        #expect(try Self.run("Mul", [a, Self.i64([3], [2, 3, 4])])[0].scalars(as: Int64.self) == [14, -21, 36])
        #expect(throws: OnyxError.self) { try Self.run("Div", [a, Self.i64([], [0])]) }
        #expect(throws: OnyxError.self) { try Self.run("Add", [a, Self.f([3], [1, 2, 3])]) }
        #expect(throws: OnyxError.self) { try Self.run("Add", [Self.f([2, 3], [1, 2, 3, 4, 5, 6]), Self.f([4], [1, 2, 3, 4])]) }
    }

    @Test func largeBroadcastUsesThreads() throws {
        let n = 1 << 17
        let a = Self.f([2, n / 2], (0..<n).map { Float($0 % 7) })
        let b = Self.f([n / 2], (0..<(n / 2)).map { Float($0 % 5) })
        let node = Node(name: "add", opType: "Add", inputs: ["a", "b"], outputs: ["y"])
        let y = try OperatorRegistry.evaluate(node, opset: 14, inputs: [a, b], threads: 2)[0]
        let values = try y.scalars(as: Float.self)
        for i in stride(from: 0, to: n, by: 997) { #expect(values[i] == Float(i % 7) + Float((i % (n / 2)) % 5)) }
    }

    @Test func reluAndClip() throws {
        let x = Self.f([5], [-2, -0.5, 0, 3, 8])
        #expect(try Self.floats(Self.run("Relu", [x])[0]) == [0, 0, 0, 3, 8])
        #expect(try Self.floats(Self.run("Clip", opset: 6, [x], ["min": .float(-1), "max": .float(4)])[0]) == [-1, -0.5, 0, 3, 4])
        #expect(try Self.floats(Self.run("Clip", opset: 13, [x, Self.f([], [0]), Self.f([], [6])])[0]) == [0, 0, 0, 3, 6])
        #expect(try Self.floats(Self.run("Clip", opset: 13, [x, nil, Self.f([], [1])])[0]) == [-2, -0.5, 0, 1, 1])
        #expect(try Self.floats(Self.run("Clip", opset: 13, [x])[0]) == [-2, -0.5, 0, 3, 8])
        #expect(try Self.run("Relu", [Self.i64([3], [-1, 0, 5])])[0].scalars(as: Int64.self) == [0, 0, 5])
    }

    /// Every micro-kernel variant treats NaN and min > max alike: NaN stays NaN, min > max gives max.
    @Test(arguments: KernelISA.supported)
    func clipEdgeCasesAgreeAcrossVariants(isa: KernelISA) throws {
        let x = Self.f([20], [.nan, -3, 0.5, 7] + [Float](repeating: 1, count: 16))
        let relu = Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["y"])
        let y = try Self.floats(OperatorRegistry.evaluate(relu, opset: 14, inputs: [x], isa: isa)[0])
        #expect(y[0].isNaN)
        #expect(Array(y[1...3]) == [0, 0.5, 7])
        let clip = Node(name: "clip", opType: "Clip", inputs: ["x", "lo", "hi"], outputs: ["y"])
        let z = try Self.floats(OperatorRegistry.evaluate(clip, opset: 13, inputs: [x, Self.f([], [2]), Self.f([], [1])], isa: isa)[0])
        #expect(z[0].isNaN)
        #expect(Array(z[1...]) == [Float](repeating: 1, count: 19))
    }

    // MARK: - Pooling

    static let grid = Self.f([1, 1, 4, 4], (1...16).map(Float.init))

    @Test func maxPool() throws {
        let y = try Self.run("MaxPool", [Self.grid], ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])[0]
        #expect(y.shape == [1, 1, 2, 2])
        #expect(try Self.floats(y) == [6, 8, 14, 16])
        let padded = try Self.run("MaxPool", [Self.grid], ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])])[0]
        #expect(try Self.floats(padded) == [6, 8, 14, 16])
        let ceil = try Self.run("MaxPool", [Self.grid], ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)])[0]
        #expect(ceil.shape == [1, 1, 2, 2])
        #expect(try Self.floats(ceil) == [11, 12, 15, 16])
        let dilated = try Self.run("MaxPool", [Self.grid], ["kernel_shape": .ints([2, 2]), "dilations": .ints([2, 2])])[0]
        #expect(try Self.floats(dilated) == [11, 12, 15, 16])
        let same = try Self.run("MaxPool", [Self.grid], ["kernel_shape": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")])[0]
        #expect(same.shape == [1, 1, 4, 4])
        #expect(try Self.floats(same).suffix(4) == [14, 15, 16, 16])
        let oneD = try Self.run("MaxPool", [Self.f([1, 1, 5], [1, 5, 2, 4, 3])], ["kernel_shape": .ints([2])])[0]
        #expect(try Self.floats(oneD) == [5, 5, 4, 4])
    }

    @Test func averagePool() throws {
        let y = try Self.run("AveragePool", [Self.grid], ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])[0]
        #expect(try Self.floats(y) == [3.5, 5.5, 11.5, 13.5])
        let attributes: [String: Attribute] = ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]
        let excluded = try Self.run("AveragePool", [Self.grid], attributes)[0]
        // Top-left window covers 1, 2, 5, 6 (4 real cells).
        #expect(try Self.floats(excluded)[0] == 3.5)
        var including = attributes
        including["count_include_pad"] = .int(1)
        #expect(try Self.floats(Self.run("AveragePool", [Self.grid], including)[0])[0] == 14.0 / 9)
        let global = try Self.run("GlobalAveragePool", [Self.grid])[0]
        #expect(global.shape == [1, 1, 1, 1])
        #expect(try Self.floats(global) == [8.5])
    }

    // MARK: - Normalization

    @Test(arguments: [9, 15])
    func batchNormalization(opset: Int) throws {
        let x = Self.f([1, 2, 1, 2], [1, 2, 3, 4])
        let y = try Self.run("BatchNormalization", opset: opset, [
            x, Self.f([2], [1, 2]), Self.f([2], [0, 1]), Self.f([2], [1, 2]), Self.f([2], [4, 1]),
        ], ["epsilon": .float(0)])[0]
        Self.expectClose(try Self.floats(y), [0, 0.5, 3, 5])
        // training_mode = 1 (batch statistics) is covered by NormalizationTests.
    }

    @Test func layerNormalization() throws {
        let x = Self.f([2, 2, 3], [1, 2, 3, 4, 5, 6, -1, 0, 1, 2, 2, 2])
        let scale = Self.f([3], [1, 2, 0.5]), bias = Self.f([3], [0, 1, -1])
        let out = try Self.run("LayerNormalization", opset: 17, [x, scale, bias], ["epsilon": .float(0)], outputs: 3)
        let values = try Self.floats(x)
        var expected: [Float] = [], means: [Float] = [], inverses: [Float] = []
        for r in 0..<4 {
            let row = Array(values[(r * 3)..<(r * 3 + 3)])
            let mean = row.reduce(0, +) / 3
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 3
            let inverse: Float = variance == 0 ? .infinity : 1 / variance.squareRoot()
            means.append(mean)
            inverses.append(inverse)
            for i in 0..<3 { expected.append(variance == 0 ? .nan : (row[i] - mean) * inverse * [1, 2, 0.5][i] + [0, 1, -1][i]) }
        }
        let y = try Self.floats(out[0])
        Self.expectClose(Array(y[0..<9]), Array(expected[0..<9]))
        let constantRowIsNaN = y[9...].allSatisfy { $0.isNaN }  // a constant row with epsilon 0 divides by zero
        #expect(constantRowIsNaN)
        #expect(out[1].shape == [2, 2, 1])
        Self.expectClose(try Self.floats(out[1]), means)
        Self.expectClose(Array(try Self.floats(out[2])[0..<3]), Array(inverses[0..<3]))
        // Normalising the last two axes, Scale broadcast from a row.
        let two = try Self.run("LayerNormalization", opset: 17, [x, Self.f([1, 3], [1, 1, 1])], ["axis": .int(-2)])[0]
        let flat = Array(values[0..<6]), mean = flat.reduce(0, +) / 6
        let sd = (flat.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 6 + 1e-5).squareRoot()
        Self.expectClose(Array(try Self.floats(two)[0..<6]), flat.map { ($0 - mean) / sd })
        #expect(throws: OnyxError.self) { try Self.run("LayerNormalization", opset: 17, [x, Self.f([2], [1, 1])]) }
    }

    @Test func softmaxOpsetVariants() throws {
        let x = Self.f([2, 2], [0, 0, 1, 1])
        // Opset 13: per axis (last by default).
        Self.expectClose(try Self.floats(Self.run("Softmax", opset: 13, [x])[0]), [0.5, 0.5, 0.5, 0.5])
        Self.expectClose(try Self.floats(Self.run("Softmax", opset: 13, [x], ["axis": .int(0)])[0]),
                         [0.26894143, 0.26894143, 0.7310586, 0.7310586])
        // Opset 11 with axis 0 flattens everything into one row.
        let e: Float = 2.7182817  // exp(1)
        Self.expectClose(try Self.floats(Self.run("Softmax", opset: 11, [x], ["axis": .int(0)])[0]),
                         [1 / (2 + 2 * e), 1 / (2 + 2 * e), e / (2 + 2 * e), e / (2 + 2 * e)])
    }

    @Test func reduceMeanAxesAsAttributeAndInput() throws {
        let x = Self.f([2, 3], [1, 2, 3, 4, 5, 6])
        let attr = try Self.run("ReduceMean", opset: 13, [x], ["axes": .ints([1])])[0]
        #expect(attr.shape == [2, 1])
        #expect(try Self.floats(attr) == [2, 5])
        let input = try Self.run("ReduceMean", opset: 18, [x, Self.i64([1], [-2])], ["keepdims": .int(0)])[0]
        #expect(input.shape == [3])
        #expect(try Self.floats(input) == [2.5, 3.5, 4.5])
        let all = try Self.run("ReduceMean", opset: 18, [x])[0]
        #expect(all.shape == [1, 1])
        #expect(try Self.floats(all) == [3.5])
        let noop = try Self.run("ReduceMean", opset: 18, [x], ["noop_with_empty_axes": .int(1)])[0]
        #expect(try Self.floats(noop) == [1, 2, 3, 4, 5, 6])
        let spatial = try Self.run("ReduceMean", opset: 18, [Self.grid, Self.i64([2], [2, 3])])[0]
        #expect(spatial.shape == [1, 1, 1, 1])
        #expect(try Self.floats(spatial) == [8.5])
    }

    // MARK: - Shape and data movement

    @Test func reshapeFlattenSqueezeUnsqueeze() throws {
        let x = Self.f([2, 3, 4], (0..<24).map(Float.init))
        #expect(try Self.run("Reshape", opset: 14, [x, Self.i64([3], [0, -1, 2])])[0].shape == [2, 6, 2])
        #expect(try Self.run("Reshape", opset: 14, [Self.f([0, 3], []), Self.i64([2], [3, 0])], ["allowzero": .int(1)])[0].shape == [3, 0])
        #expect(try Self.run("Reshape", opset: 1, [x], ["shape": .ints([4, 6])])[0].shape == [4, 6])
        #expect(throws: OnyxError.self) { try Self.run("Reshape", opset: 14, [x, Self.i64([2], [5, -1])]) }
        #expect(try Self.run("Flatten", [x], ["axis": .int(-1)])[0].shape == [6, 4])
        #expect(try Self.run("Flatten", [x], ["axis": .int(0)])[0].shape == [1, 24])
        let unit = Self.f([1, 3, 1], [1, 2, 3])
        #expect(try Self.run("Squeeze", opset: 11, [unit], ["axes": .ints([0])])[0].shape == [3, 1])
        #expect(try Self.run("Squeeze", opset: 13, [unit, Self.i64([1], [-1])])[0].shape == [1, 3])
        #expect(try Self.run("Squeeze", opset: 13, [unit])[0].shape == [3])
        #expect(throws: OnyxError.self) { try Self.run("Squeeze", opset: 13, [unit, Self.i64([1], [1])]) }
        #expect(try Self.run("Unsqueeze", opset: 11, [unit], ["axes": .ints([0, 4])])[0].shape == [1, 1, 3, 1, 1])
        #expect(try Self.run("Unsqueeze", opset: 13, [Self.f([], [5]), Self.i64([1], [0])])[0].shape == [1])
        #expect(try Self.floats(Self.run("Reshape", opset: 14, [x, Self.i64([1], [-1])])[0]) == (0..<24).map(Float.init))
    }

    @Test func concatTransposeGather() throws {
        let a = Self.f([2, 1], [1, 2]), b = Self.f([2, 2], [3, 4, 5, 6])
        #expect(try Self.floats(Self.run("Concat", [a, b], ["axis": .int(-1)])[0]) == [1, 3, 4, 2, 5, 6])
        #expect(try Self.run("Concat", [Self.i64([1], [1]), Self.i64([2], [2, 3])], ["axis": .int(0)])[0].scalars(as: Int64.self) == [1, 2, 3])
        #expect(throws: OnyxError.self) { try Self.run("Concat", [a, Self.f([3, 1], [1, 2, 3])], ["axis": .int(1)]) }

        let x = Self.f([2, 3, 4], (0..<24).map(Float.init))
        for perm in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 2, 1], [2, 0, 1]] {
            let y = try Self.run("Transpose", [x], ["perm": .ints(perm)])[0]
            #expect(y.shape == perm.map { x.shape[$0] })
            let values = try Self.floats(y)
            var k = 0
            var index = [0, 0, 0]
            for i in 0..<y.shape[0] {
                for j in 0..<y.shape[1] {
                    for l in 0..<y.shape[2] {
                        index[perm[0]] = i; index[perm[1]] = j; index[perm[2]] = l
                        #expect(values[k] == Float(index[0] * 12 + index[1] * 4 + index[2]))
                        k += 1
                    }
                }
            }
        }
        #expect(try Self.run("Transpose", [Self.f([2, 3], [1, 2, 3, 4, 5, 6])])[0].shape == [3, 2])

        let data = Self.f([3, 2], [1, 2, 3, 4, 5, 6])
        #expect(try Self.floats(Self.run("Gather", [data, Self.i64([2], [2, -3])])[0]) == [5, 6, 1, 2])
        let column = try Self.run("Gather", [data, try Tensor(shape: [1], scalars: [Int32(1)])], ["axis": .int(1)])[0]
        #expect(column.shape == [3, 1])
        #expect(try Self.floats(column) == [2, 4, 6])
        let scalar = try Self.run("Gather", [data, Tensor(scalar: Int64(1))])[0]
        #expect(scalar.shape == [2])
        #expect(throws: OnyxError.self) { try Self.run("Gather", [data, Self.i64([1], [3])]) }
    }

    @Test func shapeOperator() throws {
        let x = Self.f([2, 3, 4], [Float](repeating: 0, count: 24))
        #expect(try Self.run("Shape", [x])[0].scalars(as: Int64.self) == [2, 3, 4])
        #expect(try Self.run("Shape", opset: 15, [x], ["start": .int(1)])[0].scalars(as: Int64.self) == [3, 4])
        #expect(try Self.run("Shape", opset: 15, [x], ["start": .int(-2), "end": .int(-1)])[0].scalars(as: Int64.self) == [3])
    }

    // MARK: - Identity, Dropout, Constant, Cast

    @Test func identityDropoutConstant() throws {
        let x = Self.f([2], [1, 2])
        #expect(try Self.floats(Self.run("Identity", [x])[0]) == [1, 2])
        let dropout = try Self.run("Dropout", opset: 13, [x, Self.f([], [0.5])], outputs: 2)
        #expect(try Self.floats(dropout[0]) == [1, 2])
        #expect(try dropout[1].scalars(as: Bool.self) == [true, true])
        // Training mode keeps each element (scaled by 1 / (1 − ratio)) or zeroes it.
        let trained = try Self.run("Dropout", opset: 13, [x, Self.f([], [0.5]), Tensor(scalar: true)], outputs: 2)
        #expect(try zip(Self.floats(trained[0]), [Float(1), 2]).allSatisfy { $0 == 0 || $0 == 2 * $1 })
        #expect(try Self.floats(Self.run("Constant", [], ["value": .tensor(x)])[0]) == [1, 2])
        #expect(try Self.run("Constant", [], ["value_ints": .ints([4, 5])])[0].scalars(as: Int64.self) == [4, 5])
        #expect(try Self.floats(Self.run("Constant", [], ["value_float": .float(2.5)])[0]) == [2.5])
        #expect(try Self.run("Constant", [], ["value_string": .string("yes")])[0].strings() == ["yes"])
    }

    @Test func castBetweenTypes() throws {
        let x = Self.f([5], [1.9, -1.9, 0, 300, -0.5])
        #expect(try Self.run("Cast", [x], ["to": .int(Int(DataType.int64.rawValue))])[0].scalars(as: Int64.self) == [1, -1, 0, 300, 0])
        #expect(try Self.run("Cast", [x], ["to": .int(Int(DataType.uint8.rawValue))])[0].scalars(as: UInt8.self) == [1, 0, 0, 255, 0])
        #expect(try Self.run("Cast", [x], ["to": .int(Int(DataType.bool.rawValue))])[0].scalars(as: Bool.self) == [true, true, false, true, true])
        let half = try Self.run("Cast", [x], ["to": .int(Int(DataType.float16.rawValue))])[0]
        #expect(half.dataType == .float16)
        let back = try Self.run("Cast", [half], ["to": .int(Int(DataType.float.rawValue))])[0]
        Self.expectClose(try Self.floats(back), [1.9, -1.9, 0, 300, -0.5], 1e-3)
        let ints = Self.i64([3], [-1, 70000, 5])
        #expect(try Self.run("Cast", [ints], ["to": .int(Int(DataType.int16.rawValue))])[0].scalars(as: Int16.self) == [-1, 4464, 5])
        #expect(try Self.run("Cast", [ints], ["to": .int(Int(DataType.double.rawValue))])[0].scalars(as: Double.self) == [-1, 70000, 5])
        let bools = try Tensor(shape: [2], scalars: [true, false])
        #expect(try Self.floats(Self.run("Cast", [bools], ["to": .int(1)])[0]) == [1, 0])
        for type in DataType.allCases where type != .float8e8m0 {  // a power of two: it has no 0
            let y = try Self.run("Cast", [Self.f([2], [1, 0])], ["to": .int(Int(type.rawValue))])[0]
            let z = try Self.run("Cast", [y], ["to": .int(1)])[0]
            #expect(try Self.floats(z) == [1, 0], "through \(type)")
        }
        #expect(try Self.run("Cast", [x], ["to": .int(8)])[0].dataType == .string)
    }
}
