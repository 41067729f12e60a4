extension Tensor {
    /// Creates a string tensor.
    ///
    /// ```swift
    /// let request = try Tensor(strings: ["GET /index.html HTTP/1.1"], shape: [1, 1])
    /// ```
    ///
    /// - Parameters:
    ///   - strings: The elements in row-major order; their count must equal the product of `shape`.
    ///   - shape: The extent of each axis.
    /// - Throws: ``OnyxError`` with code `.shapeMismatch` if the count does not match the shape.
    public init(strings: [String], shape: [Int]) throws {
        let count = try Self.checkedElementCount(shape)
        guard count == strings.count else {
            throw OnyxError.shapeMismatch("shape \(shape) holds \(count) elements but \(strings.count) strings were given")
        }
        let table = StringTable()
        let handles = table.intern(contentsOf: strings)
        self.init(dataType: .string, shape: shape,
                  storage: handles.withUnsafeBytes { TensorStorage(copying: $0, strings: table) })
    }

    /// The elements of a string tensor, in row-major order.
    ///
    /// - Throws: ``OnyxError`` with code `.unsupportedDataType` if the tensor does not hold strings.
    public func strings() throws -> [String] {
        guard dataType == .string else {
            throw OnyxError.unsupportedDataType("tensor holds \(dataType), not string")
        }
        let handles = UnsafeBufferPointer(start: storage.bytes.assumingMemoryBound(to: Int64.self), count: elementCount)
        guard let table = storage.strings else {
            // Zeroed storage: every handle must be the empty string's.
            guard handles.allSatisfy({ $0 == 0 }) else {
                throw OnyxError.internalError("string tensor without a string table holds non-empty handles")
            }
            return Array(repeating: "", count: handles.count)
        }
        return try table.strings(handles)
    }

    /// A zero-filled tensor of `source`'s type and, for strings, its table, in a shape the program
    /// computed.
    package init(zerosLike source: Tensor, shape: [Int]) {
        self.init(zeros: source.dataType, shape: shape)
        if let strings = source.stringTable {
            storage = TensorStorage(byteCount: byteCount, strings: strings)
        }
    }

    /// The table this string tensor's handles index, if it has one.
    package var stringTable: StringTable? { storage.strings }

    /// The same strings with handles from `table`: this tensor if `table` already answers its
    /// handles, otherwise a copy whose strings `table` interns. Other types come back unchanged.
    package func rebased(into table: StringTable) throws -> Tensor {
        guard dataType == .string else { return self }
        if let own = storage.strings, table.extends(own) {
            return self
        }
        let handles = table.intern(contentsOf: try strings())
        return Tensor(dataType: .string, shape: shape,
                      storage: handles.withUnsafeBytes { TensorStorage(copying: $0, strings: table) })
    }
}

extension OnnxValue {
    /// The same value with every string tensor in it rebased into `table` (see ``Tensor/rebased(into:)``).
    package func rebased(into table: StringTable) throws -> OnnxValue {
        switch self {
        case .tensor(let tensor): .tensor(try tensor.rebased(into: table))
        case .sequence(let elements): .sequence(try elements.map { try $0.rebased(into: table) })
        case .map(let keys, let values): .map(keys: try keys.rebased(into: table), values: try values.rebased(into: table))
        case .optional(let value): .optional(try value?.rebased(into: table))
        }
    }
}
