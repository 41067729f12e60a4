extension OperatorRegistry {
    static let tensorOperators: [OperatorRegistration] = []
}
