import OnyxCore

/// A floating-point format narrower than float32 that Onyx stores as a bit pattern: bfloat16,
/// the four float8 formats and float4e2m1. (float8e8m0, a bare exponent, is ``E8M0``.)
///
/// Values round into a format to nearest, ties to even, in one step from a Double (float32,
/// float16 and every integer up to 2^53 are exact in Double, so no value is rounded twice).
/// What happens beyond the largest finite value depends on the format and on `saturate`, as
/// ONNX's Cast specifies:
///
/// | format          | NaN            | ±∞ or too large, saturate | ±∞ or too large, no saturate |
/// |-----------------|----------------|---------------------------|------------------------------|
/// | bfloat16        | NaN (sign kept)| ±∞ (saturate is ignored)  | ±∞                           |
/// | float8e4m3fn    | NaN (sign kept)| ±448                      | NaN (sign kept)              |
/// | float8e4m3fnuz  | `0x80`         | ±240                      | `0x80` (NaN)                 |
/// | float8e5m2      | NaN (sign kept)| ±57344                    | ±∞                           |
/// | float8e5m2fnuz  | `0x80`         | ±57344                    | `0x80` (NaN)                 |
/// | float4e2m1      | +6             | ±6 (always)               | ±6                           |
///
/// The fnuz formats have no negative zero: −0 and negative values that round to zero become +0.
package struct MiniFloat: Sendable, Equatable {
    /// How a format spends its special encodings.
    package enum Specials: Sendable {
        /// IEEE style: the all-ones exponent holds ±∞ (mantissa 0) and NaNs (bfloat16, E5M2).
        case ieee
        /// Only `S.1111…1` is NaN; no infinities (E4M3FN).
        case nanAtAllOnes
        /// The negative-zero pattern is the only NaN; no infinities, no −0 (the fnuz formats).
        case nanAtNegativeZero
        /// Every pattern is a finite number (E2M1).
        case finite
    }

    package let exponentBits: Int
    package let mantissaBits: Int
    package let bias: Int
    package let specials: Specials

    package static let bfloat16 = MiniFloat(exponentBits: 8, mantissaBits: 7, bias: 127, specials: .ieee)
    package static let float8e4m3fn = MiniFloat(exponentBits: 4, mantissaBits: 3, bias: 7, specials: .nanAtAllOnes)
    package static let float8e4m3fnuz = MiniFloat(exponentBits: 4, mantissaBits: 3, bias: 8, specials: .nanAtNegativeZero)
    package static let float8e5m2 = MiniFloat(exponentBits: 5, mantissaBits: 2, bias: 15, specials: .ieee)
    package static let float8e5m2fnuz = MiniFloat(exponentBits: 5, mantissaBits: 2, bias: 16, specials: .nanAtNegativeZero)
    package static let float4e2m1 = MiniFloat(exponentBits: 2, mantissaBits: 1, bias: 1, specials: .finite)

    /// The format of `type`, or `nil` for types that are not such a format.
    package static func of(_ type: DataType) -> MiniFloat? {
        switch type {
        case .bfloat16: .bfloat16
        case .float8e4m3fn: .float8e4m3fn
        case .float8e4m3fnuz: .float8e4m3fnuz
        case .float8e5m2: .float8e5m2
        case .float8e5m2fnuz: .float8e5m2fnuz
        case .float4e2m1: .float4e2m1
        default: nil
        }
    }

    @inline(__always) var signBit: UInt32 { 1 << UInt32(exponentBits + mantissaBits) }
    @inline(__always) var magnitudeMask: UInt32 { signBit &- 1 }
    /// The exponent of the smallest normal number (subnormals share it).
    @inline(__always) var minimumExponent: Int { 1 - bias }

    /// The bit pattern (sign excluded) of the largest finite value.
    @inline(__always) package var maximumBits: UInt32 {
        switch specials {
        case .ieee: ((1 << UInt32(exponentBits)) - 2) << UInt32(mantissaBits) | ((1 << UInt32(mantissaBits)) - 1)
        case .nanAtAllOnes: magnitudeMask - 1
        case .nanAtNegativeZero, .finite: magnitudeMask
        }
    }

    /// The bit pattern of a (quiet) NaN with the given sign, where the format keeps one.
    @inline(__always) func nanBits(negative: Bool) -> UInt32 {
        let sign = negative ? signBit : 0
        switch specials {
        case .ieee: return sign | ((1 << UInt32(exponentBits)) - 1) << UInt32(mantissaBits) | 1 << UInt32(mantissaBits - 1)
        case .nanAtAllOnes: return sign | magnitudeMask
        case .nanAtNegativeZero: return signBit
        case .finite: return maximumBits  // the specification maps NaN to +max
        }
    }

    /// The value of the bit pattern `bits`, exactly.
    @inline(__always)
    package func float(_ bits: UInt32) -> Float {
        let negative = bits & signBit != 0
        let magnitude = bits & magnitudeMask
        switch specials {
        case .ieee:
            let infinity = ((1 << UInt32(exponentBits)) - 1) << UInt32(mantissaBits)
            if magnitude >= infinity {
                if magnitude == infinity { return negative ? -.infinity : .infinity }
                return negative ? -.nan : .nan
            }
        case .nanAtAllOnes:
            if magnitude == magnitudeMask { return negative ? -.nan : .nan }
        case .nanAtNegativeZero:
            if bits == signBit { return .nan }
        case .finite:
            break
        }
        let exponent = Int(magnitude >> UInt32(mantissaBits))
        let mantissa = magnitude & ((1 << UInt32(mantissaBits)) - 1)
        // A subnormal's significand lacks the implicit bit and uses the smallest exponent.
        let significand = exponent == 0 ? mantissa : mantissa | 1 << UInt32(mantissaBits)
        let scale = max(exponent, 1) - bias - mantissaBits
        let value = Float(significand) * Float(sign: .plus, exponent: scale, significand: 1)
        return negative ? -value : value
    }

    /// The bit pattern nearest `x` (ties to even), with out-of-range values handled as the type
    /// documentation's table says.
    @inline(__always)
    package func bits(_ x: Double, saturate: Bool) -> UInt32 {
        let negative = x.sign == .minus
        if x.isNaN { return nanBits(negative: negative) }
        let sign = negative ? signBit : 0
        // The fnuz formats have no −0: their negative-zero pattern is NaN.
        let zero = specials == .nanAtNegativeZero ? 0 : sign
        let magnitude = x.magnitude
        if magnitude.isInfinite { return overflow(negative: negative, saturate: saturate) }
        if magnitude == 0 { return zero }
        // Quantize to the spacing of the binade (subnormals: of the smallest), then the pattern
        // is the count of those steps above the subnormal range: exponent and mantissa at once,
        // with a carry into the next binade handled by the addition.
        let exponent = max(Int(magnitude.exponent), minimumExponent)
        let steps = (magnitude * Double(sign: .plus, exponent: mantissaBits - exponent, significand: 1)).rounded(.toNearestOrEven)
        let code = (exponent - minimumExponent) << mantissaBits + Int(steps)
        if code > Int(maximumBits) { return overflow(negative: negative, saturate: saturate) }
        if code == 0 { return zero }
        return sign | UInt32(code)
    }

    @inline(__always)
    private func overflow(negative: Bool, saturate: Bool) -> UInt32 {
        let sign = negative ? signBit : 0
        switch specials {
        case .ieee where self == .bfloat16 || !saturate:
            return sign | ((1 << UInt32(exponentBits)) - 1) << UInt32(mantissaBits)
        case .nanAtAllOnes where !saturate, .nanAtNegativeZero where !saturate:
            return nanBits(negative: negative)
        default:
            return sign | maximumBits
        }
    }
}

