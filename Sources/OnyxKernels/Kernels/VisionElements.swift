import OnyxCore

/// An element type the vision, training and traditional-ML kernels read and write through a
/// floating-point compute type (`Float` or `Double`).
///
/// Integers convert back by truncation toward zero, saturating at their range (NaN gives 0),
/// as NumPy's `astype` does for in-range values, so no conversion can trap.
@usableFromInline package protocol VisionElement {
    static func converting<C: BinaryFloatingPoint>(_ value: C) -> Self
    func real<C: BinaryFloatingPoint>(_: C.Type) -> C
}

extension Float: VisionElement {
    @inlinable @inline(__always) package static func converting<C: BinaryFloatingPoint>(_ value: C) -> Float { Float(value) }
    @inlinable @inline(__always) package func real<C: BinaryFloatingPoint>(_: C.Type) -> C { C(self) }
}

extension Double: VisionElement {
    @inlinable @inline(__always) package static func converting<C: BinaryFloatingPoint>(_ value: C) -> Double { Double(value) }
    @inlinable @inline(__always) package func real<C: BinaryFloatingPoint>(_: C.Type) -> C { C(self) }
}

extension Float16: VisionElement {
    @inlinable @inline(__always) package static func converting<C: BinaryFloatingPoint>(_ value: C) -> Float16 { Float(value).castFloat16 }
    @inlinable @inline(__always) package func real<C: BinaryFloatingPoint>(_: C.Type) -> C { C(castFloat) }
}

extension Bool: VisionElement {
    @inlinable @inline(__always) package static func converting<C: BinaryFloatingPoint>(_ value: C) -> Bool { value != 0 }
    @inlinable @inline(__always) package func real<C: BinaryFloatingPoint>(_: C.Type) -> C { self ? 1 : 0 }
}

/// The integer conformances share one saturating conversion.
@usableFromInline package protocol VisionInteger: VisionElement, FixedWidthInteger {}

extension VisionInteger {
    @inlinable @inline(__always) package static func converting<C: BinaryFloatingPoint>(_ value: C) -> Self {
        if value.isNaN { return 0 }
        // C(max) rounds up to a power of two for 32/64-bit types, so `>=` catches every overflow.
        if value >= C(Self.max) { return .max }
        if value <= C(Self.min) { return .min }
        return Self(value)
    }
    @inlinable @inline(__always) package func real<C: BinaryFloatingPoint>(_: C.Type) -> C { C(self) }
}

extension Int8: VisionInteger {}
extension Int16: VisionInteger {}
extension Int32: VisionInteger {}
extension Int64: VisionInteger {}
extension UInt8: VisionInteger {}
extension UInt16: VisionInteger {}
extension UInt32: VisionInteger {}
extension UInt64: VisionInteger {}

/// Reads element `index` of a float, double or float16 buffer as a Double (attribute tensors,
/// small scalar inputs).
package func visionReadReal(_ data: UnsafeRawPointer, _ dataType: DataType, _ index: Int) -> Double? {
    switch dataType {
    case .float: Double(data.assumingMemoryBound(to: Float.self)[index])
    case .double: data.assumingMemoryBound(to: Double.self)[index]
    case .float16: Double(Float(data.assumingMemoryBound(to: Float16.self)[index]))
    case .int64: Double(data.assumingMemoryBound(to: Int64.self)[index])
    case .int32: Double(data.assumingMemoryBound(to: Int32.self)[index])
    default: nil
    }
}

/// A tensor's elements as Doubles, for small float/double/float16/int attribute tensors.
package func visionRealValues(_ tensor: Tensor) -> [Double]? {
    let count = tensor.elementCount
    var values: [Double] = []
    values.reserveCapacity(count)
    for i in 0..<count {
        guard let v = visionReadReal(tensor.baseAddress, tensor.dataType, i) else { return nil }
        values.append(v)
    }
    return values
}
