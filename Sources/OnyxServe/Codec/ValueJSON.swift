import Onyx

/// Sequences, maps and optionals as JSON texts: how `onyx serve` returns such model outputs.
///
/// A map is an object whose keys are its keys as text (`{"0": 0.98, "1": 0.02}`, or
/// `{"benign": 0.98, "malicious": 0.02}`); a sequence is a list; an optional is its value or
/// `null`; a tensor is its elements, flat (a scalar as its one element).
enum ValueJSON {
    static func text(_ value: OnnxValue) throws -> String {
        var writer = JSONWriter()
        try write(value, to: &writer)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    static func write(_ value: OnnxValue, to writer: inout JSONWriter) throws {
        switch value {
        case .tensor(let tensor):
            if tensor.rank == 0 {
                var element = JSONWriter()
                TensorJSON.write(tensor, to: &element)
                writer.bytes += element.bytes.dropFirst().dropLast()  // the one element, without [ ]
            } else {
                TensorJSON.write(tensor, to: &writer)
            }
        case .sequence(let elements):
            writer.raw("[")
            for (i, element) in elements.enumerated() {
                if i > 0 { writer.raw(",") }
                try write(element, to: &writer)
            }
            writer.raw("]")
        case .map(let keys, let values):
            let names: [String] = keys.dataType == .string ? try keys.strings() : try keys.scalars(as: Int64.self).map(String.init)
            writer.raw("{")
            for (i, name) in names.enumerated() where i < values.elementCount {
                if i > 0 { writer.raw(",") }
                writer.string(name)
                writer.raw(":")
                try writeElement(i, of: values, to: &writer)
            }
            writer.raw("}")
        case .optional(let inner):
            if let inner { try write(inner, to: &writer) } else { writer.raw("null") }
        }
    }

    /// Element `index` of a map's values.
    private static func writeElement(_ index: Int, of tensor: Tensor, to writer: inout JSONWriter) throws {
        switch tensor.dataType {
        case .float: writer.float(try tensor.scalars(as: Float.self)[index])
        case .double: writer.double(try tensor.scalars(as: Double.self)[index])
        case .int64: writer.integer(try tensor.scalars(as: Int64.self)[index])
        case .int32: writer.integer(try tensor.scalars(as: Int32.self)[index])
        case .bool: writer.bool(try tensor.scalars(as: Bool.self)[index])
        case .string: writer.string(try tensor.strings()[index])
        default: throw OnyxError.unsupportedDataType("a map of \(tensor.dataType) values has no JSON form here")
        }
    }
}
