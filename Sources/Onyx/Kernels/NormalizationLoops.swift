/// Float32 loops of BatchNormalization and Softmax. Outputs may be the inputs' buffers.
enum NormalizationLoops {
    /// `y = x · factor + offset` per feature, with `factor = scale / √(variance + ε)` and
    /// `offset = bias − mean · factor`; `x` is `batch × features × area`.
    static func batchNormalization(
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
    static func batchNormalizationWithBatchStatistics(
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

    /// Softmax over each of `rows` contiguous rows of `length` elements.
    static func softmax(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, length: Int, pool: ComputePool) {
        pool.forEachChunk(rows, costPerItem: 8 * length) { range in
            for r in range {
                let src = x + r * length, dst = y + r * length
                let peak = ReductionLoops.max(src, count: length)
                if UnsafePointer(dst) == src {
                    for i in 0..<length { dst[i] = exp(dst[i] - peak) }
                } else {
                    for i in 0..<length { dst[i] = exp(src[i] - peak) }
                }
                let scale = 1 / ReductionLoops.sum(dst, count: length)
                for i in 0..<length { dst[i] *= scale }
            }
        }
    }

    /// Softmax along a middle axis: `x` is `outer × extent × inner` and each of the
    /// `outer · inner` lines of `extent` elements (stride `inner`) is normalised.
    static func softmax(
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
    @inline(__always)
    static func exp(_ x: Float) -> Float {
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
