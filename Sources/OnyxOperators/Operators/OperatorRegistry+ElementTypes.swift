import OnyxCore
import OnyxIR

/// Which operators see the element types kernels have no arithmetic for: bfloat16, the float8
/// formats, float4e2m1 and the 4- and 2-bit integers.
///
/// Most kernels switch over the types they compute in and refuse the rest, but a kernel that
/// picks its loop by element width, or treats "not bool" as numeric, would read these bytes as
/// the wrong type. So planning refuses them outright for every operator not listed here: the
/// ones that only move elements (any type), the conversions, and the ones that compute in
/// float32 for bfloat16.
extension OperatorRegistry {
    /// Whether `opType` in `domain` handles tensors of `type` (inputs or outputs).
    package static func takes(_ type: DataType, domain: String, opType: String) -> Bool {
        if type.isNative || type == .string { return true }
        guard Model.canonicalDomain(domain).isEmpty else { return false }
        if elementMovers.contains(opType) || converters.contains(opType) { return true }
        return type == .bfloat16 && bfloat16Operators.contains(opType)
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

    /// Operators that read values of these types by converting them (``Casting``).
    private static let converters: Set<String> = ["Cast", "CastLike", "QuantizeLinear", "DequantizeLinear", "BitCast"]

    /// Operators that compute bfloat16 in float32 (staged in the workspace) and round the results.
    private static let bfloat16Operators: Set<String> = ["MatMul", "Gemm", "Conv", "Attention"]
}
