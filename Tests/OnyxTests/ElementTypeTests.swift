import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// bfloat16, the float8 formats, float4e2m1 and the 4- and 2-bit integers: conversions against
/// hand-checked bit patterns, TensorProto packing, QuantizeLinear / DequantizeLinear, and errors.
@Suite struct ElementTypeTests {
    // MARK: - Helpers

    static func run(
        _ op: String, opset: Int, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:]
    ) throws -> Tensor {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: ["y"], attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs)[0]
    }

    static func floats(_ values: [Float]) -> Tensor { try! Tensor(shape: [values.count], scalars: values) }

    /// The bit patterns of `values` cast to `type` by the Cast operator.
    static func cast(_ values: [Float], to type: DataType, saturate: Bool = true) throws -> [UInt16] {
        let y = try run("Cast", opset: 21, [floats(values)], ["to": .int(Int(type.rawValue)), "saturate": .int(saturate ? 1 : 0)])
        return Self.patterns(y)
    }

    /// The stored elements of `t` (1 or 2 bytes each) as integers.
    static func patterns(_ t: Tensor) -> [UInt16] {
        t.withUnsafeBytes { bytes in
            t.dataType.byteWidth == 2 ? Array(bytes.bindMemory(to: UInt16.self)) : bytes.map { UInt16($0) }
        }
    }

    /// A tensor of `type` holding the bit patterns (or unpacked bytes) `bits`.
    static func tensor(_ type: DataType, _ bits: [UInt16], shape: [Int]? = nil) -> Tensor {
        let shape = shape ?? [bits.count]
        if type.byteWidth == 2 { return bits.withUnsafeBytes { try! Tensor(dataType: type, shape: shape, bytes: $0) } }
        return bits.map { UInt8(truncatingIfNeeded: $0) }.withUnsafeBytes { try! Tensor(dataType: type, shape: shape, bytes: $0) }
    }

    static func values(_ t: Tensor) throws -> [Float] { try Tensor(converting: t, to: .float).scalars(as: Float.self) }

    static func message(_ body: () throws -> Void) -> String {
        do { try body() } catch let error as OnyxError { return error.message } catch { return "\(error)" }
        return "no error"
    }

    // MARK: - float8

    @Test func float8E4M3FN() throws {
        // 464 is halfway between 448 (mantissa 110) and 480: ties to even. 2^-10 is halfway between 0
        // and the smallest subnormal 2^-9.
        #expect(try Self.cast([1, 448, 464, 0.1, 0x1p-9, 0x1p-10, 0x1.8p-10, -0.0], to: .float8e4m3fn)
                == [0x38, 0x7E, 0x7E, 0x1D, 0x01, 0x00, 0x01, 0x80])
        // Saturating: beyond 448 and ±∞ become ±448; NaN keeps its sign.
        #expect(try Self.cast([465, 1e6, .infinity, -.infinity, .nan, -.nan], to: .float8e4m3fn) == [0x7E, 0x7E, 0x7E, 0xFE, 0x7F, 0xFF])
        // Not saturating: NaN (no infinities in this format).
        #expect(try Self.cast([465, 480, .infinity, -.infinity, -1e6], to: .float8e4m3fn, saturate: false) == [0x7F, 0x7F, 0x7F, 0xFF, 0xFF])
        let decoded = try Self.values(Self.tensor(.float8e4m3fn, [0x38, 0x7E, 0xFE, 0x01, 0x08, 0x80, 0x7F, 0xFF]))
        #expect(Array(decoded[0..<6]) == [1, 448, -448, 0x1p-9, 0x1p-6, 0])
        #expect(decoded[5].sign == .minus && decoded[6].isNaN && decoded[7].isNaN)
    }

    @Test func float8E4M3FNUZ() throws {
        // Bias 8: 1 is 0x40, 240 the largest; 248 ties up to 256, past the range.
        #expect(try Self.cast([1, 240, 247, 0x1p-10, 0x1p-11], to: .float8e4m3fnuz) == [0x40, 0x7F, 0x7F, 0x01, 0x00])
        // No negative zero: −0 and negatives that round to zero are +0; the only NaN is 0x80.
        #expect(try Self.cast([-0.0, -0x1p-20, .nan, -.nan], to: .float8e4m3fnuz) == [0x00, 0x00, 0x80, 0x80])
        #expect(try Self.cast([-1, -0x1p-10, -240], to: .float8e4m3fnuz) == [0xC0, 0x81, 0xFF])
        #expect(try Self.cast([248, .infinity, -.infinity], to: .float8e4m3fnuz) == [0x7F, 0x7F, 0xFF])
        #expect(try Self.cast([248, .infinity, -.infinity], to: .float8e4m3fnuz, saturate: false) == [0x80, 0x80, 0x80])
        let decoded = try Self.values(Self.tensor(.float8e4m3fnuz, [0x40, 0xFF, 0x00, 0x80]))
        #expect(Array(decoded[0..<3]) == [1, -240, 0] && decoded[3].isNaN)
    }

    @Test func float8E5M2() throws {
        // IEEE-like with bias 15: 57344 is the largest finite value, 61440 ties up to 65536.
        #expect(try Self.cast([1, 57344, 61439, 0x1p-16, 0x1p-17, 0x1.8p-16], to: .float8e5m2) == [0x3C, 0x7B, 0x7B, 0x01, 0x00, 0x02])
        #expect(try Self.cast([61440, .infinity, -.infinity, .nan], to: .float8e5m2) == [0x7B, 0x7B, 0xFB, 0x7E])
        #expect(try Self.cast([61440, .infinity, -.infinity, -.nan], to: .float8e5m2, saturate: false) == [0x7C, 0x7C, 0xFC, 0xFE])
        let decoded = try Self.values(Self.tensor(.float8e5m2, [0x3C, 0x7C, 0xFC, 0x7D, 0x80]))
        #expect(Array(decoded[0..<3]) == [1, .infinity, -.infinity] && decoded[3].isNaN && decoded[4] == 0)
    }

    @Test func float8E5M2FNUZ() throws {
        #expect(try Self.cast([1, 57344, 0x1p-17, -0.0, .nan, -1], to: .float8e5m2fnuz) == [0x40, 0x7F, 0x01, 0x00, 0x80, 0xC0])
        #expect(try Self.cast([61440, -.infinity], to: .float8e5m2fnuz) == [0x7F, 0xFF])
        #expect(try Self.cast([61440, -.infinity], to: .float8e5m2fnuz, saturate: false) == [0x80, 0x80])
        #expect(try Self.values(Self.tensor(.float8e5m2fnuz, [0x40, 0x7F, 0x01])) == [1, 57344, 0x1p-17])
    }

    /// Every float8 pattern converts to float and back unchanged (NaNs to a NaN).
    @Test(arguments: [DataType.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz])
    func float8PatternsRoundTrip(type: DataType) throws {
        let all = Self.tensor(type, (0..<256).map { UInt16($0) })
        let wide = try Self.values(all)
        let back = Self.patterns(try Tensor(converting: Self.floats(wide), to: type, saturate: false))
        for bits in 0..<256 where !wide[bits].isNaN {
            #expect(back[bits] == UInt16(bits), "\(type) \(String(bits, radix: 16)) → \(wide[bits])")
        }
        // Through float16 and double too.
        for via in [DataType.float16, .double] {
            let round = try Tensor(converting: try Tensor(converting: all, to: via), to: .float)
            #expect(try round.scalars(as: Float.self).map(\.bitPattern) == wide.map(\.bitPattern), "\(type) via \(via)")
        }
    }

    // MARK: - bfloat16

    @Test func bfloat16RoundsToNearestEven() throws {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1; 1 + 3·2^-8 ties up to 1 + 2^-6.
        #expect(try Self.cast([1, 1 + 0x1p-8, 1 + 0x3p-8, 1 + 0x1p-8 + 0x1p-20, -2.5, 3.4028235e38], to: .bfloat16)
                == [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC020, 0x7F80])
        // NaN stays NaN (a signalling payload lost in the top bits becomes a quiet NaN), sign kept.
        let nans = Self.floats([Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC0_0000), .infinity])
        #expect(Self.patterns(try Tensor(converting: nans, to: .bfloat16)) == [0x7FC0, 0xFFC0, 0x7F80])
        // From double in one rounding: via float, 1 + 2^-8 + 2^-40 would first become the tie 1 + 2^-8.
        let double = try Tensor(shape: [1], scalars: [1 + 0x1p-8 + 0x1p-40])
        #expect(Self.patterns(try Tensor(converting: double, to: .bfloat16)) == [0x3F81])
        // Integers round too: 257 is halfway between 256 and 258.
        let ints = try Tensor(shape: [3], scalars: [Int32(257), 259, -1])
        #expect(try Self.values(try Tensor(converting: ints, to: .bfloat16)) == [256, 260, -1])
        #expect(try Self.values(Self.tensor(.bfloat16, [0x3F80, 0xC020, 0x0001])) == [1, -2.5, Float(bitPattern: 0x0001_0000)])
        // bfloat16 → float16 rounds once; large values overflow to infinity.
        let half = try Tensor(converting: Self.tensor(.bfloat16, [0x3F81, 0x4780]), to: .float16).scalars(as: Float16.self)
        #expect(half == [1.0078125, .infinity])
    }

    // MARK: - float4e2m1

    @Test func float4E2M1Table() throws {
        #expect(try Self.values(Self.tensor(.float4e2m1, (0..<16).map { UInt16($0) }))
                == [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])
        // Halfway values go to the even pattern; beyond ±6 (±∞ too) saturate, whatever `saturate`
        // says; NaN is +6 as the specification's table says.
        let x: [Float] = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 5.01, 7, 100, -.infinity, .nan, -0.1]
        let expected: [UInt16] = [0x0, 0x2, 0x2, 0x4, 0x4, 0x6, 0x6, 0x7, 0x7, 0x7, 0xF, 0x7, 0x8]
        #expect(try Self.cast(x, to: .float4e2m1) == expected)
        #expect(try Self.cast(x, to: .float4e2m1, saturate: false) == expected)
    }

    // MARK: - float8e8m0

    @Test func float8E8M0() throws {
        func e8m0(_ values: [Float], saturate: Bool = true, mode: String = "up") throws -> [UInt16] {
            Self.patterns(try Self.run("Cast", opset: 25, [Self.floats(values)],
                                       ["to": .int(24), "saturate": .int(saturate ? 1 : 0), "round_mode": .string(mode)]))
        }
        #expect(try e8m0([1, 0.124, 1.1, 2, 0x1p127, 0x1p-127]) == [0x7F, 0x7C, 0x80, 0x80, 0xFE, 0x00])
        #expect(try e8m0([1.1, 1.9], mode: "down") == [0x7F, 0x7F])
        #expect(try e8m0([1.4, 1.5, 3], mode: "nearest") == [0x7F, 0x80, 0x81])
        #expect(try e8m0([0, .infinity, .nan, 0x1.8p127]) == [0x00, 0xFE, 0xFF, 0xFE])
        #expect(try e8m0([0, .infinity, 0x1.8p127], saturate: false) == [0xFF, 0xFF, 0xFF])
        let decoded = try Self.values(Self.tensor(.float8e8m0, [0x7F, 0x00, 0xFE, 0xFF]))
        #expect(Array(decoded[0..<3]) == [1, 0x1p-127, 0x1p127] && decoded[3].isNaN)
    }

    // MARK: - 4- and 2-bit integers

    @Test func subByteIntegersWrapAndSignExtend() throws {
        // Cast keeps the low bits of the value truncated toward zero, as ONNX's reference does.
        let x = Self.floats([-9, -8, 7, 8, 15.9, -0.5, 1e10])
        #expect(Self.patterns(try Self.run("Cast", opset: 21, [x], ["to": .int(22)])).map { Int8(truncatingIfNeeded: $0) }
                == [7, -8, 7, -8, -1, 0, 0])
        #expect(Self.patterns(try Self.run("Cast", opset: 21, [x], ["to": .int(21)])) == [7, 8, 7, 8, 15, 0, 0])
        #expect(Self.patterns(try Self.run("Cast", opset: 25, [x], ["to": .int(26)])).map { Int8(truncatingIfNeeded: $0) }
                == [-1, 0, -1, 0, -1, 0, 0])
        #expect(Self.patterns(try Self.run("Cast", opset: 25, [x], ["to": .int(25)])) == [3, 0, 3, 0, 3, 0, 0])
        // The byte holds the value: int4 → int8 and → float read it as such.
        let int4 = Self.tensor(.int4, [0xF8, 0x07, 0xFF])  // −8, 7, −1
        #expect(try Tensor(converting: int4, to: .int8).scalars(as: Int8.self) == [-8, 7, -1])
        #expect(try Self.values(int4) == [-8, 7, -1])
        // BitCast reinterprets the 4 bits.
        let bits = try Self.run("BitCast", opset: 26, [int4], ["to": .int(21)])
        #expect(bits.dataType == .uint4 && Self.patterns(bits) == [8, 7, 15])
        #expect(Self.message { _ = try Self.run("BitCast", opset: 26, [int4], ["to": .int(3)]) }.contains("differ in width"))
        // Bytes given for an unpacked type must hold elements of it.
        let wrong = Self.message { _ = try [UInt8(9)].withUnsafeBytes { try Tensor(dataType: .int4, shape: [1], bytes: $0) } }
        #expect(wrong.contains("byte 0 is 9, out of range for int4 (-8...7)"), "\(wrong)")
        #expect(throws: OnyxError.self) { try [UInt8(4)].withUnsafeBytes { try Tensor(dataType: .uint2, shape: [1], bytes: $0) } }
    }

    // MARK: - TensorProto packing

    /// A serialized TensorProto named "w": dims, data_type, then raw_data or int32_data.
    static func proto(_ dims: [Int], _ type: DataType, raw: [UInt8]? = nil, int32: [Int32]? = nil) -> [UInt8] {
        func varint(_ value: UInt64) -> [UInt8] {
            var v = value, out: [UInt8] = []
            repeat {
                out.append(UInt8(v & 0x7F) | (v > 0x7F ? 0x80 : 0))
                v >>= 7
            } while v > 0
            return out
        }
        var bytes: [UInt8] = []
        for d in dims { bytes += [0x08] + varint(UInt64(d)) }
        bytes += [0x10] + varint(UInt64(type.rawValue))
        if let int32 {
            let packed = int32.flatMap { varint(UInt64(bitPattern: Int64($0))) }
            bytes += [0x2A] + varint(UInt64(packed.count)) + packed
        }
        bytes += [0x42, 0x01, UInt8(ascii: "w")]
        if let raw { bytes += [0x4A] + varint(UInt64(raw.count)) + raw }
        return bytes
    }

    @Test func int4PacksLowNibbleFirst() throws {
        let values: [Int8] = [-8, 7, -1, 0, 3]
        let t = Self.tensor(.int4, values.map { UInt16(UInt8(bitPattern: $0)) })
        // Two to a byte, first element low: 0x78, 0x0F, then 0x03 with a zero pad nibble.
        let encoded = t.onnxTensorProtoBytes(name: "w")
        #expect(encoded.windows(ofCount: 5).contains([0x4A, 0x03, 0x78, 0x0F, 0x03]))
        let decoded = try Tensor.decodeTensorProto(encoded).tensor
        #expect(decoded.dataType == .int4 && Self.patterns(decoded) == Self.patterns(t))
        // The same packed bytes in int32_data, one entry per byte.
        let typed = try Tensor.decodeTensorProto(Self.proto([5], .int4, int32: [0x78, 0x0F, 0x03])).tensor
        #expect(try Tensor(converting: typed, to: .int8).scalars(as: Int8.self) == values)
        // uint4, float4e2m1 and the 2-bit types (four to a byte) the same way.
        #expect(Self.patterns(try Tensor.decodeTensorProto(Self.proto([3], .uint4, raw: [0xA5, 0x0F])).tensor) == [5, 10, 15])
        #expect(try Self.values(try Tensor.decodeTensorProto(Self.proto([2], .float4e2m1, raw: [0xF7])).tensor) == [6, -6])
        #expect(Self.patterns(try Tensor.decodeTensorProto(Self.proto([4], .uint2, raw: [0b11_10_01_00])).tensor) == [0, 1, 2, 3])
        let int2 = try Tensor.decodeTensorProto(Self.proto([5], .int2, raw: [0b11_10_01_00, 0b10])).tensor
        #expect(try Tensor(converting: int2, to: .int8).scalars(as: Int8.self) == [0, 1, -2, -1, -2])
        #expect(int2.onnxTensorProtoBytes(name: "w").windows(ofCount: 4).contains([0x4A, 0x02, 0b11_10_01_00, 0b10]))
        // bfloat16 and float8 keep one bit pattern per int32_data entry.
        #expect(try Self.values(try Tensor.decodeTensorProto(Self.proto([2], .bfloat16, int32: [0x3F80, 0xC020])).tensor) == [1, -2.5])
        #expect(try Self.values(try Tensor.decodeTensorProto(Self.proto([1], .float8e5m2, int32: [0x3C])).tensor) == [1])
    }

    @Test func malformedPackedDataNamesTheTensor() {
        let short = Self.message { _ = try Tensor.decodeTensorProto(Self.proto([5], .int4, raw: [1, 2, 3, 4, 5])) }
        #expect(short == "tensor 'w': raw data holds 5 bytes but shape [5] of int4 needs 3, packed 2 to a byte", "\(short)")
        let range = Self.message { _ = try Tensor.decodeTensorProto(Self.proto([2], .int4, int32: [256])) }
        #expect(range.hasPrefix("tensor 'w': int32_data[0] = 256 is out of range for int4"), "\(range)")
        let negative = Self.message { _ = try Tensor.decodeTensorProto(Self.proto([2], .uint4, int32: [-1])) }
        #expect(negative.contains("int32_data[0] = -1 is out of range for uint4"), "\(negative)")
        let count = Self.message { _ = try Tensor.decodeTensorProto(Self.proto([5], .int2, int32: [1])) }
        #expect(count.contains("int32_data holds 1 values but shape [5] of int2 needs 2"), "\(count)")
        let pattern = Self.message { _ = try Tensor.decodeTensorProto(Self.proto([1], .float8e4m3fn, int32: [300])) }
        #expect(pattern.contains("int32_data[0] = 300 is not a float8e4m3fn bit pattern"), "\(pattern)")
    }

    // MARK: - QuantizeLinear / DequantizeLinear

    @Test func quantizeToFourAndTwoBitIntegers() throws {
        let x = Self.floats([-20, -8.4, 0.5, 1.5, 6.6, 100])
        let int4 = try Self.run("QuantizeLinear", opset: 21, [x, Self.floats([1]), Self.tensor(.int4, [0])])
        #expect(int4.dataType == .int4)
        #expect(try Tensor(converting: int4, to: .int8).scalars(as: Int8.self) == [-8, -8, 0, 2, 7, 7])
        // Zero point 8, scale 2: −1.5 rounds to −2, 1.5 to 2 (ties to even).
        let uint4 = try Self.run("QuantizeLinear", opset: 21, [Self.floats([-100, -3, 3, 100]), Self.floats([2]), Self.tensor(.uint4, [8])])
        #expect(Self.patterns(uint4) == [0, 6, 10, 15])
        let int2 = try Self.run("QuantizeLinear", opset: 25, [x, Self.floats([1])], ["output_dtype": .int(26)])
        #expect(try Tensor(converting: int2, to: .int8).scalars(as: Int8.self) == [-2, -2, 0, 1, 1, 1])
        // bfloat16 x and scale: the division is in bfloat16.
        let bx = try Tensor(converting: Self.floats([3, -3]), to: .bfloat16)
        let q = try Self.run("QuantizeLinear", opset: 21, [bx, try Tensor(converting: Self.floats([2]), to: .bfloat16), Self.tensor(.int4, [0])])
        #expect(try Tensor(converting: q, to: .int8).scalars(as: Int8.self) == [2, -2])
        // precision bfloat16: 2.505 becomes 2.5 before rounding, which ties to 2; in float it rounds to 3.
        let precise = try Self.run("QuantizeLinear", opset: 23, [Self.floats([2.505]), Self.floats([1])], ["output_dtype": .int(3)])
        let coarse = try Self.run("QuantizeLinear", opset: 23, [Self.floats([2.505]), Self.floats([1])], ["output_dtype": .int(3), "precision": .int(16)])
        #expect(try precise.scalars(as: Int8.self) == [3] && coarse.scalars(as: Int8.self) == [2])
    }

    @Test func quantizeToFloat8AndFloat4() throws {
        let x = Self.floats([1000, -1000, 0.1, .nan])
        let zero = Self.tensor(.float8e4m3fn, [0])
        #expect(Self.patterns(try Self.run("QuantizeLinear", opset: 19, [x, Self.floats([2]), zero])) == [0x7E, 0xFE, 0x15, 0x7F])
        #expect(Self.patterns(try Self.run("QuantizeLinear", opset: 19, [x, Self.floats([2]), zero], ["saturate": .int(0)]))
                == [0x7F, 0xFF, 0x15, 0x7F])
        let e5m2 = try Self.run("QuantizeLinear", opset: 21, [x, Self.floats([2])], ["output_dtype": .int(19), "saturate": .int(0)])
        #expect(Self.patterns(e5m2) == [0x60, 0xE0, 0x2A, 0x7E])
        let fp4 = try Self.run("QuantizeLinear", opset: 23, [Self.floats([0.25, 0.75, 5, 7, -100]), Self.floats([1])], ["output_dtype": .int(23)])
        #expect(Self.patterns(fp4) == [0x0, 0x2, 0x6, 0x7, 0xF])
    }

    @Test func dequantizeNarrowTypes() throws {
        let e4m3 = try Self.run("DequantizeLinear", opset: 19, [Self.tensor(.float8e4m3fn, [0x38, 0x7E, 0xFE, 0x7F]), Self.floats([0.5])])
        let y = try e4m3.scalars(as: Float.self)
        #expect(Array(y[0..<3]) == [0.5, 224, -224] && y[3].isNaN)
        // Per axis, int4 with int4 zero points.
        let x = Self.tensor(.int4, [0xF8, 0x07, 0x01, 0xFF], shape: [2, 2])
        let perAxis = try Self.run("DequantizeLinear", opset: 21, [x, Self.floats([1, 2]), Self.tensor(.int4, [0, 1])], ["axis": .int(0)])
        #expect(try perAxis.scalars(as: Float.self) == [-8, 7, 0, -4])
        // Blocked along axis 1, blocks of 2, uint4.
        let blocked = try Self.run(
            "DequantizeLinear", opset: 21,
            [Self.tensor(.uint4, [1, 2, 3, 4], shape: [1, 4]), try Tensor(shape: [1, 2], scalars: [Float(1), 10]),
             Self.tensor(.uint4, [1, 2], shape: [1, 2])],
            ["axis": .int(1), "block_size": .int(2)])
        #expect(try blocked.scalars(as: Float.self) == [0, 1, 10, 20])
        // Into bfloat16: 3 · 0.1 rounds to 0x3E9A.
        let bf16 = try Self.run("DequantizeLinear", opset: 23, [try Tensor(shape: [1], scalars: [Int8(3)]), Self.floats([0.1])],
                                ["output_dtype": .int(16)])
        #expect(bf16.dataType == .bfloat16 && Self.patterns(bf16) == [0x3E9A])
        // float4e2m1, a float8e8m0 scale (2^-1) and uint2.
        let fp4 = try Self.run("DequantizeLinear", opset: 24, [Self.tensor(.float4e2m1, [0x7, 0xF]), Self.tensor(.float8e8m0, [0x7E])],
                               ["output_dtype": .int(1)])
        #expect(try fp4.scalars(as: Float.self) == [3, -3])
        let uint2 = try Self.run("DequantizeLinear", opset: 25, [Self.tensor(.uint2, [0, 3]), Self.floats([2]), Self.tensor(.uint2, [1])])
        #expect(try uint2.scalars(as: Float.self) == [-2, 4])
    }

    @Test func quantizationErrors() {
        let x = Self.floats([1])
        // Types arrive with their opsets: int4 at 21, float4e2m1 at 23, int2 at 25.
        #expect(Self.message { _ = try Self.run("QuantizeLinear", opset: 19, [x, x, Self.tensor(.int4, [0])]) }
            .contains("y_zero_point must be int8, uint8, float8e4m3fn"))
        #expect(Self.message { _ = try Self.run("QuantizeLinear", opset: 21, [x, x], ["output_dtype": .int(23)]) }
            .contains("output_dtype float4e2m1 is not one of"))
        #expect(Self.message { _ = try Self.run("DequantizeLinear", opset: 23, [Self.tensor(.int2, [0]), x]) }
            .contains("x must be int8, uint8"))
        #expect(Self.message { _ = try Self.run("DequantizeLinear", opset: 24, [Self.tensor(.int4, [0]), Self.tensor(.float8e8m0, [0x7F])]) }
            == "DequantizeLinear: a float8e8m0 x_scale needs output_dtype (float, float16 or bfloat16)")
        #expect(Self.message { _ = try Self.run("DequantizeLinear", opset: 21, [Self.tensor(.int4, [0]), x, Self.tensor(.uint4, [0])]) }
            == "DequantizeLinear: x_zero_point is uint4 but x is int4")
    }

    // MARK: - Operators that do not compute in these types

    @Test func otherOperatorsRefuseThemWhilePlanning() throws {
        let e4m3 = Self.tensor(.float8e4m3fn, [0x38, 0x40])
        let relu = Self.message { _ = try Self.run("Relu", opset: 14, [e4m3]) }
        #expect(relu.contains("node 'n' (Relu) does not support float8e4m3fn"), "\(relu)")
        // TopK's kernel would otherwise read the bytes as some other type.
        #expect(Self.message { _ = try Self.run("TopK", opset: 11, [e4m3, try Tensor(shape: [1], scalars: [Int64(1)])]) }
            .contains("does not support float8e4m3fn"))
        let bf16 = try Tensor(converting: Self.floats([1, 3, 2]), to: .bfloat16)
        #expect(Self.message { _ = try Self.run("LayerNormalization", opset: 17, [bf16, bf16, bf16]) }
            .contains("does not support bfloat16"))
        // Moving elements works for every type.
        let moved = try Self.run("Transpose", opset: 13, [Self.tensor(.int4, [0xF8, 1, 2, 3], shape: [2, 2])])
        #expect(moved.dataType == .int4 && Self.patterns(moved) == [0xF8, 2, 1, 3])
        let gathered = try Self.run("Gather", opset: 13, [e4m3, try Tensor(shape: [3], scalars: [Int64(1), 0, 1])])
        #expect(Self.patterns(gathered) == [0x40, 0x38, 0x40])
    }

    /// A session refuses them too, before a kernel reads a constant (Gemm packs its weights as it is
    /// made; TopK on constants is folded while the session is made); a bfloat16 graph runs.
    @Test func sessionsRefuseThemOutsideTheOperatorsThatTakeThem() throws {
        func model(_ node: Node, initializers: [(name: String, tensor: Tensor)], input: DataType) -> Model {
            Model(opsetImports: ["": 21], graph: Graph(
                name: "g", nodes: [node], inputs: [Value(name: "x", type: TensorType(dataType: input, shape: Shape([.fixed(2), .fixed(2)])))],
                outputs: [Value(name: "y", type: nil)], initializers: initializers))
        }
        let weights = Self.tensor(.float8e4m3fn, [0x38, 0x40, 0x48, 0x50], shape: [2, 2])
        let gemm = model(Node(name: "gemm", opType: "Gemm", inputs: ["x", "w"], outputs: ["y"]), initializers: [("w", weights)], input: .float)
        let refusal = Self.message { _ = try InferenceSession(model: gemm) }
        #expect(refusal.contains("node 'gemm' (Gemm) does not support float8e4m3fn"), "\(refusal)")
        let topK = model(Node(name: "top", opType: "TopK", inputs: ["w", "k"], outputs: ["y", "i"]),
                         initializers: [("w", weights), ("k", try Tensor(shape: [1], scalars: [Int64(1)]))], input: .float)
        #expect(Self.message { _ = try InferenceSession(model: topK) }.contains("(TopK) does not support float8e4m3fn"))
        // The same Gemm in bfloat16 runs, in float32 inside.
        let bf16 = model(Node(name: "gemm", opType: "Gemm", inputs: ["x", "w"], outputs: ["y"]),
                         initializers: [("w", try Tensor(converting: weights, to: .bfloat16))], input: .bfloat16)
        let x = try Tensor(converting: try Tensor(shape: [2, 2], scalars: [Float(1), 0, 0, 1]), to: .bfloat16)
        let y = try #require(try InferenceSession(model: bf16).run(["x": x])["y"])
        #expect(try y.dataType == .bfloat16 && Self.values(y) == [1, 2, 4, 8])
    }

    /// Operators without bfloat16 loops compute it in float32 and round each result once.
    @Test func bfloat16ComputesThroughFloat() throws {
        let a = try Tensor(converting: Self.floats([1, 3, -2.5]), to: .bfloat16)
        let b = try Tensor(converting: Self.floats([0x1p-8, 1, 2]), to: .bfloat16)
        // 1 + 2^-8 ties to 1; 3 + 1 and −2.5 + 2 are exact.
        let sum = try Self.run("Add", opset: 14, [a, b])
        #expect(sum.dataType == .bfloat16 && Self.patterns(sum) == [0x3F80, 0x4080, 0xBF00])
        let relu = try Self.run("Relu", opset: 14, [a])
        #expect(try Self.values(relu) == [1, 3, 0])
        let product = try Self.run("MatMul", opset: 13, [try Tensor(converting: try Tensor(shape: [1, 3], scalars: [Float(1), 2, 3]), to: .bfloat16),
                                                          try Tensor(converting: try Tensor(shape: [3, 1], scalars: [Float(4), 5, 6]), to: .bfloat16)])
        #expect(product.dataType == .bfloat16 && product.shape == [1, 1])
        #expect(try Self.values(product) == [32])
        let less = try Self.run("Less", opset: 13, [a, b])
        #expect(try less.scalars(as: Bool.self) == [false, false, true])
        // float16 and double keep their own loops: nothing staged but bfloat16.
        #expect(try Self.run("Add", opset: 14, [try Tensor(converting: a, to: .float16), try Tensor(converting: b, to: .float16)]).dataType == .float16)
    }

    @Test func isNaNAndIsInfReadFloat8() throws {
        let e5m2 = Self.tensor(.float8e5m2, [0x3C, 0x7C, 0x7E, 0xFC])  // 1, ∞, NaN, −∞
        #expect(try Self.run("IsNaN", opset: 20, [e5m2]).scalars(as: Bool.self) == [false, false, true, false])
        #expect(try Self.run("IsInf", opset: 20, [e5m2]).scalars(as: Bool.self) == [false, true, false, true])
        #expect(try Self.run("IsNaN", opset: 20, [Self.tensor(.float8e4m3fnuz, [0x80, 0x00])]).scalars(as: Bool.self) == [true, false])
    }

    @Test func stringsCastThroughFloat() throws {
        let texts = try Tensor(strings: ["1.5", "-448", "1e9"], shape: [3])
        let e4m3 = try Self.run("Cast", opset: 19, [texts], ["to": .int(17)])
        #expect(Self.patterns(e4m3) == [0x3C, 0xFE, 0x7E])
        let back = try Self.run("Cast", opset: 19, [try Tensor(converting: Self.floats([1.5, -6]), to: .bfloat16)], ["to": .int(8)])
        #expect(try back.strings() == ["1.5", "-6.0"])
    }
}

extension Array where Element == UInt8 {
    /// Every run of `count` consecutive elements.
    fileprivate func windows(ofCount count: Int) -> [[UInt8]] {
        count > self.count ? [] : (0...(self.count - count)).map { Array(self[$0..<($0 + count)]) }
    }
}
