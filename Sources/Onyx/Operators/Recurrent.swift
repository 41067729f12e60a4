extension OperatorRegistry {
    /// LSTM, GRU, RNN.
    static let recurrentOperators: [OperatorRegistration] = []
}
