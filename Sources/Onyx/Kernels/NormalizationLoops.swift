#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
        pool.forEachChunk(rows, costPerItem: 16 * length) { range in
            for r in range {
                let src = x + r * length, dst = y + r * length
                let peak = ReductionLoops.max(src, count: length)
                var sum: Float = 0
                for i in 0..<length {
                    let v = expf(src[i] - peak)
                    dst[i] = v
                    sum += v
                }
                let scale = 1 / sum
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
        pool.forEachChunk(outer * blocks, costPerItem: 16 * extent * Swift.min(inner, block)) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * block) { scratch in
                let peak = scratch.baseAddress!, sum = peak + block
                for item in range {
                    let start = (item / blocks) * extent * inner + (item % blocks) * block
                    let n = Swift.min(block, inner - (item % blocks) * block)
                    let src = x + start, dst = y + start
                    for i in 0..<n { peak[i] = -.infinity }
                    for e in 0..<extent {
                        let row = src + e * inner
                        for i in 0..<n { peak[i] = row[i] > peak[i] ? row[i] : peak[i] }
                    }
                    for i in 0..<n { sum[i] = 0 }
                    for e in 0..<extent {
                        let row = src + e * inner, out = dst + e * inner
                        for i in 0..<n {
                            let v = expf(row[i] - peak[i])
                            out[i] = v
                            sum[i] += v
                        }
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
}
