extension OperatorRegistry {
    /// Optional, OptionalHasElement, OptionalGetElement.
    static let optionalOperators: [OperatorRegistration] = []
}
