import Onyx

/// Tensor datatypes as the Open Inference Protocol names them.
extension DataType {
    /// `FP32`, `INT64`, `BOOL`, `BF16`, …
    ///
    /// The protocol names no float8, float4 or 4- and 2-bit type: those are named by their
    /// ONNX names in capitals (`FLOAT8E4M3FN`, `INT4`), which requests may use too.
    public var protocolName: String {
        switch self {
        case .float: "FP32"
        case .double: "FP64"
        case .float16: "FP16"
        case .int8: "INT8"
        case .uint8: "UINT8"
        case .int16: "INT16"
        case .uint16: "UINT16"
        case .int32: "INT32"
        case .uint32: "UINT32"
        case .int64: "INT64"
        case .uint64: "UINT64"
        case .bool: "BOOL"
        case .string: "BYTES"
        case .bfloat16: "BF16"
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1,
             .int4, .uint4, .int2, .uint2:
            onnxName.uppercased()
        }
    }

    /// Whether the protocol's binary tensor extension has a layout for the type: every type but
    /// the 4- and 2-bit ones, which ONNX packs and Onyx keeps one element per byte.
    package var hasBinaryLayout: Bool { bitWidth >= 8 }

    /// The type named `name` in the protocol (`FP32`) or by ONNX (`float`, `float32`).
    public init?(protocolName name: String) {
        if let type = DataType.allCases.first(where: { $0.protocolName == name }) {
            self = type
            return
        }
        switch name.lowercased() {
        case "float32", "float": self = .float
        case "float64", "double": self = .double
        case "float16", "half": self = .float16
        default:
            guard let type = DataType.allCases.first(where: { $0.onnxName == name.lowercased() }) else { return nil }
            self = type
        }
    }
}

/// Converts between JSON `data` arrays and tensors.
public enum TensorJSON {
    /// The elements of a JSON `data` value (flat or nested, numbers or booleans), in order.
    static func flatten(_ value: JSONValue, into doubles: inout [Double], integers: inout [Int64]?, limit: Int) throws {
        switch value {
        case .numbers(let run):
            guard doubles.count + run.doubles.count <= limit else { throw tooMany(limit) }
            if doubles.isEmpty {
                doubles = run.doubles
                integers = run.integers
            } else {
                doubles.append(contentsOf: run.doubles)
                if integers != nil, let more = run.integers { integers!.append(contentsOf: more) } else { integers = nil }
            }
        case .array(let elements):
            for element in elements { try flatten(element, into: &doubles, integers: &integers, limit: limit) }
        case .number(let d):
            guard doubles.count < limit else { throw tooMany(limit) }
            doubles.append(d)
            if integers != nil, d.rounded() == d, abs(d) < 9.0e15 { integers!.append(Int64(d)) } else { integers = nil }
        case .bool(let b):
            guard doubles.count < limit else { throw tooMany(limit) }
            doubles.append(b ? 1 : 0)
            integers?.append(b ? 1 : 0)
        default:
            throw TensorCodingError("\"data\" must hold only numbers or booleans")
        }
    }

    private static func tooMany(_ limit: Int) -> TensorCodingError {
        TensorCodingError("\"data\" holds more than the limit of \(limit) elements")
    }

    /// The element count of `shape` (non-negative extents), or `nil` when the extents multiply past
    /// `limit` — zero extents skipped, so `[0, 2^40, 2^40]` is refused too: it holds nothing, but
    /// strides and kernel geometry computed from its other extents would overflow.
    package static func elementCount(of shape: [Int], limit: Int) -> Int? {
        var count = 1
        var span = 1
        for extent in shape {
            count = count &* extent
            let (product, overflow) = span.multipliedReportingOverflow(by: Swift.max(extent, 1))
            guard !overflow, product <= limit else { return nil }
            span = product
        }
        return count
    }

