extension OperatorRegistry {
    static let elementwiseOperators: [OperatorRegistration] = []
}
