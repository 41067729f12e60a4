/// Permuting the axes of a row-major tensor whose elements are 1, 2, 4 or 8 bytes wide.
///
/// The permutation is first simplified: unit axes are dropped and axes that stay adjacent in
/// the output are merged, so NCHW → NHWC becomes a batch of 2-D transposes and (0, 2, 1, 3)
/// becomes a batch of contiguous row copies. What is left runs as one of two loops:
/// - the innermost output axis is contiguous in the input: copy runs;
/// - otherwise: 2-D transposes between the output axis that is contiguous in the input and the
///   innermost output axis, in strips narrow enough that the input streams stay in L1.
@usableFromInline package enum Transposition {
    /// Writes `input` (of `shape`) with its axes permuted by `perm` to `output`.
    ///
    /// - Parameters:
    ///   - input: The source elements, row-major.
    ///   - output: Room for the same number of elements; must not overlap `input`.
    ///   - shape: The extents of `input`.
    ///   - perm: Output axis `i` is input axis `perm[i]`; a permutation of `0..<shape.count`.
    ///     `nil` reverses the axes (Transpose's default).
    ///   - width: Bytes per element: 1, 2, 4 or 8.
    ///   - pool: Threads for large tensors; `nil` runs on the calling thread.
    package static func permute(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer,
        shape: [Int], perm: [Int]?, width: Int, pool: ComputePool? = nil
    ) {
        let rank = shape.count
        var count = 1
        for extent in shape { count *= extent }
        guard count > 0 else { return }

        withUnsafeTemporaryAllocation(of: Int.self, capacity: 4 * rank + 1) { scratch in
            let inputStrides = scratch.baseAddress!
            let extents = inputStrides + rank
            let strides = extents + rank
            let outputStrides = strides + rank

            var stride = 1
            for axis in (0..<rank).reversed() {
                inputStrides[axis] = stride
                stride *= shape[axis]
            }
            // Simplify: in output order, drop unit axes, merge an axis into the previous one when
            // the previous one steps over exactly it in the input.
            var r = 0
            for k in 0..<rank {
                let axis = perm?[k] ?? rank - 1 - k
                let extent = shape[axis]
                if extent == 1 { continue }
                if r > 0 && strides[r - 1] == inputStrides[axis] * extent {
                    extents[r - 1] *= extent
                    strides[r - 1] = inputStrides[axis]
                } else {
                    extents[r] = extent
                    strides[r] = inputStrides[axis]
                    r += 1
                }
            }
            if r <= 1 {
                // One non-unit axis left, necessarily of input stride 1: the order is unchanged.
                output.copyMemory(from: input, byteCount: count * width)
                return
            }
            stride = 1
            for d in (0..<r).reversed() {
                outputStrides[d] = stride
                stride *= extents[d]
            }
            let geometry = Geometry(rank: r, extents: extents, strides: strides, outputStrides: outputStrides)
            switch width {
            case 1: walk(input.assumingMemoryBound(to: UInt8.self), output.assumingMemoryBound(to: UInt8.self), geometry, pool)
            case 2: walk(input.assumingMemoryBound(to: UInt16.self), output.assumingMemoryBound(to: UInt16.self), geometry, pool)
            case 4: walk(input.assumingMemoryBound(to: UInt32.self), output.assumingMemoryBound(to: UInt32.self), geometry, pool)
            case 8: walk(input.assumingMemoryBound(to: UInt64.self), output.assumingMemoryBound(to: UInt64.self), geometry, pool)
            default: preconditionFailure("Transposition: element width \(width) is not 1, 2, 4 or 8")
            }
        }
    }

    /// The simplified permutation in output order: extent, input stride and output stride of
    /// each remaining axis (in elements).
    private struct Geometry {
        let rank: Int
        let extents: UnsafeMutablePointer<Int>
        let strides: UnsafeMutablePointer<Int>
        let outputStrides: UnsafeMutablePointer<Int>
    }

    /// Work below this many elements stays on one thread.
    private static let parallelThreshold = 1 << 16

    private static func walk<T>(
        _ input: UnsafePointer<T>, _ output: UnsafeMutablePointer<T>, _ g: Geometry, _ pool: ComputePool?
    ) {
        let last = g.rank - 1
        if g.strides[last] == 1 {
            copyRuns(input, output, g, pool)
            return
        }
        // The input's innermost non-unit axis always survives with stride 1 (merging keeps the
        // stride of the later, inner axis), and it is not the last output axis here.
        var column = 0
        while g.strides[column] != 1 { column += 1 }
        transposeTiles(input, output, g, column: column, pool)
    }

    /// The innermost output axis is contiguous in the input: copy `extents[last]`-element runs.
    private static func copyRuns<T>(
        _ input: UnsafePointer<T>, _ output: UnsafeMutablePointer<T>, _ g: Geometry, _ pool: ComputePool?
    ) {
        let last = g.rank - 1
        let run = g.extents[last]
        var runs = 1
        for d in 0..<last { runs *= g.extents[d] }
        parallel(runs, unitSize: run, pool) { range in
            Odometer.walk(range, outer: last, g.extents, g.strides, g.outputStrides) { inOffset, outOffset, _ in
                let src = input + inOffset, dst = output + outOffset
                if run >= 32 {
                    UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: run * MemoryLayout<T>.stride)
                } else {
                    for i in 0..<run { dst[i] = src[i] }
                }
            }
        }
    }

    /// 2-D transposes between output axis `column` (input stride 1) and the innermost output axis
    /// (output stride 1). Each unit of work is one strip of `tile` innermost indices across the
    /// whole `column` axis, so units never write the same bytes.
    private static func transposeTiles<T>(
        _ input: UnsafePointer<T>, _ output: UnsafeMutablePointer<T>, _ g: Geometry, column: Int,
        _ pool: ComputePool?
    ) {
        let last = g.rank - 1
        let rows = g.extents[column]             // read contiguously
        let rowStride = g.outputStrides[column]  // written with this stride
        let columns = g.extents[last]            // written contiguously
        let columnStride = g.strides[last]       // read with this stride
        // Each tile reads `tile` input streams. Streams a multiple of 2 KiB apart share L1 sets
        // (8 ways), so more than 8 of them evict each other: 1024×1024 floats ran 2× slower at 16.
        let tile = (columnStride * MemoryLayout<T>.stride) % 2048 == 0 ? 8 : max(8, 64 / MemoryLayout<T>.stride)
        let blocks = (columns + tile - 1) / tile

        // Outer axes: every axis but `column` and `last`, then the column blocks.
        let outerRank = g.rank - 1
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * outerRank) { scratch in
            let extents = scratch.baseAddress!, strides = extents + outerRank, outputStrides = strides + outerRank
            var k = 0
            for d in 0..<last where d != column {
                extents[k] = g.extents[d]
                strides[k] = g.strides[d]
                outputStrides[k] = g.outputStrides[d]
                k += 1
            }
            extents[k] = blocks
            strides[k] = tile * columnStride
            outputStrides[k] = tile
            var units = 1
            for d in 0..<outerRank { units *= extents[d] }

            parallel(units, unitSize: rows * tile, pool) { range in
                Odometer.walk(range, outer: outerRank, extents, strides, outputStrides) { inOffset, outOffset, index in
                    // A strip of `width` (≤ tile) columns down every row: `width` input streams,
                    // each read contiguously; the output row segments are written in order.
                    let width = min(tile, columns - index[outerRank - 1] * tile)
                    let src = input + inOffset
                    var out = output + outOffset
                    for r in 0..<rows {
                        var s = src + r
                        for c in 0..<width {
                            out[c] = s.pointee
                            s += columnStride
                        }
                        out += rowStride
                    }
                }
            }
        }
    }

    private static func parallel(_ units: Int, unitSize: Int, _ pool: ComputePool?, _ work: (Range<Int>) -> Void) {
        if let pool, pool.threadCount > 1, units > 1, units * unitSize >= parallelThreshold {
            pool.parallelRanges(units, minimumChunk: max(1, parallelThreshold / 4 / max(unitSize, 1)), work)
        } else {
            work(0..<units)
        }
    }
}

