import OnyxCore

/// Element-type conversion between every ``DataType``.
///
/// Semantics (those of a C cast where C defines them, and ONNX's Cast where it says more):
/// - float → integer truncates toward zero. Values beyond the target's range clamp to its
///   minimum or maximum and NaN becomes 0 (C leaves both undefined; this never traps). The
///   4- and 2-bit integers are the exception: they keep the low bits of the value truncated to
///   int64, as ONNX's reference does (−9.0 → int4 7).
/// - integer → integer keeps the low bits (two's complement wrap), as C does.
/// - integer or float → float rounds to nearest, ties to even; too large becomes ±infinity.
///   The narrow float formats round once, from the value as a Double, and follow ``MiniFloat``'s
///   table beyond their range: the float8 formats saturate to their largest value unless
///   `saturate` is false; float8e8m0 follows ``E8M0`` with its `rounding`.
/// - anything → bool is `x != 0` (NaN is true); bool → anything is 0 or 1.
@usableFromInline package enum Casting {
    /// Converts `count` elements of `source` (of type `from`) into `destination` (of type `to`).
    ///
    /// The buffers must not overlap unless they are the same and the types are equal.
    ///
    /// - Parameters:
    ///   - saturate: Cast's `saturate`: whether values out of a float8 target's range become its
    ///     largest finite value (the default) rather than infinity or NaN.
    ///   - rounding: Cast's `round_mode`, for a float8e8m0 target.
    package static func convert(
        _ source: UnsafeRawPointer, from: DataType, to destination: UnsafeMutableRawPointer, _ to: DataType,
        count: Int, saturate: Bool = true, rounding: E8M0.Rounding = .up, pool: ComputePool? = nil
    ) {
        guard count > 0 else { return }
        if from == to {
            if source != UnsafeRawPointer(destination) {
                destination.copyMemory(from: source, byteCount: count * from.byteWidth)
            }
            return
        }
        let target = Target(type: to, saturate: saturate, rounding: rounding)
        let threshold = 1 << 17
        if let pool, pool.threadCount > 1, count >= threshold {
            pool.parallelRanges(count, minimumChunk: threshold / 2) { range in
                convert(source + range.lowerBound * from.byteWidth, from,
                        destination + range.lowerBound * to.byteWidth, target, range.count)
            }
        } else {
            convert(source, from, destination, target, count)
        }
    }

    /// The target type with the options that shape conversions into it.
    private struct Target {
        let type: DataType
        let saturate: Bool
        let rounding: E8M0.Rounding
    }

    private static func convert(
        _ source: UnsafeRawPointer, _ from: DataType, _ destination: UnsafeMutableRawPointer, _ to: Target, _ n: Int
    ) {
        switch from {
        case .float: convert(source.assumingMemoryBound(to: Float.self), destination, to, n)
        case .double: convert(source.assumingMemoryBound(to: Double.self), destination, to, n)
        case .float16: convert(source.assumingMemoryBound(to: Float16.self), destination, to, n)
        // The unpacked 4- and 2-bit integers hold their value in a whole byte.
        case .int8, .int4, .int2: convert(source.assumingMemoryBound(to: Int8.self), destination, to, n)
        case .uint8, .uint4, .uint2: convert(source.assumingMemoryBound(to: UInt8.self), destination, to, n)
        case .int16: convert(source.assumingMemoryBound(to: Int16.self), destination, to, n)
        case .uint16: convert(source.assumingMemoryBound(to: UInt16.self), destination, to, n)
        case .int32: convert(source.assumingMemoryBound(to: Int32.self), destination, to, n)
        case .uint32: convert(source.assumingMemoryBound(to: UInt32.self), destination, to, n)
        case .int64: convert(source.assumingMemoryBound(to: Int64.self), destination, to, n)
        case .uint64: convert(source.assumingMemoryBound(to: UInt64.self), destination, to, n)
        case .bool: convert(source.assumingMemoryBound(to: BoolByte.self), destination, to, n)
        case .bfloat16: convert(source.assumingMemoryBound(to: BFloat16Bits.self), destination, to, n)
        case .float8e4m3fn: convert(source.assumingMemoryBound(to: MiniFloatByte<E4M3FN>.self), destination, to, n)
        case .float8e4m3fnuz: convert(source.assumingMemoryBound(to: MiniFloatByte<E4M3FNUZ>.self), destination, to, n)
        case .float8e5m2: convert(source.assumingMemoryBound(to: MiniFloatByte<E5M2>.self), destination, to, n)
        case .float8e5m2fnuz: convert(source.assumingMemoryBound(to: MiniFloatByte<E5M2FNUZ>.self), destination, to, n)
        case .float4e2m1: convert(source.assumingMemoryBound(to: MiniFloatByte<E2M1>.self), destination, to, n)
        case .float8e8m0: convert(source.assumingMemoryBound(to: E8M0Byte.self), destination, to, n)
        case .string: preconditionFailure("strings are cast through the run's string table, not here")
        }
    }

    private static func convert<S: CastSource>(
        _ source: UnsafePointer<S>, _ destination: UnsafeMutableRawPointer, _ to: Target, _ n: Int
    ) {
        let saturate = to.saturate
        switch to.type {
        case .float: map(source, destination, n) { $0.castFloat }
        case .double: map(source, destination, n) { $0.castDouble }
        case .float16: map(source, destination, n) { $0.castFloat16 }
        case .bool: map(source, destination, n) { $0.castIsNonzero ? 1 as UInt8 : 0 }
        case .int8: map(source, destination, n) { $0.castInteger(Int8.self) }
        case .uint8: map(source, destination, n) { $0.castInteger(UInt8.self) }
        case .int16: map(source, destination, n) { $0.castInteger(Int16.self) }
        case .uint16: map(source, destination, n) { $0.castInteger(UInt16.self) }
        case .int32: map(source, destination, n) { $0.castInteger(Int32.self) }
        case .uint32: map(source, destination, n) { $0.castInteger(UInt32.self) }
        case .int64: map(source, destination, n) { $0.castInteger(Int64.self) }
        case .uint64: map(source, destination, n) { $0.castInteger(UInt64.self) }
        case .int4: map(source, destination, n) { SubByteInteger.int4($0.castInteger(Int64.self)) }
        case .uint4: map(source, destination, n) { SubByteInteger.uint4($0.castInteger(Int64.self)) }
        case .int2: map(source, destination, n) { SubByteInteger.int2($0.castInteger(Int64.self)) }
        case .uint2: map(source, destination, n) { SubByteInteger.uint2($0.castInteger(Int64.self)) }
        case .bfloat16: map(source, destination, n) { $0.castBFloat16 }
        case .float8e4m3fn: mini(source, destination, n, .float8e4m3fn, saturate)
        case .float8e4m3fnuz: mini(source, destination, n, .float8e4m3fnuz, saturate)
        case .float8e5m2: mini(source, destination, n, .float8e5m2, saturate)
        case .float8e5m2fnuz: mini(source, destination, n, .float8e5m2fnuz, saturate)
        case .float4e2m1: mini(source, destination, n, .float4e2m1, true)
        case .float8e8m0:
            let rounding = to.rounding
            map(source, destination, n) { UInt8(truncatingIfNeeded: E8M0.bits($0.castDouble, saturate: saturate, rounding: rounding)) }
        case .string: preconditionFailure("strings are cast through the run's string table, not here")
        }
    }

    @inline(__always)
    private static func mini<S: CastSource>(
        _ source: UnsafePointer<S>, _ destination: UnsafeMutableRawPointer, _ n: Int, _ format: MiniFloat, _ saturate: Bool
    ) {
        map(source, destination, n) { UInt8(truncatingIfNeeded: format.bits($0.castDouble, saturate: saturate)) }
    }

    @inline(__always)
    private static func map<S, D>(
        _ source: UnsafePointer<S>, _ destination: UnsafeMutableRawPointer, _ n: Int, _ f: (S) -> D
    ) {
        let out = destination.assumingMemoryBound(to: D.self)
        for i in 0..<n { out[i] = f(source[i]) }
    }
}

