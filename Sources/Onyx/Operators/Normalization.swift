extension OperatorRegistry {
    static let normalizationOperators: [OperatorRegistration] = []
}
