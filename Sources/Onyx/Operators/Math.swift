extension OperatorRegistry {
    /// Unary math and activations.
    static let mathOperators: [OperatorRegistration] = []
}
