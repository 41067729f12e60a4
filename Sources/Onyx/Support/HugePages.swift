#if canImport(Glibc)
import Glibc
#endif

/// Allocation of a run's arena. Blocks of 2 MiB and more are aligned to 2 MiB and, on Linux, marked
/// for transparent huge pages, so runs take fewer TLB misses. Weights are not: on this project's
/// virtual machines, zeroing fresh huge pages at load cost more (60–170 ms for ResNet-18's) than the
/// small-page faults it saves.
enum TensorMemory {
    static let hugePageBytes = 2 << 20

    /// `byteCount` (at least 1) uninitialized bytes aligned to at least `alignment`; free with `deallocate()`.
    static func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let size = max(byteCount, 1)
        guard size >= hugePageBytes else {
            return UnsafeMutableRawPointer.allocate(byteCount: size, alignment: alignment)
        }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: max(alignment, hugePageBytes))
        #if os(Linux)
        // Advice only: where huge pages are off or unavailable, small pages serve as before.
        _ = madvise(memory, size / hugePageBytes * hugePageBytes, MADV_HUGEPAGE)
        #endif
        return memory
    }
}
