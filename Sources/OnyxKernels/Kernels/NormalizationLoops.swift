internal import CKernels

/// Float32 loops of BatchNormalization, LayerNormalization and Softmax. Outputs may be the inputs' buffers.
@usableFromInline package enum NormalizationLoops {
    /// `y = x · factor + offset` per feature, with `factor = scale / √(variance + ε)` and
    /// `offset = bias − mean · factor`; `x` is `batch × features × area`.
    package static func batchNormalization(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, features: Int, area: Int,
        scale: UnsafePointer<Float>, bias: UnsafePointer<Float>, mean: UnsafePointer<Float>,
        variance: UnsafePointer<Float>, epsilon: Float, pool: ComputePool
    ) {
        pool.forEachChunk(batch * features, costPerItem: area) { planes in
            for plane in planes {
                let c = plane % features
                let factor = scale[c] / (variance[c] + epsilon).squareRoot()
                affine(x + plane * area, y + plane * area, count: area, factor: factor, offset: bias[c] - mean[c] * factor)
            }
        }
    }

    /// Training-mode BatchNormalization's `Y`: each feature normalised by the batch's own mean
    /// and (population) variance over the batch and spatial axes. With `running`, also writes
    /// `runningMean = mean · momentum + batchMean · (1 − momentum)` and likewise `runningVariance`.
    package static func batchNormalizationWithBatchStatistics(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, features: Int, area: Int,
        scale: UnsafePointer<Float>, bias: UnsafePointer<Float>, epsilon: Float,
        running: (mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, momentum: Float,
                  runningMean: UnsafeMutablePointer<Float>?, runningVariance: UnsafeMutablePointer<Float>?)?,
        pool: ComputePool
    ) {
        let count = Float(batch * area)
        pool.forEachChunk(features, costPerItem: 3 * batch * area) { channels in
            for c in channels {
                var sum: Float = 0
                for n in 0..<batch { sum += ReductionLoops.sum(x + (n * features + c) * area, count: area) }
                let mean = sum / count
                var squares: Float = 0
                for n in 0..<batch {
                    squares += ReductionLoops.sumOfSquaredDeviations(x + (n * features + c) * area, count: area, from: mean)
                }
                let variance = squares / count
                if let running {
                    running.runningMean?[c] = running.mean[c] * running.momentum + mean * (1 - running.momentum)
                    running.runningVariance?[c] = running.variance[c] * running.momentum + variance * (1 - running.momentum)
                }
                let factor = scale[c] / (variance + epsilon).squareRoot()
                let offset = bias[c] - mean * factor
                for n in 0..<batch {
                    let plane = (n * features + c) * area
                    affine(x + plane, y + plane, count: area, factor: factor, offset: offset)
                }
            }
        }
    }

    @inline(__always)
    private static func affine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, factor: Float, offset: Float) {
        if UnsafePointer(y) == x {
            for i in 0..<count { y[i] = y[i] * factor + offset }
        } else {
            for i in 0..<count { y[i] = x[i] * factor + offset }
        }
    }

    /// Softmax over each of `rows` contiguous rows of `length` elements (`onyx_softmax_f32`); with
    /// `zeroingNaN`, the rows it would make NaN are zeros.
    package static func softmax(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, length: Int, zeroingNaN: Bool = false,
        isa: KernelISA, pool: ComputePool
    ) {
        pool.forEachChunk(rows, costPerItem: 8 * length) { range in
            onyx_softmax_f32(isa.cValue, x + range.lowerBound * length, y + range.lowerBound * length, range.count, length,
                             zeroingNaN ? 1 : 0)
        }
    }

    /// Layer normalisation of `rows` contiguous rows of `width` elements with per-element scale
    /// and bias (`onyx_layer_norm_f32`), each row's mean and inverse deviation stored when asked.
    package static func layerNormalization(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, width: Int, epsilon: Float,
        scale: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        mean: UnsafeMutablePointer<Float>?, inverse: UnsafeMutablePointer<Float>?, isa: KernelISA, pool: ComputePool
    ) {
        pool.parallelRanges(rows, minimumChunk: max(1, (1 << 15) / max(width, 1))) { range in
            let first = range.lowerBound
            onyx_layer_norm_f32(isa.cValue, x + first * width, y + first * width, range.count, width, epsilon,
                                scale, bias, mean.map { $0 + first }, inverse.map { $0 + first })
        }
    }

    /// Softmax along a middle axis: `x` is `outer × extent × inner` and each of the
    /// `outer · inner` lines of `extent` elements (stride `inner`) is normalised.
    package static func softmax(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, outer: Int, extent: Int, inner: Int, pool: ComputePool
    ) {
        // Lines are handled in blocks of adjacent ones so the inner loops run over contiguous memory.
        let block = 256
        let blocks = (inner + block - 1) / block
        pool.forEachChunk(outer * blocks, costPerItem: 8 * extent * Swift.min(inner, block)) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * block) { scratch in
                let peak = scratch.baseAddress!, sum = peak + block
                for item in range {
                    let start = (item / blocks) * extent * inner + (item % blocks) * block
                    let n = Swift.min(block, inner - (item % blocks) * block)
                    let src = x + start, dst = y + start
                    peak.update(from: src, count: n)
                    for e in 1..<Swift.max(extent, 1) {
                        let row = src + e * inner
                        for i in 0..<n { peak[i] = row[i] > peak[i] ? row[i] : peak[i] }
                    }
                    sum.update(repeating: 0, count: n)
                    for e in 0..<extent {
                        let row = src + e * inner, out = dst + e * inner
                        if UnsafePointer(out) == row {
                            for i in 0..<n { out[i] = exp(out[i] - peak[i]) }
                        } else {
                            for i in 0..<n { out[i] = exp(row[i] - peak[i]) }
                        }
                        for i in 0..<n { sum[i] += out[i] }
                    }
                    for i in 0..<n { sum[i] = 1 / sum[i] }
                    for e in 0..<extent {
                        let out = dst + e * inner
                        for i in 0..<n { out[i] *= sum[i] }
                    }
                }
            }
        }
    }

    /// `eˣ` to within about 2 ulp, written so loops over it vectorise at baseline x86-64
    /// (libm's `expf` is a call per element). `x = 2ⁿ·eʳ` with `|r| ≤ ln2/2`; `eʳ` by a
    /// degree-6 polynomial (Cephes' coefficients), `2ⁿ` built in the exponent bits. Below
    /// −87.3 (where `2ⁿ` would be subnormal) the result is 0; above 88.4 it saturates.
    @inlinable @inline(__always)
    @usableFromInline package static func exp(_ x: Float) -> Float {
        let low: Float = -87.33654, high: Float = 88.37626
        let c = x < low ? low : (x > high ? high : x)
        // Adding 1.5·2²³ rounds to an integer n, which then sits in the low mantissa bits.
        let shifted = c * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        let r = c - n * 0.693_359_375 - n * -2.121_944_4e-4
        var p: Float = 1.987_569_15e-4
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let e = p * r * r + r + 1
        let twoToN = Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
        return x < low ? 0 : e * twoToN
    }
}