/// A bool element as stored: one byte, any nonzero value read as true.
@usableFromInline package struct BoolByte {
    @usableFromInline package var raw: UInt8

    package init(raw: UInt8) {
        self.raw = raw
    }
}

/// An element type Casting can convert from.
///
/// Every conversion is spelled out per concrete type: the generic stdlib conversions
/// (`T(someFloat)` with `T: FixedWidthInteger`) stay slow even when specialised.
@usableFromInline package protocol CastSource {
    var castFloat: Float { get }
    var castDouble: Double { get }
    var castFloat16: Float16 { get }
    /// The bfloat16 pattern nearest the value (NaN stays NaN; too large becomes ±infinity).
    var castBFloat16: UInt16 { get }
    var castIsNonzero: Bool { get }
    func castInteger<T: CastInteger>(_ type: T.Type) -> T
}

/// An integer type Casting can convert to.
@usableFromInline package protocol CastInteger: FixedWidthInteger {
    /// Truncates toward zero; out-of-range values clamp to `min`/`max`; NaN → 0.
    static func saturating(_ v: Float) -> Self
    /// Truncates toward zero; out-of-range values clamp to `min`/`max`; NaN → 0.
    static func saturating(_ v: Double) -> Self
}

// Bounds are powers of two, exact in Float and Double: v ≥ 2^(bits) (or 2^(bits-1)) is too large.
extension Int8: CastInteger {
    @inlinable @inline(__always) package static func saturating(_ v: Float) -> Int8 { v.isNaN ? 0 : v >= 128 ? .max : v <= -128 ? .min : Int8(v) }
    @inlinable @inline(__always) package static func saturating(_ v: Double) -> Int8 { v.isNaN ? 0 : v >= 128 ? .max : v <= -128 ? .min : Int8(v) }
}
extension UInt8: CastInteger {
    @inlinable @inline(__always) package static func saturating(_ v: Float) -> UInt8 { v.isNaN || v <= 0 ? 0 : v >= 256 ? .max : UInt8(v) }
    @inlinable @inline(__always) package static func saturating(_ v: Double) -> UInt8 { v.isNaN || v <= 0 ? 0 : v >= 256 ? .max : UInt8(v) }
}
extension Int16: CastInteger {
    @inlinable @inline(__always) package static func saturating(_ v: Float) -> Int16 { v.isNaN ? 0 : v >= 0x1p15 ? .max : v <= -0x1p15 ? .min : Int16(v) }
    @inlinable @inline(__always) package static func saturating(_ v: Double) -> Int16 { v.isNaN ? 0 : v >= 0x1p15 ? .max : v <= -0x1p15 ? .min : Int16(v) }
}
extension UInt16: CastInteger {
    @inlinable @inline(__always) package static func saturating(_ v: Float) -> UInt16 { v.isNaN || v <= 0 ? 0 : v >= 0x1p16 ? .max : UInt16(v) }
    @inlinable @inline(__always) package static func saturating(_ v: Double) -> UInt16 { v.isNaN || v <= 0 ? 0 : v >= 0x1p16 ? .max : UInt16(v) }
}
extension Int32: CastInteger {
    @inlinable @inline(__always) package static func saturating(_ v: Float) -> Int32 { v.isNaN ? 0 : v >= 0x1p31 ? .max : v <= -0x1p31 ? .min : Int32(v) }
    @inlinable @inline(__always) package static func saturating(_ v: Double) -> Int32 { v.isNaN ? 0 : v >= 0x1p31 ? .max : v <= -0x1p31 ? .min : Int32(v) }
}
extension UInt32: CastInteger {
    @inlinable @inline(__always) package static func saturating(_ v: Float) -> UInt32 { v.isNaN || v <= 0 ? 0 : v >= 0x1p32 ? .max : UInt32(v) }
    @inlinable @inline(__always) package static func saturating(_ v: Double) -> UInt32 { v.isNaN || v <= 0 ? 0 : v >= 0x1p32 ? .max : UInt32(v) }
}
extension Int64: CastInteger {
    @inlinable @inline(__always) package static func saturating(_ v: Float) -> Int64 { v.isNaN ? 0 : v >= 0x1p63 ? .max : v <= -0x1p63 ? .min : Int64(v) }
    @inlinable @inline(__always) package static func saturating(_ v: Double) -> Int64 { v.isNaN ? 0 : v >= 0x1p63 ? .max : v <= -0x1p63 ? .min : Int64(v) }
}
extension UInt64: CastInteger {
    @inlinable @inline(__always) package static func saturating(_ v: Float) -> UInt64 { v.isNaN || v <= 0 ? 0 : v >= 0x1p64 ? .max : UInt64(v) }
    @inlinable @inline(__always) package static func saturating(_ v: Double) -> UInt64 { v.isNaN || v <= 0 ? 0 : v >= 0x1p64 ? .max : UInt64(v) }
}

