internal import CKernels

/// Float32 vector primitives of the C micro-kernels, one call per contiguous run (the operators'
/// epilogues: a fused activation's clamp, a fused residual's add, a strided row gather; the other
/// activations are ``FusedActivation/apply(_:_:count:isa:)``).
@usableFromInline package enum VectorKernels {
    /// `y[i] = min(max(x[i], min), max)` for `i < count`; `x` and `y` may be the same buffer.
    package static func clip(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, min: Float, max: Float, isa: KernelISA
    ) {
        onyx_clip_f32(isa.cValue, x, y, count, min, max)
    }

    /// `y[i] = a[i] + b[i]` for `i < count`; `y` may be `a` or `b`.
    package static func add(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, isa: KernelISA
    ) {
        onyx_add_f32(isa.cValue, a, b, y, count)
    }

    /// `destination[i] = source[i · stride]` for `i < count`.
    package static func gather(
        _ source: UnsafePointer<Float>, stride: Int, into destination: UnsafeMutablePointer<Float>, count: Int, isa: KernelISA
    ) {
        onyx_gather_strided(isa.cValue, source, destination, count, stride)
    }
}
