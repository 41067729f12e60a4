extension OperatorRegistry {
    /// GridSample, AffineGrid, Col2Im, DeformConv, RoiAlign, NonMaxSuppression.
    static let visionOperators: [OperatorRegistration] = []
}
