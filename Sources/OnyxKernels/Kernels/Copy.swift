/// Moving bytes between tensors without looking at their element type.
@usableFromInline package enum ByteCopy {
    /// Copies `rows` rows of `rowBytes` bytes, the source rows `sourceStride` bytes apart and the
    /// destination rows `destinationStride` bytes apart.
    ///
    /// Short rows (one element of a last-axis Concat, say) go through typed loads and stores
    /// rather than one `memcpy` call each.
    package static func copyRows(
        from source: UnsafeRawPointer, sourceStride: Int,
        to destination: UnsafeMutableRawPointer, destinationStride: Int,
        rowBytes: Int, rows: Int
    ) {
        guard rows > 0, rowBytes > 0 else { return }
        if rowBytes == sourceStride && rowBytes == destinationStride {
            destination.copyMemory(from: source, byteCount: rowBytes * rows)
            return
        }
        switch rowBytes {
        case 1: copyElements(UInt8.self, source, sourceStride, destination, destinationStride, rows)
        case 2 where isAligned(2, source, sourceStride, destination, destinationStride):
            copyElements(UInt16.self, source, sourceStride, destination, destinationStride, rows)
        case 4 where isAligned(4, source, sourceStride, destination, destinationStride):
            copyElements(UInt32.self, source, sourceStride, destination, destinationStride, rows)
        case 8 where isAligned(8, source, sourceStride, destination, destinationStride):
            copyElements(UInt64.self, source, sourceStride, destination, destinationStride, rows)
        default:
            var s = source, d = destination
            for _ in 0..<rows {
                d.copyMemory(from: s, byteCount: rowBytes)
                s += sourceStride
                d += destinationStride
            }
        }
    }

    @inline(__always)
    private static func isAligned(
        _ alignment: Int, _ source: UnsafeRawPointer, _ sourceStride: Int,
        _ destination: UnsafeMutableRawPointer, _ destinationStride: Int
    ) -> Bool {
        let mask = alignment - 1
        return (Int(bitPattern: source) | Int(bitPattern: destination) | sourceStride | destinationStride) & mask == 0
    }

    @inline(__always)
    private static func copyElements<T>(
        _ type: T.Type, _ source: UnsafeRawPointer, _ sourceStride: Int,
        _ destination: UnsafeMutableRawPointer, _ destinationStride: Int, _ rows: Int
    ) {
        let s = source.assumingMemoryBound(to: T.self)
        let d = destination.assumingMemoryBound(to: T.self)
        let sStep = sourceStride / MemoryLayout<T>.stride
        let dStep = destinationStride / MemoryLayout<T>.stride
        for i in 0..<rows { d[i * dStep] = s[i * sStep] }
    }
}
