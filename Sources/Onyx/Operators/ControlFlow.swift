extension OperatorRegistry {
    /// If, Loop.
    static let controlFlowOperators: [OperatorRegistration] = []
}
