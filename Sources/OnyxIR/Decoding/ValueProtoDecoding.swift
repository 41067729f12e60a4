internal import COnnxProto
import OnyxCore

extension OnnxValue {
    /// Decodes a serialized ONNX value of `type`, as the backend tests store inputs and outputs:
    /// a `TensorProto` for a tensor, a `SequenceProto`, `MapProto` or `OptionalProto` otherwise.
    ///
    /// - Parameters:
    ///   - bytes: The serialized proto.
    ///   - type: The value's declared type, which says which proto the bytes hold.
    ///   - limits: Bounds on the tensors' sizes and on the nesting.
    /// - Returns: The name stored in the proto (empty if none) and the value.
    /// - Throws: ``OnyxError`` `.invalidInput` if the bytes are not such a proto or do not match
    ///   `type`, or the tensor decoder's errors.
    public static func decodeProto(
        _ bytes: [UInt8], as type: ValueType, limits: DecodingLimits = DecodingLimits()
    ) throws -> (name: String, value: OnnxValue) {
        var decoder = ValueProtoDecoder(tensors: TensorProtoDecoder(limits: limits, baseDirectory: nil))
        func unpacked<P>(_ unpack: (Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<P>?, _ what: String) throws -> UnsafeMutablePointer<P> {
            guard let proto = bytes.withUnsafeBufferPointer({ unpack($0.count, $0.baseAddress) }) else {
                throw OnyxError.invalidInput("not an ONNX \(what) or truncated (\(bytes.count) bytes)")
            }
            return proto
        }
        switch type {
        case .tensor(let dataType):
            let (name, tensor) = try Tensor.decodeTensorProto(bytes, limits: limits)
            guard tensor.dataType == dataType else {
                throw OnyxError.invalidInput("tensor '\(name)' holds \(tensor.dataType), expected \(dataType)")
            }
            return (name, .tensor(tensor))
        case .sequence:
            let proto = try unpacked({ onnx__sequence_proto__unpack(nil, $0, $1) }, "SequenceProto")
            defer { onnx__sequence_proto__free_unpacked(proto, nil) }
            return (string(proto.pointee.name), try decoder.sequence(proto, as: type, depth: 0))
        case .map:
            let proto = try unpacked({ onnx__map_proto__unpack(nil, $0, $1) }, "MapProto")
            defer { onnx__map_proto__free_unpacked(proto, nil) }
            return (string(proto.pointee.name), try decoder.map(proto, as: type, depth: 0))
        case .optional:
            let proto = try unpacked({ onnx__optional_proto__unpack(nil, $0, $1) }, "OptionalProto")
            defer { onnx__optional_proto__free_unpacked(proto, nil) }
            return (string(proto.pointee.name), try decoder.optional(proto, as: type, depth: 0))
        }
    }
}

/// Turns `SequenceProto`, `MapProto` and `OptionalProto` messages into ``OnnxValue``s of a declared type.
private struct ValueProtoDecoder {
    var tensors: TensorProtoDecoder

    mutating func tensor(_ proto: UnsafeMutablePointer<Onnx__TensorProto>?, as type: ValueType) throws -> OnnxValue {
        guard let proto, case .tensor(let dataType) = type else { throw mismatch("a tensor", type) }
        let tensor = try tensors.decode(proto, context: "element").tensor
        guard tensor.dataType == dataType else {
            throw OnyxError.invalidInput("an element holds \(tensor.dataType), the declared type is \(type)")
        }
        return .tensor(tensor)
    }

    mutating func sequence(_ proto: UnsafeMutablePointer<Onnx__SequenceProto>, as type: ValueType, depth: Int) throws -> OnnxValue {
        guard case .sequence(let element) = type else { throw mismatch("a sequence", type) }
        try check(depth)
        let p = proto.pointee
        var elements: [OnnxValue] = []
        for i in 0..<p.n_tensor_values { elements.append(try tensor(p.tensor_values[i], as: element)) }
        for i in 0..<p.n_sequence_values {
            guard let inner = p.sequence_values[i] else { continue }
            elements.append(try sequence(inner, as: element, depth: depth + 1))
        }
        for i in 0..<p.n_map_values {
            guard let inner = p.map_values[i] else { continue }
            elements.append(try map(inner, as: element, depth: depth + 1))
        }
        for i in 0..<p.n_optional_values {
            guard let inner = p.optional_values[i] else { continue }
            elements.append(try optional(inner, as: element, depth: depth + 1))
        }
        guard p.n_sparse_tensor_values == 0 else {
            throw OnyxError.unsupportedDataType("a sequence of sparse tensors, which Onyx does not support")
        }
        return .sequence(elements)
    }

    mutating func map(_ proto: UnsafeMutablePointer<Onnx__MapProto>, as type: ValueType, depth: Int) throws -> OnnxValue {
        guard case .map(let keyType, let valueType) = type, case .tensor(let valueElement) = valueType else {
            throw mismatch("a map of tensors", type)
        }
        try check(depth)
        let p = proto.pointee
        let keys: Tensor
        if keyType == .string {
            keys = try Tensor(strings: (0..<p.n_string_keys).map { string(p.string_keys[$0]) }, shape: [p.n_string_keys])
        } else {
            let values = (0..<p.n_keys).map { p.keys[$0] }
            keys = try Tensor(shape: [values.count], scalars: values)
        }
        var scalars: [Tensor] = []
        if let values = p.values {
            scalars = try sequence(values, as: .sequence(valueType), depth: depth + 1).sequence?.compactMap(\.tensor) ?? []
        }
        guard scalars.count == keys.elementCount, scalars.allSatisfy({ $0.elementCount == 1 }) else {
            throw OnyxError.invalidInput("a map has \(keys.elementCount) keys but \(scalars.count) values (Onyx reads maps of scalars)")
        }
        let values = try stack(scalars, of: valueElement)
        return .map(keys: keys, values: values)
    }

    mutating func optional(_ proto: UnsafeMutablePointer<Onnx__OptionalProto>, as type: ValueType, depth: Int) throws -> OnnxValue {
        guard case .optional(let element) = type else { throw mismatch("an optional", type) }
        try check(depth)
        let p = proto.pointee
        if let value = p.tensor_value { return .optional(try tensor(value, as: element)) }
        if let value = p.sequence_value { return .optional(try sequence(value, as: element, depth: depth + 1)) }
        if let value = p.map_value { return .optional(try map(value, as: element, depth: depth + 1)) }
        if let value = p.optional_value { return .optional(try optional(value, as: element, depth: depth + 1)) }
        return .optional(nil)
    }

    /// Scalars of one type as a 1-D tensor.
    private func stack(_ scalars: [Tensor], of dataType: DataType) throws -> Tensor {
        if dataType == .string { return try Tensor(strings: scalars.flatMap { try $0.strings() }, shape: [scalars.count]) }
        var bytes: [UInt8] = []
        for scalar in scalars {
            guard scalar.dataType == dataType else {
                throw OnyxError.invalidInput("a map value is \(scalar.dataType), the declared type is \(dataType)")
            }
            scalar.withUnsafeBytes { bytes.append(contentsOf: $0) }
        }
        return try bytes.withUnsafeBytes { try Tensor(dataType: dataType, shape: [scalars.count], bytes: $0) }
    }

    private func check(_ depth: Int) throws {
        guard depth < tensors.limits.maxRank else {
            throw OnyxError.limitExceeded("a value nests more than \(tensors.limits.maxRank) levels")
        }
    }

    private func mismatch(_ found: String, _ type: ValueType) -> OnyxError {
        OnyxError.invalidInput("found \(found) where \(type) is declared")
    }
}
