extension OperatorRegistry {
    /// The ai.onnx.preview.training optimizers (Adam, Adagrad, Momentum).
    static let trainingOperators: [OperatorRegistration] = []
}
