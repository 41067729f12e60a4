/// The element type of a tensor. Raw values are ONNX's `TensorProto.DataType` codes.
public enum DataType: Int32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// 32-bit IEEE float (`Float`).
    case float = 1
    /// Unsigned 8-bit integer (`UInt8`).
    case uint8 = 2
    /// Text (`String`). Each element is stored as an 8-byte handle into a ``StringTable``; read
    /// and make such tensors with ``Tensor/strings()`` and ``Tensor/init(strings:shape:)``.
    case string = 8
    /// Signed 8-bit integer (`Int8`).
    case int8 = 3
    /// Unsigned 16-bit integer (`UInt16`).
    case uint16 = 4
    /// Signed 16-bit integer (`Int16`).
    case int16 = 5
    /// Signed 32-bit integer (`Int32`).
    case int32 = 6
    /// Signed 64-bit integer (`Int64`).
    case int64 = 7
    /// Boolean, one byte per element (`Bool`).
    case bool = 9
    /// 16-bit IEEE half-precision float (`Float16`).
    case float16 = 10
    /// 64-bit IEEE float (`Double`).
    case double = 11
    /// Unsigned 32-bit integer (`UInt32`).
    case uint32 = 12
    /// Unsigned 64-bit integer (`UInt64`).
    case uint64 = 13

    // The types below have no Swift element type: make and read such tensors by converting
    // (`Tensor(converting:to:)` in Onyx, a Cast node in a model) or as raw bytes, each element
    // stored as described. The types narrower than a byte are unpacked, one element per byte, so
    // every kernel that only moves elements treats them as 1-byte elements; ONNX packs them
    // (TensorProto `raw_data`, `int32_data`, external data), and only decoding and encoding
    // TensorProtos packs and unpacks them (see ``bitWidth``).

    /// Brain float: float32's sign and 8-bit exponent with a 7-bit mantissa, stored as its
    /// 16-bit pattern (the upper half of the float32 with the same value).
    case bfloat16 = 16
    /// 8-bit float E4M3FN (sign, 4-bit exponent with bias 7, 3-bit mantissa): no infinities,
    /// `S.1111.111` is NaN, largest finite value 448. Stored as its bit pattern.
    case float8e4m3fn = 17
    /// 8-bit float E4M3FNUZ (exponent bias 8): no infinities and no negative zero; the one NaN
    /// is `0x80`; largest finite value 240. Stored as its bit pattern.
    case float8e4m3fnuz = 18
    /// 8-bit float E5M2 (sign, 5-bit exponent with bias 15, 2-bit mantissa): IEEE-style
    /// infinities and NaNs, largest finite value 57344. Stored as its bit pattern.
    case float8e5m2 = 19
    /// 8-bit float E5M2FNUZ (exponent bias 16): no infinities and no negative zero; the one NaN
    /// is `0x80`; largest finite value 57344. Stored as its bit pattern.
    case float8e5m2fnuz = 20
    /// Unsigned 4-bit integer, 0…15. Stored unpacked, one `UInt8` per element; ONNX files pack
    /// two to a byte.
    case uint4 = 21
    /// Signed 4-bit integer, −8…7. Stored unpacked, one sign-extended `Int8` per element; ONNX
    /// files pack two to a byte.
    case int4 = 22
    /// 4-bit float E2M1 (sign, 2-bit exponent with bias 1, 1-bit mantissa): ±0, ±0.5, ±1, ±1.5,
    /// ±2, ±3, ±4, ±6; no infinities or NaN. Stored unpacked, the 4-bit pattern in the low half
    /// of one byte per element (the high half zero); ONNX files pack two to a byte.
    case float4e2m1 = 23
    /// 8-bit scale E8M0: an unsigned power of two 2^(bits − 127), 2^−127…2^127, with `0xFF` NaN;
    /// no zero, no sign. Stored as its bit pattern.
    case float8e8m0 = 24
    /// Unsigned 2-bit integer, 0…3. Stored unpacked, one `UInt8` per element; ONNX files pack
    /// four to a byte.
    case uint2 = 25
    /// Signed 2-bit integer, −2…1. Stored unpacked, one sign-extended `Int8` per element; ONNX
    /// files pack four to a byte.
    case int2 = 26

    /// Bytes per element in memory (1 for the types narrower than a byte, which are stored
    /// unpacked).
    @inlinable
    public var byteWidth: Int {
        switch self {
        case .bool, .int8, .uint8: 1
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0: 1
        case .int4, .uint4, .float4e2m1, .int2, .uint2: 1
        case .float16, .bfloat16, .int16, .uint16: 2
        case .float, .int32, .uint32: 4
        case .double, .int64, .uint64, .string: 8
        }
    }

    /// Bits per element in ONNX's serialized form: 4 for int4, uint4 and float4e2m1 and 2 for
    /// int2 and uint2, which TensorProto packs (two or four to a byte, the first element in the
    /// least significant bits); otherwise `8 × byteWidth`.
    public var bitWidth: Int {
        switch self {
        case .int4, .uint4, .float4e2m1: 4
        case .int2, .uint2: 2
        default: byteWidth * 8
        }
    }

    /// The bytes `count` elements take in ONNX's packed serialized form (see ``bitWidth``).
    package func packedByteCount(_ count: Int) -> Int {
        bitWidth >= 8 ? count * byteWidth : (count * bitWidth + 7) / 8
    }

    /// ONNX's name for the type (`tensor(float)` uses `float`).
    public var onnxName: String {
        switch self {
        case .float: "float"
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .int32: "int32"
        case .int64: "int64"
        case .bool: "bool"
        case .float16: "float16"
        case .double: "double"
        case .uint32: "uint32"
        case .uint64: "uint64"
        case .string: "string"
        case .bfloat16: "bfloat16"
        case .float8e4m3fn: "float8e4m3fn"
        case .float8e4m3fnuz: "float8e4m3fnuz"
        case .float8e5m2: "float8e5m2"
        case .float8e5m2fnuz: "float8e5m2fnuz"
        case .uint4: "uint4"
        case .int4: "int4"
        case .float4e2m1: "float4e2m1"
        case .float8e8m0: "float8e8m0"
        case .uint2: "uint2"
        case .int2: "int2"
        }
    }

    public var description: String { onnxName }

    /// Whether the type is a floating-point type, of any width (bfloat16, the float8 formats and
    /// float4e2m1 included).
    public var isFloatingPoint: Bool {
        switch self {
        case .float, .double, .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz,
             .float4e2m1, .float8e8m0:
            true
        default: false
        }
    }

    /// Whether the type is an integer type, of any width (bool excluded).
    public var isInteger: Bool { !isFloatingPoint && self != .bool && self != .string }

    /// The values of an integer type narrower than a byte (int4, uint4, int2, uint2); `nil` for
    /// every other type.
    package var narrowIntegerRange: ClosedRange<Int64>? {
        switch self {
        case .int4: -8...7
        case .uint4: 0...15
        case .int2: -2...1
        case .uint2: 0...3
        default: nil
        }
    }

    /// Whether elements of the type have a Swift arithmetic type kernels compute in directly:
    /// float, double, float16, bool and the integers of 8 bits or more. The other types are
    /// converted (``Casting``) or only moved.
    package var isNative: Bool {
        switch self {
        case .float, .double, .float16, .int8, .uint8, .int16, .uint16, .int32, .uint32, .int64, .uint64, .bool: true
        default: false
        }
    }

    /// The name of an ONNX type code, for error messages about codes Onyx does not support.
    package static func onnxName(ofCode code: Int32) -> String {
        if let type = DataType(rawValue: code) { return type.onnxName }
        switch code {
        case 0: return "undefined"
        case 14: return "complex64"
        case 15: return "complex128"
        case 27: return "float6e2m3"
        case 28: return "float6e3m2"
        default: return "type code \(code)"
        }
    }
}

/// A Swift type that can be the element of a ``Tensor``.
public protocol TensorElement: Sendable {
    /// The tensor data type that holds this Swift type.
    static var dataType: DataType { get }
}

extension Float: TensorElement { public static var dataType: DataType { .float } }
extension Double: TensorElement { public static var dataType: DataType { .double } }
extension Float16: TensorElement { public static var dataType: DataType { .float16 } }
extension Int8: TensorElement { public static var dataType: DataType { .int8 } }
extension UInt8: TensorElement { public static var dataType: DataType { .uint8 } }
extension Int16: TensorElement { public static var dataType: DataType { .int16 } }
extension UInt16: TensorElement { public static var dataType: DataType { .uint16 } }
extension Int32: TensorElement { public static var dataType: DataType { .int32 } }
extension UInt32: TensorElement { public static var dataType: DataType { .uint32 } }
extension Int64: TensorElement { public static var dataType: DataType { .int64 } }
extension UInt64: TensorElement { public static var dataType: DataType { .uint64 } }
extension Bool: TensorElement { public static var dataType: DataType { .bool } }
