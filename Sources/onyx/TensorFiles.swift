import Foundation
import Onyx

/// Reading input tensors from files and writing outputs, in the formats `onyx run` accepts.
enum TensorFiles {
    /// Reads a tensor from an ONNX `TensorProto` (`.pb`), NumPy (`.npy`) or JSON file, by extension.
    ///
    /// JSON is `{"shape": [...], "data": [...]}` with an optional `"datatype"` (`FP32`, `INT64`, …
    /// or ONNX names such as `float`, `int64`); `data` may be nested.
    static func read(_ path: String) throws -> (name: String?, tensor: Tensor) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandLineInputError("cannot read input file '\(path)'")
        }
        let bytes = [UInt8](data)
        switch (path as NSString).pathExtension.lowercased() {
        case "pb":
            let decoded = try Tensor.decodeTensorProto(bytes)
            return (decoded.name.isEmpty ? nil : decoded.name, decoded.tensor)
        case "npy":
            return (nil, try Tensor(npy: bytes))
        case "json":
            return (nil, try readJSON(data, path: path))
        default:
            throw CommandLineInputError("input file '\(path)' must end in .pb, .npy or .json")
        }
    }

    static func readJSON(_ data: Data, path: String) throws -> Tensor {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw CommandLineInputError("'\(path)' is not valid JSON")
        }
        guard let dictionary = object as? [String: Any] else {
            throw CommandLineInputError("'\(path)' must hold an object {\"shape\": [...], \"data\": [...]}")
        }
        guard let shapeValues = dictionary["shape"] as? [NSNumber] else {
            throw CommandLineInputError("'\(path)': \"shape\" must be an array of integers")
        }
        let shape = shapeValues.map(\.intValue)
        guard let data = dictionary["data"] else {
            throw CommandLineInputError("'\(path)': missing \"data\"")
        }
        let typeName = (dictionary["datatype"] ?? dictionary["dtype"]) as? String ?? "float"
        guard let type = dataType(named: typeName) else {
            throw CommandLineInputError("'\(path)': unknown datatype '\(typeName)'")
        }
        var flat: [NSNumber] = []
        var strings: [String] = []
        func flatten(_ value: Any) throws {
            if let array = value as? [Any] {
                for element in array { try flatten(element) }
            } else if type == .string, let string = value as? String {
                strings.append(string)
            } else if type != .string, let number = value as? NSNumber {
                flat.append(number)
            } else {
                throw CommandLineInputError(
                    "'\(path)': \"data\" must hold only \(type == .string ? "strings" : "numbers or booleans")")
            }
        }
        try flatten(data)
        do {
            switch type {
            case .string: return try Tensor(strings: strings, shape: shape)
            case .float: return try Tensor(shape: shape, scalars: flat.map(\.floatValue))
            case .double: return try Tensor(shape: shape, scalars: flat.map(\.doubleValue))
            case .float16: return try Tensor(shape: shape, scalars: flat.map { Float16($0.floatValue) })
            case .int8: return try Tensor(shape: shape, scalars: flat.map(\.int8Value))
            case .uint8: return try Tensor(shape: shape, scalars: flat.map(\.uint8Value))
            case .int16: return try Tensor(shape: shape, scalars: flat.map(\.int16Value))
            case .uint16: return try Tensor(shape: shape, scalars: flat.map(\.uint16Value))
            case .int32: return try Tensor(shape: shape, scalars: flat.map(\.int32Value))
            case .uint32: return try Tensor(shape: shape, scalars: flat.map(\.uint32Value))
            case .int64: return try Tensor(shape: shape, scalars: flat.map(\.int64Value))
            case .uint64: return try Tensor(shape: shape, scalars: flat.map(\.uint64Value))
            case .bool: return try Tensor(shape: shape, scalars: flat.map(\.boolValue))
            case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
                // Rounded as Cast rounds: to nearest even, saturating for float8.
                return try Tensor(converting: try Tensor(shape: shape, scalars: flat.map(\.doubleValue)), to: type)
            case .int4, .uint4, .int2, .uint2:
                let range = type.narrowIntegerRange!
                let values = flat.map(\.int64Value)
                if let bad = flat.first(where: { !range.contains($0.int64Value) || $0.doubleValue != Double($0.int64Value) }) {
                    throw CommandLineInputError("'\(path)': \(bad) is out of range for \(type) (integers \(range))")
                }
                return try Tensor(converting: try Tensor(shape: shape, scalars: values), to: type)
            }
        } catch let error as OnyxError {
            throw CommandLineInputError("'\(path)': \(error.message)")
        }
    }

    /// A data type by Open Inference Protocol name (`FP32`) or ONNX name (`float`).
    static func dataType(named name: String) -> DataType? {
        let protocolNames: [String: DataType] = [
            "FP32": .float, "FP64": .double, "FP16": .float16, "INT8": .int8, "UINT8": .uint8,
            "INT16": .int16, "UINT16": .uint16, "INT32": .int32, "UINT32": .uint32, "INT64": .int64,
            "UINT64": .uint64, "BOOL": .bool, "BYTES": .string, "BF16": .bfloat16,
        ]
        if let type = protocolNames[name.uppercased()] { return type }
        let lower = name.lowercased()
        if lower == "float32" { return .float }
        if lower == "float64" { return .double }
        return DataType.allCases.first { $0.onnxName == lower }
    }

    /// Reads a value of a declared sequence, map or optional type from its `.pb` proto.
    static func readValue(_ path: String, as type: ValueType) throws -> OnnxValue {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandLineInputError("cannot read input file '\(path)'")
        }
        guard (path as NSString).pathExtension.lowercased() == "pb" else {
            throw CommandLineInputError("input '\(path)' is a \(type): give it as a .pb file (SequenceProto, MapProto or OptionalProto)")
        }
        return try OnnxValue.decodeProto([UInt8](data), as: type).value
    }

    /// A value as JSON-ready objects: a tensor's elements (a scalar as its element), a sequence as
    /// a list, a map as an object (keys as text), an optional as its value or null.
    static func jsonObject(_ value: OnnxValue) throws -> Any {
        switch value {
        case .tensor(let tensor):
            let values = try jsonValues(tensor)
            return tensor.rank == 0 && values.count == 1 ? values[0] : values
        case .sequence(let elements):
            return try elements.map(jsonObject)
        case .map(let keys, let values):
            let names = try jsonValues(keys).map { "\($0)" }
            return Dictionary(zip(names, try jsonValues(values)), uniquingKeysWith: { first, _ in first })
        case .optional(let inner):
            return try inner.map(jsonObject) ?? NSNull()
        }
    }

    /// The elements of `tensor` as JSON-ready numbers.
    static func jsonValues(_ tensor: Tensor, limit: Int = .max) throws -> [Any] {
        func take<T: TensorElement>(_ type: T.Type, _ convert: (T) -> Any) throws -> [Any] {
            try tensor.scalars(as: T.self).prefix(limit).map(convert)
        }
        switch tensor.dataType {
        case .float: return try take(Float.self) { $0.isFinite ? Double("\($0)")! as Any : "\($0)" as Any }
        case .double: return try take(Double.self) { $0.isFinite ? $0 as Any : "\($0)" as Any }
        case .float16: return try take(Float16.self) { Double(Float($0)) }
        case .int8: return try take(Int8.self) { Int($0) }
        case .uint8: return try take(UInt8.self) { Int($0) }
        case .int16: return try take(Int16.self) { Int($0) }
        case .uint16: return try take(UInt16.self) { Int($0) }
        case .int32: return try take(Int32.self) { Int($0) }
        case .uint32: return try take(UInt32.self) { Int($0) }
        case .int64: return try take(Int64.self) { Int($0) }
        case .uint64: return try take(UInt64.self) { UInt64($0) }
        case .bool: return try take(Bool.self) { $0 }
        case .string: return try tensor.strings().prefix(limit).map { $0 }
        case .int4, .int2, .uint4, .uint2:
            return try Tensor(converting: tensor, to: .int64).scalars(as: Int64.self).prefix(limit).map { Int($0) }
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            // Float holds every value of these types exactly.
            return try Tensor(converting: tensor, to: .float).scalars(as: Float.self).prefix(limit)
                .map { $0.isFinite ? Double("\($0)")! as Any : "\($0)" as Any }
        }
    }
}