extension CastSource {
    // One rounding from the exact Double; integers beyond 2^53 are rounded twice, where only
    // bfloat16 still has finite values and the first rounding rarely matters.
    @usableFromInline package var castBFloat16: UInt16 {
        UInt16(truncatingIfNeeded: MiniFloat.bfloat16.bits(castDouble, saturate: false))
    }
}

extension Float: CastSource {
    @inlinable @inline(__always) package var castFloat: Float { self }
    @inlinable @inline(__always) package var castBFloat16: UInt16 { BFloat16Bits.fromFloat(bitPattern) }
    @inlinable @inline(__always) package var castDouble: Double { Double(self) }
    @inlinable @inline(__always) package var castFloat16: Float16 { Float16(bitPattern: HalfBits.fromFloat(bitPattern)) }
    @inlinable @inline(__always) package var castIsNonzero: Bool { self != 0 }
    @inlinable @inline(__always) package func castInteger<T: CastInteger>(_ type: T.Type) -> T { T.saturating(self) }
}

extension Double: CastSource {
    @inlinable @inline(__always) package var castFloat: Float { Float(self) }
    @inlinable @inline(__always) package var castDouble: Double { self }
    @inlinable @inline(__always) package var castFloat16: Float16 { Float16(self) }  // one rounding; via Float would round twice
    @inlinable @inline(__always) package var castIsNonzero: Bool { self != 0 }
    @inlinable @inline(__always) package func castInteger<T: CastInteger>(_ type: T.Type) -> T { T.saturating(self) }
}

