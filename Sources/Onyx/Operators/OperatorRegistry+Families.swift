extension OperatorRegistry {
    /// Every operator family's registrations. A new family adds its list here.
    static let families: [[OperatorRegistration]] = [
    ]
}
