/// Horizontal float32 reductions with several accumulators, so they vectorise and round less.
enum ReductionLoops {
    /// `Σ x[i]`.
    @inline(__always)
    static func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        var s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
        var i = 0
        while i + 8 <= count {
            s0 += x[i]; s1 += x[i + 1]; s2 += x[i + 2]; s3 += x[i + 3]
            s4 += x[i + 4]; s5 += x[i + 5]; s6 += x[i + 6]; s7 += x[i + 7]
            i += 8
        }
        while i < count { s0 += x[i]; i += 1 }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    }

    /// `Σ (x[i] − center)²`.
    @inline(__always)
    static func sumOfSquaredDeviations(_ x: UnsafePointer<Float>, count: Int, from center: Float) -> Float {
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        var i = 0
        while i + 4 <= count {
            let d0 = x[i] - center, d1 = x[i + 1] - center, d2 = x[i + 2] - center, d3 = x[i + 3] - center
            s0 += d0 * d0; s1 += d1 * d1; s2 += d2 * d2; s3 += d3 * d3
            i += 4
        }
        while i < count { let d = x[i] - center; s0 += d * d; i += 1 }
        return (s0 + s1) + (s2 + s3)
    }

    /// The largest element; −∞ for none. NaN elements are skipped.
    @inline(__always)
    static func max(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var m0 = -Float.infinity, m1 = -Float.infinity, m2 = -Float.infinity, m3 = -Float.infinity
        var i = 0
        while i + 4 <= count {
            m0 = x[i] > m0 ? x[i] : m0
            m1 = x[i + 1] > m1 ? x[i + 1] : m1
            m2 = x[i + 2] > m2 ? x[i + 2] : m2
            m3 = x[i + 3] > m3 ? x[i + 3] : m3
            i += 4
        }
        while i < count { m0 = x[i] > m0 ? x[i] : m0; i += 1 }
        return Swift.max(Swift.max(m0, m1), Swift.max(m2, m3))
    }
}

extension ReductionLoops {
    /// The mean of `x` (of shape `shape`) over the axes where `reduced[axis]` is true, into `y`
    /// (the kept axes in order). `y` must not overlap `x`.
    ///
    /// The axes are coalesced first (extent-1 axes dropped, neighbours of the same kind merged),
    /// so the loops run over whole contiguous lines: a reduced innermost line sums to one
    /// output; a kept innermost line adds onto a contiguous output row.
    static func mean(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, shape: [Int], reduced: UnsafePointer<Bool>,
        pool: ComputePool
    ) {
        let rank = shape.count
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * rank + 1) { buffer in
            // Groups innermost first: extent, whether reduced (1/0), output stride (0 if reduced).
            let extents = buffer.baseAddress!, kinds = extents + rank, strides = kinds + rank
            var groups = 0
            var inputCount = 1, outputCount = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let extent = shape[axis]
                inputCount *= extent
                if !reduced[axis] { outputCount *= extent }
                if extent == 1 { continue }
                let kind = reduced[axis] ? 1 : 0
                if groups > 0 && kinds[groups - 1] == kind {
                    extents[groups - 1] *= extent
                } else {
                    extents[groups] = extent
                    kinds[groups] = kind
                    groups += 1
                }
            }
            guard outputCount > 0 else { return }
            guard inputCount > 0 else {
                // The mean of nothing.
                y.update(repeating: .nan, count: outputCount)
                return
            }
            if inputCount == outputCount {
                y.update(from: x, count: outputCount)
                return
            }
            var run = 1
            for g in 0..<groups {
                strides[g] = kinds[g] == 1 ? 0 : run
                if kinds[g] == 0 { run *= extents[g] }
            }
            let divisor = Float(inputCount / outputCount)
            // Blocks of the outermost group are independent when it is kept: split those over threads.
            let top = groups - 1
            if kinds[top] == 0 {
                let blocks = extents[top]
                let blockInput = inputCount / blocks, blockOutput = outputCount / blocks
                pool.forEachChunk(blocks, costPerItem: blockInput) { range in
                    for block in range {
                        accumulate(x + block * blockInput, y + block * blockOutput, outputCount: blockOutput,
                                   extents: extents, kinds: kinds, strides: strides, groups: top)
                        divide(y + block * blockOutput, count: blockOutput, by: divisor)
                    }
                }
            } else {
                accumulate(x, y, outputCount: outputCount, extents: extents, kinds: kinds, strides: strides, groups: groups)
                divide(y, count: outputCount, by: divisor)
            }
        }
    }

    /// Sums `x` into `y` (zeroed first) over coalesced `groups` (innermost first, at least one reduced).
    private static func accumulate(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, outputCount: Int,
        extents: UnsafePointer<Int>, kinds: UnsafePointer<Int>, strides: UnsafePointer<Int>, groups: Int
    ) {
        y.update(repeating: 0, count: outputCount)
        let length = extents[0]
        let innerReduced = kinds[0] == 1
        var lines = 1
        for g in 1..<Swift.max(groups, 1) { lines *= extents[g] }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: Swift.max(groups, 1)) { index in
            for g in 0..<groups { index[g] = 0 }
            var offset = 0
            var src = x
            for _ in 0..<lines {
                if innerReduced {
                    y[offset] += sum(src, count: length)
                } else {
                    let dst = y + offset
                    for i in 0..<length { dst[i] += src[i] }
                }
                src += length
                var g = 1
                while g < groups {
                    index[g] += 1
                    offset += strides[g]
                    if index[g] < extents[g] { break }
                    offset -= strides[g] * extents[g]
                    index[g] = 0
                    g += 1
                }
            }
        }
    }

    @inline(__always)
    private static func divide(_ y: UnsafeMutablePointer<Float>, count: Int, by divisor: Float) {
        for i in 0..<count { y[i] /= divisor }
    }
}
