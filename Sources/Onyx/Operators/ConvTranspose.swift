extension OperatorRegistry {
    /// ConvTranspose.
    static let convTransposeOperators: [OperatorRegistration] = []
}
