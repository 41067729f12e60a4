extension OperatorRegistry {
    static let gemmOperators: [OperatorRegistration] = []
}
