/// Loops for elementwise kernels over raw pointers, generic over the element type so each
/// instantiation specialises to a tight, vectorisable loop.
enum ElementwiseLoops {
    /// `out = f(a, b)` with broadcasting described by `plan`.
    @inline(__always)
    static func binary<T>(
        _ plan: BinaryBroadcastPlan, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>,
        pool: ComputePool, _ f: (T, T) -> T
    ) {
        let inner = plan.innerCount
        let total = plan.outerCount * inner
        func work(_ rows: Range<Int>) {
            plan.forEachRow(rows) { row, offsetA, offsetB in
                let o = out + row * inner
                let pa = a + offsetA
                let pb = b + offsetB
                switch (plan.innerStrideA, plan.innerStrideB) {
                case (1, 1): for i in 0..<inner { o[i] = f(pa[i], pb[i]) }
                case (1, 0): let y = pb[0]; for i in 0..<inner { o[i] = f(pa[i], y) }
                case (0, 1): let x = pa[0]; for i in 0..<inner { o[i] = f(x, pb[i]) }
                default: let v = f(pa[0], pb[0]); for i in 0..<inner { o[i] = v }
                }
            }
        }
        if total >= parallelThreshold && plan.outerCount > 1 {
            pool.parallelRanges(plan.outerCount, minimumChunk: max(1, parallelThreshold / max(inner, 1) / 2)) { work($0) }
        } else if total >= parallelThreshold && plan.outerCount == 1 {
            // One long row: split it.
            pool.parallelRanges(inner, minimumChunk: parallelThreshold / 2) { range in
                let pa = a, pb = b
                for i in range {
                    out[i] = f(pa[plan.innerStrideA == 1 ? i : 0], pb[plan.innerStrideB == 1 ? i : 0])
                }
            }
        } else {
            work(0..<plan.outerCount)
        }
    }

    /// `out[i] = f(input[i])`.
    @inline(__always)
    static func unary<T>(
        _ input: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, count: Int, pool: ComputePool, _ f: (T) -> T
    ) {
        if count >= parallelThreshold {
            pool.parallelRanges(count, minimumChunk: parallelThreshold / 2) { range in
                for i in range { out[i] = f(input[i]) }
            }
        } else {
            for i in 0..<count { out[i] = f(input[i]) }
        }
    }

    /// Elements below which splitting work across threads costs more than it saves.
    static let parallelThreshold = 1 << 16
}
