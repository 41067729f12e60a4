extension OperatorRegistry {
    /// The ai.onnx.ml operators and TfIdfVectorizer.
    static let traditionalMLOperators: [OperatorRegistration] = []
}
