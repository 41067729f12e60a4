#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A floating-point type kernels compute in (Float, Double), with the libm functions they need.
@usableFromInline package protocol WideFloat: BinaryFloatingPoint & Sendable {
    static func exponential(_ x: Self) -> Self
    static func logarithm(_ x: Self) -> Self
    static func power(_ x: Self, _ y: Self) -> Self
}

extension Float: WideFloat {
    @inlinable @inline(__always) package static func exponential(_ x: Float) -> Float { expf(x) }
    @inlinable @inline(__always) package static func logarithm(_ x: Float) -> Float { logf(x) }
    @inlinable @inline(__always) package static func power(_ x: Float, _ y: Float) -> Float { powf(x, y) }
}

extension Double: WideFloat {
    @inlinable @inline(__always) package static func exponential(_ x: Double) -> Double { exp(x) }
    @inlinable @inline(__always) package static func logarithm(_ x: Double) -> Double { log(x) }
    @inlinable @inline(__always) package static func power(_ x: Double, _ y: Double) -> Double { pow(x, y) }
}

/// A floating-point element type (float16, float, double) and the type its kernels compute in:
/// float16 widens to Float so sums and statistics keep their precision.
@usableFromInline package protocol WideningFloat: BinaryFloatingPoint & CastSource {
    associatedtype Wide: WideFloat
    var widened: Wide { get }
    init(narrowing value: Wide)
}

extension Float: WideningFloat {
    @inlinable @inline(__always) package var widened: Float { self }
    @inlinable @inline(__always) package init(narrowing value: Float) { self = value }
}

extension Double: WideningFloat {
    @inlinable @inline(__always) package var widened: Double { self }
    @inlinable @inline(__always) package init(narrowing value: Double) { self = value }
}

extension Float16: WideningFloat {
    @inlinable @inline(__always) package var widened: Float { castFloat }
    @inlinable @inline(__always) package init(narrowing value: Float) { self = value.castFloat16 }
}
