internal import CKernels

/// Vectorised activations for float32, through the C micro-kernels.
@usableFromInline package enum ActivationKernels {
    /// `y[i] = min(max(x[i], min), max)`; `x` and `y` may be the same buffer.
    package static func clip(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, min: Float, max: Float,
        pool: ComputePool, isa: KernelISA = .preferred
    ) {
        if count >= ElementwiseLoops.parallelThreshold {
            pool.parallelRanges(count, minimumChunk: ElementwiseLoops.parallelThreshold / 2) { range in
                onyx_clip_f32(isa.cValue, x + range.lowerBound, y + range.lowerBound, range.count, min, max)
            }
        } else {
            onyx_clip_f32(isa.cValue, x, y, count, min, max)
        }
    }
}
