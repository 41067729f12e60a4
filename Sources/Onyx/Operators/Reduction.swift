extension OperatorRegistry {
    static let reductionOperators: [OperatorRegistration] = []
}