// MARK: - Generic floating-point loops (float16, float, double; computed in E.Wide)

/// Converts a compute value to an element type; free when `F` computes in `W` itself.
@inlinable @inline(__always)
package func narrowed<W: WideFloat, F: WideningFloat>(_ value: W, to _: F.Type) -> F {
    if W.self == F.Wide.self { return F(narrowing: unsafeBitCast(value, to: F.Wide.self)) }
    return F(narrowing: F.Wide(Double(value)))
}

extension NormalizationLoops {
    /// Softmax, LogSoftmax or Hardmax over the `outer · inner` lines of `extent` elements
    /// (stride `inner`) of an `outer × extent × inner` tensor. `y` may be `x`.
    @inlinable package static func softmaxFamily<E: WideningFloat>(
        _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, outer: Int, extent: Int, inner: Int,
        kind: SoftmaxKind, pool: ComputePool
    ) {
        guard extent > 0 else { return }
        pool.forEachChunk(outer * inner, costPerItem: 8 * extent) { range in
            for line in range {
                let start = (line / inner) * extent * inner + line % inner
                let src = x + start, dst = y + start
                var peak = src[0].widened, peakIndex = 0
                for e in 1..<extent {
                    let v = src[e * inner].widened
                    if v > peak || (peak.isNaN && !v.isNaN) { peak = v; peakIndex = e }
                }
                switch kind {
                case .hardmax:
                    for e in 0..<extent { dst[e * inner] = e == peakIndex ? 1 : 0 }
                case .softmax:
                    var sum: E.Wide = 0
                    for e in 0..<extent { sum += E.Wide.exponential(src[e * inner].widened - peak) }
                    for e in 0..<extent { dst[e * inner] = E(narrowing: E.Wide.exponential(src[e * inner].widened - peak) / sum) }
                case .logSoftmax:
                    var sum: E.Wide = 0
                    for e in 0..<extent { sum += E.Wide.exponential(src[e * inner].widened - peak) }
                    // (x − peak) first: exact near the peak, where x − (peak + log Σ) would round.
                    let logSum = E.Wide.logarithm(sum)
                    for e in 0..<extent { dst[e * inner] = E(narrowing: (src[e * inner].widened - peak) - logSum) }
                }
            }
        }
    }