extension Float16: CastSource {
    @inlinable @inline(__always) package var castFloat: Float { Float(bitPattern: HalfBits.toFloat(bitPattern)) }
    @inlinable @inline(__always) package var castBFloat16: UInt16 { BFloat16Bits.fromFloat(castFloat.bitPattern) }
    @inlinable @inline(__always) package var castDouble: Double { Double(castFloat) }
    @inlinable @inline(__always) package var castFloat16: Float16 { self }
    @inlinable @inline(__always) package var castIsNonzero: Bool { bitPattern & 0x7FFF != 0 }
    @inlinable @inline(__always) package func castInteger<T: CastInteger>(_ type: T.Type) -> T { T.saturating(castFloat) }
}

extension CastSource where Self: FixedWidthInteger {
    @inlinable @inline(__always) package var castFloat: Float { Float(self) }
    @inlinable @inline(__always) package var castDouble: Double { Double(self) }
    // Through Float: a second rounding could only matter above 2^24, where the half is infinite anyway.
    @inlinable @inline(__always) package var castFloat16: Float16 { Float16(bitPattern: HalfBits.fromFloat(Float(self).bitPattern)) }
    @inlinable @inline(__always) package var castIsNonzero: Bool { self != 0 }
    @inlinable @inline(__always) package func castInteger<T: CastInteger>(_ type: T.Type) -> T { T(truncatingIfNeeded: self) }
}

extension Int8: CastSource {}
extension UInt8: CastSource {}
extension Int16: CastSource {}
extension UInt16: CastSource {}
extension Int32: CastSource {}
extension UInt32: CastSource {}
extension Int64: CastSource {}
extension UInt64: CastSource {}

extension BoolByte: CastSource {
    @inlinable @inline(__always) package var castIsNonzero: Bool { raw != 0 }
    @inlinable @inline(__always) package var castFloat: Float { castIsNonzero ? 1 : 0 }
    @inlinable @inline(__always) package var castDouble: Double { castIsNonzero ? 1 : 0 }
    @inlinable @inline(__always) package var castFloat16: Float16 { castIsNonzero ? 1 : 0 }
    @inlinable @inline(__always) package var castBFloat16: UInt16 { castIsNonzero ? 0x3F80 : 0 }
    @inlinable @inline(__always) package func castInteger<T: CastInteger>(_ type: T.Type) -> T { castIsNonzero ? 1 : 0 }
}

