import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, the integer matrix products and
/// convolutions, BitCast and Det on hand-checked values and error cases.
@Suite struct QuantizationTests {
    static func run(
        _ op: String, opset: Int, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], outputs: Int = 1
    ) throws -> [Tensor] {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs)
    }

    static func t<T: TensorElement>(_ shape: [Int], _ values: [T]) -> Tensor { try! Tensor(shape: shape, scalars: values) }

    static func message(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as OnyxError {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    // MARK: - QuantizeLinear

    @Test func quantizeRoundsHalfToEvenAndSaturates() throws {
        let x = Self.t([8], [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 300, -300] as [Float])
        let y = try Self.run("QuantizeLinear", opset: 10, [x, Self.t([], [Float(1)]), Self.t([], [Int8(0)])])[0]
        #expect(y.dataType == .int8)
        #expect(try y.scalars(as: Int8.self) == [0, 2, 2, 0, -2, -2, 127, -128])
    }

    @Test func quantizeDefaultsToUInt8WithoutZeroPoint() throws {
        let y = try Self.run("QuantizeLinear", opset: 13, [Self.t([3], [-1, 3.2, 600] as [Float]), Self.t([], [Float(2)])])[0]
        #expect(y.dataType == .uint8)
        #expect(try y.scalars(as: UInt8.self) == [0, 2, 255])
    }

    @Test func quantizePerAxisAndBlocked() throws {
        // Axis 1 (default): column j uses scale[j] and zero point[j].
        let x = Self.t([2, 2], [1, 2, 3, 4] as [Float])
        let perAxis = try Self.run(
            "QuantizeLinear", opset: 13, [x, Self.t([2], [1, 2] as [Float]), Self.t([2], [0, 10] as [UInt8])])[0]
        #expect(try perAxis.scalars(as: UInt8.self) == [1, 11, 3, 12])

        // Blocks of 2 along axis 1; the last block is short.
        let row = Self.t([1, 5], [2, 4, 6, 8, 10] as [Float])
        let blocked = try Self.run(
            "QuantizeLinear", opset: 21, [row, Self.t([1, 3], [2, 4, 10] as [Float]), Self.t([1, 3], [0, 1, 2] as [Int16])],
            ["axis": .int(1), "block_size": .int(2)])[0]
        #expect(blocked.dataType == .int16)
        #expect(try blocked.scalars(as: Int16.self) == [1, 2, 3, 3, 3])
    }

    @Test func quantizeInt32AndFloat16Inputs() throws {
        let ints = try Self.run("QuantizeLinear", opset: 21, [Self.t([3], [7, -7, 100_000] as [Int32]), Self.t([], [Float(2)]),
                                                             Self.t([], [UInt16(5)])])[0]
        #expect(try ints.scalars(as: UInt16.self) == [9, 1, 50_005])
        let halves = try Self.run("QuantizeLinear", opset: 19, [Self.t([2], [1.5, -4] as [Float16]), Self.t([], [Float16(0.5)]),
                                                               Self.t([], [Int8(1)])])[0]
        #expect(try halves.scalars(as: Int8.self) == [4, -7])
    }

    @Test func quantizeOutputDtypeAttribute() throws {
        let y = try Self.run("QuantizeLinear", opset: 21, [Self.t([2], [3, -3] as [Float]), Self.t([], [Float(1)])],
                             ["output_dtype": .int(Int(DataType.int8.rawValue))])[0]
        #expect(try y.scalars(as: Int8.self) == [3, -3])
    }

    @Test func quantizeErrors() {
        let x = Self.t([2, 3], [Float](repeating: 1, count: 6))
        #expect(Self.message {
            _ = try Self.run("QuantizeLinear", opset: 13, [x, Self.t([3], [1, 1, 1] as [Float])], ["axis": .int(5)])
        } == "QuantizeLinear: axis 5 is out of range for input rank 2 (expected -2...1)")
        #expect(Self.message {
            _ = try Self.run("QuantizeLinear", opset: 13, [Self.t([1], [Int8(1)]), Self.t([], [Float(1)])])
        } == "QuantizeLinear: x must be float, float16, int32, got int8")
        #expect(Self.message {
            _ = try Self.run("QuantizeLinear", opset: 13, [x, Self.t([2], [1, 1] as [Float])])
        } == "QuantizeLinear: the scale of shape [2] must be a scalar or 1-D of length 3 (input axis 1 of [2,3])")
        #expect(Self.message {
            _ = try Self.run("QuantizeLinear", opset: 21, [x, Self.t([2, 1], [1, 1] as [Float])],
                             ["axis": .int(1), "block_size": .int(2)])
        } == "QuantizeLinear: for blocked quantization of [2,3] along axis 1 with block_size 2 the scale must have shape [2,2], got [2,1]")
        #expect(Self.message {
            _ = try Self.run("QuantizeLinear", opset: 21, [x, Self.t([], [Float(1)]), Self.t([], [UInt8(0)])],
                             ["output_dtype": .int(Int(DataType.int8.rawValue))])
        } == "QuantizeLinear: output_dtype int8 differs from y_zero_point's type uint8")
    }

    // MARK: - DequantizeLinear

    @Test func dequantizePerTensorAndOutputType() throws {
        let x = Self.t([3], [-128, 0, 127] as [Int8])
        let y = try Self.run("DequantizeLinear", opset: 10, [x, Self.t([], [Float(0.5)]), Self.t([], [Int8(-1)])])[0]
        #expect(try y.scalars(as: Float.self) == [-63.5, 0.5, 64])
        let half = try Self.run("DequantizeLinear", opset: 23, [x, Self.t([], [Float(0.5)])],
                                ["output_dtype": .int(Int(DataType.float16.rawValue))])[0]
        #expect(try half.scalars(as: Float16.self) == [-64, 0, 63.5])
    }

    @Test func dequantizePerAxisUInt16AndInt32() throws {
        let x = Self.t([2, 2], [10, 20, 30, 40] as [UInt16])
        let y = try Self.run("DequantizeLinear", opset: 21,
                             [x, Self.t([2], [1, 0.5] as [Float16]), Self.t([2], [0, 4] as [UInt16])], ["axis": .int(0)])[0]
        #expect(y.dataType == .float16)
        #expect(try y.scalars(as: Float16.self) == [10, 20, 13, 18])
        let wide = try Self.run("DequantizeLinear", opset: 13, [Self.t([2], [16_777_217, -3] as [Int32]), Self.t([], [Float(1)])])[0]
        #expect(try wide.scalars(as: Float.self) == [16_777_216, -3])
    }

    @Test func dequantizeErrors() {
        #expect(Self.message {
            _ = try Self.run("DequantizeLinear", opset: 13, [Self.t([1], [Int16(1)]), Self.t([], [Float(1)])])
        } == "DequantizeLinear: x must be int8, uint8, int32, got int16")
        #expect(Self.message {
            _ = try Self.run("DequantizeLinear", opset: 13, [Self.t([1], [Int8(1)]), Self.t([], [Float(1)]), Self.t([], [UInt8(1)])])
        } == "DequantizeLinear: x_zero_point is uint8 but x is int8")
    }

    // MARK: - DynamicQuantizeLinear

    @Test func dynamicQuantize() throws {
        let x = Self.t([6], [0, 2, -3, -2.5, 1.34, 0.5] as [Float])
        let out = try Self.run("DynamicQuantizeLinear", opset: 11, [x], outputs: 3)
        #expect(try out[0].scalars(as: UInt8.self) == [153, 255, 0, 26, 221, 179])
        #expect(try out[1].scalars(as: Float.self) == [Float(5) / 255])
        #expect(try out[2].scalars(as: UInt8.self) == [153])
        #expect(Self.message { _ = try Self.run("DynamicQuantizeLinear", opset: 11, [Self.t([1], [1.0])], outputs: 3) }
                == "DynamicQuantizeLinear: x must be float, got double")
    }

    // MARK: - MatMulInteger, QLinearMatMul

    @Test func matMulInteger() throws {
        let a = Self.t([4, 3], [11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0] as [UInt8])
        let b = Self.t([3, 2], [1, 4, 2, 5, 3, 6] as [UInt8])
        let y = try Self.run("MatMulInteger", opset: 10, [a, b, Self.t([1], [UInt8(12)]), Self.t([1], [UInt8(0)])])[0]
        #expect(y.shape == [4, 2])
        #expect(try y.scalars(as: Int32.self) == [-38, -83, -44, -98, -50, -113, -56, -128])
    }

    @Test func matMulIntegerPerRowZeroPointsAndBatches() throws {
        // Batch of 2 A matrices against one B; per-row A zero points [1, 2].
        let a = Self.t([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8] as [Int8])
        let b = Self.t([2, 1], [1, -1] as [Int8])
        let y = try Self.run("MatMulInteger", opset: 10, [a, b, Self.t([2], [1, 2] as [Int8])])[0]
        #expect(y.shape == [2, 2, 1])
        // Rows minus zero points: [0,1] [1,2] [4,5] [5,6], each times [1,-1].
        #expect(try y.scalars(as: Int32.self) == [-1, -1, -1, -1])
        #expect(Self.message { _ = try Self.run("MatMulInteger", opset: 10, [Self.t([2, 3], [Int8](repeating: 0, count: 6)), b]) }
                == "MatMulInteger: shapes [2,3] and [2,1] do not agree on the inner dimension (3 vs 2)")
    }

    @Test func qLinearMatMulRoundsHalfToEven() throws {
        let inputs: [Tensor?] = [
            Self.t([1, 2], [1, 2] as [UInt8]), Self.t([], [Float(1)]), Self.t([], [UInt8(0)]),
            Self.t([2, 1], [3, 4] as [UInt8]), Self.t([], [Float(1)]), Self.t([], [UInt8(0)]),
            Self.t([], [Float(2)]), Self.t([], [UInt8(0)]),
        ]
        // 1·3 + 2·4 = 11; 11 / 2 = 5.5 → 6.
        #expect(try Self.run("QLinearMatMul", opset: 10, inputs)[0].scalars(as: UInt8.self) == [6])
        var int8 = inputs
        int8[6] = Self.t([], [Float(0.01)])
        int8[7] = Self.t([], [Int8(0)])
        #expect(try Self.run("QLinearMatMul", opset: 21, int8)[0].scalars(as: Int8.self) == [127])
    }

    // MARK: - ConvInteger, QLinearConv

    @Test func convInteger() throws {
        let x = Self.t([1, 1, 3, 3], (2...10).map { UInt8($0) })
        let w = Self.t([1, 1, 2, 2], [1, 1, 1, 1] as [UInt8])
        let y = try Self.run("ConvInteger", opset: 10, [x, w, Self.t([], [UInt8(1)])])[0]
        #expect(y.shape == [1, 1, 2, 2])
        #expect(try y.scalars(as: Int32.self) == [12, 16, 24, 28])
        // Padding reads the zero point, i.e. contributes nothing.
        let padded = try Self.run("ConvInteger", opset: 10, [x, w, Self.t([], [UInt8(1)])], ["pads": .ints([1, 1, 0, 0])])[0]
        #expect(try padded.scalars(as: Int32.self) == [1, 3, 5, 5, 12, 16, 11, 24, 28])
    }

    @Test func qLinearConvWithBiasAndPerChannelScales() throws {
        let x = Self.t([1, 1, 1, 2], [10, 20] as [UInt8])
        let w = Self.t([2, 1, 1, 1], [2, 3] as [Int8])
        let y = try Self.run("QLinearConv", opset: 10, [
            x, Self.t([], [Float(1)]), Self.t([], [UInt8(0)]),
            w, Self.t([2], [1, 0.5] as [Float]), Self.t([2], [0, 1] as [Int8]),
            Self.t([], [Float(2)]), Self.t([], [UInt8(3)]), Self.t([2], [1, -2] as [Int32]),
        ])[0]
        // Channel 0: (20+1)·1/2 = 10.5 → 10, (40+1)/2 = 20.5 → 20; plus 3.
        // Channel 1: (20−2)·0.5/2 = 4.5 → 4, (40−2)·0.5/2 = 9.5 → 10; plus 3.
        #expect(try y.scalars(as: UInt8.self) == [13, 23, 7, 13])
        #expect(Self.message {
            _ = try Self.run("ConvInteger", opset: 10, [x, Self.t([1, 2, 1, 1], [1, 1] as [Int8])])
        } == "ConvInteger: input has 1 channels but weight [1,2,1,1] with group 1 expects 2")
    }

    // MARK: - BitCast, Det

    @Test func bitCast() throws {
        let y = try Self.run("BitCast", opset: 26, [Self.t([2], [1, -2] as [Float])], ["to": .int(Int(DataType.int32.rawValue))])[0]
        #expect(try y.scalars(as: Int32.self) == [0x3F80_0000, Int32(bitPattern: 0xC000_0000)])
        let bools = try Self.run("BitCast", opset: 26, [Self.t([3], [0, 1, 7] as [UInt8])], ["to": .int(Int(DataType.bool.rawValue))])[0]
        #expect(try bools.scalars(as: Bool.self) == [false, true, true])
        #expect(Self.message {
            _ = try Self.run("BitCast", opset: 26, [Self.t([1], [Float(1)])], ["to": .int(Int(DataType.int64.rawValue))])
        } == "BitCast: float (32 bits) and int64 (64 bits) differ in width")
    }

    @Test func determinant() throws {
        let y = try Self.run("Det", opset: 11, [Self.t([2, 2], [1, 2, 3, 4] as [Float])])[0]
        #expect(y.shape == [])
        #expect(try y.scalars(as: Float.self) == [-2])
        let batch = try Self.run("Det", opset: 22, [Self.t([2, 3, 3], [2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 1, 0, 1, 0, 0, 0, 0, 1] as [Double])])[0]
        #expect(try batch.scalars(as: Double.self) == [24, -1])
        let singular = try Self.run("Det", opset: 22, [Self.t([2, 2], [1, 2, 2, 4] as [Float16])])[0]
        #expect(try singular.scalars(as: Float16.self) == [0])
        #expect(Self.message { _ = try Self.run("Det", opset: 22, [Self.t([2, 3], [Float](repeating: 1, count: 6))]) }
                == "Det: input must be [*, M, M], got [2,3]")
        #expect(Self.message { _ = try Self.run("Det", opset: 22, [Self.t([1, 1], [Int32(1)])]) }
                == "Det: X must be float, double, float16, got int32")
    }
}
