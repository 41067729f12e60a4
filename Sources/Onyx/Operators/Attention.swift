extension OperatorRegistry {
    /// Attention and the loss functions.
    static let attentionOperators: [OperatorRegistration] = []
}