/// Keeping the low 4 or 2 bits of an integer, as Cast into the narrow integer types does; the
/// signed results are sign-extended into their byte.
@usableFromInline package enum SubByteInteger {
    @inlinable @inline(__always) package static func int4(_ v: Int64) -> Int8 { Int8(truncatingIfNeeded: (v << 60) >> 60) }
    @inlinable @inline(__always) package static func uint4(_ v: Int64) -> UInt8 { UInt8(truncatingIfNeeded: v & 0xF) }
    @inlinable @inline(__always) package static func int2(_ v: Int64) -> Int8 { Int8(truncatingIfNeeded: (v << 62) >> 62) }
    @inlinable @inline(__always) package static func uint2(_ v: Int64) -> UInt8 { UInt8(truncatingIfNeeded: v & 0x3) }
}

/// A bfloat16 element as stored: its 16-bit pattern.
@usableFromInline package struct BFloat16Bits {
    @usableFromInline package var raw: UInt16

    @inlinable package init(raw: UInt16) {
        self.raw = raw
    }

    /// The bfloat16 nearest the float with pattern `f`, ties to even; a NaN stays a (quiet) NaN
    /// of the same sign, overflow becomes infinity.
    @inlinable @inline(__always)
    package static func fromFloat(_ f: UInt32) -> UInt16 {
        if f & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: f >> 16) | 0x0040 }
        let rounded = f &+ 0x7FFF &+ ((f >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }
}

extension BFloat16Bits: CastSource {
    @inlinable @inline(__always) package var castFloat: Float { Float(bitPattern: UInt32(raw) << 16) }
    @inlinable @inline(__always) package var castDouble: Double { Double(castFloat) }
    @inlinable @inline(__always) package var castFloat16: Float16 { Float16(bitPattern: HalfBits.fromFloat(castFloat.bitPattern)) }
    @inlinable @inline(__always) package var castBFloat16: UInt16 { raw }
    @inlinable @inline(__always) package var castIsNonzero: Bool { raw & 0x7FFF != 0 }
    @inlinable @inline(__always) package func castInteger<T: CastInteger>(_ type: T.Type) -> T { T.saturating(castFloat) }
}

/// A format of ``MiniFloat`` named as a type, so element loops specialise on it.
package protocol MiniFloatKind {
    static var format: MiniFloat { get }
}
package enum E4M3FN: MiniFloatKind { package static var format: MiniFloat { .float8e4m3fn } }
package enum E4M3FNUZ: MiniFloatKind { package static var format: MiniFloat { .float8e4m3fnuz } }
package enum E5M2: MiniFloatKind { package static var format: MiniFloat { .float8e5m2 } }
package enum E5M2FNUZ: MiniFloatKind { package static var format: MiniFloat { .float8e5m2fnuz } }
package enum E2M1: MiniFloatKind { package static var format: MiniFloat { .float4e2m1 } }

/// A float8 or float4e2m1 element as stored: its bit pattern in one byte.
package struct MiniFloatByte<Kind: MiniFloatKind> {
    package var raw: UInt8
}

// Every value of these formats is exact in Float (and so in Float16 only after rounding).
extension MiniFloatByte: CastSource {
    @inline(__always) package var castFloat: Float { Kind.format.float(UInt32(raw)) }
    @inline(__always) package var castDouble: Double { Double(castFloat) }
    @inline(__always) package var castFloat16: Float16 { Float16(bitPattern: HalfBits.fromFloat(castFloat.bitPattern)) }
    @inline(__always) package var castBFloat16: UInt16 { BFloat16Bits.fromFloat(castFloat.bitPattern) }
    @inline(__always) package var castIsNonzero: Bool { castFloat != 0 }
    @inline(__always) package func castInteger<T: CastInteger>(_ type: T.Type) -> T { T.saturating(castFloat) }
}

/// A float8e8m0 element as stored: its exponent byte.
package struct E8M0Byte {
    package var raw: UInt8
}

