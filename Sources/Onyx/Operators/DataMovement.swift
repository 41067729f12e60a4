extension OperatorRegistry {
    /// Split, Slice, Expand, Tile, Pad and other data movement.
    static let dataMovementOperators: [OperatorRegistration] = []
}
