import OnyxCore
import OnyxIR

/// Which operators see the element types kernels have no arithmetic for: bfloat16, the float8
/// formats, float4e2m1 and the 4- and 2-bit integers.
///
/// Most kernels switch over the types they compute in and refuse the rest, but a kernel that
/// picks its loop by element width, or treats "not bool" as numeric, would read these bytes as
/// the wrong type. So planning refuses them outright for every operator not listed here: the
/// ones that only move elements (any type), the conversions, and the ones that compute bfloat16
/// (IsNaN and IsInf: the float8 formats too) in float32.
extension OperatorRegistry {
    /// Whether `opType` in `domain` handles tensors of `type` (inputs or outputs).
    package static func takes(_ type: DataType, domain: String, opType: String) -> Bool {
        if type.isNative || type == .string { return true }
        guard Model.canonicalDomain(domain).isEmpty else { return false }
        if elementMovers.contains(opType) || converters.contains(opType) { return true }
        if type == .bfloat16 && float32Kernels.contains(opType) { return true }
        return stagedTypes(opType)?.contains(type) == true
    }

    /// The types `opType`'s kernels compute in float32 (``Float32Staged``), if it is one of those.
    private static func stagedTypes(_ opType: String) -> [DataType]? {
        if floatClassifiers.contains(opType) { return [.bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz] }
        return bfloat16Staged.contains(opType) ? [.bfloat16] : nil
    }

    /// `registration`, its kernels computing the types of ``stagedTypes(_:)`` in float32.
    static func stagingNarrowFloats(_ registration: OperatorRegistration) -> OperatorRegistration {
        guard Model.canonicalDomain(registration.domain).isEmpty, let types = stagedTypes(registration.opType) else {
            return registration
        }
        let make = registration.make
        return OperatorRegistration(registration.opType, domain: registration.domain, versions: registration.versions) { context in
            try Float32Staged(context, staging: types, make)
        }
    }

    /// Throws `unsupportedDataType` naming the node unless its operator takes every one of
    /// `types` (see ``takes(_:domain:opType:)``): the node's inputs before its kernel plans,
    /// its outputs after.
    package static func checkElementTypes(domain: String, opType: String, nodeName: String, _ types: [DataType?]) throws {
        for type in types.compactMap({ $0 }) where !takes(type, domain: domain, opType: opType) {
            throw OnyxError.unsupportedDataType(
                "node '\(nodeName)' (\(opType)) does not support \(type) in Onyx; Cast it to float first")
        }
    }

    /// Operators that copy, select or fill whole elements and read no values but integer indices.
    private static let elementMovers: Set<String> = [
        "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice",
        "Gather", "GatherElements", "GatherND", "ScatterND", "ScatterElements", "Expand", "Tile", "Where", "Compress",
        "ReverseSequence", "DepthToSpace", "SpaceToDepth", "Shape", "Size", "Constant", "ConstantOfShape", "Pad",
        "Trilu", "EyeLike", "OneHot", "Resize", "Dropout", "Optional", "OptionalHasElement", "OptionalGetElement",
        "If", "Loop", "Scan",
    ]

    /// Operators that read or write values of these types by converting them (``Casting``), each
    /// checking which types it takes.
    private static let converters: Set<String> = [
        "Cast", "CastLike", "QuantizeLinear", "DequantizeLinear", "BitCast", "HannWindow", "HammingWindow", "BlackmanWindow",
    ]

    /// Operators that read the float8 formats too (exactly, through float32): NaN and ∞ tests.
    private static let floatClassifiers: Set<String> = ["IsNaN", "IsInf"]

    /// Operators registered as ``Float32Staged`` kernels, bfloat16 included.
    private static let float32Kernels: Set<String> = ["MatMul", "Gemm", "Conv"]

    /// Operators whose kernels compute bfloat16 in float32: the inputs converted exactly, the
    /// results rounded to nearest even, as bfloat16 arithmetic is defined (and as onnxruntime and
    /// ONNX's reference compute it). Each has outputs of its input type, bool or int64 only.
    private static let bfloat16Staged: Set<String> = [
        // Elementwise.
        "Abs", "Neg", "Ceil", "Floor", "Round", "Sqrt", "Reciprocal", "Exp", "Log", "Sin", "Cos", "Tan", "Asin", "Acos",
        "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Erf", "Sign", "Sigmoid", "Tanh", "Relu", "LeakyRelu", "Elu",
        "Selu", "Celu", "Gelu", "Mish", "Softplus", "Softsign", "HardSigmoid", "HardSwish", "ThresholdedRelu", "Swish",
        "PRelu", "Clip", "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Mean", "Sum",
        "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
        // Reductions, searches and scans.
        "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
        "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin", "CumSum", "TopK", "Unique", "NonZero",
        // Networks.
        "ConvTranspose", "Einsum", "Attention", "Softmax", "LogSoftmax", "Hardmax", "BatchNormalization",
        "InstanceNormalization", "LpNormalization", "MeanVarianceNormalization", "LRN", "AveragePool", "MaxPool",
        "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool", "Range", "Det",
    ]
}
