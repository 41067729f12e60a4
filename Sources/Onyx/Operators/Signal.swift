extension OperatorRegistry {
    /// DFT, STFT, window functions, MelWeightMatrix.
    static let signalOperators: [OperatorRegistration] = []
}
