extension OperatorRegistry {
    /// QuantizeLinear, DequantizeLinear and the integer matrix products and convolutions, BitCast, Det.
    static let quantizationOperators: [OperatorRegistration] = []
}
