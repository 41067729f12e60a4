internal import CKernels

/// An activation the optimizer fused into the Conv, Gemm or MatMul that produces its input
/// (`onyx.activation`): the kernels apply it to each result as they store it.
package enum FusedActivation: Sendable, Equatable {
    /// `min(max(x, min), max)`: Relu is `clip(0, +∞)`.
    case clip(min: Float, max: Float)
    /// `1 / (1 + e^−x)`.
    case sigmoid
    /// `x · sigmoid(x)`: a Sigmoid and a Mul by the same `x` (SiLU, Swish).
    case silu
    /// `max(0, min(1, alpha · x + beta))`.
    case hardSigmoid(alpha: Float, beta: Float)
    /// `x · max(0, min(1, x / 6 + 1 / 2))`.
    case hardSwish
    /// `x < 0 ? alpha · x : x`.
    case leakyRelu(alpha: Float)
    /// `x/2 · (1 + erf(x/√2))`.
    case gelu
    /// `x/2 · (1 + tanh(√(2/π)(x + 0.044715x³)))`.
    case geluTanh

    /// Relu: `clip(0, +∞)`.
    package static let relu = FusedActivation.clip(min: 0, max: .infinity)

    /// The clamp bounds, for a clip.
    package var clipBounds: (min: Float, max: Float)? {
        guard case .clip(let low, let high) = self else { return nil }
        return (low, high)
    }

    var c: onyx_activation {
        switch self {
        case .clip(let low, let high): onyx_activation(kind: ONYX_ACTIVATION_CLIP, alpha: low, beta: high)
        case .sigmoid: onyx_activation(kind: ONYX_ACTIVATION_SIGMOID, alpha: 0, beta: 0)
        case .silu: onyx_activation(kind: ONYX_ACTIVATION_SILU, alpha: 0, beta: 0)
        case .hardSigmoid(let alpha, let beta): onyx_activation(kind: ONYX_ACTIVATION_HARD_SIGMOID, alpha: alpha, beta: beta)
        case .hardSwish: onyx_activation(kind: ONYX_ACTIVATION_HARD_SWISH, alpha: 1 / 6, beta: 0.5)
        case .leakyRelu(let alpha): onyx_activation(kind: ONYX_ACTIVATION_LEAKY_RELU, alpha: alpha, beta: 0)
        case .gelu: onyx_activation(kind: ONYX_ACTIVATION_GELU, alpha: 0, beta: 0)
        case .geluTanh: onyx_activation(kind: ONYX_ACTIVATION_GELU_TANH, alpha: 0, beta: 0)
        }
    }

    /// `y[i] = activation(x[i])` for `i < count` in the ISA's vector width; `x` and `y` may be the same buffer.
    package func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, isa: KernelISA) {
        var activation = c
        onyx_activate_f32(isa.cValue, &activation, x, y, count)
    }

    /// `apply` in place.
    package func apply(_ values: UnsafeMutablePointer<Float>, count: Int, isa: KernelISA) {
        apply(values, values, count: count, isa: isa)
    }

    /// Calls `body` with the C form of `activation`, or `nil`.
    static func withCValue<R>(_ activation: FusedActivation?, _ body: (UnsafePointer<onyx_activation>?) -> R) -> R {
        guard var value = activation?.c else { return body(nil) }
        return body(&value)
    }
}
