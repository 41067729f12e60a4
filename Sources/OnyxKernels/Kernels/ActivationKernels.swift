/// Vectorised activations for float32, through the C micro-kernels.
@usableFromInline package enum ActivationKernels {
    /// `y[i] = min(max(x[i], min), max)`; `x` and `y` may be the same buffer.
    package static func clip(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, min: Float, max: Float,
        pool: ComputePool, isa: KernelISA = .preferred
    ) {
        if count >= ElementwiseLoops.parallelThreshold {
            pool.parallelRanges(count, minimumChunk: ElementwiseLoops.parallelThreshold / 2) { range in
                VectorKernels.clip(x + range.lowerBound, y + range.lowerBound, count: range.count, min: min, max: max, isa: isa)
            }
        } else {
            VectorKernels.clip(x, y, count: count, min: min, max: max, isa: isa)
        }
    }
}