extension E8M0Byte: CastSource {
    @inline(__always) package var castFloat: Float { E8M0.float(UInt32(raw)) }
    @inline(__always) package var castDouble: Double { Double(castFloat) }
    @inline(__always) package var castFloat16: Float16 { Float16(bitPattern: HalfBits.fromFloat(castFloat.bitPattern)) }
    @inline(__always) package var castBFloat16: UInt16 { BFloat16Bits.fromFloat(castFloat.bitPattern) }
    @inline(__always) package var castIsNonzero: Bool { true }  // no zero; NaN is true too
    @inline(__always) package func castInteger<T: CastInteger>(_ type: T.Type) -> T { T.saturating(castFloat) }
}

/// IEEE half ↔ single conversion on bit patterns, exact and round-to-nearest-even like the
/// hardware instructions; Swift's `Float16(Float)` calls a slower library routine here.
@usableFromInline package enum HalfBits {
    /// The float with the same value as the half `h` (NaN payloads keep their top bits).
    @inlinable @inline(__always)
    @usableFromInline package static func toFloat(_ h: UInt16) -> UInt32 {
        let sign = UInt32(h & 0x8000) << 16
        let magnitude = UInt32(h & 0x7FFF)
        if magnitude >= 0x7C00 {  // infinity, NaN
            return sign | 0x7F80_0000 | (magnitude & 0x3FF) << 13
        }
        if magnitude >= 0x0400 {  // normal: rebias the exponent
            return sign | (magnitude << 13 &+ (112 << 23))
        }
        // Zero or subnormal: magnitude × 2^-24, exact in Float.
        return sign | (Float(magnitude) * 0x1p-24).bitPattern
    }

    /// The half nearest the float `f` (ties to even); overflow gives infinity, NaN a quiet NaN.
    @inlinable @inline(__always)
    @usableFromInline package static func fromFloat(_ f: UInt32) -> UInt16 {
        let sign = UInt16(truncatingIfNeeded: (f & 0x8000_0000) >> 16)
        let magnitude = f & 0x7FFF_FFFF
        if magnitude >= 0x4780_0000 {  // ≥ 65536: infinity; or NaN
            return sign | (magnitude > 0x7F80_0000 ? 0x7E00 : 0x7C00)
        }
        if magnitude < 0x3880_0000 {  // < 2^-14: subnormal half or zero
            // Adding 0.5 shifts the mantissa so the FPU rounds it to half-subnormal precision.
            let shifted = (Float(bitPattern: magnitude) + 0.5).bitPattern &- 0x3F00_0000
            return sign | UInt16(truncatingIfNeeded: shifted)
        }
        // Normal: rebias, then round the 13 dropped bits to nearest even.
        let odd = (magnitude >> 13) & 1
        let rounded = magnitude &+ 0xC800_0FFF &+ odd  // 0xC8000000 = (15 - 127) << 23, wrapping
        return sign | UInt16(truncatingIfNeeded: rounded >> 13)
    }
}

extension Casting {
    /// Element `index` of `data` (elements of `type`, not strings) as a Double; exact but for
    /// 64-bit integers beyond 2^53.
    package static func double(_ data: UnsafeRawPointer, _ type: DataType, at index: Int) -> Double {
        var value = 0.0
        withUnsafeMutableBytes(of: &value) { convert(data + index * type.byteWidth, from: type, to: $0.baseAddress!, .double, count: 1) }
        return value
    }
}

extension Tensor {
    /// The tensor converted to `type` by ONNX Cast rules (see ``Casting``).
    ///
    /// - Throws: `.unsupportedDataType` if one type is string and the other is not: strings are
    ///   cast by the Cast operator, through a run's string table.
    package func converted(to type: DataType, saturate: Bool = true) throws -> Tensor {
        if type == dataType { return self }
        guard type != .string && dataType != .string else {
            throw OnyxError.unsupportedDataType("cannot convert \(dataType) to \(type) outside a model: use a Cast node")
        }
        var result = Tensor(zeros: type, shape: shape)
        withUnsafeBytes { source in
            result.withUnsafeMutableBytes { target in
                guard let from = source.baseAddress, let to = target.baseAddress else { return }
                Casting.convert(from, from: dataType, to: to, type, count: elementCount, saturate: saturate)
            }
        }
        return result
    }
}