    /// Scale and shift applied after normalising rows: the parameter index of element `i` of row
    /// `r` is `((r mod rowsPerPeriod) · width + i) / segment`.
    @usableFromInline package struct RowAffine<W> {
        @usableFromInline package var scale: UnsafePointer<W>?
        @usableFromInline package var bias: UnsafePointer<W>?
        @usableFromInline package var rowsPerPeriod: Int
        @usableFromInline package var segment: Int

        @inlinable package init(scale: UnsafePointer<W>?, bias: UnsafePointer<W>?, rowsPerPeriod: Int, segment: Int) {
            self.scale = scale
            self.bias = bias
            self.rowsPerPeriod = rowsPerPeriod
            self.segment = segment
        }
    }

    /// Normalises each of `rows` contiguous rows of `width` elements: `(x − mean) · inverse`, with
    /// `inverse = 1 / √(variance + ε)` (RMS when not `centered`: mean 0), then the affine step.
    /// Writes each row's mean and inverse into `statistics` when given.
    @inlinable package static func normalizeRows<E: WideningFloat, F: WideningFloat>(
        _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<F>, rows: Int, width: Int, epsilon: E.Wide, centered: Bool,
        affine: RowAffine<E.Wide>, statistics: (mean: UnsafeMutablePointer<Float>?, inverse: UnsafeMutablePointer<Float>?),
        pool: ComputePool
    ) {
        guard width > 0, affine.segment > 0, affine.rowsPerPeriod > 0 else { return }
        let segments = width / affine.segment
        pool.forEachChunk(rows, costPerItem: 4 * width) { range in
            for r in range {
                let row = x + r * width, out = y + r * width
                var mean: E.Wide = 0
                if centered {
                    var sum: E.Wide = 0
                    for i in 0..<width { sum += row[i].widened }
                    mean = sum / E.Wide(width)
                }
                var squares: E.Wide = 0
                for i in 0..<width {
                    let d = row[i].widened - mean
                    squares += d * d
                }
                let inverse = 1 / (squares / E.Wide(width) + epsilon).squareRoot()
                statistics.mean?[r] = Float(Double(mean))
                statistics.inverse?[r] = Float(Double(inverse))
                let first = (r % affine.rowsPerPeriod) * segments
                for s in 0..<segments {
                    let scale = affine.scale?[first + s] ?? 1, bias = affine.bias?[first + s] ?? 0
                    for i in (s * affine.segment)..<((s + 1) * affine.segment) {
                        out[i] = narrowed((row[i].widened - mean) * inverse * scale + bias, to: F.self)
                    }
                }
            }
        }
    }

    /// LRN over the channels of `batch × channels × area`.
    @inlinable package static func localResponse<E: WideningFloat>(
        _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, batch: Int, channels: Int, area: Int, size: Int,
        alpha: E.Wide, beta: E.Wide, bias: E.Wide, pool: ComputePool
    ) {
        let before = (size - 1) / 2, after = size - 1 - before
        let coefficient = alpha / E.Wide(size)
        pool.forEachChunk(batch * channels, costPerItem: area * size) { range in
            withUnsafeTemporaryAllocation(of: E.Wide.self, capacity: Swift.max(area, 1)) { buffer in
                let sums = buffer.baseAddress!
                for plane in range {
                    let n = plane / channels, c = plane % channels
                    sums.update(repeating: 0, count: area)
                    for k in Swift.max(0, c - before)...Swift.min(channels - 1, c + after) {
                        let src = x + (n * channels + k) * area
                        for i in 0..<area { sums[i] += src[i].widened * src[i].widened }
                    }
                    // All planes' sums are taken before this plane is written: y may not be x.
                    let src = x + plane * area, dst = y + plane * area
                    for i in 0..<area {
                        dst[i] = E(narrowing: src[i].widened / E.Wide.power(bias + coefficient * sums[i], beta))
                    }
                }
            }
        }
    }

    /// `x / ‖x‖ₚ` (p 1 or 2) over each line of `extent` elements, `inner` apart; 0 where the norm is 0.
    @inlinable package static func lpNormalize<E: WideningFloat>(
        _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, outer: Int, extent: Int, inner: Int, p: Int, pool: ComputePool
    ) {
        pool.forEachChunk(outer * inner, costPerItem: 3 * extent) { range in
            for line in range {
                let start = (line / inner) * extent * inner + line % inner
                let src = x + start, dst = y + start
                var norm: E.Wide = 0
                for e in 0..<extent {
                    let v = src[e * inner].widened
                    norm += p == 1 ? v.magnitude : v * v
                }
                if p == 2 { norm = norm.squareRoot() }
                for e in 0..<extent { dst[e * inner] = norm == 0 ? 0 : E(narrowing: src[e * inner].widened / norm) }
            }
        }
    }

