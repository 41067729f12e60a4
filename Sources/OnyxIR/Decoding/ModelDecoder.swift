internal import COnnxProto
import OnyxCore

extension Model {
    /// Decodes the ONNX model in the file at `path`.
    ///
    /// External tensor data resolves relative to the file's folder and must stay inside it.
    ///
    /// - Parameters:
    ///   - path: The `.onnx` file.
    ///   - limits: Bounds on file, tensor and nesting sizes.
    /// - Throws: ``OnyxError`` `.io` if the file cannot be read, `.invalidModel` if it is not a
    ///   well-formed ONNX model, `.limitExceeded` or `.unsupportedDataType` for what Onyx refuses.
    public init(contentsOf path: String, limits: DecodingLimits = DecodingLimits()) throws {
        self = try FileSystem.withContents(of: path, limit: limits.maxModelBytes) { bytes in
            try Model(serialized: bytes, baseDirectory: FileSystem.directory(of: path), limits: limits)
        }
    }

    /// Decodes an ONNX model from its serialized bytes.
    ///
    /// - Parameters:
    ///   - bytes: A serialized `ModelProto`.
    ///   - baseDirectory: The folder external data locations are relative to; `nil` refuses external data.
    ///   - limits: Bounds on tensor and nesting sizes.
    /// - Throws: ``OnyxError`` as ``init(contentsOf:limits:)`` does.
    public init(bytes: [UInt8], baseDirectory: String? = nil, limits: DecodingLimits = DecodingLimits()) throws {
        self = try bytes.withUnsafeBytes { try Model(serialized: $0, baseDirectory: baseDirectory, limits: limits) }
    }

    /// Decodes an ONNX model from serialized bytes in memory Onyx does not own (a mapped file).
    init(serialized bytes: UnsafeRawBufferPointer, baseDirectory: String?, limits: DecodingLimits) throws {
        guard bytes.count <= limits.maxModelBytes else {
            throw OnyxError.limitExceeded("the model has \(bytes.count) bytes, more than the limit of \(limits.maxModelBytes)")
        }
        guard !bytes.isEmpty else { throw OnyxError.invalidModel("not an ONNX model: the file is empty") }
        let proto = onnx__model_proto__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
        guard let proto else {
            throw OnyxError.invalidModel("not an ONNX model or truncated: protobuf parsing failed (\(bytes.count) bytes)")
        }
        defer { onnx__model_proto__free_unpacked(proto, nil) }
        var decoder = ModelDecoder(limits: limits, baseDirectory: baseDirectory)
        self = try decoder.model(proto.pointee)
    }
}

/// Copies protobuf-c's `ModelProto` into the Swift IR. The only code that reads `COnnxProto` types.
struct ModelDecoder {
    var tensors: TensorProtoDecoder
    let limits: DecodingLimits

    init(limits: DecodingLimits, baseDirectory: String?) {
        self.limits = limits
        self.tensors = TensorProtoDecoder(limits: limits, baseDirectory: baseDirectory)
    }

    mutating func model(_ p: Onnx__ModelProto) throws -> Model {
        guard p.has_ir_version != 0, p.ir_version > 0 else {
            throw OnyxError.invalidModel("not an ONNX model: no IR version (is this an ONNX file?)")
        }
        guard let graphProto = p.graph else {
            throw OnyxError.invalidModel("not an ONNX model: it has no graph")
        }
        var opsets: [String: Int] = [:]
        for i in 0..<p.n_opset_import {
            guard let entry = p.opset_import[i]?.pointee else { continue }
            opsets[Model.canonicalDomain(string(entry.domain))] = Int(entry.version)
        }
        if opsets.isEmpty && p.ir_version < 3 { opsets[""] = 1 }  // IR v1–2 predate opset imports
        var metadata: [String: String] = [:]
        for i in 0..<p.n_metadata_props {
            guard let entry = p.metadata_props[i]?.pointee else { continue }
            metadata[string(entry.key)] = string(entry.value)
        }
        return Model(
            irVersion: Int(p.ir_version),
            opsetImports: opsets,
            producerName: string(p.producer_name),
            producerVersion: string(p.producer_version),
            domain: string(p.domain),
            modelVersion: Int(p.model_version),
            docString: string(p.doc_string),
            metadata: metadata,
            graph: try graph(graphProto.pointee, depth: 0))
    }

