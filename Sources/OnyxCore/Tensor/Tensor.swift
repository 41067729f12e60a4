/// A dense, row-major, n-dimensional array of one ``DataType``.
///
/// `Tensor` is a value type with copy-on-write storage: copies are cheap and
/// writing through ``withUnsafeMutableBytes(_:)`` never affects another copy.
public struct Tensor: Sendable {
    /// The element type.
    public let dataType: DataType
    /// The extent of each axis; empty for a scalar.
    public let shape: [Int]
    package var storage: TensorStorage

    /// The number of elements (the product of the shape; 1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    /// The number of bytes of element data.
    public var byteCount: Int { elementCount * dataType.byteWidth }

    /// The number of axes.
    public var rank: Int { shape.count }

    /// Creates a zero-filled tensor of a shape the program itself computed.
    ///
    /// For a shape from outside the program (a model, a request, a file, a user), use
    /// ``zeros(_:shape:)``, which throws instead.
    ///
    /// - Parameters:
    ///   - dataType: The element type.
    ///   - shape: The extent of each axis. A negative extent, or a size that overflows `Int`, is a
    ///     programmer error and stops the program.
    public init(zeros dataType: DataType, shape: [Int]) {
        let byteCount: Int
        do {
            byteCount = try Self.checkedByteCount(dataType, shape)
        } catch {
            preconditionFailure("Tensor(zeros:shape:): \(error); use Tensor.zeros(_:shape:) for shapes from outside the program")
        }
        self.dataType = dataType
        self.shape = shape
        self.storage = TensorStorage(byteCount: byteCount)
    }

    /// Creates a zero-filled tensor, checking the shape.
    ///
    /// ```swift
    /// let mask = try Tensor.zeros(.bool, shape: [batch, sequenceLength])
    /// ```
    ///
    /// - Parameters:
    ///   - dataType: The element type.
    ///   - shape: The extent of each axis; every extent must be ≥ 0.
    /// - Returns: A tensor of `shape` whose every byte is zero.
    /// - Throws: ``OnyxError`` with code `.shapeMismatch` naming a negative extent, or
    ///   `.limitExceeded` if the size overflows.
    public static func zeros(_ dataType: DataType, shape: [Int]) throws -> Tensor {
        let byteCount = try checkedByteCount(dataType, shape)
        return Tensor(dataType: dataType, shape: shape, storage: TensorStorage(byteCount: byteCount))
    }

    /// Creates a tensor from Swift scalars.
    ///
    /// - Parameters:
    ///   - shape: The extent of each axis.
    ///   - scalars: The elements in row-major order; their count must equal the product of `shape`.
    /// - Throws: ``OnyxError`` with code `.shapeMismatch` if the count does not match the shape.
    public init<Element: TensorElement>(shape: [Int], scalars: [Element]) throws {
        let count = try Self.checkedElementCount(shape)
        guard count == scalars.count else {
            throw OnyxError.shapeMismatch(
                "shape \(shape) holds \(count) elements but \(scalars.count) were given")
        }
        self.dataType = Element.dataType
        self.shape = shape
        self.storage = scalars.withUnsafeBytes { TensorStorage(copying: $0) }
    }

    /// Creates a tensor by copying raw bytes.
    ///
    /// - Parameters:
    ///   - dataType: The element type of the bytes.
    ///   - shape: The extent of each axis.
    ///   - bytes: Exactly `product(shape) * dataType.byteWidth` bytes, row-major, in memory's
    ///     layout (see ``withUnsafeBytes(_:)``): int4, uint4, float4e2m1, int2 and uint2
    ///     unpacked, one element per byte.
    /// - Throws: ``OnyxError`` with code `.shapeMismatch` if the byte count does not match, or
    ///   `.invalidArgument` if a byte is not an element of an unpacked type (int4 outside −8…7).
    public init(dataType: DataType, shape: [Int], bytes: UnsafeRawBufferPointer) throws {
        guard dataType != .string else {
            throw OnyxError.unsupportedDataType("a string tensor is made from Swift strings (Tensor(strings:shape:)), not from bytes")
        }
        let needed = try Self.checkedByteCount(dataType, shape)
        guard needed == bytes.count else {
            throw OnyxError.shapeMismatch(
                "shape \(shape) of \(dataType) needs \(needed) bytes but \(bytes.count) were given")
        }
        try Self.checkUnpackedElements(dataType, bytes)
        self.dataType = dataType
        self.shape = shape
        self.storage = TensorStorage(copying: bytes)
    }

    /// Creates a scalar (rank-0) tensor.
    public init<Element: TensorElement>(scalar: Element) {
        self.dataType = Element.dataType
        self.shape = []
        self.storage = Swift.withUnsafeBytes(of: scalar) { TensorStorage(copying: $0) }
    }

