extension OperatorRegistry {
    /// Gather/Scatter families, TopK, ArgMax/ArgMin, NonZero and other indexing.
    static let indexingOperators: [OperatorRegistration] = []
}
