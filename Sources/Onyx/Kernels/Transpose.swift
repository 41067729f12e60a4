/// Permuting axes of a tensor of any element width.
enum TransposeKernel {
    /// Writes `input` (of `shape`) permuted by `perm` to `output`; elements are `width` bytes.
    static func permute(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, shape: [Int], perm: [Int], width: Int
    ) {
        let rank = shape.count
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        // Drop unit axes and merge axes that stay adjacent: fewer, longer loops.
        var inStrides = [Int](repeating: 1, count: rank)
        for axis in stride(from: rank - 2, through: 0, by: -1) { inStrides[axis] = inStrides[axis + 1] * shape[axis + 1] }
        var dims: [(extent: Int, stride: Int)] = []
        for axis in perm where shape[axis] != 1 {
            if let last = dims.last, last.stride == inStrides[axis] * shape[axis] {
                dims[dims.count - 1] = (last.extent * shape[axis], inStrides[axis])
            } else {
                dims.append((shape[axis], inStrides[axis]))
            }
        }
        if dims.isEmpty || (dims.count == 1 && dims[0].stride == 1) {
            output.copyMemory(from: input, byteCount: count * width)
            return
        }
        switch width {
        case 4: walk(input.assumingMemoryBound(to: UInt32.self), output.assumingMemoryBound(to: UInt32.self), dims)
        case 8: walk(input.assumingMemoryBound(to: UInt64.self), output.assumingMemoryBound(to: UInt64.self), dims)
        case 2: walk(input.assumingMemoryBound(to: UInt16.self), output.assumingMemoryBound(to: UInt16.self), dims)
        default: walk(input.assumingMemoryBound(to: UInt8.self), output.assumingMemoryBound(to: UInt8.self), dims)
        }
    }

    /// Output-order walk: the innermost output axis reads input with `dims.last.stride`.
    private static func walk<T>(_ input: UnsafePointer<T>, _ output: UnsafeMutablePointer<T>, _ dims: [(extent: Int, stride: Int)]) {
        let rank = dims.count
        let innerExtent = dims[rank - 1].extent
        let innerStride = dims[rank - 1].stride
        let outer = dims.dropLast().reduce(1) { $0 * $1.extent }
        var index = [Int](repeating: 0, count: max(rank - 1, 1))
        var offset = 0
        var out = output
        for _ in 0..<outer {
            var src = input + offset
            for _ in 0..<innerExtent {
                out.pointee = src.pointee
                out += 1
                src += innerStride
            }
            // Advance the outer odometer.
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                offset += dims[axis].stride
                if index[axis] < dims[axis].extent { break }
                offset -= dims[axis].stride * dims[axis].extent
                index[axis] = 0
                axis -= 1
            }
        }
    }
}
