extension OperatorRegistry {
    /// SwiGLU, TensorScatter, LinearAttention, FlexAttention, CausalConvWithState.
    static let transformerOperators: [OperatorRegistration] = []
}
