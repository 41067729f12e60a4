internal import COnnxProto
import OnyxCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Turns `TensorProto`s into ``Tensor``s: raw data, the typed repeated fields, or external files.
struct TensorProtoDecoder {
    let limits: DecodingLimits
    /// The model's folder, against which external data locations resolve; `nil` when decoding bytes.
    let baseDirectory: String?
    private(set) var totalBytes = 0

    init(limits: DecodingLimits, baseDirectory: String?) {
        self.limits = limits
        self.baseDirectory = baseDirectory
    }

    /// Decodes `proto`, taking over its raw data buffer (no copy) rather than copying it: the
    /// message must come from `protobuf-c`'s default allocator and be freed afterwards, as a whole.
    mutating func decode(_ proto: UnsafeMutablePointer<Onnx__TensorProto>, context: String) throws -> (name: String, tensor: Tensor) {
        let p = proto.pointee
        let name = string(p.name)
        let label = name.isEmpty ? context : "tensor '\(name)'"

        guard p.n_dims <= limits.maxRank else {
            throw OnyxError.limitExceeded("\(label) has rank \(p.n_dims), more than the limit of \(limits.maxRank)")
        }
        let shape = (0..<p.n_dims).map { Int(p.dims[$0]) }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw OnyxError.invalidModel("\(label) has a negative extent in shape \(shape)")
        }
        guard let dataType = DataType(rawValue: p.data_type) else {
            throw OnyxError.unsupportedDataType(
                "\(label) has data type \(DataType.onnxName(ofCode: p.data_type)), which Onyx does not support")
        }
        var count = 1
        var span = 1  // the product with zero extents skipped: what strides over this shape reach
        for extent in shape {
            let (product, overflow) = span.multipliedReportingOverflow(by: max(extent, 1))
            guard !overflow else { throw OnyxError.limitExceeded("\(label): element count of shape \(shape) overflows") }
            span = product
            count = count &* extent
        }
        // A zero extent makes the tensor empty, but kernels still multiply the other extents.
        guard count > 0 || span <= limits.maxTensorBytes else {
            throw OnyxError.limitExceeded(
                "\(label): the extents of shape \(shape) multiply past the limit of \(limits.maxTensorBytes) even though it holds no elements")
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dataType.byteWidth)
        guard !overflow, byteCount <= limits.maxTensorBytes else {
            throw OnyxError.limitExceeded(
                "\(label) of shape \(shape) (\(dataType)) needs more than the limit of \(limits.maxTensorBytes) bytes")
        }
        guard totalBytes + byteCount <= limits.maxTotalTensorBytes else {
            throw OnyxError.limitExceeded("the model's tensors need more than the limit of \(limits.maxTotalTensorBytes) bytes")
        }
        totalBytes += byteCount