    mutating func graph(_ p: Onnx__GraphProto, depth: Int) throws -> Graph {
        guard depth <= limits.maxGraphDepth else {
            throw OnyxError.limitExceeded("graphs nest deeper than the limit of \(limits.maxGraphDepth)")
        }
        var initializers: [(name: String, tensor: Tensor)] = []
        initializers.reserveCapacity(p.n_initializer)
        for i in 0..<p.n_initializer {
            guard let t = p.initializer[i] else { continue }
            let decoded = try tensors.decode(t, context: "initializer #\(i)")
            guard !decoded.name.isEmpty else { throw OnyxError.invalidModel("initializer #\(i) has no name") }
            initializers.append(decoded)
        }
        if p.n_sparse_initializer > 0 {
            throw OnyxError.unsupportedDataType("the graph has \(p.n_sparse_initializer) sparse initializers, which Onyx does not support")
        }
        let initializerNames = Set(initializers.map(\.name))
        // Old exporters also list weights as graph inputs; those are not the caller's to supply.
        let inputs = try values(p.input, p.n_input).filter { !initializerNames.contains($0.name) }
        var nodes: [Node] = []
        nodes.reserveCapacity(p.n_node)
        for i in 0..<p.n_node {
            guard let n = p.node[i] else { continue }
            nodes.append(try node(n.pointee, index: i, depth: depth))
        }
        return Graph(
            name: string(p.name),
            nodes: nodes,
            inputs: inputs,
            outputs: try values(p.output, p.n_output),
            valueInfo: try values(p.value_info, p.n_value_info),
            initializers: initializers,
            docString: string(p.doc_string))
    }

    private mutating func node(_ p: Onnx__NodeProto, index: Int, depth: Int) throws -> Node {
        let inputs = (0..<p.n_input).map { string(p.input[$0]) }
        let outputs = (0..<p.n_output).map { string(p.output[$0]) }
        let opType = string(p.op_type)
        var name = string(p.name)
        if name.isEmpty { name = "\(opType)#\(index)" + (outputs.first.map { "(\($0))" } ?? "") }
        guard !opType.isEmpty else { throw OnyxError.invalidModel("node '\(name)' has no op_type") }
        var attributes: [String: Attribute] = [:]
        for i in 0..<p.n_attribute {
            guard let a = p.attribute[i]?.pointee else { continue }
            let attributeName = string(a.name)
            do {
                attributes[attributeName] = try attribute(a, depth: depth)
            } catch let error as OnyxError {
                throw OnyxError(error.code, "node '\(name)' (\(opType)), attribute '\(attributeName)': \(error.message)")
            }
        }
        return Node(
            name: name, opType: opType, domain: Model.canonicalDomain(string(p.domain)),
            inputs: inputs, outputs: outputs, attributes: attributes, docString: string(p.doc_string))
    }

    private mutating func attribute(_ a: Onnx__AttributeProto, depth: Int) throws -> Attribute {
        if let reference = a.ref_attr_name, reference.pointee != 0 {
            throw OnyxError.invalidModel("refers to a function attribute '\(string(reference))', only valid inside functions")
        }
        switch a.type {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: return .float(a.f)
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: return .int(Int(a.i))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: return .string(string(a.s))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
            guard let t = a.t else { throw OnyxError.invalidModel("tensor attribute without a tensor") }
            return .tensor(try tensors.decode(t, context: "attribute tensor").tensor)
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
            guard let g = a.g else { throw OnyxError.invalidModel("graph attribute without a graph") }
            return .graph(try graph(g.pointee, depth: depth + 1))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
            return .floats((0..<a.n_floats).map { a.floats[$0] })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
            return .ints((0..<a.n_ints).map { Int(a.ints[$0]) })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
            return .strings((0..<a.n_strings).map { string(a.strings[$0]) })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS:
            return .tensors(try (0..<a.n_tensors).map { i in
                guard let t = a.tensors[i] else { throw OnyxError.invalidModel("empty tensor in a tensors attribute") }
                return try tensors.decode(t, context: "attribute tensor #\(i)").tensor
            })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
            return .graphs(try (0..<a.n_graphs).map { i in
                guard let g = a.graphs[i] else { throw OnyxError.invalidModel("empty graph in a graphs attribute") }
                return try graph(g.pointee, depth: depth + 1)
            })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO:
            guard let tp = a.tp, let type = try valueType(tp, valueName: "attribute", depth: depth) else {
                throw OnyxError.invalidModel("type attribute without a type")
            }
            return .type(type)
        default:
            // Files from before IR v3 may leave `type` unset; infer it from the field that is set.
            if a.has_type == 0 || a.type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED {
                if a.n_ints > 0 { return .ints((0..<a.n_ints).map { Int(a.ints[$0]) }) }
                if a.n_floats > 0 { return .floats((0..<a.n_floats).map { a.floats[$0] }) }
                if a.has_i != 0 { return .int(Int(a.i)) }
                if a.has_f != 0 { return .float(a.f) }
                if a.has_s != 0 { return .string(string(a.s)) }
            }
            throw OnyxError.invalidModel("has unsupported attribute type \(a.type.rawValue)")
        }
    }

    private func values(
        _ list: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__ValueInfoProto>?>?, _ count: Int
    ) throws -> [Value] {
        guard let list else { return [] }
        return try (0..<count).compactMap { i -> Value? in
            guard let v = list[i]?.pointee else { return nil }
            let name = string(v.name)
            if let tensor = try tensorType(v.type, valueName: name) {
                return Value(name: name, type: tensor, docString: string(v.doc_string))
            }
            guard let type = v.type, let full = try valueType(type, valueName: name, depth: 0) else {
                return Value(name: name, type: nil, docString: string(v.doc_string))
            }
            return Value(name: name, valueType: full, docString: string(v.doc_string))
        }
    }