    /// A tensor of `type` and `shape` from a JSON `data` value.
    ///
    /// Numbers for bfloat16, float8 and float4e2m1 round as ONNX's `Cast` does (to nearest even;
    /// beyond the type's range, to its largest value); integer types take integers in their range.
    ///
    /// - Throws: ``TensorCodingError`` naming what is wrong: element count against the shape,
    ///   non-integers for an integer type, values out of the type's range.
    public static func tensor(from data: JSONValue, type: DataType, shape: [Int], name: String, limit: Int = 1 << 28) throws -> Tensor {
        if type == .string { return try stringTensor(from: data, shape: shape, name: name, limit: limit) }
        var doubles: [Double] = []
        var integers: [Int64]? = []
        try flatten(data, into: &doubles, integers: &integers, limit: limit)
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorCodingError("input '\(name)': negative extent in shape \(shape)") }
        guard let expected = elementCount(of: shape, limit: limit) else {
            throw TensorCodingError("input '\(name)': shape \(shape) holds more than the limit of \(limit) elements")
        }
        guard doubles.count == expected else {
            throw TensorCodingError("input '\(name)': shape \(shape) needs \(expected) elements but \"data\" has \(doubles.count)")
        }
        func integral<T: FixedWidthInteger & TensorElement>(_: T.Type) throws -> Tensor {
            guard let integers else {
                throw TensorCodingError("input '\(name)': \(type.protocolName) data must be integers")
            }
            var out = [T]()
            out.reserveCapacity(integers.count)
            for v in integers {
                guard let x = T(exactly: v) else {
                    throw TensorCodingError("input '\(name)': \(v) is out of range for \(type.protocolName)")
                }
                out.append(x)
            }
            return try Tensor(shape: shape, scalars: out)
        }
        switch type {
        case .float:
            var out = [Float](repeating: 0, count: doubles.count)
            for i in 0..<doubles.count { out[i] = Float(doubles[i]) }
            return try Tensor(shape: shape, scalars: out)
        case .double: return try Tensor(shape: shape, scalars: doubles)
        case .float16: return try Tensor(shape: shape, scalars: doubles.map { Float16($0) })
        case .bool:
            guard integers != nil, doubles.allSatisfy({ $0 == 0 || $0 == 1 }) else {
                throw TensorCodingError("input '\(name)': BOOL data must be true/false (or 0/1)")
            }
            return try Tensor(shape: shape, scalars: doubles.map { $0 != 0 })
        case .int8: return try integral(Int8.self)
        case .uint8: return try integral(UInt8.self)
        case .int16: return try integral(Int16.self)
        case .uint16: return try integral(UInt16.self)
        case .int32: return try integral(Int32.self)
        case .uint32: return try integral(UInt32.self)
        case .int64: return try integral(Int64.self)
        case .uint64: return try integral(UInt64.self)
        case .string: preconditionFailure("BYTES data is read by stringTensor")
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            return try Tensor(converting: try Tensor(shape: shape, scalars: doubles), to: type)
        case .int4, .uint4, .int2, .uint2:
            let range = type.narrowIntegerRange!
            guard let integers else {
                throw TensorCodingError("input '\(name)': \(type.protocolName) data must be integers")
            }
            if let bad = integers.first(where: { !range.contains($0) }) {
                throw TensorCodingError("input '\(name)': \(bad) is out of range for \(type.protocolName) (\(range))")
            }
            return try Tensor(converting: try Tensor(shape: shape, scalars: integers), to: type)
        }
    }

    /// A BYTES tensor from a JSON `data` value of strings (flat or nested).
    static func stringTensor(from data: JSONValue, shape: [Int], name: String, limit: Int) throws -> Tensor {
        var strings: [String] = []
        func collect(_ value: JSONValue) throws {
            switch value {
            case .string(let text):
                guard strings.count < limit else { throw tooMany(limit) }
                strings.append(text)
            case .array(let elements):
                for element in elements { try collect(element) }
            default:
                throw TensorCodingError("input '\(name)': BYTES data must be strings")
            }
        }
        try collect(data)
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorCodingError("input '\(name)': negative extent in shape \(shape)") }
        guard let expected = elementCount(of: shape, limit: limit) else {
            throw TensorCodingError("input '\(name)': shape \(shape) holds more than the limit of \(limit) elements")
        }
        guard strings.count == expected else {
            throw TensorCodingError("input '\(name)': shape \(shape) needs \(expected) elements but \"data\" has \(strings.count)")
        }
        return try Tensor(strings: strings, shape: shape)
    }

    /// The elements of a BYTES tensor as the binary extension sends them: each one a 4-byte
    /// little-endian length, then its UTF-8 bytes.
    package static func binaryStrings(_ tensor: Tensor) -> [UInt8] {
        var bytes: [UInt8] = []
        for string in (try? tensor.strings()) ?? [] {
            let utf8 = Array(string.utf8)
            withUnsafeBytes(of: UInt32(utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: utf8)
        }
        return bytes
    }

    /// A BYTES tensor of `shape` from length-prefixed elements.
    static func stringTensor<Bytes: RandomAccessCollection<UInt8>>(
        binary bytes: Bytes, shape: [Int], count: Int, name: String
    ) throws -> Tensor where Bytes.Index == Int {
        var strings: [String] = []
        var cursor = bytes.startIndex
        while cursor < bytes.endIndex {
            guard bytes.endIndex - cursor >= 4 else {
                throw TensorCodingError("input '\(name)': BYTES element \(strings.count) has a truncated 4-byte length")
            }
            let length = Int(bytes[cursor]) | Int(bytes[cursor + 1]) << 8 | Int(bytes[cursor + 2]) << 16 | Int(bytes[cursor + 3]) << 24
            cursor += 4
            guard length <= bytes.endIndex - cursor else {
                throw TensorCodingError("input '\(name)': BYTES element \(strings.count) has length \(length), past the end of its data")
            }
            guard strings.count < count else {
                throw TensorCodingError("input '\(name)': shape \(shape) holds \(count) elements but the data holds more")
            }
            guard let text = String(validating: bytes[cursor..<(cursor + length)], as: UTF8.self) else {
                throw TensorCodingError("input '\(name)': BYTES element \(strings.count) is not valid UTF-8")
            }
            strings.append(text)
            cursor += length
        }
        guard strings.count == count else {
            throw TensorCodingError("input '\(name)': shape \(shape) needs \(count) elements but the data holds \(strings.count)")
        }
        return try Tensor(strings: strings, shape: shape)
    }

    /// Appends the tensor's elements as a flat JSON array.
    public static func write(_ tensor: Tensor, to writer: inout JSONWriter) {
        if tensor.dataType == .string {
            writer.bytes.append(UInt8(ascii: "["))
            for (i, string) in ((try? tensor.strings()) ?? []).enumerated() {
                if i > 0 { writer.bytes.append(UInt8(ascii: ",")) }
                writer.string(string)
            }
            writer.bytes.append(UInt8(ascii: "]"))
            return
        }
        writer.bytes.reserveCapacity(writer.bytes.count + tensor.elementCount * 12)
        writer.bytes.append(UInt8(ascii: "["))
        tensor.withUnsafeBytes { raw in
            func each<T>(_: T.Type, _ body: (inout JSONWriter, T) -> Void) {
                let values = raw.bindMemory(to: T.self)
                for i in 0..<values.count {
                    if i > 0 { writer.bytes.append(UInt8(ascii: ",")) }
                    body(&writer, values[i])
                }
            }
            switch tensor.dataType {
            case .float: each(Float.self) { $0.float($1) }
            case .double: each(Double.self) { $0.double($1) }
            case .float16: each(Float16.self) { $0.float(Float($1)) }
            case .int8: each(Int8.self) { $0.integer($1) }
            case .uint8: each(UInt8.self) { $0.integer($1) }
            case .int16: each(Int16.self) { $0.integer($1) }
            case .uint16: each(UInt16.self) { $0.integer($1) }
            case .int32: each(Int32.self) { $0.integer($1) }
            case .uint32: each(UInt32.self) { $0.integer($1) }
            case .int64: each(Int64.self) { $0.integer($1) }
            case .uint64: each(UInt64.self) { $0.integer($1) }
            case .bool: each(UInt8.self) { $0.bool($1 != 0) }
            case .string: break  // written above
            case .int4, .int2: each(Int8.self) { $0.integer($1) }  // unpacked: one value per byte
            case .uint4, .uint2: each(UInt8.self) { $0.integer($1) }
            case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
                // Through float, which holds every value of these types exactly.
                let floats = (try? Tensor(converting: tensor, to: .float).scalars(as: Float.self)) ?? []
                for (i, value) in floats.enumerated() {
                    if i > 0 { writer.bytes.append(UInt8(ascii: ",")) }
                    writer.float(value)
                }
            }
        }
        writer.bytes.append(UInt8(ascii: "]"))
    }
}

/// A request body that does not describe a valid tensor.
public struct TensorCodingError: Error, Sendable, CustomStringConvertible {
    /// What was wrong with the tensor, naming it.
    public let message: String
    /// Creates an error.
    ///
    /// - Parameter message: What was wrong, naming the tensor.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