        if dataType == .string { return (name, try stringData(p, shape: shape, count: count, label: label)) }
        // The bytes of raw and external data: fewer than in memory for the packed types.
        let serializedCount = dataType.packedByteCount(count)
        let packing = dataType.bitWidth < 8 ? ", packed \(8 / dataType.bitWidth) to a byte" : ""
        if p.has_data_location != 0 && p.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            let bytes = try readExternal(p, label: label, byteCount: serializedCount)
            let tensor = try bytes.withUnsafeBytes { bytes in
                guard dataType.bitWidth < 8 else { return try Tensor(dataType: dataType, shape: shape, bytes: bytes) }
                return Self.unpacked(bytes.baseAddress, dataType: dataType, shape: shape, count: count)
            }
            return (name, tensor)
        }
        if p.has_raw_data != 0 || p.raw_data.len > 0 {
            guard p.raw_data.len == serializedCount else {
                throw OnyxError.invalidModel(
                    "\(label): raw data holds \(p.raw_data.len) bytes but shape \(shape) of \(dataType) needs \(serializedCount)\(packing)")
            }
            guard byteCount > 0, let data = p.raw_data.data else {
                return (name, Tensor(uninitialized: dataType, shape: shape))
            }
            if dataType.bitWidth < 8 { return (name, Self.unpacked(data, dataType: dataType, shape: shape, count: count)) }
            // free_unpacked skips a field whose pointer is gone, so the buffer is the tensor's now.
            proto.pointee.raw_data.data = nil
            proto.pointee.raw_data.len = 0
            let storage = TensorStorage(adoptingMallocated: UnsafeMutableRawPointer(data), byteCount: byteCount)
            return (name, Tensor(dataType: dataType, shape: shape, storage: storage))
        }
        return (name, try typedFields(p, dataType: dataType, shape: shape, count: count, label: label))
    }

    /// A tensor of a packed type unpacked from `packed` (`dataType.packedByteCount(count)` bytes).
    private static func unpacked(_ packed: UnsafeRawPointer?, dataType: DataType, shape: [Int], count: Int) -> Tensor {
        let tensor = Tensor(uninitialized: dataType, shape: shape)
        if let packed, count > 0 { SubBytePacking.unpack(packed, count: count, type: dataType, into: tensor.baseAddress) }
        return tensor
    }

    /// Decodes a string tensor: `string_data` only (ONNX stores no strings in raw or external data).
    /// Its text counts against the same byte limits as other tensors' data.
    private mutating func stringData(_ p: Onnx__TensorProto, shape: [Int], count: Int, label: String) throws -> Tensor {
        guard p.raw_data.len == 0, p.data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL else {
            throw OnyxError.invalidModel("\(label): a string tensor keeps its values in string_data, not in raw or external data")
        }
        guard p.n_string_data == count else {
            throw OnyxError.invalidModel("\(label): string_data holds \(p.n_string_data) values but shape \(shape) needs \(count)")
        }
        var strings: [String] = []
        strings.reserveCapacity(count)
        for i in 0..<count {
            let value = p.string_data[i]
            totalBytes += value.len
            guard totalBytes <= limits.maxTotalTensorBytes else {
                throw OnyxError.limitExceeded("the model's tensors need more than the limit of \(limits.maxTotalTensorBytes) bytes")
            }
            strings.append(string(value))
        }
        return try Tensor(strings: strings, shape: shape)
    }

    /// Decodes a tensor stored in the typed repeated fields.
    private func typedFields(
        _ p: Onnx__TensorProto, dataType: DataType, shape: [Int], count: Int, label: String
    ) throws -> Tensor {
        func check(_ found: Int, _ field: String) throws {
            guard found == count else {
                throw OnyxError.invalidModel(
                    "\(label): \(field) holds \(found) values but shape \(shape) needs \(count)")
            }
        }
        let tensor = Tensor(uninitialized: dataType, shape: shape)
        let out = tensor.baseAddress
        switch dataType {
        case .float:
            try check(p.n_float_data, "float_data")
            if count > 0 { out.copyMemory(from: p.float_data, byteCount: count * 4) }
        case .double:
            try check(p.n_double_data, "double_data")
            if count > 0 { out.copyMemory(from: p.double_data, byteCount: count * 8) }
        case .int64:
            try check(p.n_int64_data, "int64_data")
            if count > 0 { out.copyMemory(from: p.int64_data, byteCount: count * 8) }
        case .uint64, .uint32:
            try check(p.n_uint64_data, "uint64_data")
            for i in 0..<count {
                if dataType == .uint64 {
                    out.storeBytes(of: p.uint64_data[i], toByteOffset: i * 8, as: UInt64.self)
                } else {
                    out.storeBytes(of: UInt32(truncatingIfNeeded: p.uint64_data[i]), toByteOffset: i * 4, as: UInt32.self)
                }
            }
        case .int32, .int16, .uint16, .int8, .uint8, .bool, .float16:
            // int32_data carries every narrower type, one value (or bit pattern) per entry.
            try check(p.n_int32_data, "int32_data")
            for i in 0..<count {
                let v = p.int32_data[i]
                switch dataType {
                case .int32: out.storeBytes(of: v, toByteOffset: i * 4, as: Int32.self)
                case .int16: out.storeBytes(of: Int16(truncatingIfNeeded: v), toByteOffset: i * 2, as: Int16.self)
                case .uint16, .float16: out.storeBytes(of: UInt16(truncatingIfNeeded: v), toByteOffset: i * 2, as: UInt16.self)
                case .int8: out.storeBytes(of: Int8(truncatingIfNeeded: v), toByteOffset: i, as: Int8.self)
                case .uint8: out.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: i, as: UInt8.self)
                default: out.storeBytes(of: UInt8(v != 0 ? 1 : 0), toByteOffset: i, as: UInt8.self)
                }
            }
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0:
            // One bit pattern per entry.
            try check(p.n_int32_data, "int32_data")
            let width = dataType.byteWidth
            let limit: Int32 = width == 2 ? 0xFFFF : 0xFF
            for i in 0..<count {
                let v = p.int32_data[i]
                guard v >= 0 && v <= limit else {
                    throw OnyxError.invalidModel(
                        "\(label): int32_data[\(i)] = \(v) is not a \(dataType) bit pattern (0...\(limit))")
                }
                if width == 2 {
                    out.storeBytes(of: UInt16(v), toByteOffset: i * 2, as: UInt16.self)
                } else {
                    out.storeBytes(of: UInt8(v), toByteOffset: i, as: UInt8.self)
                }
            }
        case .int4, .uint4, .float4e2m1, .int2, .uint2:
            // One packed byte per entry, as in raw data.
            let packedCount = dataType.packedByteCount(count)
            guard p.n_int32_data == packedCount else {
                throw OnyxError.invalidModel(
                    "\(label): int32_data holds \(p.n_int32_data) values but shape \(shape) of \(dataType) needs \(packedCount), "
                        + "each a byte of \(8 / dataType.bitWidth) packed elements")
            }
            var packed = [UInt8](repeating: 0, count: packedCount)
            for i in 0..<packedCount {
                let v = p.int32_data[i]
                guard v >= 0 && v <= 0xFF else {
                    throw OnyxError.invalidModel(
                        "\(label): int32_data[\(i)] = \(v) is out of range for \(dataType): each entry is a byte (0...255) "
                            + "of \(8 / dataType.bitWidth) packed elements")
                }
                packed[i] = UInt8(v)
            }
            if count > 0 { SubBytePacking.unpack(packed, count: count, type: dataType, into: out) }
        case .string:
            preconditionFailure("string tensors are decoded by stringData")
        }
        return tensor
    }

    /// Reads external data, confined to the model's folder.
    private func readExternal(_ p: Onnx__TensorProto, label: String, byteCount: Int) throws -> [UInt8] {
        var location: String?
        var offset = 0
        var length: Int?
        for i in 0..<p.n_external_data {
            guard let entry = p.external_data[i]?.pointee else { continue }
            let key = string(entry.key)
            let value = string(entry.value)
            switch key {
            case "location": location = value
            case "offset":
                guard let v = Int(value), v >= 0 else { throw OnyxError.invalidModel("\(label): bad external data offset '\(value)'") }
                offset = v
            case "length":
                guard let v = Int(value), v >= 0 else { throw OnyxError.invalidModel("\(label): bad external data length '\(value)'") }
                length = v
            default: break
            }
        }
        guard let location, !location.isEmpty else {
            throw OnyxError.invalidModel("\(label) is stored externally but names no location")
        }
        guard let baseDirectory else {
            throw OnyxError.invalidModel(
                "\(label) is stored in external file '\(location)'; load the model from its file so the file can be found")
        }
        let path = try Self.confinedPath(location, in: baseDirectory, label: label)
        if let length, length != byteCount {
            throw OnyxError.invalidModel("\(label): external data length \(length) does not match the \(byteCount) bytes its shape needs")
        }
        do {
            return try FileSystem.read(path, offset: offset, byteCount: byteCount)
        } catch let error as OnyxError {
            throw OnyxError.invalidModel("\(label): external data in '\(location)': \(error.message)")
        }
    }

    /// `location` resolved inside `directory`, refusing absolute paths, `..` and symlinks that leave it.
    static func confinedPath(_ location: String, in directory: String, label: String) throws -> String {
        func refuse(_ why: String) -> OnyxError {
            OnyxError.invalidModel("\(label): external data location '\(location)' \(why)")
        }
        guard !location.hasPrefix("/") else { throw refuse("is an absolute path; it must be relative to the model's folder") }
        guard !location.split(separator: "/").contains("..") else { throw refuse("contains '..'; it must stay inside the model's folder") }
        guard !location.contains("\0") else { throw refuse("contains a NUL byte") }
        guard let root = FileSystem.realPath(directory) else { throw refuse("cannot be resolved: the model's folder does not exist") }
        guard let resolved = FileSystem.realPath(directory + "/" + location) else { throw refuse("does not exist") }
        guard resolved.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw refuse("resolves to '\(resolved)', outside the model's folder")
        }
        return resolved
    }
}

/// A protobuf-c string field as a Swift string; empty for null.
func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    guard let pointer else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)), as: UTF8.self)
}

/// A protobuf-c bytes field as a Swift string (UTF-8, invalid sequences replaced).
func string(_ binary: ProtobufCBinaryData) -> String {
    guard binary.len > 0, let data = binary.data else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: data, count: binary.len), as: UTF8.self)
}
