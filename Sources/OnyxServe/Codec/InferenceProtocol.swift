import Onyx

/// The Open Inference Protocol v2 (KServe v2 / Triton) request and response bodies, in JSON and
/// with the binary tensor data extension.
public enum InferenceProtocol {
    /// A decoded `/infer` request and how the client wants each output encoded.
    public struct DecodedRequest: Sendable {
        /// The request as the handler receives it.
        public var request: HandlerRequest
        /// Outputs to send as binary; `allBinary` sends every output so.
        public var binaryOutputs: Set<String>
        /// Whether every output goes back as binary (`binary_data_output` in the request's parameters).
        public var allBinary: Bool
    }

    /// Decodes an `/infer` body.
    ///
    /// - Parameters:
    ///   - body: The whole request body.
    ///   - headerLength: `Inference-Header-Content-Length`: the JSON part's size when binary data follows.
    ///   - maxElements: Largest tensor accepted.
    /// - Throws: ``HandlerError`` (400) naming the problem.
    public static func decodeRequest(_ body: [UInt8], headerLength: Int?, maxElements: Int) throws -> DecodedRequest {
        let jsonLength = headerLength ?? body.count
        guard jsonLength >= 0, jsonLength <= body.count else {
            throw HandlerError.badRequest("Inference-Header-Content-Length \(jsonLength) does not fit a body of \(body.count) bytes")
        }
        let document: JSONValue
        do {
            document = try body.withUnsafeBytes { raw in
                try JSONParser.parse(UnsafeRawBufferPointer(rebasing: raw[0..<jsonLength]), maxElements: maxElements)
            }
        } catch let error as JSONSyntaxError {
            throw HandlerError.badRequest("request body is not valid JSON: \(error)")
        }
        guard case .object = document else { throw HandlerError.badRequest("request body must be a JSON object") }
        guard let inputValues = document["inputs"]?.arrayValue, !inputValues.isEmpty else {
            throw HandlerError.badRequest("request has no \"inputs\"")
        }
        var request = HandlerRequest()
        request.id = document["id"]?.stringValue
        if case .object(let parameters)? = document["parameters"] { request.parameters = parameters }
        try request.readControlParameters()

        var binaryOffset = jsonLength
        for (index, value) in inputValues.enumerated() {
            guard case .object = value, let name = value["name"]?.stringValue else {
                throw HandlerError.badRequest("input #\(index) needs a \"name\"")
            }
            guard let typeName = value["datatype"]?.stringValue else {
                throw HandlerError.badRequest("input '\(name)' needs a \"datatype\"")
            }
            guard let type = DataType(protocolName: typeName) else {
                throw HandlerError.badRequest(
                    "input '\(name)': datatype '\(typeName)' is not supported (BOOL, UINT8–64, INT8–64, FP16, BF16, FP32, FP64, BYTES, "
                        + "or an ONNX type name such as FLOAT8E4M3FN or INT4)")
            }
            guard let shapeValues = value["shape"]?.arrayValue else {
                throw HandlerError.badRequest("input '\(name)' needs a \"shape\" array")
            }
            let shape = try shapeValues.map { extent -> Int in
                guard let n = extent.intValue, n >= 0 else {
                    throw HandlerError.badRequest("input '\(name)': shape must hold non-negative integers")
                }
                return n
            }
            let tensor: Tensor
            if let size = value["parameters"]?["binary_data_size"] {
                guard let byteCount = size.intValue, byteCount >= 0 else {
                    throw HandlerError.badRequest("input '\(name)': binary_data_size must be a non-negative integer")
                }
                guard byteCount <= body.count - binaryOffset else {
                    throw HandlerError.badRequest("input '\(name)': binary_data_size \(byteCount) runs past the end of the body")
                }
                tensor = try binaryTensor(body, offset: binaryOffset, byteCount: byteCount, type: type, shape: shape, name: name, maxElements: maxElements)
                binaryOffset += byteCount
            } else {
                guard let data = value["data"] else { throw HandlerError.badRequest("input '\(name)' has no \"data\"") }
                do {
                    tensor = try TensorJSON.tensor(from: data, type: type, shape: shape, name: name, limit: maxElements)
                } catch let error as TensorCodingError {
                    throw HandlerError.badRequest(error.message)
                }
            }
            request.inputs.append(NamedTensor(name: name, tensor: tensor))
        }
        guard binaryOffset == body.count || headerLength == nil else {
            throw HandlerError.badRequest("the body has \(body.count - binaryOffset) bytes of binary data no input claims")
        }

        var binaryOutputs: Set<String> = []
        let allBinary = request.parameters["binary_data_output"]?.boolValue ?? false
        if let outputValues = document["outputs"]?.arrayValue {
            var names: [String] = []
            for value in outputValues {
                guard let name = value["name"]?.stringValue else { throw HandlerError.badRequest("each requested output needs a \"name\"") }
                names.append(name)
                if value["parameters"]?["binary_data"]?.boolValue == true { binaryOutputs.insert(name) }
            }
            request.requestedOutputs = names
        }
        return DecodedRequest(request: request, binaryOutputs: binaryOutputs, allBinary: allBinary)
    }

