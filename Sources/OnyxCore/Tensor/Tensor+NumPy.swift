/// Reading and writing NumPy's `.npy` format (version 1.0–3.0, little-endian, C order).
extension Tensor {
    /// Decodes the contents of a `.npy` file.
    ///
    /// - Parameter bytes: The file's bytes.
    /// - Throws: ``OnyxError`` with code `.invalidInput` if the header is malformed, the array is
    ///   Fortran-ordered or big-endian, its dtype has no ``DataType`` (opaque `V` dtypes, which
    ///   ml_dtypes writes for bfloat16 and float8, included), or the data is short.
    public init(npy bytes: [UInt8]) throws {
        func fail(_ why: String) -> OnyxError { OnyxError.invalidInput("not a readable .npy file: \(why)") }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw fail("missing \\x93NUMPY magic") }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw fail("unknown format version \(major)")
        }
        guard headerStart + headerLength <= bytes.count else { throw fail("truncated header") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)

        guard let descr = Self.npyField("descr", in: header)?.trimmingCharacters(in: "'\" ") else {
            throw fail("header has no 'descr'")
        }
        if let order = Self.npyField("fortran_order", in: header), order.contains("True") {
            throw fail("Fortran-ordered arrays are not supported")
        }
        guard let shapeText = Self.npyField("shape", in: header) else { throw fail("header has no 'shape'") }
        let shape = try shapeText.trimmingCharacters(in: "() ")
            .split(separator: ",")
            .map { $0.trimmingCharacters(in: " L") }
            .filter { !$0.isEmpty }
            .map { part -> Int in
                guard let n = Int(part), n >= 0 else { throw fail("bad extent '\(part)' in shape") }
                return n
            }
        if let (width, isUnicode) = Self.npyStringWidth(descr) {
            self = try Self.npyStrings(bytes[(headerStart + headerLength)...], shape: shape, width: width,
                                       isUnicode: isUnicode, descr: descr)
            return
        }
        guard let dataType = Self.dataType(npyDescr: descr) else {
            if descr.drop(while: { "<|=>".contains($0) }).hasPrefix("V") {
                throw fail("dtype '\(descr)' is opaque: NumPy (and ml_dtypes, for bfloat16, float8 and int4) writes it for any "
                    + "element of that width, so Onyx cannot tell which type it holds; save the array as float32 or as a .pb TensorProto")
            }
            throw fail("dtype '\(descr)' has no Onyx equivalent")
        }
        let count = try Tensor.checkedElementCount(shape)
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dataType.byteWidth)
        let dataStart = headerStart + headerLength
        guard !overflow, bytes.count - dataStart >= byteCount else {
            throw fail("shape \(shape) of \(descr) needs \(byteCount) bytes of data, the file has \(bytes.count - dataStart)")
        }
        self = try bytes[dataStart..<(dataStart + byteCount)].withUnsafeBytes {
            try Tensor(dataType: dataType, shape: shape, bytes: $0)
        }
    }

    /// Encodes the tensor as a version 1.0 `.npy` file; strings as NumPy's fixed-width Unicode
    /// (`<U`n, n the longest string's scalar count).
    ///
    /// bfloat16, the float8 formats and the 4- and 2-bit types have no NumPy dtype: they are
    /// written as ml_dtypes does, as opaque void elements (`|V2`, `|V1`) holding the bytes of
    /// ``withUnsafeBytes(_:)``. NumPy reads them with `.view(ml_dtypes.<type>)`; ``init(npy:)``
    /// refuses them, since the file does not say which type they are.
    public func npyBytes() -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        let strings = dataType == .string ? ((try? self.strings()) ?? []) : []
        let width = strings.map(\.unicodeScalars.count).max() ?? 0
        let descr = dataType == .string ? "<U\(max(width, 1))" : Self.npyDescr(dataType)
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        let length = header.utf8.count
        bytes.append(UInt8(length & 0xFF))
        bytes.append(UInt8(length >> 8))
        bytes.append(contentsOf: header.utf8)
        guard dataType == .string else {
            withUnsafeBytes { bytes.append(contentsOf: $0) }
            return bytes
        }
        for string in strings {
            var scalars = string.unicodeScalars.map(\.value)
            scalars += repeatElement(0, count: max(width, 1) - scalars.count)
            for scalar in scalars { Swift.withUnsafeBytes(of: scalar.littleEndian) { bytes.append(contentsOf: $0) } }
        }
        return bytes
    }

    /// The element width of a NumPy string dtype: `<U`n (n UTF-32 scalars) or `|S`n (n bytes).
    private static func npyStringWidth(_ descr: String) -> (Int, isUnicode: Bool)? {
        var code = Substring(descr)
        if let first = code.first, "<|=".contains(first) { code = code.dropFirst() }
        guard let kind = code.first, kind == "U" || kind == "S", let width = Int(code.dropFirst()), width >= 0 else { return nil }
        return (width, kind == "U")
    }

    /// Decodes fixed-width NumPy strings, each ending at its first NUL.
    private static func npyStrings(
        _ data: ArraySlice<UInt8>, shape: [Int], width: Int, isUnicode: Bool, descr: String
    ) throws -> Tensor {
        let count = try Tensor.checkedElementCount(shape)
        let unit = isUnicode ? 4 : 1
        let (stride, overflow1) = width.multipliedReportingOverflow(by: unit)
        let (byteCount, overflow2) = count.multipliedReportingOverflow(by: stride)
        guard !overflow1, !overflow2, data.count >= byteCount else {
            throw OnyxError.invalidInput(
                "not a readable .npy file: shape \(shape) of \(descr) needs \(byteCount) bytes of data, the file has \(data.count)")
        }
        var strings: [String] = []
        strings.reserveCapacity(count)
        let base = data.startIndex
        for i in 0..<count {
            let start = base + i * stride
            if isUnicode {
                var text = String.UnicodeScalarView()
                for k in 0..<width {
                    let at = start + 4 * k
                    let value = UInt32(data[at]) | UInt32(data[at + 1]) << 8 | UInt32(data[at + 2]) << 16 | UInt32(data[at + 3]) << 24
                    if value == 0 { break }
                    guard let scalar = Unicode.Scalar(value) else {
                        throw OnyxError.invalidInput("not a readable .npy file: element \(i) holds \(value), not a Unicode scalar")
                    }
                    text.append(scalar)
                }
                strings.append(String(text))
            } else {
                let field = data[start..<(start + width)]
                strings.append(String(decoding: field.prefix { $0 != 0 }, as: UTF8.self))
            }
        }
        return try Tensor(strings: strings, shape: shape)
    }

    private static func npyField(_ key: String, in header: String) -> String? {
        let characters = Array(header)
        var found: Int?
        for quote in ["'", "\""] {
            let needle = Array(quote + key + quote)
            if let start = characters.indices.first(where: { i in
                i + needle.count <= characters.count && Array(characters[i..<(i + needle.count)]) == needle
            }) {
                found = start + needle.count
                break
            }
        }
        guard let end = found else { return nil }
        var rest = Substring(String(characters[end...])).drop { $0 == " " || $0 == ":" }
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            return String(rest[...close])
        }
        rest = rest.prefix { $0 != "," && $0 != "}" }
        return String(rest)
    }

    private static func dataType(npyDescr descr: String) -> DataType? {
        var code = Substring(descr)
        if let first = code.first, "<|=".contains(first) { code = code.dropFirst() }
        switch code {
        case "f4": return .float
        case "f8": return .double
        case "f2": return .float16
        case "i1": return .int8
        case "u1": return .uint8
        case "i2": return .int16
        case "u2": return .uint16
        case "i4": return .int32
        case "u4": return .uint32
        case "i8": return .int64
        case "u8": return .uint64
        case "b1", "?": return .bool
        default: return nil
        }
    }

    private static func npyDescr(_ type: DataType) -> String {
        switch type {
        case .float: "<f4"
        case .double: "<f8"
        case .float16: "<f2"
        case .int8: "|i1"
        case .uint8: "|u1"
        case .int16: "<i2"
        case .uint16: "<u2"
        case .int32: "<i4"
        case .uint32: "<u4"
        case .int64: "<i8"
        case .uint64: "<u8"
        case .bool: "|b1"
        case .string: "<U1"
        // NumPy has no such dtypes; ml_dtypes writes its bfloat16, float8, int4 … arrays as
        // opaque void elements of the same width and layout (one element per byte for the 4- and
        // 2-bit types), which `np.load(f).view(ml_dtypes.bfloat16)` reads back.
        case .bfloat16: "|V2"
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0,
             .int4, .uint4, .float4e2m1, .int2, .uint2:
            "|V1"
        }
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        return String(self.drop { characters.contains($0) }.reversed().drop { characters.contains($0) }.reversed())
    }
}