/// Visits a contiguous range of linear indices over `outer` axes in row-major order, tracking
/// the input and output element offsets of each.
private enum Odometer {
    @inline(__always)
    static func walk(
        _ range: Range<Int>, outer: Int,
        _ extents: UnsafeMutablePointer<Int>, _ strides: UnsafeMutablePointer<Int>,
        _ outputStrides: UnsafeMutablePointer<Int>,
        _ body: (_ inOffset: Int, _ outOffset: Int, _ index: UnsafeMutablePointer<Int>) -> Void
    ) {
        guard !range.isEmpty else { return }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: max(outer, 1)) { scratch in
            let index = scratch.baseAddress!
            index.initialize(repeating: 0, count: max(outer, 1))
            var inOffset = 0, outOffset = 0
            var rest = range.lowerBound
            for d in (0..<outer).reversed() {
                index[d] = rest % extents[d]
                rest /= extents[d]
                inOffset += index[d] * strides[d]
                outOffset += index[d] * outputStrides[d]
            }
            for _ in range {
                body(inOffset, outOffset, index)
                var d = outer - 1
                while d >= 0 {
                    index[d] += 1
                    inOffset += strides[d]
                    outOffset += outputStrides[d]
                    if index[d] < extents[d] { break }
                    inOffset -= strides[d] * extents[d]
                    outOffset -= outputStrides[d] * extents[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
}
