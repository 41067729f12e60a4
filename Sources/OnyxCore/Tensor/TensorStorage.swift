/// A block of memory that holds tensor bytes: 64-byte aligned memory Onyx allocated, or memory a
/// caller lent without a copy (``Tensor/init(dataType:shape:bytesNoCopy:deallocator:)``).
///
/// Immutable once shared: ``Tensor`` copies it before writing if it is not uniquely referenced,
/// and always before writing to lent memory.
@usableFromInline package final class TensorStorage: @unchecked Sendable {
    package static let alignment = 64

    package let bytes: UnsafeMutableRawPointer
    package let byteCount: Int
    /// Set for lent memory: the caller's buffer and what to do with it once no tensor uses it.
    private let lent: (buffer: UnsafeRawBufferPointer, deallocator: Tensor.Deallocator)?

    /// Adopted memory: released by `lent`'s deallocator, but Onyx's to write.
    private let isAdopted: Bool

    /// For a string tensor, the table its handles index; `nil` for other types (and for a string
    /// tensor of empty strings only, whose handles are all 0).
    package let strings: StringTable?

    /// Whether the bytes belong to a caller, who lent them read-only.
    package var isLent: Bool { lent != nil && !isAdopted }

    /// Allocates `byteCount` zeroed bytes.
    package init(byteCount: Int, strings: StringTable? = nil) {
        self.strings = strings
        self.byteCount = byteCount
        self.bytes = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: Self.alignment)
        self.bytes.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        self.lent = nil
        self.isAdopted = false
    }

    /// Allocates storage without zeroing it; the caller initializes every byte.
    package init(uninitializedByteCount byteCount: Int, strings: StringTable? = nil) {
        self.strings = strings
        self.byteCount = byteCount
        self.bytes = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: Self.alignment)
        self.lent = nil
        self.isAdopted = false
    }

    /// Uses `buffer` in place; `deallocator` releases it when this storage is freed.
    /// A buffer without a base address (zero bytes) gets a byte of Onyx's own to point at.
    package init(lending buffer: UnsafeRawBufferPointer, deallocator: Tensor.Deallocator, strings: StringTable? = nil) {
        self.strings = strings
        self.byteCount = buffer.count
        self.bytes = buffer.baseAddress.map(UnsafeMutableRawPointer.init(mutating:))
            ?? UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: Self.alignment)
        self.lent = (buffer, deallocator)
        self.isAdopted = false
    }

    /// Takes over `bytes`, memory from `malloc(3)` that nothing else frees (a decoded protobuf
    /// field), and frees it with `free(3)`. Writable like Onyx's own memory.
    package init(adoptingMallocated bytes: UnsafeMutableRawPointer, byteCount: Int) {
        self.strings = nil
        self.byteCount = byteCount
        self.bytes = bytes
        self.lent = (UnsafeRawBufferPointer(start: bytes, count: byteCount), .free)
        self.isAdopted = true
    }

    /// Copies `source` into new storage.
    package convenience init(copying source: UnsafeRawBufferPointer, strings: StringTable? = nil) {
        self.init(uninitializedByteCount: source.count, strings: strings)
        if let base = source.baseAddress, source.count > 0 {
            bytes.copyMemory(from: base, byteCount: source.count)
        }
    }

    deinit {
        guard let lent else {
            bytes.deallocate()
            return
        }
        if lent.buffer.baseAddress == nil { bytes.deallocate() }
        lent.deallocator.release?(lent.buffer)
    }
}
