/// Loops for elementwise kernels over raw pointers, generic over the element type and the
/// operation so each use specialises to tight loops the optimizer vectorises.
///
/// Every loop accepts an output that is the same buffer as an input (in-place execution);
/// such calls take a separate loop, because a loop over three pointers that may overlap is left
/// scalar by the vectoriser's runtime overlap check.
enum ElementwiseLoops {
    /// Elements below which splitting work across threads costs more than it saves.
    static let parallelThreshold = 1 << 16

    /// `out = f(a, b)` with broadcasting described by `plan`.
    @inline(__always)
    static func binary<T>(
        _ plan: BinaryBroadcastPlan, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>,
        pool: ComputePool, _ f: (T, T) -> T
    ) {
        let total = plan.elementCount
        if total >= parallelThreshold && pool.threadCount > 1 {
            pool.parallelRanges(total, minimumChunk: parallelThreshold / 2) { range in
                plan.forEachSegment(range) { o, offsetA, offsetB, count in
                    segment(a + offsetA, plan.stepA, b + offsetB, plan.stepB, out + o, count, f)
                }
            }
        } else {
            plan.forEachSegment(0..<total) { o, offsetA, offsetB, count in
                segment(a + offsetA, plan.stepA, b + offsetB, plan.stepB, out + o, count, f)
            }
        }
    }

    /// `out[i] = f(a[i·stepA], b[i·stepB])` for `i` in `0..<count`, steps 0 or 1.
    @inline(__always)
    static func segment<T>(
        _ a: UnsafePointer<T>, _ stepA: Int, _ b: UnsafePointer<T>, _ stepB: Int,
        _ out: UnsafeMutablePointer<T>, _ count: Int, _ f: (T, T) -> T
    ) {
        let inPlaceA = UnsafePointer(out) == a
        let inPlaceB = UnsafePointer(out) == b
        switch (stepA, stepB) {
        case (1, 1):
            if inPlaceA && inPlaceB {
                for i in 0..<count { out[i] = f(out[i], out[i]) }
            } else if inPlaceA {
                for i in 0..<count { out[i] = f(out[i], b[i]) }
            } else if inPlaceB {
                for i in 0..<count { out[i] = f(a[i], out[i]) }
            } else {
                for i in 0..<count { out[i] = f(a[i], b[i]) }
            }
        case (1, 0):
            let y = b[0]
            if inPlaceA {
                for i in 0..<count { out[i] = f(out[i], y) }
            } else {
                for i in 0..<count { out[i] = f(a[i], y) }
            }
        case (0, 1):
            let x = a[0]
            if inPlaceB {
                for i in 0..<count { out[i] = f(x, out[i]) }
            } else {
                for i in 0..<count { out[i] = f(x, b[i]) }
            }
        default:
            let v = f(a[0], b[0])
            for i in 0..<count { out[i] = v }
        }
    }

    /// `out[i] = f(input[i])`; `out` may be `input`.
    @inline(__always)
    static func unary<T>(
        _ input: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, count: Int, pool: ComputePool, _ f: (T) -> T
    ) {
        @inline(__always)
        func work(_ range: Range<Int>) {
            if UnsafePointer(out) == input {
                for i in range { out[i] = f(out[i]) }
            } else {
                for i in range { out[i] = f(input[i]) }
            }
        }
        if count >= parallelThreshold && pool.threadCount > 1 {
            pool.parallelRanges(count, minimumChunk: parallelThreshold / 2) { work($0) }
        } else {
            work(0..<count)
        }
    }
}