    /// MeanVarianceNormalization of `x` (shape `shape`) with statistics over the `reduced` axes.
    @inlinable package static func meanVarianceNormalize<E: WideningFloat>(
        _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, shape: [Int], reduced: [Bool], pool: ComputePool
    ) {
        let count = shape.enumerated().reduce(1) { reduced[$1.offset] ? $0 * $1.element : $0 }
        let statisticsCount = shape.enumerated().reduce(1) { reduced[$1.offset] ? $0 : $0 * $1.element }
        guard count > 0, statisticsCount > 0 else { return }
        let scale = 1 / E.Wide(count)
        let means = UnsafeMutablePointer<E.Wide>.allocate(capacity: 2 * statisticsCount)
        defer { means.deallocate() }
        let deviations = means + statisticsCount
        reduced.withUnsafeBufferPointer { mask in
            ReductionLoops.reduce(x, means, shape: shape, reduced: mask.baseAddress!, pool: pool, WideMean<E>(scale: scale))
            ReductionLoops.reduce(x, deviations, shape: shape, reduced: mask.baseAddress!, pool: pool,
                                  SquaredDeviation<E>(means: UnsafePointer(means), scale: scale))
        }
        for s in 0..<statisticsCount { deviations[s] = 1 / (deviations[s].squareRoot() + 1e-9) }
        forEachElement(shape: shape, reduced: reduced) { i, s in
            y[i] = E(narrowing: (x[i].widened - means[s]) * deviations[s])
        }
    }

    /// Calls `body(i, s)` for every element `i` of `shape` in order, with `s` its index in the
    /// statistics tensor (the shape with the `reduced` axes dropped).
    @inlinable @inline(__always)
    package static func forEachElement(shape: [Int], reduced: [Bool], _ body: (Int, Int) -> Void) {
        let rank = shape.count
        guard rank > 0 else { body(0, 0); return }
        var strides = [Int](repeating: 0, count: rank), index = [Int](repeating: 0, count: rank)
        var run = 1
        for a in stride(from: rank - 1, through: 0, by: -1) where !reduced[a] {
            strides[a] = run
            run *= shape[a]
        }
        let total = shape.reduce(1, *)
        var s = 0
        for i in 0..<total {
            body(i, s)
            var a = rank - 1
            while a >= 0 {
                index[a] += 1
                s += strides[a]
                if index[a] < shape[a] { break }
                s -= strides[a] * shape[a]
                index[a] = 0
                a -= 1
            }
        }
    }
}

/// The mean in the compute type (MeanVarianceNormalization's first pass).
@usableFromInline package struct WideMean<E: WideningFloat>: ReductionOperation {
    let scale: E.Wide
    @usableFromInline package var identity: E.Wide { 0 }
    @inline(__always) @usableFromInline package func load(_ x: E, at _: Int) -> E.Wide { x.widened }
    @inline(__always) @usableFromInline package func combine(_ a: E.Wide, _ b: E.Wide) -> E.Wide { a + b }
    @inline(__always) @usableFromInline package func finish(_ total: E.Wide, at _: Int) -> E.Wide { total * scale }

    @usableFromInline package init(scale: E.Wide) {
        self.scale = scale
    }
}

/// The mean squared deviation from each output's mean (the population variance).
@usableFromInline package struct SquaredDeviation<E: WideningFloat>: ReductionOperation {
    let means: UnsafePointer<E.Wide>
    let scale: E.Wide
    @usableFromInline package var identity: E.Wide { 0 }
    @inline(__always) @usableFromInline package func load(_ x: E, at output: Int) -> E.Wide {
        let d = x.widened - means[output]
        return d * d
    }
    @inline(__always) @usableFromInline package func combine(_ a: E.Wide, _ b: E.Wide) -> E.Wide { a + b }
    @inline(__always) @usableFromInline package func finish(_ total: E.Wide, at _: Int) -> E.Wide { total * scale }

    @usableFromInline package init(means: UnsafePointer<E.Wide>, scale: E.Wide) {
        self.means = means
        self.scale = scale
    }
}

/// Which of the softmax family a line computes.
@usableFromInline package enum SoftmaxKind: String, CaseIterable, Sendable { case softmax = "Softmax", logSoftmax = "LogSoftmax", hardmax = "Hardmax" }