    package init(dataType: DataType, shape: [Int], storage: TensorStorage) {
        self.dataType = dataType
        self.shape = shape
        self.storage = storage
    }

    /// Creates a tensor whose bytes are not initialized; the caller fills them. A string tensor's
    /// handles index `strings`.
    package init(uninitialized dataType: DataType, shape: [Int], strings: StringTable? = nil) {
        self.dataType = dataType
        self.shape = shape
        self.storage = TensorStorage(uninitializedByteCount: shape.reduce(1, *) * dataType.byteWidth, strings: strings)
    }

    /// The element count of `shape`, or an error if an extent is negative or the product overflows.
    package static func checkedElementCount(_ shape: [Int]) throws -> Int {
        var count = 1
        for extent in shape {
            guard extent >= 0 else {
                throw OnyxError.shapeMismatch("negative extent \(extent) in shape \(shape)")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow else {
                throw OnyxError.limitExceeded("element count of shape \(shape) overflows")
            }
            count = product
        }
        return count
    }

    /// Checks that every byte of `bytes` is an element of `dataType` as memory holds it, for the
    /// types narrower than a byte (kernels rely on it: an int4 byte is its value, −8…7).
    package static func checkUnpackedElements(_ dataType: DataType, _ bytes: UnsafeRawBufferPointer) throws {
        // float4e2m1 is held as its 4-bit pattern, as uint4 is.
        guard let wide = dataType == .float4e2m1 ? DataType.uint4.narrowIntegerRange : dataType.narrowIntegerRange else { return }
        let range = Int8(wide.lowerBound)...Int8(wide.upperBound)
        let signed = dataType == .int4 || dataType == .int2
        for (i, byte) in bytes.enumerated() {
            // Read as signed, an unsigned byte above 127 is negative: out of range too.
            let value = Int8(bitPattern: byte)
            guard range.contains(value) else {
                throw OnyxError(.invalidArgument,
                    "byte \(i) is \(signed ? Int(value) : Int(byte)), out of range for \(dataType) (\(range)), which is stored one element per byte")
            }
        }
    }

    /// The byte count of `shape` elements of `dataType`, or an error if an extent is negative or
    /// the size overflows.
    package static func checkedByteCount(_ dataType: DataType, _ shape: [Int]) throws -> Int {
        let (bytes, overflow) = try checkedElementCount(shape).multipliedReportingOverflow(by: dataType.byteWidth)
        guard !overflow else {
            throw OnyxError.limitExceeded("byte count of shape \(shape) of \(dataType) overflows")
        }
        return bytes
    }

    /// Returns the elements as a Swift array.
    ///
    /// - Parameter type: The Swift element type; it must match ``dataType``.
    /// - Returns: The elements in row-major order.
    /// - Throws: ``OnyxError`` with code `.unsupportedDataType` if `type` does not match.
    public func scalars<Element: TensorElement>(as type: Element.Type = Element.self) throws -> [Element] {
        try withUnsafeBufferPointer(of: type) { Array($0) }
    }

    /// Calls `body` with the tensor's bytes, without copying them.
    ///
    /// Each element takes ``DataType/byteWidth`` bytes. The types narrower than a byte are
    /// unpacked, one element per byte, unlike in ONNX files: int4 and int2 as a sign-extended
    /// `Int8`, uint4 and uint2 as a `UInt8`, float4e2m1 as its 4-bit pattern in the low half.
    /// bfloat16 and the float8 formats are their bit patterns.
    ///
    /// - Parameter body: Reads the bytes, row-major, in the machine's (little-endian) byte order.
    ///   The buffer is valid only during the call.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.bytes, count: byteCount))
    }

    /// Calls `body` with the tensor's bytes for writing, copying the storage first if it is shared
    /// with another tensor or lent by a caller (``init(dataType:shape:bytesNoCopy:deallocator:)``).
    ///
    /// - Parameter body: Reads and writes the bytes, row-major. The buffer is valid only during the call.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws.
    public mutating func withUnsafeMutableBytes<R>(
        _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) || storage.isLent {
            storage = TensorStorage(copying: UnsafeRawBufferPointer(start: storage.bytes, count: byteCount), strings: storage.strings)
        }
        return try body(UnsafeMutableRawBufferPointer(start: storage.bytes, count: byteCount))
    }

    /// Returns the same elements with a new shape of equal element count; shares storage.
    ///
    /// - Throws: ``OnyxError`` with code `.shapeMismatch` if the element counts differ.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard try Self.checkedElementCount(newShape) == elementCount else {
            throw OnyxError.shapeMismatch("cannot reshape \(shape) to \(newShape)")
        }
        return Tensor(dataType: dataType, shape: newShape, storage: storage)
    }

    /// The raw base address, valid while the tensor is alive. Internal: kernels and the executor.
    package var baseAddress: UnsafeMutableRawPointer { storage.bytes }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor<\(dataType)>\(shape)" }
}
