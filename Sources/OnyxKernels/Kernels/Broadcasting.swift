import OnyxCore

/// The shape NumPy (multidirectional) broadcasting gives two shapes.
///
/// - Throws: ``OnyxError`` `.shapeMismatch` ("shapes [2, 3] and [4] are not broadcastable") if
///   an axis differs and neither extent is 1. Operators prefix their name with
///   ``Broadcasting/shape(_:_:op:)``.
package func broadcastShapes(_ a: [Int], _ b: [Int]) throws -> [Int] {
    guard let shape = Broadcasting.broadcast(a, b) else {
        throw OnyxError.shapeMismatch("shapes \(a) and \(b) are not broadcastable")
    }
    return shape
}

/// NumPy-style (multidirectional) broadcasting of shapes.
@usableFromInline package enum Broadcasting {
    /// The shape two shapes broadcast to.
    ///
    /// - Parameters:
    ///   - a: The first shape.
    ///   - b: The second shape.
    ///   - op: The operator named in the error message.
    /// - Returns: The broadcast shape, of rank `max(a.count, b.count)`.
    /// - Throws: ``OnyxError`` `.shapeMismatch` if an axis differs and neither extent is 1.
    package static func shape(_ a: [Int], _ b: [Int], op: String) throws -> [Int] {
        guard let shape = broadcast(a, b) else {
            throw OnyxError.shapeMismatch("\(op): shapes \(a) and \(b) are not broadcastable")
        }
        return shape
    }

    /// The broadcast of `a` and `b`, or `nil` if they do not broadcast.
    package static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let rank = max(a.count, b.count)
        var result = [Int](repeating: 1, count: rank)
        for axis in 0..<rank {
            let x = axis - (rank - a.count) >= 0 ? a[axis - (rank - a.count)] : 1
            let y = axis - (rank - b.count) >= 0 ? b[axis - (rank - b.count)] : 1
            guard x == y || x == 1 || y == 1 else { return nil }
            result[axis] = x == 1 ? y : x
        }
        return result
    }

    /// The shape several shapes broadcast to.
    package static func shape(_ shapes: [[Int]], op: String) throws -> [Int] {
        try shapes.dropFirst().reduce(shapes.first ?? []) { try shape($0, $1, op: op) }
    }

    /// Element strides of `shape` seen through `outputShape` (0 along broadcast axes).
    @usableFromInline package static func strides(of shape: [Int], in outputShape: [Int]) -> [Int] {
        let rank = outputShape.count
        var strides = [Int](repeating: 0, count: rank)
        var step = 1
        for axis in (0..<shape.count).reversed() {
            let outAxis = axis + rank - shape.count
            strides[outAxis] = shape[axis] == 1 ? 0 : step
            step *= shape[axis]
        }
        return strides
    }
}

