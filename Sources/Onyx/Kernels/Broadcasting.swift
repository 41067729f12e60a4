/// NumPy-style (multidirectional) broadcasting of shapes.
enum Broadcasting {
    /// The shape two shapes broadcast to.
    ///
    /// - Throws: ``OnyxError`` `.shapeMismatch` if an axis differs and neither extent is 1.
    static func shape(_ a: [Int], _ b: [Int], op: String) throws -> [Int] {
        let rank = max(a.count, b.count)
        var result = [Int](repeating: 1, count: rank)
        for axis in 0..<rank {
            let x = axis - (rank - a.count) >= 0 ? a[axis - (rank - a.count)] : 1
            let y = axis - (rank - b.count) >= 0 ? b[axis - (rank - b.count)] : 1
            guard x == y || x == 1 || y == 1 else {
                throw OnyxError.shapeMismatch("\(op): shapes \(a) and \(b) are not broadcastable")
            }
            result[axis] = x == 1 ? y : x
        }
        return result
    }

    /// The shape several shapes broadcast to.
    static func shape(_ shapes: [[Int]], op: String) throws -> [Int] {
        try shapes.dropFirst().reduce(shapes.first ?? []) { try shape($0, $1, op: op) }
    }

    /// Element strides of `shape` seen through `outputShape` (0 along broadcast axes).
    static func strides(of shape: [Int], in outputShape: [Int]) -> [Int] {
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

/// How a binary elementwise op walks its two inputs, chosen once per shape pair.
///
/// The output is split into an outer loop over `outerCount` rows of `innerCount` contiguous
/// elements; each input advances by `0` or `1` per inner element (`innerStrideA/B`) and by a
/// per-row offset computed from its broadcast strides.
struct BinaryBroadcastPlan {
    let outputShape: [Int]
    let innerCount: Int
    let outerCount: Int
    let innerStrideA: Int
    let innerStrideB: Int
    /// Outer shape and strides (axes before the inner block).
    let outerShape: [Int]
    let outerStridesA: [Int]
    let outerStridesB: [Int]

    init(_ a: [Int], _ b: [Int], outputShape: [Int]) {
        self.outputShape = outputShape
        let rank = outputShape.count
        let sa = Broadcasting.strides(of: a, in: outputShape)
        let sb = Broadcasting.strides(of: b, in: outputShape)
        // Merge trailing axes into the inner block while both inputs move the same way (both
        // contiguous, or one fixed) across them.
        var inner = 1
        var axis = rank - 1
        var modeA = -1
        var modeB = -1
        while axis >= 0 {
            let n = outputShape[axis]
            if n == 1 { axis -= 1; continue }
            let ma = sa[axis] == 0 ? 0 : 1
            let mb = sb[axis] == 0 ? 0 : 1
            if modeA == -1 { modeA = ma; modeB = mb }
            guard ma == modeA, mb == modeB,
                  ma == 0 || sa[axis] == inner, mb == 0 || sb[axis] == inner else { break }
            inner *= n
            axis -= 1
        }
        innerCount = inner
        innerStrideA = max(modeA, 0)
        innerStrideB = max(modeB, 0)
        let outerAxes = max(axis + 1, 0)
        outerShape = Array(outputShape[0..<outerAxes])
        outerStridesA = Array(sa[0..<outerAxes])
        outerStridesB = Array(sb[0..<outerAxes])
        outerCount = outerShape.reduce(1, *)
    }

    /// Calls `body(row, offsetA, offsetB)` for each outer row.
    @inline(__always)
    func forEachRow(_ rows: Range<Int>, _ body: (Int, Int, Int) -> Void) {
        let rank = outerShape.count
        if rank == 0 {
            for row in rows { body(row, 0, 0) }
            return
        }
        for row in rows {
            var rest = row
            var offsetA = 0
            var offsetB = 0
            var axis = rank - 1
            while axis >= 0 {
                let n = outerShape[axis]
                let i = rest % n
                rest /= n
                offsetA += i * outerStridesA[axis]
                offsetB += i * outerStridesB[axis]
                axis -= 1
            }
            body(row, offsetA, offsetB)
        }
    }
}
