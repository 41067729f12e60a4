internal import COnnxProto
import OnyxCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Serializes the IR back into ONNX bytes through protobuf-c: `.pb` outputs of `onyx run`,
/// and models built in Swift (tests, tools). Tensors are written as little-endian `raw_data`, strings
/// as `string_data`.
struct ModelEncoder {
    /// C memory the protobuf-c structures point into, freed when the encoder is done.
    private final class CMemory {
        private var blocks: [UnsafeMutableRawPointer] = []

        func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
            let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
            blocks.append(raw)
            return raw.assumingMemoryBound(to: T.self)
        }

        func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
            let utf8 = Array(string.utf8)
            let pointer = allocate(CChar.self, count: utf8.count + 1)
            for (i, byte) in utf8.enumerated() { pointer[i] = CChar(bitPattern: byte) }
            return pointer
        }

        func array<T>(_ items: [T]) -> UnsafeMutablePointer<T> {
            let pointer = allocate(T.self, count: items.count)
            for (i, item) in items.enumerated() { (pointer + i).initialize(to: item) }
            return pointer
        }

        func binary(_ bytes: UnsafeRawBufferPointer) -> ProtobufCBinaryData {
            let pointer = allocate(UInt8.self, count: bytes.count)
            if let base = bytes.baseAddress, bytes.count > 0 { UnsafeMutableRawPointer(pointer).copyMemory(from: base, byteCount: bytes.count) }
            return ProtobufCBinaryData(len: bytes.count, data: pointer)
        }

        func binary(_ string: String) -> ProtobufCBinaryData {
            Array(string.utf8).withUnsafeBytes { binary($0) }
        }

        deinit {
            for block in blocks { free(block) }
        }
    }

    private let memory = CMemory()

    /// The serialized `ModelProto` of `model`.
    static func encode(_ model: Model) -> [UInt8] {
        // Without a limit the size check cannot fail.
        try! encode(model, limit: .max)
    }

    /// The largest message protobuf readers accept (onnxruntime, the `onnx` package): 2 GiB − 1.
    static let protobufLimit = Int(Int32.max)

    /// The serialized `ModelProto` of `model`, or an error before anything is allocated when it
    /// would be larger than `limit` bytes.
    static func encode(_ model: Model, limit: Int) throws -> [UInt8] {
        let encoder = ModelEncoder()
        var proto = encoder.model(model)
        return try withUnsafePointer(to: &proto.base) { base in
            let size = protobuf_c_message_get_packed_size(base)
            guard size <= limit else {
                throw OnyxError.limitExceeded(
                    "the model serializes to \(size) bytes, more than the \(limit)-byte limit of one protobuf message; "
                        + "Onyx writes every tensor inline and does not write external data")
            }
            var bytes = [UInt8](repeating: 0, count: size)
            _ = bytes.withUnsafeMutableBufferPointer { protobuf_c_message_pack(base, $0.baseAddress) }
            return bytes
        }
    }

    /// The serialized `TensorProto` of `tensor`, named `name`.
    static func encode(_ tensor: Tensor, name: String) -> [UInt8] {
        let encoder = ModelEncoder()
        let proto = encoder.tensor(tensor, name: name)
        return withExtendedLifetime(encoder) {
            let base = UnsafeRawPointer(proto).assumingMemoryBound(to: ProtobufCMessage.self)
            let size = protobuf_c_message_get_packed_size(base)
            var bytes = [UInt8](repeating: 0, count: size)
            _ = bytes.withUnsafeMutableBufferPointer { protobuf_c_message_pack(base, $0.baseAddress) }
            return bytes
        }
    }

    private func model(_ model: Model) -> Onnx__ModelProto {
        var p = Onnx__ModelProto()
        onnx__model_proto__init(&p)
        p.has_ir_version = 1
        p.ir_version = Int64(model.irVersion)
        p.producer_name = memory.cString(model.producerName)
        p.producer_version = memory.cString(model.producerVersion)
        p.domain = memory.cString(model.domain)
        p.has_model_version = 1
        p.model_version = Int64(model.modelVersion)
        p.doc_string = memory.cString(model.docString)
        let opsets = model.opsetImports.sorted { $0.key < $1.key }.map { domain, version -> UnsafeMutablePointer<Onnx__OperatorSetIdProto>? in
            let entry = memory.allocate(Onnx__OperatorSetIdProto.self)
            onnx__operator_set_id_proto__init(entry)
            entry.pointee.domain = memory.cString(domain)
            entry.pointee.has_version = 1
            entry.pointee.version = Int64(version)
            return entry
        }
        p.n_opset_import = opsets.count
        p.opset_import = memory.array(opsets)
        let metadata = model.metadata.sorted { $0.key < $1.key }.map { entry(key: $0.key, value: $0.value) }
        p.n_metadata_props = metadata.count
        p.metadata_props = memory.array(metadata)
        p.graph = graph(model.graph)
        return p
    }

    private func entry(key: String, value: String) -> UnsafeMutablePointer<Onnx__StringStringEntryProto>? {
        let e = memory.allocate(Onnx__StringStringEntryProto.self)
        onnx__string_string_entry_proto__init(e)
        e.pointee.key = memory.cString(key)
        e.pointee.value = memory.cString(value)
        return e
    }

    private func graph(_ graph: Graph) -> UnsafeMutablePointer<Onnx__GraphProto> {
        let p = memory.allocate(Onnx__GraphProto.self)
        onnx__graph_proto__init(p)
        p.pointee.name = memory.cString(graph.name)
        p.pointee.doc_string = memory.cString(graph.docString)
        let nodes = graph.nodes.map { Optional(node($0)) }
        p.pointee.n_node = nodes.count
        p.pointee.node = memory.array(nodes)
        let initializers = graph.initializers.map { Optional(tensor($0.tensor, name: $0.name)) }
        p.pointee.n_initializer = initializers.count
        p.pointee.initializer = memory.array(initializers)
        let inputs = graph.inputs.map { Optional(value($0)) }
        p.pointee.n_input = inputs.count
        p.pointee.input = memory.array(inputs)
        let outputs = graph.outputs.map { Optional(value($0)) }
        p.pointee.n_output = outputs.count
        p.pointee.output = memory.array(outputs)
        let infos = graph.valueInfo.map { Optional(value($0)) }
        p.pointee.n_value_info = infos.count
        p.pointee.value_info = memory.array(infos)
        return p
    }

    private func node(_ node: Node) -> UnsafeMutablePointer<Onnx__NodeProto> {
        let p = memory.allocate(Onnx__NodeProto.self)
        onnx__node_proto__init(p)
        p.pointee.name = memory.cString(node.name)
        p.pointee.op_type = memory.cString(node.opType)
        p.pointee.domain = memory.cString(node.domain)
        p.pointee.doc_string = memory.cString(node.docString)
        let inputs = node.inputs.map { Optional(memory.cString($0)) }
        p.pointee.n_input = inputs.count
        p.pointee.input = memory.array(inputs)
        let outputs = node.outputs.map { Optional(memory.cString($0)) }
        p.pointee.n_output = outputs.count
        p.pointee.output = memory.array(outputs)
        let attributes = node.attributes.sorted { $0.key < $1.key }.map { Optional(attribute($0.key, $0.value)) }
        p.pointee.n_attribute = attributes.count
        p.pointee.attribute = memory.array(attributes)
        return p
    }

    private func attribute(_ name: String, _ value: Attribute) -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let p = memory.allocate(Onnx__AttributeProto.self)
        onnx__attribute_proto__init(p)
        p.pointee.name = memory.cString(name)
        p.pointee.has_type = 1
        switch value {
        case .float(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
            p.pointee.has_f = 1
            p.pointee.f = v
        case .int(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
            p.pointee.has_i = 1
            p.pointee.i = Int64(v)
        case .string(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
            p.pointee.has_s = 1
            p.pointee.s = memory.binary(v)
        case .tensor(let t):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR
            p.pointee.t = tensor(t, name: "")
        case .graph(let g):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH
            p.pointee.g = graph(g)
        case .floats(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
            p.pointee.n_floats = v.count
            p.pointee.floats = memory.array(v)
        case .ints(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
            p.pointee.n_ints = v.count
            p.pointee.ints = memory.array(v.map(Int64.init))
        case .strings(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS
            p.pointee.n_strings = v.count
            p.pointee.strings = memory.array(v.map { memory.binary($0) })
        case .tensors(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS
            p.pointee.n_tensors = v.count
            p.pointee.tensors = memory.array(v.map { Optional(tensor($0, name: "")) })
        case .graphs(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS
            p.pointee.n_graphs = v.count
            p.pointee.graphs = memory.array(v.map { Optional(graph($0)) })
        case .type(let v):
            p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO
            p.pointee.tp = typeProto(v)
        }
        return p
    }

    private func value(_ value: Value) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let p = memory.allocate(Onnx__ValueInfoProto.self)
        onnx__value_info_proto__init(p)
        p.pointee.name = memory.cString(value.name)
        p.pointee.doc_string = memory.cString(value.docString)
        guard let type = value.type else {
            if let full = value.valueType { p.pointee.type = typeProto(full) }
            return p
        }
        let typeProto = memory.allocate(Onnx__TypeProto.self)
        onnx__type_proto__init(typeProto)
        let tensorType = memory.allocate(Onnx__TypeProto__Tensor.self)
        onnx__type_proto__tensor__init(tensorType)
        tensorType.pointee.has_elem_type = 1
        tensorType.pointee.elem_type = type.dataType.rawValue
        if let shape = type.shape {
            let shapeProto = memory.allocate(Onnx__TensorShapeProto.self)
            onnx__tensor_shape_proto__init(shapeProto)
            let dims = shape.dimensions.map { dimension -> UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension>? in
                let d = memory.allocate(Onnx__TensorShapeProto__Dimension.self)
                onnx__tensor_shape_proto__dimension__init(d)
                switch dimension {
                case .fixed(let n):
                    d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                    d.pointee.dim_value = Int64(n)
                case .symbolic(let symbol):
                    d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                    d.pointee.dim_param = memory.cString(symbol)
                case .unknown:
                    break
                }
                return d
            }
            shapeProto.pointee.n_dim = dims.count
            shapeProto.pointee.dim = memory.array(dims)
            tensorType.pointee.shape = shapeProto
        }
        typeProto.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
        typeProto.pointee.tensor_type = tensorType
        p.pointee.type = typeProto
        return p
    }

    /// A `TypeProto` of a tensor (element type only), sequence, map or optional.
    private func typeProto(_ type: ValueType) -> UnsafeMutablePointer<Onnx__TypeProto> {
        let p = memory.allocate(Onnx__TypeProto.self)
        onnx__type_proto__init(p)
        switch type {
        case .tensor(let dataType):
            let tensor = memory.allocate(Onnx__TypeProto__Tensor.self)
            onnx__type_proto__tensor__init(tensor)
            tensor.pointee.has_elem_type = 1
            tensor.pointee.elem_type = dataType.rawValue
            p.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
            p.pointee.tensor_type = tensor
        case .sequence(let element):
            let sequence = memory.allocate(Onnx__TypeProto__Sequence.self)
            onnx__type_proto__sequence__init(sequence)
            sequence.pointee.elem_type = typeProto(element)
            p.pointee.value_case = ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE
            p.pointee.sequence_type = sequence
        case .map(let key, let value):
            let map = memory.allocate(Onnx__TypeProto__Map.self)
            onnx__type_proto__map__init(map)
            map.pointee.has_key_type = 1
            map.pointee.key_type = key.rawValue
            map.pointee.value_type = typeProto(value)
            p.pointee.value_case = ONNX__TYPE_PROTO__VALUE_MAP_TYPE
            p.pointee.map_type = map
        case .optional(let element):
            let optional = memory.allocate(Onnx__TypeProto__Optional.self)
            onnx__type_proto__optional__init(optional)
            optional.pointee.elem_type = typeProto(element)
            p.pointee.value_case = ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE
            p.pointee.optional_type = optional
        }
        return p
    }

    private func tensor(_ tensor: Tensor, name: String) -> UnsafeMutablePointer<Onnx__TensorProto> {
        let p = memory.allocate(Onnx__TensorProto.self)
        onnx__tensor_proto__init(p)
        p.pointee.name = memory.cString(name)
        p.pointee.n_dims = tensor.rank
        p.pointee.dims = memory.array(tensor.shape.map(Int64.init))
        p.pointee.has_data_type = 1
        p.pointee.data_type = tensor.dataType.rawValue
        if tensor.dataType == .string {
            // Strings go in string_data; a tensor whose table cannot answer is written empty.
            let strings = (try? tensor.strings()) ?? Array(repeating: "", count: tensor.elementCount)
            p.pointee.n_string_data = strings.count
            p.pointee.string_data = memory.array(strings.map { memory.binary($0) })
            return p
        }
        p.pointee.has_raw_data = 1
        p.pointee.raw_data = tensor.withUnsafeBytes { bytes in
            guard tensor.dataType.bitWidth < 8, let base = bytes.baseAddress else { return memory.binary(bytes) }
            // ONNX packs the types narrower than a byte, which Onyx keeps one to a byte.
            let packed = SubBytePacking.pack(base, count: tensor.elementCount, type: tensor.dataType)
            return packed.withUnsafeBytes { memory.binary($0) }
        }
        return p
    }
}

extension Tensor {
    /// The tensor as a serialized ONNX `TensorProto` (the `.pb` files of ONNX's backend tests).
    ///
    /// - Parameter name: The name stored in the proto (a graph input or output name).
    /// - Returns: The serialized bytes, with the data as little-endian `raw_data` (int4, uint4,
    ///   float4e2m1, int2 and uint2 packed as ONNX requires: see ``DataType/bitWidth``).
    public func onnxTensorProtoBytes(name: String) -> [UInt8] {
        ModelEncoder.encode(self, name: name)
    }
}

extension Model {
    /// The model as a serialized ONNX `ModelProto`, tensors written as `raw_data`.
    public func serializedBytes() -> [UInt8] {
        ModelEncoder.encode(self)
    }

    /// Writes the model as an ONNX file, every tensor inline as `raw_data`.
    ///
    /// The file is written beside `path` and renamed over it, so `path` may be the file the
    /// model was read from.
    ///
    /// - Parameter path: The `.onnx` file to write.
    /// - Throws: ``OnyxError`` `.limitExceeded` if the model would serialize to more than 2 GiB − 1
    ///   bytes, the most one protobuf message can hold (Onyx does not write external data), or
    ///   `.io` if the file cannot be written.
    public func write(to path: String) throws {
        let bytes = try ModelEncoder.encode(self, limit: ModelEncoder.protobufLimit)
        try bytes.withUnsafeBytes { try FileSystem.write($0, to: path) }
    }
}

// MARK: - Sequences, maps and optionals

extension ModelEncoder {
    /// The serialized proto of `value`: `TensorProto`, `SequenceProto`, `MapProto` or `OptionalProto`.
    static func encode(_ value: OnnxValue, name: String) -> [UInt8] {
        let encoder = ModelEncoder()
        let base: UnsafeMutableRawPointer = switch value {
        case .tensor(let tensor): UnsafeMutableRawPointer(encoder.tensor(tensor, name: name))
        case .sequence: UnsafeMutableRawPointer(encoder.sequence(value, name: name))
        case .map: UnsafeMutableRawPointer(encoder.map(value, name: name))
        case .optional: UnsafeMutableRawPointer(encoder.optional(value, name: name))
        }
        return withExtendedLifetime(encoder) {
            let message = UnsafeRawPointer(base).assumingMemoryBound(to: ProtobufCMessage.self)
            var bytes = [UInt8](repeating: 0, count: protobuf_c_message_get_packed_size(message))
            _ = bytes.withUnsafeMutableBufferPointer { protobuf_c_message_pack(message, $0.baseAddress) }
            return bytes
        }
    }

    private func sequence(_ value: OnnxValue, name: String) -> UnsafeMutablePointer<Onnx__SequenceProto> {
        let p = memory.allocate(Onnx__SequenceProto.self)
        onnx__sequence_proto__init(p)
        p.pointee.name = memory.cString(name)
        guard case .sequence(let elements) = value else { return p }
        p.pointee.has_elem_type = 1
        switch elements.first ?? .tensor(Tensor(zeros: .float, shape: [0])) {
        case .tensor:
            p.pointee.elem_type = Int32(ONNX__SEQUENCE_PROTO__DATA_TYPE__TENSOR.rawValue)
            p.pointee.n_tensor_values = elements.count
            p.pointee.tensor_values = memory.array(elements.map { Optional(tensor($0.tensor ?? Tensor(zeros: .float, shape: [0]), name: "")) })
        case .sequence:
            p.pointee.elem_type = Int32(ONNX__SEQUENCE_PROTO__DATA_TYPE__SEQUENCE.rawValue)
            p.pointee.n_sequence_values = elements.count
            p.pointee.sequence_values = memory.array(elements.map { Optional(sequence($0, name: "")) })
        case .map:
            p.pointee.elem_type = Int32(ONNX__SEQUENCE_PROTO__DATA_TYPE__MAP.rawValue)
            p.pointee.n_map_values = elements.count
            p.pointee.map_values = memory.array(elements.map { Optional(map($0, name: "")) })
        case .optional:
            p.pointee.elem_type = Int32(ONNX__SEQUENCE_PROTO__DATA_TYPE__OPTIONAL.rawValue)
            p.pointee.n_optional_values = elements.count
            p.pointee.optional_values = memory.array(elements.map { Optional(optional($0, name: "")) })
        }
        return p
    }

    private func map(_ value: OnnxValue, name: String) -> UnsafeMutablePointer<Onnx__MapProto> {
        let p = memory.allocate(Onnx__MapProto.self)
        onnx__map_proto__init(p)
        p.pointee.name = memory.cString(name)
        guard case .map(let keys, let values) = value else { return p }
        p.pointee.has_key_type = 1
        p.pointee.key_type = keys.dataType.rawValue
        if keys.dataType == .string {
            let strings = (try? keys.strings()) ?? []
            p.pointee.n_string_keys = strings.count
            p.pointee.string_keys = memory.array(strings.map { memory.binary($0) })
        } else {
            let integers = (try? keys.scalars(as: Int64.self)) ?? []
            p.pointee.n_keys = integers.count
            p.pointee.keys = memory.array(integers)
        }
        // The values as a sequence of scalar tensors, one per key.
        let scalars = (0..<values.elementCount).map { i in
            OnnxValue.tensor(values.withUnsafeBytes { raw in
                let width = values.dataType.byteWidth
                return Tensor(dataType: values.dataType, shape: [],
                              storage: TensorStorage(copying: UnsafeRawBufferPointer(rebasing: raw[(i * width)..<((i + 1) * width)]),
                                                     strings: values.stringTable))
            })
        }
        p.pointee.values = sequence(.sequence(scalars), name: "")
        return p
    }

    private func optional(_ value: OnnxValue, name: String) -> UnsafeMutablePointer<Onnx__OptionalProto> {
        let p = memory.allocate(Onnx__OptionalProto.self)
        onnx__optional_proto__init(p)
        p.pointee.name = memory.cString(name)
        guard case .optional(let inner?) = value else { return p }
        p.pointee.has_elem_type = 1
        switch inner {
        case .tensor(let t):
            p.pointee.elem_type = Int32(ONNX__OPTIONAL_PROTO__DATA_TYPE__TENSOR.rawValue)
            p.pointee.tensor_value = tensor(t, name: "")
        case .sequence:
            p.pointee.elem_type = Int32(ONNX__OPTIONAL_PROTO__DATA_TYPE__SEQUENCE.rawValue)
            p.pointee.sequence_value = sequence(inner, name: "")
        case .map:
            p.pointee.elem_type = Int32(ONNX__OPTIONAL_PROTO__DATA_TYPE__MAP.rawValue)
            p.pointee.map_value = map(inner, name: "")
        case .optional:
            p.pointee.elem_type = Int32(ONNX__OPTIONAL_PROTO__DATA_TYPE__OPTIONAL.rawValue)
            p.pointee.optional_value = optional(inner, name: "")
        }
        return p
    }
}

extension OnnxValue {
    /// The value as its serialized ONNX proto (`TensorProto`, `SequenceProto`, `MapProto` or
    /// `OptionalProto`), as the backend tests store inputs and outputs.
    ///
    /// - Parameter name: The name stored in the proto.
    public func onnxProtoBytes(name: String) -> [UInt8] {
        ModelEncoder.encode(self, name: name)
    }
}
