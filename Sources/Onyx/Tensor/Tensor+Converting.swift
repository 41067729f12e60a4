import OnyxKernels

extension Tensor {
    /// Creates a tensor holding `source`'s elements converted to `type`, by the rules of ONNX's
    /// `Cast`.
    ///
    /// This is how to make and read tensors of the types that have no Swift element type
    /// (bfloat16, the float8 formats, float4e2m1, int4, uint4, int2, uint2):
    ///
    /// ```swift
    /// let scale = try Tensor(converting: Tensor(shape: [2], scalars: [0.5, 1000] as [Float]), to: .float8e4m3fn)
    /// let values = try Tensor(converting: outputs["y"]!, to: .float).scalars(as: Float.self)   // [0.5, 448]
    /// ```
    ///
    /// Floats round to nearest, ties to even; float → integer truncates (saturating, except into
    /// the 4- and 2-bit integers, which keep the low bits); integer → integer keeps the low bits.
    /// Every value of bfloat16, float8 and float4e2m1 is exact as a `Float`.
    ///
    /// - Parameters:
    ///   - source: The tensor to convert (any type but string).
    ///   - type: The element type of the result (any type but string).
    ///   - saturate: For float8 results: whether values beyond the type's range (and infinities)
    ///     become its largest finite value, as `Cast` does by default, rather than infinity or NaN.
    /// - Throws: ``OnyxError`` with code `.unsupportedDataType` if exactly one of the types is
    ///   string (cast strings with a `Cast` node in a model).
    public init(converting source: Tensor, to type: DataType, saturate: Bool = true) throws {
        self = try source.converted(to: type, saturate: saturate)
    }
}
