extension ComputePool {
    /// Work (roughly, vectorised element operations) below which a kernel call stays on one
    /// thread: handing work to another thread costs a few microseconds.
    @usableFromInline package static let parallelWorkThreshold = 1 << 18

    /// Calls `body` with contiguous sub-ranges covering `0..<count`, spread over the pool's
    /// threads only when `count · costPerItem` is large enough to pay for the hand-off.
    ///
    /// - Parameters:
    ///   - count: The number of independent items (planes, rows …).
    ///   - costPerItem: About how many element operations one item takes.
    ///   - body: Called once per chunk; must be safe to call concurrently.
    @inlinable @inline(__always)
    @usableFromInline package func forEachChunk(_ count: Int, costPerItem: Int, _ body: (Range<Int>) -> Void) {
        let cost = Swift.max(costPerItem, 1)
        if threadCount > 1 && count > 1 && count * cost >= Self.parallelWorkThreshold {
            parallelRanges(count, minimumChunk: Swift.max(1, Self.parallelWorkThreshold / 2 / cost), body)
        } else {
            body(0..<count)
        }
    }
}
