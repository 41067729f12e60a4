/// The memory one run borrows: the arena for intermediate values and workspaces, and the table of
/// tensor views every step reads, prepared once so a steady-state run allocates only its outputs.
final class RunArena: @unchecked Sendable {
    let memory: UnsafeMutableRawPointer
    /// Views in plan order: each step's inputs, then its outputs.
    var views: [TensorView?]

    init(plan: ExecutionPlan) {
        memory = TensorMemory.allocate(byteCount: max(plan.arenaByteCount, 64), alignment: MemoryPlanner.alignment)
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
            return TensorView(dataType: descriptor.dataType, shape: descriptor.shape, data: data)
        }
    }

    deinit {
        memory.deallocate()
    }
}
