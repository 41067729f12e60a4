extension OperatorRegistry {
    static let convolutionOperators: [OperatorRegistration] = []
}