/// float8e8m0, the scale of the OCP microscaling formats: 8 bits of exponent, value
/// 2^(bits − 127), `0xFF` NaN; no sign, no zero, no mantissa.
package enum E8M0 {
    /// How a value between two powers of two is rounded (Cast's `round_mode`).
    package enum Rounding: String, Sendable {
        /// To the larger power (away from zero); the default.
        case up
        /// To the smaller power (toward zero).
        case down
        /// To the nearer power, ties (1.5 × 2^e) up.
        case nearest
    }

    /// The value of `bits`: 2^(bits − 127), or NaN for `0xFF`.
    @inline(__always)
    package static func float(_ bits: UInt32) -> Float {
        bits == 0xFF ? .nan : Float(sign: .plus, exponent: Int(bits) - 127, significand: 1)
    }

    /// The pattern of `x` (its magnitude: negative values are unspecified and read as |x|).
    ///
    /// NaN is NaN. Values above 2^127 (∞ included) and below 2^−127 (0 included) become the
    /// largest or smallest power when `saturate`, NaN otherwise, as the Cast specification's table says.
    @inline(__always)
    package static func bits(_ x: Double, saturate: Bool, rounding: Rounding) -> UInt32 {
        if x.isNaN { return 0xFF }
        let magnitude = x.magnitude
        if magnitude.isInfinite { return saturate ? 0xFE : 0xFF }
        if magnitude == 0 { return saturate ? 0 : 0xFF }
        var exponent = Int(magnitude.exponent)
        let fraction = magnitude.significand  // 1 ≤ fraction < 2
        switch rounding {
        case .up: if fraction > 1 { exponent += 1 }
        case .down: break
        case .nearest: if fraction >= 1.5 { exponent += 1 }
        }
        let code = exponent + 127
        if code > 254 { return saturate ? 0xFE : 0xFF }
        if code < 0 { return saturate ? 0 : 0xFF }
        return UInt32(code)
    }
}
