extension OperatorRegistry {
    static let shapeOperators: [OperatorRegistration] = []
}
