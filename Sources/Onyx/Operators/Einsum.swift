extension OperatorRegistry {
    /// Einsum.
    static let einsumOperators: [OperatorRegistration] = []
}
