/// An elementwise binary function as a type. Loops take the operation as a generic value
/// rather than a closure so that it is specialised and inlined even inside the closures
/// handed to the thread pool, where a closure value would stay an indirect call per element.
@usableFromInline package protocol BinaryElementOperation {
    associatedtype Element
    func callAsFunction(_ a: Element, _ b: Element) -> Element
}

/// An elementwise unary function as a type (see ``BinaryElementOperation``).
@usableFromInline package protocol UnaryElementOperation {
    associatedtype Element
    func callAsFunction(_ x: Element) -> Element
}

/// Loops for elementwise kernels over raw pointers, generic over the element type and the
/// operation so each use specialises to tight loops the optimizer vectorises.
///
/// Every loop accepts an output that is the same buffer as an input (in-place execution);
/// such calls take a separate loop, because a loop over three pointers that may overlap is left
/// scalar by the vectoriser's runtime overlap check.
@usableFromInline package enum ElementwiseLoops {
    /// Elements below which splitting work across threads costs more than it saves. These loops
    /// are memory-bound; measured here, handing work to a second thread costs about 25 µs and
    /// pays off from about 512 K float elements.
    @usableFromInline package static let parallelThreshold = 1 << 19

    /// `out = f(a, b)` with broadcasting described by `plan`.
    @inlinable @inline(__always)
    package static func binary<Op: BinaryElementOperation>(
        _ plan: BinaryBroadcastPlan, _ a: UnsafePointer<Op.Element>, _ b: UnsafePointer<Op.Element>,
        _ out: UnsafeMutablePointer<Op.Element>, pool: ComputePool, _ f: Op
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
    @inlinable @inline(__always)
    package static func segment<Op: BinaryElementOperation>(
        _ a: UnsafePointer<Op.Element>, _ stepA: Int, _ b: UnsafePointer<Op.Element>, _ stepB: Int,
        _ out: UnsafeMutablePointer<Op.Element>, _ count: Int, _ f: Op
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
    @inlinable @inline(__always)
    package static func unary<Op: UnaryElementOperation>(
        _ input: UnsafePointer<Op.Element>, _ out: UnsafeMutablePointer<Op.Element>, count: Int, pool: ComputePool, _ f: Op
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
