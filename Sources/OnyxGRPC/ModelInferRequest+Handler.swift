import Foundation
import Onyx
import OnyxServe

extension Inference_InferParameter {
    /// The parameter as the handlers see request parameters (the JSON the REST front would pass).
    var jsonValue: JSONValue {
        switch parameterChoice {
        case .boolParam(let value)?: .bool(value)
        case .int64Param(let value)?: .number(Double(value))
        case .stringParam(let value)?: .string(value)
        case .doubleParam(let value)?: .number(value)
        case .uint64Param(let value)?: .number(Double(value))
        case nil: .null
        }
    }
}

extension Inference_ModelInferRequest {
    /// The request as a handler receives it: each input from its typed `contents` or from its
    /// entry of `raw_input_contents` (one per input, or none), the requested outputs, parameters.
    ///
    /// - Parameter maxElements: Largest tensor accepted.
    /// - Throws: ``HandlerError`` (400) naming the input and what is wrong with it.
    func handlerRequest(maxElements: Int) throws -> HandlerRequest {
        guard !inputs.isEmpty else { throw HandlerError.badRequest("request has no inputs") }
        guard rawInputContents.isEmpty || rawInputContents.count == inputs.count else {
            throw HandlerError.badRequest(
                "raw_input_contents has \(rawInputContents.count) entries for \(inputs.count) inputs: give one per input, or none and use contents")
        }
        var request = HandlerRequest(id: id.isEmpty ? nil : id, parameters: parameters.mapValues(\.jsonValue))
        try request.readControlParameters(exactSequenceID: exactSequenceID)
        for (index, input) in inputs.enumerated() {
            let name = input.name
            guard !name.isEmpty else { throw HandlerError.badRequest("input #\(index) needs a name") }
            guard let type = DataType(protocolName: input.datatype) else {
                throw HandlerError.input(name, "datatype '\(input.datatype)' is not supported (BOOL, UINT8–64, INT8–64, FP16, BF16, FP32, FP64, BYTES, "
                    + "or an ONNX type name such as FLOAT8E4M3FN or INT4)")
            }
            let shape = try input.shape.map { extent -> Int in
                guard extent >= 0, let n = Int(exactly: extent) else {
                    throw HandlerError.input(name, "shape must hold non-negative integers, got \(input.shape)")
                }
                return n
            }
            guard let count = TensorJSON.elementCount(of: shape, limit: maxElements) else {
                throw HandlerError.input(name, "shape \(shape) holds more than the limit of \(maxElements) elements")
            }
            let tensor: Tensor
            if rawInputContents.isEmpty {
                tensor = try input.contents.tensor(type: type, shape: shape, count: count, name: name)
            } else {
                guard !input.hasContents else {
                    throw HandlerError.input(name, "has contents while the request uses raw_input_contents: use one or the other for every input")
                }
                guard type.hasBinaryLayout else {
                    throw HandlerError.input(name, "\(type.protocolName) has no raw layout (ONNX packs it, Onyx does not); send it in \(type.contentsField ?? "contents")")
                }
                // Read in place: the bytes are copied once, into the tensor.
                tensor = try rawInputContents[index].withUnsafeBytes { raw in
                    try InferenceProtocol.binaryTensor(
                        raw, type: type, shape: shape, name: name, maxElements: maxElements, sizeSource: "raw_input_contents[\(index)] holds")
                }
            }
            request.inputs.append(NamedTensor(name: name, tensor: tensor))
        }
        if !outputs.isEmpty { request.requestedOutputs = outputs.map(\.name) }
        return request
    }

    /// A numeric `sequence_id` as sent (int64 or uint64, as tritonclient sends it), not rounded
    /// through a JSON number; nil for a string, zero or negative id (the shared parsing judges those).
    var exactSequenceID: SequenceControl.ID? {
        switch parameters["sequence_id"]?.parameterChoice {
        case .int64Param(let value)? where value > 0: .number(UInt64(value))
        case .uint64Param(let value)? where value > 0: .number(value)
        default: nil
        }
    }

    /// Whether the client asked for typed `contents` rather than `raw_output_contents`: the request
    /// parameter `binary_data_output` or an output's `binary_data` set to false, as in the REST
    /// protocol's binary extension.
    var wantsTypedOutputs: Bool {
        if case .boolParam(false)? = parameters["binary_data_output"]?.parameterChoice { return true }
        return outputs.contains { output in
            if case .boolParam(false)? = output.parameters["binary_data"]?.parameterChoice { return true }
            return false
        }
    }
}

extension Inference_ModelInferResponse {
    /// A response holding `outputs`: all in `raw_output_contents` (little-endian; BYTES
    /// length-prefixed), as Triton answers, or all as typed `contents` when the client asked for
    /// that and every output has a typed field. The protocol allows no mix, so the types with no
    /// raw layout (INT4, UINT4, INT2, UINT2) make the whole response typed.
    ///
    /// - Throws: ``HandlerError`` (500) when the outputs hold both kinds of type no one form carries.
    init(model: String, version: String, id: String, outputs: [NamedTensor], typed wantsTyped: Bool) throws {
        self.init()
        modelName = model
        modelVersion = version
        self.id = id
        let typedPossible = outputs.allSatisfy { $0.tensor.dataType.contentsField != nil }
        let rawPossible = outputs.allSatisfy { $0.tensor.dataType.hasBinaryLayout }
        guard typedPossible || rawPossible else {
            throw HandlerError(status: 500, "the outputs mix types only raw contents carry (FP16, BF16, float8) with types raw contents cannot "
                + "carry (INT4, UINT4, INT2, UINT2); request them in separate calls")
        }
        let typed = typedPossible && (wantsTyped || !rawPossible)
        for output in outputs {
            var tensor = Inference_ModelInferResponse.InferOutputTensor()
            tensor.name = output.name
            tensor.datatype = output.tensor.dataType.protocolName
            tensor.shape = output.tensor.shape.map(Int64.init)
            if typed {
                tensor.contents = try Inference_InferTensorContents(output.tensor)
            } else if output.tensor.dataType == .string {
                rawOutputContents.append(Data(TensorJSON.binaryStrings(output.tensor)))
            } else {
                rawOutputContents.append(output.tensor.withUnsafeBytes { Data($0) })
            }
            self.outputs.append(tensor)
        }
    }
}
