import OnyxCore

#if canImport(Glibc)
import Glibc
#endif

/// The memory one run borrows: the arena for intermediate values and workspaces, and the table of
/// tensor views every step reads, prepared once so a steady-state run allocates only its outputs.
final class RunArena: @unchecked Sendable {
    let memory: UnsafeMutableRawPointer
    /// Views in plan order: each step's inputs, then its outputs.
    var views: [TensorView?]

    init(plan: ExecutionPlan) {
        memory = Self.allocate(byteCount: max(plan.arenaByteCount, 64), alignment: MemoryPlanner.alignment)
        let placeholder = memory
        views = plan.viewValues.map { id in
            guard let id, let descriptor = plan.descriptors[id] else { return nil }
            let data: UnsafeMutableRawPointer
            switch plan.locations[id] {
            case .absent: return nil
            case .constant(let tensor): data = tensor.baseAddress
            case .arena(let offset): data = placeholder + offset
            case .input, .output: data = placeholder  // refreshed before each run
            }
            return TensorView(descriptor, data: data)
        }
    }

    deinit {
        memory.deallocate()
    }

    /// Arenas of 2 MiB and more are aligned to 2 MiB and, on Linux, marked for transparent huge
    /// pages, so runs take fewer TLB misses. (Weights are not: on this project's virtual machines,
    /// zeroing fresh huge pages at load cost more than the small-page faults it saves.)
    private static func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let hugePageBytes = 2 << 20
        guard byteCount >= hugePageBytes else {
            return UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: alignment)
        }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: max(alignment, hugePageBytes))
        #if os(Linux)
        // Advice only: where huge pages are off or unavailable, small pages serve as before.
        _ = madvise(memory, byteCount / hugePageBytes * hugePageBytes, MADV_HUGEPAGE)
        #endif
        return memory
    }
}
