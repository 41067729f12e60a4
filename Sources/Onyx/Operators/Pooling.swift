extension OperatorRegistry {
    static let poolingOperators: [OperatorRegistration] = []
}
