/// A 64-byte aligned block of memory that owns tensor bytes.
///
/// Immutable once shared: ``Tensor`` copies it before writing if it is not uniquely referenced.
final class TensorStorage: @unchecked Sendable {
    static let alignment = 64

    let bytes: UnsafeMutableRawPointer
    let byteCount: Int

    /// Allocates `byteCount` zeroed bytes.
    init(byteCount: Int) {
        self.byteCount = byteCount
        self.bytes = UnsafeMutableRawPointer.allocate(
            byteCount: max(byteCount, 1), alignment: Self.alignment)
        self.bytes.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
    }

    /// Allocates storage without zeroing it; the caller initializes every byte.
    init(uninitializedByteCount byteCount: Int) {
        self.byteCount = byteCount
        self.bytes = UnsafeMutableRawPointer.allocate(
            byteCount: max(byteCount, 1), alignment: Self.alignment)
    }

    /// Copies `source` into new storage.
    convenience init(copying source: UnsafeRawBufferPointer) {
        self.init(uninitializedByteCount: source.count)
        if let base = source.baseAddress, source.count > 0 {
            bytes.copyMemory(from: base, byteCount: source.count)
        }
    }

    deinit {
        bytes.deallocate()
    }
}
