extension OperatorRegistry {
    /// Every operator family's registrations. A new family adds its list here.
    static let families: [[OperatorRegistration]] = [
        gemmOperators,           // Operators/Gemm.swift: Gemm, MatMul
        convolutionOperators,    // Operators/Conv.swift: Conv
        elementwiseOperators,    // Operators/Elementwise.swift: Relu, Clip, Add, Sub, Mul, Div
        poolingOperators,        // Operators/Pooling.swift: MaxPool, AveragePool, GlobalAveragePool
        normalizationOperators,  // Operators/Normalization.swift: BatchNormalization, Softmax
        reductionOperators,      // Operators/Reduction.swift: ReduceMean
        shapeOperators,          // Operators/Shape.swift: Shape, Reshape, Flatten, Squeeze, Unsqueeze, Concat, Transpose, Gather
        tensorOperators,         // Operators/TensorOps.swift: Identity, Dropout, Constant, Cast
    ]
}