/// How a binary elementwise op walks its two inputs for one pair of shapes.
///
/// The output's axes are coalesced (extent-1 axes dropped, neighbours merged wherever both
/// inputs step through them as one), which reduces the common cases to a single level:
/// same shape and scalar are one row; a `[C,1,1]` bias against `[N,C,H,W]` is `N·C` rows of
/// `H·W` against one value each; a row vector is rows against the same row. The innermost
/// coalesced axis is the *row*: each input advances by 0 or 1 element along it. The outer axes
/// are walked with an odometer, so no division happens per row.
///
/// The plan points into stack memory; it lives only inside ``withPlan(_:_:output:_:)``.
@usableFromInline package struct BinaryBroadcastPlan {
    /// Elements per row (the innermost coalesced axis).
    @usableFromInline package let rowLength: Int
    /// Output elements in all.
    @usableFromInline package let elementCount: Int
    /// Elements input A (B) advances per element along a row: 1, or 0 if it repeats one value.
    @usableFromInline package let stepA: Int
    @usableFromInline package let stepB: Int
    /// Coalesced outer axes, innermost first.
    @usableFromInline package let outerRank: Int
    @usableFromInline package let extents: UnsafePointer<Int>
    @usableFromInline package let stridesA: UnsafePointer<Int>
    @usableFromInline package let stridesB: UnsafePointer<Int>

    /// Builds the plan for inputs of shapes `a` and `b` broadcast to `output`, and passes it to `body`.
    ///
    /// `output` must be the broadcast of `a` and `b` (see ``Broadcasting/shape(_:_:op:)``).
    @inlinable @inline(__always)
    package static func withPlan<R>(
        _ a: [Int], _ b: [Int], output: [Int], _ body: (BinaryBroadcastPlan) throws -> R
    ) rethrows -> R {
        let rank = output.count
        return try withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * rank + 3) { buffer in
            let base = buffer.baseAddress!
            let extents = base, stridesA = base + rank + 1, stridesB = base + 2 * rank + 2
            // Walk the axes innermost first, appending coalesced axes to the three arrays.
            var count = 0
            var runA = 1, runB = 1
            var total = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let extent = output[axis]
                total *= extent
                let ia = axis - (rank - a.count), ib = axis - (rank - b.count)
                let ea = ia >= 0 ? a[ia] : 1, eb = ib >= 0 ? b[ib] : 1
                let sa = ea == 1 ? 0 : runA, sb = eb == 1 ? 0 : runB
                runA *= ea
                runB *= eb
                if extent == 1 { continue }
                if count > 0, sa == stridesA[count - 1] * extents[count - 1], sb == stridesB[count - 1] * extents[count - 1] {
                    extents[count - 1] *= extent
                } else {
                    extents[count] = extent
                    stridesA[count] = sa
                    stridesB[count] = sb
                    count += 1
                }
            }
            let plan: BinaryBroadcastPlan
            if count == 0 {
                plan = BinaryBroadcastPlan(
                    rowLength: 1, elementCount: total, stepA: 0, stepB: 0, outerRank: 0,
                    extents: extents, stridesA: stridesA, stridesB: stridesB)
            } else {
                plan = BinaryBroadcastPlan(
                    rowLength: extents[0], elementCount: total, stepA: stridesA[0], stepB: stridesB[0],
                    outerRank: count - 1, extents: extents + 1, stridesA: stridesA + 1, stridesB: stridesB + 1)
            }
            return try body(plan)
        }
    }

    /// Calls `body(outputOffset, offsetA, offsetB, count)` for each run of output elements in
    /// `range` that lies within one row, in order.
    @inlinable @inline(__always)
    package func forEachSegment(_ range: Range<Int>, _ body: (Int, Int, Int, Int) -> Void) {
        guard !range.isEmpty else { return }
        let rowLength = self.rowLength, outerRank = self.outerRank
        if outerRank == 0 {
            body(range.lowerBound, range.lowerBound * stepA, range.lowerBound * stepB, range.count)
            return
        }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: outerRank) { index in
            let extents = self.extents, stridesA = self.stridesA, stridesB = self.stridesB
            var rest = range.lowerBound / rowLength
            var column = range.lowerBound % rowLength
            var rowA = 0, rowB = 0
            for d in 0..<outerRank {
                let i = rest % extents[d]
                rest /= extents[d]
                index[d] = i
                rowA += i * stridesA[d]
                rowB += i * stridesB[d]
            }
            var position = range.lowerBound
            while position < range.upperBound {
                let count = Swift.min(rowLength - column, range.upperBound - position)
                body(position, rowA + column * stepA, rowB + column * stepB, count)
                position += count
                column = 0
                var d = 0
                while d < outerRank {
                    index[d] += 1
                    rowA += stridesA[d]
                    rowB += stridesB[d]
                    if index[d] < extents[d] { break }
                    rowA -= stridesA[d] * extents[d]
                    rowB -= stridesB[d] * extents[d]
                    index[d] = 0
                    d += 1
                }
            }
        }
    }

    @usableFromInline package init(
        rowLength: Int, elementCount: Int, stepA: Int, stepB: Int, outerRank: Int, extents: UnsafePointer<Int>,
        stridesA: UnsafePointer<Int>, stridesB: UnsafePointer<Int>
    ) {
        self.rowLength = rowLength
        self.elementCount = elementCount
        self.stepA = stepA
        self.stepB = stepB
        self.outerRank = outerRank
        self.extents = extents
        self.stridesA = stridesA
        self.stridesB = stridesB
    }
}

extension Broadcasting {
    /// Whether a bias of `shape` adds the same value to every row of an `… × columns` product.
    package static func broadcastsAlongColumns(_ shape: [Int], columns: Int) -> Bool {
        guard let last = shape.last else { return true }
        return shape.dropLast().allSatisfy { $0 == 1 } && (last == columns || last == 1)
    }
}