    /// A tensor from `byteCount` bytes of `body` at `offset`, in the binary extension's layout:
    /// little-endian elements, BYTES as 4-byte length-prefixed elements.
    ///
    /// - Parameters:
    ///   - sizeSource: How the error for a wrong byte count names where the size came from.
    /// - Throws: ``HandlerError`` (400) naming the input.
    package static func binaryTensor(
        _ body: [UInt8], offset: Int, byteCount: Int, type: DataType, shape: [Int], name: String, maxElements: Int,
        sizeSource: String = "binary_data_size is"
    ) throws -> Tensor {
        try body.withUnsafeBytes { raw in
            try binaryTensor(
                UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + byteCount)]), type: type, shape: shape, name: name,
                maxElements: maxElements, sizeSource: sizeSource)
        }
    }

    /// A tensor from `bytes` in the binary extension's layout, copied once into the tensor's storage
    /// (the gRPC front reads `raw_input_contents` in place through this).
    ///
    /// - Throws: ``HandlerError`` (400) naming the input.
    package static func binaryTensor(
        _ bytes: UnsafeRawBufferPointer, type: DataType, shape: [Int], name: String, maxElements: Int, sizeSource: String
    ) throws -> Tensor {
        guard let count = TensorJSON.elementCount(of: shape, limit: maxElements) else {
            throw HandlerError.badRequest("input '\(name)': shape \(shape) holds more than the limit of \(maxElements) elements")
        }
        if type == .string {
            do {
                return try TensorJSON.stringTensor(binary: bytes, shape: shape, count: count, name: name)
            } catch let error as TensorCodingError {
                throw HandlerError.badRequest(error.message)
            }
        }
        guard type.hasBinaryLayout else {
            throw HandlerError.badRequest(
                "input '\(name)': \(type.protocolName) has no binary layout in the protocol (ONNX packs it, Onyx does not); send it as \"data\"")
        }
        guard count * type.byteWidth == bytes.count else {
            throw HandlerError.badRequest("input '\(name)': shape \(shape) of \(type.protocolName) needs \(count * type.byteWidth) bytes, \(sizeSource) \(bytes.count)")
        }
        if type == .bool, bytes.contains(where: { $0 > 1 }) {
            throw HandlerError.badRequest("input '\(name)': BOOL bytes must be 0 or 1")
        }
        return try Tensor(dataType: type, shape: shape, bytes: bytes)
    }

    /// Encodes an `/infer` response; binary outputs follow the JSON part, whose length is returned.
    public static func encodeResponse(
        modelName: String, version: String, id: String?, outputs: [NamedTensor], binaryOutputs: Set<String>, allBinary: Bool
    ) -> (body: [UInt8], jsonLength: Int?) {
        var writer = JSONWriter(capacity: 256 + outputs.reduce(0) { $0 + $1.tensor.elementCount * 12 })
        writer.raw("{\"model_name\":")
        writer.string(modelName)
        writer.raw(",\"model_version\":")
        writer.string(version)
        if let id {
            writer.raw(",\"id\":")
            writer.string(id)
        }
        writer.raw(",\"outputs\":[")
        var binary: [Tensor] = []
        var binaryStrings: [[UInt8]] = []  // BYTES outputs, length-prefixed, in output order
        for (i, output) in outputs.enumerated() {
            if i > 0 { writer.raw(",") }
            // The 4- and 2-bit types have no binary layout: they are sent as "data" even when asked for binary.
            let asBinary = (allBinary || binaryOutputs.contains(output.name)) && output.tensor.dataType.hasBinaryLayout
            let strings = asBinary && output.tensor.dataType == .string ? TensorJSON.binaryStrings(output.tensor) : nil
            writeOutput(output, binary: asBinary, binaryByteCount: strings?.count, to: &writer)
            if asBinary { binary.append(output.tensor) }
            if let strings { binaryStrings.append(strings) }
        }
        writer.raw("]}")
        guard !binary.isEmpty else { return (writer.bytes, nil) }
        let jsonLength = writer.bytes.count
        var nextStrings = binaryStrings.makeIterator()
        for tensor in binary {
            if tensor.dataType == .string {
                writer.bytes.append(contentsOf: nextStrings.next() ?? [])
            } else {
                tensor.withUnsafeBytes { writer.bytes.append(contentsOf: $0) }
            }
        }
        return (writer.bytes, jsonLength)
    }

    /// One output object: name, datatype, shape, then `data` or (for binary) `binary_data_size`.
    ///
    /// A binary BYTES output gives its encoded size as `binaryByteCount`. With `expandJSON`, an
    /// output holding JSON texts (a sequence or map) has them written as JSON, not as strings.
    static func writeOutput(
        _ output: NamedTensor, binary: Bool, binaryByteCount: Int? = nil, expandJSON: Bool = false, to writer: inout JSONWriter
    ) {
        writer.raw("{\"name\":")
        writer.string(output.name)
        writer.raw(",\"datatype\":")
        writer.string(output.tensor.dataType.protocolName)
        writer.raw(",\"shape\":[")
        for (j, extent) in output.tensor.shape.enumerated() {
            if j > 0 { writer.raw(",") }
            writer.integer(extent)
        }
        writer.raw("]")
        if binary {
            writer.raw(",\"parameters\":{\"binary_data_size\":")
            writer.integer(binaryByteCount ?? output.tensor.byteCount)
            writer.raw("}}")
        } else if expandJSON && output.holdsJSON, let texts = try? output.tensor.strings() {
            writer.raw(",\"data\":[")
            for (i, text) in texts.enumerated() {
                if i > 0 { writer.raw(",") }
                writer.bytes += Array(text.utf8)
            }
            writer.raw("]}")
        } else {
            writer.raw(",\"data\":")
            TensorJSON.write(output.tensor, to: &writer)
            writer.raw("}")
        }
    }

    /// `{"error": "..."}`.
    public static func errorBody(_ message: String) -> [UInt8] {
        var writer = JSONWriter()
        writer.raw("{\"error\":")
        writer.string(message)
        writer.raw("}")
        return writer.bytes
    }
}
