extension OperatorRegistry {
    /// Every operator family's registrations. A new family adds its list here.
    package static let families: [[OperatorRegistration]] = [
        gemmOperators,           // Operators/Gemm.swift: Gemm, MatMul
        convolutionOperators,    // Operators/Conv.swift: Conv
        elementwiseOperators,    // Operators/Elementwise.swift: Relu, Clip, Add, Sub, Mul, Div
        poolingOperators,        // Operators/Pooling.swift: MaxPool, AveragePool, GlobalAveragePool
        normalizationOperators,  // Operators/Normalization.swift: BatchNormalization, Softmax
        reductionOperators,      // Operators/Reduction.swift: ReduceMean
        shapeOperators,          // Operators/Shape.swift: Shape, Reshape, Flatten, Squeeze, Unsqueeze, Concat, Transpose, Gather
        tensorOperators,         // Operators/TensorOps.swift: Identity, Dropout, Constant, Cast
        mathOperators,           // Operators/Math.swift: unary math and activations
        comparisonOperators,     // Operators/Comparison.swift: comparisons, logic, bitwise, Where, Max/Min/Sum/Mean, Pow, Mod
        dataMovementOperators,   // Operators/DataMovement.swift: Split, Slice, Expand, Tile, Pad …
        indexingOperators,       // Operators/Indexing.swift: Gather/Scatter families, TopK, ArgMax, NonZero …
        resizeOperators,         // Operators/Resize.swift: Resize, Upsample
        convTransposeOperators,  // Operators/ConvTranspose.swift: ConvTranspose
        recurrentOperators,      // Operators/Recurrent.swift: LSTM, GRU, RNN
        einsumOperators,         // Operators/Einsum.swift: Einsum
        attentionOperators,      // Operators/Attention.swift: Attention, losses
        controlFlowOperators,    // Operators/ControlFlow.swift: If, Loop
        signalOperators,         // Operators/Signal.swift: DFT, STFT, windows
        quantizationOperators,   // Operators/Quantization.swift: (De)QuantizeLinear, integer convolutions, BitCast, Det
        integerMatMulOperators,  // Operators/IntegerMatMul.swift: MatMulInteger, QLinearMatMul, MatMulIntegerToFloat …
        quantizedOperators,      // Operators/QuantizedOperators.swift: QLinearAdd, QGemm … (com.microsoft), onyx.nhwc
        quantizedContribOperators,  // Operators/QuantizedOperators+Contrib.swift: QLinearSigmoid, QLinearConcat, QLinearSoftmax …; DynamicQuantizeLSTM
        visionOperators,         // Operators/Vision.swift: GridSample, RoiAlign, NonMaxSuppression …
        trainingOperators,       // Operators/Training.swift: Adam, Adagrad, Momentum
        traditionalMLOperators,  // Operators/TraditionalML.swift: ai.onnx.ml, TfIdfVectorizer
        stringOperators,         // Operators/Strings.swift: StringNormalizer, StringSplit, RegexFullMatch, Tokenizer …
        transformerOperators,    // Operators/Transformer.swift: SwiGLU, TensorScatter, LinearAttention …
        optionalOperators,       // Operators/Optional.swift: Optional*
        sequenceOperators,       // Operators/Sequence.swift: Sequence*, SplitToSequence, ConcatFromSequence
        mapOperators,            // Operators/Maps.swift: ZipMap, CastMap, DictVectorizer (ai.onnx.ml)
        nchwcOperators,          // Operators/Nchwc.swift: onyx.nchwc (internal; see NchwcLayout)
    ]
}