    /// A declared type in full (sequences, maps, optionals); `nil` where the file leaves it out.
    private func valueType(_ type: UnsafeMutablePointer<Onnx__TypeProto>, valueName: String, depth: Int) throws -> ValueType? {
        guard depth < limits.maxRank else {
            throw OnyxError.limitExceeded("value '\(valueName)': its type nests more than \(limits.maxRank) levels")
        }
        func element(_ code: Int32) throws -> DataType {
            guard let dataType = DataType(rawValue: code) else {
                throw OnyxError.unsupportedDataType(
                    "value '\(valueName)' has data type \(DataType.onnxName(ofCode: code)), which Onyx does not support")
            }
            return dataType
        }
        let p = type.pointee
        switch p.value_case {
        case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE:
            guard let tensor = p.tensor_type?.pointee, tensor.has_elem_type != 0, tensor.elem_type != 0 else { return nil }
            return .tensor(try element(tensor.elem_type))
        case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE:
            guard let inner = p.sequence_type?.pointee.elem_type,
                  let elementType = try valueType(inner, valueName: valueName, depth: depth + 1) else { return nil }
            return .sequence(elementType)
        case ONNX__TYPE_PROTO__VALUE_MAP_TYPE:
            guard let map = p.map_type?.pointee, let inner = map.value_type,
                  let value = try valueType(inner, valueName: valueName, depth: depth + 1) else { return nil }
            let key = try element(map.key_type)
            guard key.isInteger || key == .string else {
                throw OnyxError.invalidModel("value '\(valueName)': map keys must be integers or strings, not \(key)")
            }
            return .map(key: key, value: value)
        case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
            guard let inner = p.optional_type?.pointee.elem_type,
                  let elementType = try valueType(inner, valueName: valueName, depth: depth + 1) else { return nil }
            return .optional(elementType)
        case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE:
            throw OnyxError.unsupportedDataType("value '\(valueName)' is a sparse tensor, which Onyx does not support")
        default:
            return nil
        }
    }

    private func tensorType(_ type: UnsafeMutablePointer<Onnx__TypeProto>?, valueName: String) throws -> TensorType? {
        guard let type = type?.pointee else { return nil }
        guard type.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, let tensorType = type.tensor_type?.pointee else {
            // Sequences, maps and optionals: no tensor type to check against.
            return nil
        }
        guard tensorType.has_elem_type != 0, tensorType.elem_type != 0 else { return nil }
        guard let dataType = DataType(rawValue: tensorType.elem_type) else {
            throw OnyxError.unsupportedDataType(
                "value '\(valueName)' has data type \(DataType.onnxName(ofCode: tensorType.elem_type)), which Onyx does not support")
        }
        guard let shapeProto = tensorType.shape?.pointee else { return TensorType(dataType: dataType, shape: nil) }
        guard shapeProto.n_dim <= limits.maxRank else {
            throw OnyxError.limitExceeded("value '\(valueName)' has rank \(shapeProto.n_dim), more than the limit of \(limits.maxRank)")
        }
        let dims: [Shape.Dimension] = (0..<shapeProto.n_dim).map { i in
            guard let d = shapeProto.dim[i]?.pointee else { return .unknown }
            switch d.value_case {
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE:
                return d.dim_value >= 0 ? .fixed(Int(d.dim_value)) : .unknown
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM:
                let symbol = string(d.dim_param)
                return symbol.isEmpty ? .unknown : .symbolic(symbol)
            default:
                return .unknown
            }
        }
        return TensorType(dataType: dataType, shape: Shape(dims))
    }
}

extension Tensor {
    /// Decodes one serialized ONNX `TensorProto` (the `.pb` files of ONNX's backend tests).
    ///
    /// - Parameters:
    ///   - bytes: The serialized `TensorProto`.
    ///   - limits: Bounds on the tensor's size.
    /// - Returns: The tensor's name (empty if it has none) and the tensor.
    /// - Throws: ``OnyxError`` `.invalidInput` if the bytes are not a `TensorProto`, or the decoder's errors.
    public static func decodeTensorProto(
        _ bytes: [UInt8], limits: DecodingLimits = DecodingLimits()
    ) throws -> (name: String, tensor: Tensor) {
        let proto = bytes.withUnsafeBufferPointer { onnx__tensor_proto__unpack(nil, $0.count, $0.baseAddress) }
        guard let proto else {
            throw OnyxError.invalidInput("not an ONNX TensorProto or truncated (\(bytes.count) bytes)")
        }
        defer { onnx__tensor_proto__free_unpacked(proto, nil) }
        var decoder = TensorProtoDecoder(limits: limits, baseDirectory: nil)
        return try decoder.decode(proto, context: "tensor")
    }
}
