import Foundation
import Onyx
import OnyxServe

extension DataType {
    /// The `InferTensorContents` field that carries the type, or `nil` for the types the protocol
    /// sends only as raw contents (FP16, BF16, the float8 and float4 types).
    var contentsField: String? {
        switch self {
        case .bool: "bool_contents"
        case .int8, .int16, .int32, .int4, .int2: "int_contents"
        case .int64: "int64_contents"
        case .uint8, .uint16, .uint32, .uint4, .uint2: "uint_contents"
        case .uint64: "uint64_contents"
        case .float: "fp32_contents"
        case .double: "fp64_contents"
        case .string: "bytes_contents"
        case .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1: nil
        }
    }
}

extension Inference_InferTensorContents {
    /// The input `name` of `type` and `shape` (`count` elements) from its typed contents.
    ///
    /// - Throws: ``HandlerError`` (400) naming the input, the field and what was wrong: an element
    ///   count that does not match the shape, a value out of the type's range, a BYTES element
    ///   that is not UTF-8, a type with no typed field.
    func tensor(type: DataType, shape: [Int], count: Int, name: String) throws -> Tensor {
        guard let field = type.contentsField else {
            throw HandlerError.input(name, "\(type.protocolName) has no typed contents field in the protocol; send it in raw_input_contents")
        }
        func counted<Value>(_ values: [Value]) throws -> [Value] {
            guard values.count == count else {
                throw HandlerError.input(name, "shape \(shape) needs \(count) elements but \(field) holds \(values.count)")
            }
            return values
        }
        /// Each value as `Element` (refusing those out of its range), stored as `type`: the
        /// types narrower than a byte are held one element per byte, and Tensor checks their range.
        func integers<Source: BinaryInteger, Element: FixedWidthInteger & TensorElement>(_ values: [Source], as _: Element.Type) throws -> Tensor {
            var elements: [Element] = []
            elements.reserveCapacity(values.count)
            for value in try counted(values) {
                guard let element = Element(exactly: value) else {
                    throw HandlerError.input(name, "\(value) in \(field) is out of range for \(type.protocolName)")
                }
                elements.append(element)
            }
            if type == Element.dataType { return try Tensor(shape: shape, scalars: elements) }
            return try elements.withUnsafeBytes { try Tensor(dataType: type, shape: shape, bytes: $0) }
        }
        do {
            switch type {
            case .bool: return try Tensor(shape: shape, scalars: counted(boolContents))
            case .float: return try Tensor(shape: shape, scalars: counted(fp32Contents))
            case .double: return try Tensor(shape: shape, scalars: counted(fp64Contents))
            case .int64: return try Tensor(shape: shape, scalars: counted(int64Contents))
            case .uint64: return try Tensor(shape: shape, scalars: counted(uint64Contents))
            case .int32: return try Tensor(shape: shape, scalars: counted(intContents))
            case .uint32: return try Tensor(shape: shape, scalars: counted(uintContents))
            case .int16: return try integers(intContents, as: Int16.self)
            case .int8, .int4, .int2: return try integers(intContents, as: Int8.self)
            case .uint16: return try integers(uintContents, as: UInt16.self)
            case .uint8, .uint4, .uint2: return try integers(uintContents, as: UInt8.self)
            case .string:
                let strings = try counted(bytesContents).enumerated().map { index, bytes in
                    guard let text = String(data: bytes, encoding: .utf8) else {
                        throw HandlerError.input(name, "BYTES element \(index) is not valid UTF-8")
                    }
                    return text
                }
                return try Tensor(strings: strings, shape: shape)
            default:
                throw HandlerError.input(name, "\(type.protocolName) has no typed contents field in the protocol; send it in raw_input_contents")
            }
        } catch let error as OnyxError {
            throw HandlerError.input(name, error.message)
        }
    }

    /// The typed contents of `tensor`, whose type has a field (``DataType/contentsField``).
    init(_ tensor: Tensor) throws {
        self.init()
        func elements<Element: TensorElement>(_: Element.Type) -> [Element] {
            tensor.withUnsafeBytes { raw in
                (0..<tensor.elementCount).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<Element>.stride, as: Element.self) }
            }
        }
        switch tensor.dataType {
        case .bool: boolContents = elements(Bool.self)
        case .float: fp32Contents = elements(Float.self)
        case .double: fp64Contents = elements(Double.self)
        case .int64: int64Contents = elements(Int64.self)
        case .uint64: uint64Contents = elements(UInt64.self)
        case .int32: intContents = elements(Int32.self)
        case .int16: intContents = elements(Int16.self).map(Int32.init)
        case .int8, .int4, .int2: intContents = elements(Int8.self).map(Int32.init)
        case .uint32: uintContents = elements(UInt32.self)
        case .uint16: uintContents = elements(UInt16.self).map(UInt32.init)
        case .uint8, .uint4, .uint2: uintContents = elements(UInt8.self).map(UInt32.init)
        case .string: bytesContents = try tensor.strings().map { Data($0.utf8) }
        default:
            throw HandlerError(status: 500, "\(tensor.dataType.protocolName) has no typed contents field in the protocol")
        }
    }
}
