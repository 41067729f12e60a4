#if canImport(Glibc)
import Glibc
#endif

/// Tensors over memory the caller already has, and typed access to a tensor's elements, both
/// without copies.
extension Tensor {
    /// What a tensor does with memory lent by ``init(dataType:shape:bytesNoCopy:deallocator:)``
    /// once the last tensor sharing it is gone.
    public struct Deallocator: Sendable {
        package let release: (@Sendable (UnsafeRawBufferPointer) -> Void)?

        /// Nothing: the caller keeps the memory valid for as long as any tensor sharing it
        /// exists — including a run's outputs that are its input handed back (a graph whose
        /// output is an input).
        public static let none = Deallocator(release: nil)

        /// Frees the memory with `free(3)`: for memory from `malloc`, `posix_memalign` or a C
        /// library that hands over ownership that way.
        public static let free = Deallocator { buffer in
            #if canImport(Glibc)
            Glibc.free(UnsafeMutableRawPointer(mutating: buffer.baseAddress))
            #endif
        }

        /// Frees the memory with `UnsafeMutableRawPointer.deallocate()`: for memory from
        /// `UnsafeMutableRawPointer.allocate(byteCount:alignment:)` or a typed `allocate(capacity:)`.
        public static let deallocate = Deallocator { buffer in
            buffer.baseAddress.map(UnsafeMutableRawPointer.init(mutating:))?.deallocate()
        }

        /// Calls `body` with the lent buffer, once, from whichever thread drops the last tensor
        /// sharing it: unmap a file, release a reference, return a buffer to a pool.
        ///
        /// - Parameter body: Releases the buffer; it must be safe to call from any thread.
        /// - Returns: A deallocator that calls `body`.
        public static func custom(_ body: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) -> Deallocator {
            Deallocator(release: body)
        }
    }

    /// Creates a tensor that uses the caller's memory in place, without copying it.
    ///
    /// The tensor and its copies share `bytes`; Onyx only reads them (writing through
    /// ``withUnsafeMutableBytes(_:)`` copies first). When the last tensor sharing them is gone,
    /// `deallocator` releases the memory. A run reads such an input in place, without a copy, so
    /// a buffer can be refilled and run again; every tensor sharing it sees the change, so do not
    /// change it while a run reads it.
    ///
    /// ```swift
    /// let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: 64)
    /// fill(buffer)
    /// let x = try Tensor(dataType: .float, shape: [1, 64],
    ///                    bytesNoCopy: UnsafeRawBufferPointer(buffer), deallocator: .deallocate)
    /// ```
    ///
    /// - Parameters:
    ///   - dataType: The element type of the bytes.
    ///   - shape: The extent of each axis.
    ///   - bytes: Exactly `product(shape) * dataType.byteWidth` bytes, row-major, whose address is
    ///     a multiple of `dataType.byteWidth`. They must stay valid until `deallocator` runs
    ///     (with ``Deallocator/none``, for as long as any tensor sharing them exists).
    ///   - deallocator: What to do with `bytes` once no tensor uses them.
    /// - Throws: ``OnyxError`` with code `.shapeMismatch` if the byte count does not match the
    ///   shape, `.limitExceeded` if the shape's size overflows, or `.invalidArgument` if the address
    ///   is misaligned for the element type or a byte is not an element of an unpacked type (int4
    ///   outside −8…7; see ``withUnsafeBytes(_:)``). When it throws, the memory stays the caller's and
    ///   `deallocator` is not called.
    public init(
        dataType: DataType, shape: [Int], bytesNoCopy bytes: UnsafeRawBufferPointer, deallocator: Deallocator
    ) throws {
        let needed = try Self.checkedByteCount(dataType, shape)
        guard needed == bytes.count else {
            throw OnyxError.shapeMismatch(
                "shape \(shape) of \(dataType) needs \(needed) bytes but \(bytes.count) were given")
        }
        if let base = bytes.baseAddress, Int(bitPattern: base) % dataType.byteWidth != 0 {
            throw OnyxError(.invalidArgument,
                "\(dataType) elements need an address that is a multiple of \(dataType.byteWidth), got \(base)")
        }
        try Self.checkUnpackedElements(dataType, bytes)
        self.init(dataType: dataType, shape: shape, storage: TensorStorage(lending: bytes, deallocator: deallocator))
    }

    /// Calls `body` with the tensor's elements, without copying them.
    ///
    /// ```swift
    /// let best = try logits.withUnsafeBufferPointer(of: Float.self) { $0.indices.max { $0 < $1 } }
    /// ```
    ///
    /// - Parameters:
    ///   - type: The Swift element type; it must match ``dataType``.
    ///   - body: Reads the elements in row-major order. The buffer is valid only during the call.
    /// - Returns: What `body` returns.
    /// - Throws: ``OnyxError`` with code `.unsupportedDataType` if `type` does not match, or what
    ///   `body` throws.
    public func withUnsafeBufferPointer<Element: TensorElement, R>(
        of type: Element.Type, _ body: (UnsafeBufferPointer<Element>) throws -> R
    ) throws -> R {
        try checkElementType(type)
        return try body(UnsafeBufferPointer(
            start: storage.bytes.assumingMemoryBound(to: Element.self), count: elementCount))
    }

    /// Calls `body` with the tensor's elements for writing, without copying them unless the storage
    /// is shared with another tensor or lent by a caller (then it is copied once, first).
    ///
    /// - Parameters:
    ///   - type: The Swift element type; it must match ``dataType``.
    ///   - body: Reads and writes the elements in row-major order. The buffer is valid only during the call.
    /// - Returns: What `body` returns.
    /// - Throws: ``OnyxError`` with code `.unsupportedDataType` if `type` does not match, or what
    ///   `body` throws.
    public mutating func withUnsafeMutableBufferPointer<Element: TensorElement, R>(
        of type: Element.Type, _ body: (UnsafeMutableBufferPointer<Element>) throws -> R
    ) throws -> R {
        try checkElementType(type)
        let count = elementCount
        return try withUnsafeMutableBytes { bytes in
            try body(UnsafeMutableBufferPointer(
                start: bytes.baseAddress?.assumingMemoryBound(to: Element.self), count: count))
        }
    }

    private func checkElementType<Element: TensorElement>(_ type: Element.Type) throws {
        guard Element.dataType == dataType else {
            throw OnyxError.unsupportedDataType("tensor holds \(dataType), not \(Element.dataType) (\(Element.self))")
        }
    }
}
