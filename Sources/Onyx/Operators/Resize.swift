extension OperatorRegistry {
    /// Resize and Upsample.
    static let resizeOperators: [OperatorRegistration] = []
}
