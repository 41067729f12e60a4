#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A floating-point type kernels compute in (Float, Double), with the libm functions they need.
protocol WideFloat: BinaryFloatingPoint & Sendable {
    static func exponential(_ x: Self) -> Self
    static func logarithm(_ x: Self) -> Self
    static func power(_ x: Self, _ y: Self) -> Self
}

extension Float: WideFloat {
    @inline(__always) static func exponential(_ x: Float) -> Float { expf(x) }
    @inline(__always) static func logarithm(_ x: Float) -> Float { logf(x) }
    @inline(__always) static func power(_ x: Float, _ y: Float) -> Float { powf(x, y) }
}

extension Double: WideFloat {
    @inline(__always) static func exponential(_ x: Double) -> Double { exp(x) }
    @inline(__always) static func logarithm(_ x: Double) -> Double { log(x) }
    @inline(__always) static func power(_ x: Double, _ y: Double) -> Double { pow(x, y) }
}

/// A floating-point element type (float16, float, double) and the type its kernels compute in:
/// float16 widens to Float so sums and statistics keep their precision.
protocol WideningFloat: BinaryFloatingPoint & CastSource {
    associatedtype Wide: WideFloat
    var widened: Wide { get }
    init(narrowing value: Wide)
}

extension Float: WideningFloat {
    @inline(__always) var widened: Float { self }
    @inline(__always) init(narrowing value: Float) { self = value }
}

extension Double: WideningFloat {
    @inline(__always) var widened: Double { self }
    @inline(__always) init(narrowing value: Double) { self = value }
}

extension Float16: WideningFloat {
    @inline(__always) var widened: Float { castFloat }
    @inline(__always) init(narrowing value: Float) { self = value.castFloat16 }
}
