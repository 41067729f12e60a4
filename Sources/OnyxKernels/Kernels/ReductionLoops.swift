/// Horizontal float32 reductions with several accumulators, so they vectorise and round less.
@usableFromInline package enum ReductionLoops {
    /// `Σ x[i]`.
    @inlinable @inline(__always)
    package static func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
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
    @inlinable @inline(__always)
    package static func sumOfSquaredDeviations(_ x: UnsafePointer<Float>, count: Int, from center: Float) -> Float {
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
    @inlinable @inline(__always)
    package static func max(_ x: UnsafePointer<Float>, count: Int) -> Float {
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

/// One reduction as a type: each element is loaded into an accumulator (after a map such as
/// `|x|` or `x²`), accumulators combine, and the total finishes into an output value. Loops take
/// the operation as a generic value so each use specialises to tight loops.
///
/// `at` is the output's flat index, for operations with per-output state (ReduceLogSumExp's
/// maxima).
@usableFromInline package protocol ReductionOperation {
    associatedtype Element
    associatedtype Accumulator
    associatedtype Output
    var identity: Accumulator { get }
    func load(_ x: Element, at output: Int) -> Accumulator
    func combine(_ a: Accumulator, _ b: Accumulator) -> Accumulator
    func finish(_ total: Accumulator, at output: Int) -> Output
}

extension ReductionLoops {
    /// Reduces `x` (of shape `shape`) over the axes where `reduced[axis]` is true, into `y` (the
    /// kept axes in order). `y` must not overlap `x`. With no axis reduced, each output is one
    /// element loaded and finished; over an empty set it is `finish(identity)`.
    ///
    /// The axes are coalesced first (extent-1 axes dropped, neighbours of the same kind merged),
    /// so the loops run over whole contiguous lines: a reduced innermost line folds to one
    /// accumulator; a kept innermost line folds onto a contiguous row of accumulators.
    @inlinable package static func reduce<Op: ReductionOperation>(
        _ x: UnsafePointer<Op.Element>, _ y: UnsafeMutablePointer<Op.Output>, shape: [Int],
        reduced: UnsafePointer<Bool>, pool: ComputePool, _ op: Op
    ) {
        let rank = shape.count
        // Groups innermost first: extent, whether reduced (1/0), output stride (0 if reduced).
        var extents: [Int] = [], kinds: [Int] = []
        extents.reserveCapacity(rank)
        kinds.reserveCapacity(rank)
        var inputCount = 1, outputCount = 1
        for axis in stride(from: rank - 1, through: 0, by: -1) {
            let extent = shape[axis]
            inputCount *= extent
            if !reduced[axis] { outputCount *= extent }
            if extent == 1 { continue }
            let kind = reduced[axis] ? 1 : 0
            if let last = kinds.last, last == kind {
                extents[extents.count - 1] *= extent
            } else {
                extents.append(extent)
                kinds.append(kind)
            }
        }
        guard outputCount > 0 else { return }
        guard inputCount > 0 else {
            for o in 0..<outputCount { y[o] = op.finish(op.identity, at: o) }
            return
        }
        if inputCount == outputCount {
            pool.forEachChunk(outputCount, costPerItem: 2) { range in
                for o in range { y[o] = op.finish(op.combine(op.identity, op.load(x[o], at: o)), at: o) }
            }
            return
        }
        let groups = extents.count
        var strides = [Int](repeating: 0, count: groups)
        var run = 1
        for g in 0..<groups {
            strides[g] = kinds[g] == 1 ? 0 : run
            if kinds[g] == 0 { run *= extents[g] }
        }
        extents.withUnsafeBufferPointer { extentBuffer in
            kinds.withUnsafeBufferPointer { kindBuffer in
                strides.withUnsafeBufferPointer { strideBuffer in
                    let extents = extentBuffer.baseAddress!, kinds = kindBuffer.baseAddress!, strides = strideBuffer.baseAddress!
                    // Blocks of the outermost group are independent when it is kept: split those over threads.
                    let top = groups - 1
                    if kinds[top] == 0 {
                        let blocks = extents[top]
                        let blockInput = inputCount / blocks, blockOutput = outputCount / blocks
                        pool.forEachChunk(blocks, costPerItem: blockInput) { range in
                            let base = range.lowerBound * blockOutput, count = range.count * blockOutput
                            let index = UnsafeMutablePointer<Int>.allocate(capacity: groups)
                            defer { index.deallocate() }
                            withAccumulators(y + base, count: count, op) { totals in
                                for block in range {
                                    let local = (block - range.lowerBound) * blockOutput
                                    accumulate(x + block * blockInput, totals + local, base: base + local,
                                               outputCount: blockOutput, extents: extents, kinds: kinds, strides: strides,
                                               groups: top, index: index, op)
                                }
                                for o in 0..<count { y[base + o] = op.finish(totals[o], at: base + o) }
                            }
                        }
                    } else {
                        let index = UnsafeMutablePointer<Int>.allocate(capacity: groups)
                        defer { index.deallocate() }
                        withAccumulators(y, count: outputCount, op) { totals in
                            accumulate(x, totals, base: 0, outputCount: outputCount, extents: extents, kinds: kinds,
                                       strides: strides, groups: groups, index: index, op)
                            for o in 0..<outputCount { y[o] = op.finish(totals[o], at: o) }
                        }
                    }
                }
            }
        }
    }

    /// Calls `body` with `count` accumulators: `y` itself when the accumulator is the output type
    /// (finishing then rewrites each in place), else a temporary buffer.
    @inline(__always)
    @inlinable package static func withAccumulators<Op: ReductionOperation>(
        _ y: UnsafeMutablePointer<Op.Output>, count: Int, _ op: Op, _ body: (UnsafeMutablePointer<Op.Accumulator>) -> Void
    ) {
        if Op.Accumulator.self == Op.Output.self {
            body(UnsafeMutableRawPointer(y).assumingMemoryBound(to: Op.Accumulator.self))
        } else {
            let totals = UnsafeMutablePointer<Op.Accumulator>.allocate(capacity: Swift.max(count, 1))
            defer { totals.deallocate() }
            body(totals)
        }
    }

    /// Folds `x` into `totals` (set to the identity first) over coalesced `groups` (innermost
    /// first, at least one reduced). `base` is the flat index of `totals[0]` in the whole output;
    /// `index` is scratch for one counter per group.
    @inlinable package static func accumulate<Op: ReductionOperation>(
        _ x: UnsafePointer<Op.Element>, _ totals: UnsafeMutablePointer<Op.Accumulator>, base: Int, outputCount: Int,
        extents: UnsafePointer<Int>, kinds: UnsafePointer<Int>, strides: UnsafePointer<Int>, groups: Int,
        index: UnsafeMutablePointer<Int>, _ op: Op
    ) {
        let identity = op.identity
        for o in 0..<outputCount { totals[o] = identity }
        let length = extents[0]
        let innerReduced = kinds[0] == 1
        var lines = 1
        for g in 1..<Swift.max(groups, 1) { lines *= extents[g] }
        do {
            for g in 0..<groups { index[g] = 0 }
            var offset = 0
            var src = x
            for _ in 0..<lines {
                if innerReduced {
                    totals[offset] = op.combine(totals[offset], fold(src, count: length, at: base + offset, op))
                } else {
                    let dst = totals + offset, at = base + offset
                    for i in 0..<length { dst[i] = op.combine(dst[i], op.load(src[i], at: at + i)) }
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

    /// One contiguous line folded with four accumulators, so it vectorises.
    @inline(__always)
    @inlinable package static func fold<Op: ReductionOperation>(
        _ x: UnsafePointer<Op.Element>, count: Int, at output: Int, _ op: Op
    ) -> Op.Accumulator {
        var a0 = op.identity, a1 = op.identity, a2 = op.identity, a3 = op.identity
        var i = 0
        while i + 4 <= count {
            a0 = op.combine(a0, op.load(x[i], at: output))
            a1 = op.combine(a1, op.load(x[i + 1], at: output))
            a2 = op.combine(a2, op.load(x[i + 2], at: output))
            a3 = op.combine(a3, op.load(x[i + 3], at: output))
            i += 4
        }
        while i < count { a0 = op.combine(a0, op.load(x[i], at: output)); i += 1 }
        return op.combine(op.combine(a0, a1), op.combine(a2, a3))
    }
}
