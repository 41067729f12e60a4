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

    /// Bytes per element.
    @inlinable
    public var byteWidth: Int {
        switch self {
        case .bool, .int8, .uint8: 1
        case .float16, .int16, .uint16: 2
        case .float, .int32, .uint32: 4
        case .double, .int64, .uint64, .string: 8
        }
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
        }
    }

    public var description: String { onnxName }

    /// Whether the type is a floating-point type.
    public var isFloatingPoint: Bool { self == .float || self == .double || self == .float16 }

    /// Whether the type is an integer type (bool excluded).
    public var isInteger: Bool { !isFloatingPoint && self != .bool && self != .string }

    /// The name of an ONNX type code, for error messages about codes Onyx does not support.
    package static func onnxName(ofCode code: Int32) -> String {
        if let type = DataType(rawValue: code) { return type.onnxName }
        switch code {
        case 0: return "undefined"
        case 14: return "complex64"
        case 15: return "complex128"
        case 16: return "bfloat16"
        case 17...20: return "float8"
        case 21: return "uint4"
        case 22: return "int4"
        case 23: return "float4e2m1"
        case 24: return "float8e8m0"
        case 25: return "uint2"
        case 26: return "int2"
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
