/// Loops for elementwise kernels whose input and output element types differ (comparisons
/// giving bool, Pow with a mixed exponent type, IsNaN) or whose function is one of many picked
/// outside the loop.
///
/// The function is a closure literal at each call site; the loops are `@inline(__always)`, so
/// after inlining the closure is a known function and the single-thread loop is specialised to
/// it. Hot float32 functions go through ``ElementwiseLoops`` with an operation type instead.
@usableFromInline package enum MathLoops {
    /// `y[i] = f(x[i])`; `y` may be `x` when the two element types have the same size.
    @inlinable @inline(__always)
    package static func map<Source, Result>(
        _ x: UnsafePointer<Source>, _ y: UnsafeMutablePointer<Result>, count: Int, pool: ComputePool,
        _ f: (Source) -> Result
    ) {
        let threshold = ElementwiseLoops.parallelThreshold
        if count >= threshold && pool.threadCount > 1 {
            pool.parallelRanges(count, minimumChunk: threshold / 2) { range in
                for i in range { y[i] = f(x[i]) }
            }
        } else {
            for i in 0..<count { y[i] = f(x[i]) }
        }
    }

    /// `out = f(a, b)` with broadcasting described by `plan`; `out` must not overlap `a` or `b`
    /// unless it is the same buffer with elements of the same size.
    @inlinable @inline(__always)
    package static func binary<A, B, Result>(
        _ plan: BinaryBroadcastPlan, _ a: UnsafePointer<A>, _ b: UnsafePointer<B>,
        _ out: UnsafeMutablePointer<Result>, pool: ComputePool, _ f: (A, B) -> Result
    ) {
        let total = plan.elementCount
        let threshold = ElementwiseLoops.parallelThreshold
        if total >= threshold && pool.threadCount > 1 {
            pool.parallelRanges(total, minimumChunk: threshold / 2) { range in
                plan.forEachSegment(range) { o, offsetA, offsetB, count in
                    segment(a + offsetA, plan.stepA, b + offsetB, plan.stepB, out + o, count, f)
                }
            }
        } else {
            plan.forEachSegment(0..<total) { o, offsetA, offsetB, count in
                segment(a + offsetA, plan.stepA, b + offsetB, plan.stepB, out + o, count, f)
            }
        }
    }

    /// `out[i] = f(a[i·stepA], b[i·stepB])` for `i` in `0..<count`, steps 0 or 1.
    @inlinable @inline(__always)
    package static func segment<A, B, Result>(
        _ a: UnsafePointer<A>, _ stepA: Int, _ b: UnsafePointer<B>, _ stepB: Int,
        _ out: UnsafeMutablePointer<Result>, _ count: Int, _ f: (A, B) -> Result
    ) {
        switch (stepA, stepB) {
        case (1, 1):
            for i in 0..<count { out[i] = f(a[i], b[i]) }
        case (1, 0):
            let y = b[0]
            for i in 0..<count { out[i] = f(a[i], y) }
        case (0, 1):
            let x = a[0]
            for i in 0..<count { out[i] = f(x, b[i]) }
        default:
            let v = f(a[0], b[0])
            for i in 0..<count { out[i] = v }
        }
    }

    /// `out = cond ? x : y` with all three broadcast to `outShape` (Where).
    ///
    /// Walks the output with an odometer over the outer axes; the innermost axis is a row in
    /// which each input steps by 0 or 1.
    @inlinable package static func select<T>(
        _ condition: UnsafePointer<UInt8>, conditionShape: [Int], _ x: UnsafePointer<T>, xShape: [Int],
        _ y: UnsafePointer<T>, yShape: [Int], _ out: UnsafeMutablePointer<T>, outShape: [Int]
    ) {
        let total = outShape.reduce(1, *)
        guard total > 0 else { return }
        let rank = outShape.count
        let sc = Broadcasting.strides(of: conditionShape, in: outShape)
        let sx = Broadcasting.strides(of: xShape, in: outShape)
        let sy = Broadcasting.strides(of: yShape, in: outShape)
        guard rank > 0 else {
            out[0] = condition[0] != 0 ? x[0] : y[0]
            return
        }
        let row = outShape[rank - 1]
        let stepC = sc[rank - 1], stepX = sx[rank - 1], stepY = sy[rank - 1]
        var index = [Int](repeating: 0, count: rank)
        var oc = 0, ox = 0, oy = 0
        var position = 0
        while position < total {
            let c = condition + oc, xs = x + ox, ys = y + oy, o = out + position
            selectRow(c, stepC, xs, stepX, ys, stepY, o, row)
            position += row
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                oc += sc[axis]
                ox += sx[axis]
                oy += sy[axis]
                if index[axis] < outShape[axis] { break }
                oc -= sc[axis] * outShape[axis]
                ox -= sx[axis] * outShape[axis]
                oy -= sy[axis] * outShape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }

    /// One output row of `select`: contiguous operands and scalars (a step of 0: a mask's constant,
    /// NaN replaced by 0) as loops the compiler vectorises; any other steps element by element.
    @inlinable @inline(__always)
    static func selectRow<T>(
        _ c: UnsafePointer<UInt8>, _ stepC: Int, _ x: UnsafePointer<T>, _ stepX: Int, _ y: UnsafePointer<T>, _ stepY: Int,
        _ o: UnsafeMutablePointer<T>, _ row: Int
    ) {
        switch (stepC, stepX, stepY) {
        case (1, 1, 1): for i in 0..<row { o[i] = c[i] != 0 ? x[i] : y[i] }
        case (1, 0, 1): let v = x[0]; for i in 0..<row { o[i] = c[i] != 0 ? v : y[i] }
        case (1, 1, 0): let v = y[0]; for i in 0..<row { o[i] = c[i] != 0 ? x[i] : v }
        case (1, 0, 0): let u = x[0], v = y[0]; for i in 0..<row { o[i] = c[i] != 0 ? u : v }
        case (0, _, _):
            let (source, step) = c[0] != 0 ? (x, stepX) : (y, stepY)
            if step == 1 {
                o.update(from: source, count: row)
            } else {
                for i in 0..<row { o[i] = source[i * step] }
            }
        default: for i in 0..<row { o[i] = c[i * stepC] != 0 ? x[i * stepX] : y[i * stepY] }
        }
    }
}

// MARK: - Float16 through Float

extension MathLoops {
    /// `y[i] = f(x[i])` for float16 bit patterns, computing in Float.
    @inlinable @inline(__always)
    package static func mapHalf(
        _ x: UnsafePointer<UInt16>, _ y: UnsafeMutablePointer<UInt16>, count: Int, pool: ComputePool,
        _ f: (Float) -> Float
    ) {
        map(x, y, count: count, pool: pool) { Half.bits(f(Half.float($0))) }
    }
}

/// float16 values as their bit patterns, converted exactly (and rounded to nearest even) through Float.
@usableFromInline package enum Half {
    @inlinable @inline(__always) package static func float(_ h: UInt16) -> Float { Float(bitPattern: HalfBits.toFloat(h)) }
    @inlinable @inline(__always) package static func bits(_ f: Float) -> UInt16 { HalfBits.fromFloat(f.bitPattern) }
}

// MARK: - Vectorisable float32 functions

/// Float32 transcendental functions written without calls or branches the vectoriser cannot
/// turn into selects, so loops over them run several lanes at a time (libm's `expf`, `tanhf`
/// and `erff` are one call per element). Each is accurate to a few ulp except where noted;
/// NaN propagates and ±infinity give the limits.
@usableFromInline package enum FastMath {
    /// `eˣ`. `x = n·ln2 + r` with `|r| ≤ ln2/2`; `eʳ − 1` by its Taylor series to `r⁷`; `2ⁿ`
    /// built in the exponent bits as two factors so that `n` from −150 to 128 stays normal.
    @inlinable @inline(__always)
    package static func exp(_ x: Float) -> Float {
        let c = x > 89 ? 89 : (x < -104 ? -104 : x)
        let (n, q) = reduce(c)
        let half = n &>> 1
        return (q + 1) * powerOfTwo(half) * powerOfTwo(n &- half)
    }

    /// `eˣ − 1` for `x ≤ 88`, accurate near 0 (no cancellation).
    @inlinable @inline(__always)
    package static func expm1(_ x: Float) -> Float {
        let c = x > 88 ? 88 : (x < -30 ? -30 : x)
        let (n, q) = reduce(c)
        let scale = powerOfTwo(n)
        return scale * q + (scale - 1)
    }

    /// `1 / (1 + e⁻ˣ)`.
    @inlinable @inline(__always)
    package static func sigmoid(_ x: Float) -> Float {
        1 / (1 + exp(-x))
    }

    /// `tanh x = sign(x)·m/(m + 2)` with `m = e^{2|x|} − 1`; `|x|` is capped at 9, where
    /// tanh is 1 in float.
    @inlinable @inline(__always)
    package static func tanh(_ x: Float) -> Float {
        let a = x.magnitude
        let m = expm1(2 * (a > 9 ? 9 : a))
        return copySign(m / (m + 2), of: x)
    }

    /// The error function: `x·P(x²)` below 1, `1 − erfc|x|` above (relative error < 2e-7).
    @inlinable @inline(__always)
    package static func erf(_ x: Float) -> Float {
        let a = x.magnitude
        let m = a < 1 ? erfSmall(a) : 1 - erfcLarge(a)
        return copySign(m, of: x)
    }

    /// `x·Φ(x) = ½x(1 + erf(x/√2))`, taking `1 + erf(z)` for negative `z` from erfc so it
    /// keeps its relative accuracy far into the left tail.
    @inlinable @inline(__always)
    package static func gelu(_ x: Float) -> Float {
        let z = x * 0.707_106_77
        let a = z.magnitude
        let small = erfSmall(a), tail = erfcLarge(a)
        let onePlusErf = z >= 0 ? 1 + (a < 1 ? small : 1 - tail) : (a < 1 ? 1 - small : tail)
        return 0.5 * x * onePlusErf
    }

    /// The tanh approximation of GELU, `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`, evaluated as
    /// `x·σ(2y)` (the same value: `1 + tanh y = 2σ(2y)`), which has no cancellation for x < 0.
    @inlinable @inline(__always)
    package static func geluTanh(_ x: Float) -> Float {
        let y = 0.797_884_56 * (x + 0.044_715 * x * x * x)
        return x * sigmoid(2 * y)
    }

    // MARK: Pieces

    /// `x = n·ln2 + r`, returning `n` and `eʳ − 1`. `x` must be within ±150.
    @inline(__always)
    @inlinable package static func reduce(_ x: Float) -> (n: Int32, q: Float) {
        // Adding 1.5·2²³ rounds x·log₂e to an integer, which then sits in the low mantissa bits.
        let shifted = x * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        // ln 2 in two parts; n·ln2Hi is exact for |n| < 2¹⁵.
        let r = (x - n * 0.693_359_375) - n * -2.121_944_4e-4
        var p: Float = 1.0 / 5040
        p = p * r + 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        let q = p * r * r + r
        return (Int32(bitPattern: shifted.bitPattern &- 0x4B40_0000), q)
    }

    /// `2ⁿ` for `n` in −126...127.
    @inline(__always)
    @inlinable package static func powerOfTwo(_ n: Int32) -> Float {
        Float(bitPattern: UInt32(bitPattern: (n &+ 127) &<< 23))
    }

    @inline(__always)
    @inlinable package static func copySign(_ magnitude: Float, of x: Float) -> Float {
        Float(bitPattern: magnitude.bitPattern & 0x7FFF_FFFF | x.bitPattern & 0x8000_0000)
    }

    /// `erf(a)` for `0 ≤ a ≤ 1`: `a·P(a²)`, least-squares fit of relative error (< 7e-8).
    @inline(__always)
    @inlinable package static func erfSmall(_ a: Float) -> Float {
        let s = a * a
        var p: Float = 7.898_139_3e-5
        p = p * s - 8.024_335_3e-4
        p = p * s + 5.190_051_6e-3
        p = p * s - 2.685_480_8e-2
        p = p * s + 1.128_361_2e-1
        p = p * s - 3.761_262_9e-1
        p = p * s + 1.128_379_2
        return a * p
    }

    /// `erfc(a)` for `a ≥ 1`: `e^{−a²}·R(t)`, `t = 1/(1 + 0.4a)`, R a degree-8 least-squares
    /// fit of relative error (< 1e-7). The float rounding of `a²` limits the whole to a relative
    /// error of about `a²·6e-8` (1.4e-5 at a = 8, where erfc is 1e-29).
    /// Above 10 it is 0 (erfc 10 ≈ 2e-45), so Gelu(−∞) is −∞·0 = NaN as in the reference formula.
    @inline(__always)
    @inlinable package static func erfcLarge(_ a: Float) -> Float {
        let z = a < 1 ? 1 : (a > 10 ? 10 : a)
        let t = 1 / (1 + 0.4 * z)
        var p: Float = 1.407_147_3e-2
        p = p * t - 1.695_353_5e-1
        p = p * t + 3.292_275_1e-1
        p = p * t - 6.792_581_8e-2
        p = p * t + 2.540_470_4e-1
        p = p * t + 1.851_385_1e-1
        p = p * t + 2.294_327_2e-1
        p = p * t + 2.253_235_3e-1
        p = p * t + 1.419_360_1e-5
        return a > 10 ? 0 : exp(-(z * z)) * p
    }
}
