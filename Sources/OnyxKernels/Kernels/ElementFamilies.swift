import OnyxCore

// The element types of the dispatch in OnyxOperators (`DataType+Visiting.swift`), as families.

/// The floating-point element types: `Float`, `Double` and `Float16`.
///
/// The protocol gathers what the floating-point kernels ask of their element (`WideningFloat`,
/// `VisionElement`, `PoolingElement`, `CastSource`), so a visitor's `visit` can call any of them.
@usableFromInline package protocol FloatingElement: WideningFloat, VisionElement, PoolingElement, TensorElement {}

extension Float: FloatingElement {}
extension Double: FloatingElement {}
extension Float16: FloatingElement {}

/// The integer element types, signed and unsigned, 8 to 64 bits.
@usableFromInline package protocol IntegerElement: VisionInteger, CastInteger, CastSource, TensorElement {}

extension Int8: IntegerElement {}
extension Int16: IntegerElement {}
extension Int32: IntegerElement {}
extension Int64: IntegerElement {}
extension UInt8: IntegerElement {}
extension UInt16: IntegerElement {}
extension UInt32: IntegerElement {}
extension UInt64: IntegerElement {}
