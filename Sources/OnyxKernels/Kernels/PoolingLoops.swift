internal import CKernels

/// One resolved 2-D pooling window (a 1-D window has height 1).
@usableFromInline package struct PoolingGeometry: Hashable {
    package var inputHeight: Int, inputWidth: Int
    package var kernelHeight: Int, kernelWidth: Int
    package var strideY: Int, strideX: Int
    package var dilationY: Int, dilationX: Int
    package var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
    package var outputHeight: Int, outputWidth: Int

    package var inputArea: Int { inputHeight * inputWidth }
    package var outputArea: Int { outputHeight * outputWidth }
    package var kernelArea: Int { kernelHeight * kernelWidth }

    /// Columns a padded input row must have for every output's window: the left pad, the
    /// input, and whatever the right pad and a `ceil_mode` overhang add.
    package var paddedRowSpan: Int {
        Swift.max(padLeft + inputWidth, (outputWidth - 1) * strideX + (kernelWidth - 1) * dilationX + 1)
    }

    /// The taps `k` in `0..<kernel` whose position `start + k·dilation` lies in `0..<extent`.
    @inlinable @inline(__always)
    package static func taps(start: Int, extent: Int, kernel: Int, dilation: Int) -> Range<Int> {
        if dilation == 1 {
            let low = Swift.max(0, -start)
            return low..<Swift.max(low, Swift.min(kernel, extent - start))
        }
        let low = start >= 0 ? 0 : (dilation - 1 - start) / dilation
        let last = extent - 1 - start
        let high = last < 0 ? 0 : Swift.min(kernel, last / dilation + 1)
        return low..<Swift.max(low, high)
    }

    package init(
        inputHeight: Int, inputWidth: Int, kernelHeight: Int, kernelWidth: Int, strideY: Int, strideX: Int,
        dilationY: Int, dilationX: Int, padTop: Int, padLeft: Int, padBottom: Int, padRight: Int, outputHeight: Int,
        outputWidth: Int
    ) {
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideY = strideY
        self.strideX = strideX
        self.dilationY = dilationY
        self.dilationX = dilationX
        self.padTop = padTop
        self.padLeft = padLeft
        self.padBottom = padBottom
        self.padRight = padRight
        self.outputHeight = outputHeight
        self.outputWidth = outputWidth
    }
}

/// Float32 pooling loops over `planes` contiguous `H×W` planes.
@usableFromInline package enum PoolingLoops {
    /// MaxPool: the largest value each window reads (padding never wins). A window that reads
    /// only padding yields −∞.
    ///
    /// Separable: for each output row the window's input rows are first combined column by
    /// column into a padded row buffer (contiguous, vectorised), then each output takes the
    /// maximum of its `kernelWidth` taps in that buffer.
    package static func max(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, planes: Int, _ g: PoolingGeometry,
        isa: KernelISA, pool: ComputePool
    ) {
        if g.kernelHeight == 2, g.kernelWidth == 2, g.strideY == 2, g.strideX == 2, g.dilationY == 1, g.dilationX == 1,
           g.padTop == 0, g.padLeft == 0, 2 * g.outputHeight <= g.inputHeight, 2 * g.outputWidth <= g.inputWidth {
            // LeNet's and many small CNNs' pool: one pass per plane.
            pool.forEachChunk(planes, costPerItem: g.outputArea * 4) { range in
                for plane in range {
                    onyx_max_pool_2x2(isa.cValue, x + plane * g.inputArea, y + plane * g.outputArea,
                                      g.inputWidth, g.outputHeight, g.outputWidth)
                }
            }
            return
        }
        let span = g.paddedRowSpan
        let width = Swift.min(g.inputWidth, span - g.padLeft)
        pool.forEachChunk(planes, costPerItem: g.outputArea * g.kernelArea) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: span) { buffer in
                let row = buffer.baseAddress!
                // The padding columns stay −∞; the input columns are rewritten for every output row.
                row.initialize(repeating: -.infinity, count: span)
                let columns = row + g.padLeft
                for plane in range {
                    let src = x + plane * g.inputArea
                    var dst = y + plane * g.outputArea
                    for oy in 0..<g.outputHeight {
                        let iy0 = oy * g.strideY - g.padTop
                        let rows = PoolingGeometry.taps(start: iy0, extent: g.inputHeight, kernel: g.kernelHeight, dilation: g.dilationY)
                        if rows.isEmpty {
                            columns.update(repeating: -.infinity, count: width)
                        } else {
                            columns.update(from: src + (iy0 + rows.lowerBound * g.dilationY) * g.inputWidth, count: width)
                            for ky in rows.dropFirst() {
                                let line = src + (iy0 + ky * g.dilationY) * g.inputWidth
                                onyx_max_into(isa.cValue, columns, line, width)
                            }
                        }
                        onyx_max_window_row(isa.cValue, row, dst, g.outputWidth, g.strideX, g.kernelWidth, g.dilationX)
                        dst += g.outputWidth
                    }
                }
            }
        }
    }

    /// MaxPool with the Indices output: each maximum's position in the flattened input
    /// (`[N, C, H, W]` row-major, or within a plane column-major when `columnMajor`). Ties go to
    /// the first position in row-major window order.
    package static func maxWithIndices(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ indices: UnsafeMutablePointer<Int64>,
        planes: Int, _ g: PoolingGeometry, columnMajor: Bool, pool: ComputePool
    ) {
        pool.forEachChunk(planes, costPerItem: g.outputArea * g.kernelArea) { range in
            for plane in range {
                let src = x + plane * g.inputArea
                let planeStart = plane * g.inputArea
                for oy in 0..<g.outputHeight {
                    let iy0 = oy * g.strideY - g.padTop
                    let rows = PoolingGeometry.taps(start: iy0, extent: g.inputHeight, kernel: g.kernelHeight, dilation: g.dilationY)
                    for ox in 0..<g.outputWidth {
                        let ix0 = ox * g.strideX - g.padLeft
                        let columns = PoolingGeometry.taps(start: ix0, extent: g.inputWidth, kernel: g.kernelWidth, dilation: g.dilationX)
                        var best = -Float.infinity
                        var bestY = rows.isEmpty ? 0 : iy0 + rows.lowerBound * g.dilationY
                        var bestX = columns.isEmpty ? 0 : ix0 + columns.lowerBound * g.dilationX
                        for ky in rows {
                            let iy = iy0 + ky * g.dilationY
                            for kx in columns {
                                let ix = ix0 + kx * g.dilationX
                                let v = src[iy * g.inputWidth + ix]
                                if v > best { best = v; bestY = iy; bestX = ix }
                            }
                        }
                        let o = plane * g.outputArea + oy * g.outputWidth + ox
                        y[o] = best
                        let within = columnMajor ? bestX * g.inputHeight + bestY : bestY * g.inputWidth + bestX
                        indices[o] = Int64(planeStart + within)
                    }
                }
            }
        }
    }

    /// AveragePool: each window's sum over the input elements it reads, divided by that count,
    /// or with `countIncludePad` by the taps that fall in the input or its explicit padding
    /// (not the overhang `ceil_mode` adds), as PyTorch and onnxruntime divide. A window that
    /// reads nothing yields 0.
    ///
    /// Separable like ``max(_:_:planes:_:pool:)``: rows are summed column by column into a
    /// zero-padded row buffer, then each output sums its taps there.
    package static func average(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, planes: Int, _ g: PoolingGeometry,
        countIncludePad: Bool, pool: ComputePool
    ) {
        let span = g.paddedRowSpan
        let width = Swift.min(g.inputWidth, span - g.padLeft)
        let paddedHeight = g.padTop + g.inputHeight + g.padBottom
        let paddedWidth = g.padLeft + g.inputWidth + g.padRight
        pool.forEachChunk(planes, costPerItem: g.outputArea * g.kernelArea) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: span + g.outputWidth) { buffer in
                let row = buffer.baseAddress!, columnCounts = row + span
                row.initialize(repeating: 0, count: span)
                let columns = row + g.padLeft
                // Taps each output column counts; the same for every output row.
                for ox in 0..<g.outputWidth {
                    columnCounts[ox] = Float(countIncludePad
                        ? PoolingGeometry.taps(start: ox * g.strideX, extent: paddedWidth, kernel: g.kernelWidth, dilation: g.dilationX).count
                        : PoolingGeometry.taps(start: ox * g.strideX - g.padLeft, extent: g.inputWidth, kernel: g.kernelWidth,
                                               dilation: g.dilationX).count)
                }
                for plane in range {
                    let src = x + plane * g.inputArea
                    var dst = y + plane * g.outputArea
                    for oy in 0..<g.outputHeight {
                        let iy0 = oy * g.strideY - g.padTop
                        let rows = PoolingGeometry.taps(start: iy0, extent: g.inputHeight, kernel: g.kernelHeight, dilation: g.dilationY)
                        if rows.isEmpty {
                            columns.update(repeating: 0, count: width)
                        } else {
                            columns.update(from: src + (iy0 + rows.lowerBound * g.dilationY) * g.inputWidth, count: width)
                            for ky in rows.dropFirst() {
                                let line = src + (iy0 + ky * g.dilationY) * g.inputWidth
                                for i in 0..<width { columns[i] += line[i] }
                            }
                        }
                        horizontalSum(row, dst, g)
                        let rowCount = Float(countIncludePad
                            ? PoolingGeometry.taps(start: oy * g.strideY, extent: paddedHeight, kernel: g.kernelHeight, dilation: g.dilationY).count
                            : rows.count)
                        for ox in 0..<g.outputWidth {
                            let divisor = rowCount * columnCounts[ox]
                            dst[ox] = divisor > 0 ? dst[ox] / divisor : 0
                        }
                        dst += g.outputWidth
                    }
                }
            }
        }
    }

    /// `out[ox] = Σ over kx of row[ox·strideX + kx·dilationX]` (row in padded coordinates).
    @inline(__always)
    private static func horizontalSum(_ row: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ g: PoolingGeometry) {
        let n = g.outputWidth, stride = g.strideX
        if stride == 1 {
            out.update(from: row, count: n)
            for kx in 1..<Swift.max(g.kernelWidth, 1) {
                let tap = row + kx * g.dilationX
                for ox in 0..<n { out[ox] += tap[ox] }
            }
        } else {
            for ox in 0..<n {
                let window = row + ox * stride
                var sum = window[0]
                for kx in 1..<Swift.max(g.kernelWidth, 1) { sum += window[kx * g.dilationX] }
                out[ox] = sum
            }
        }
    }

    /// GlobalAveragePool / GlobalMaxPool: one value per plane of `area` elements.
    package static func global(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, planes: Int, area: Int, average: Bool, pool: ComputePool
    ) {
        pool.forEachChunk(planes, costPerItem: area) { range in
            for plane in range {
                let src = x + plane * area
                y[plane] = average
                    ? (area > 0 ? ReductionLoops.sum(src, count: area) / Float(area) : .nan)
                    : ReductionLoops.max(src, count: area)
            }
        }
    }
}

// MARK: - Windows over any number of axes

extension PoolingLoops {
    @usableFromInline package enum WindowKind {
        case max(columnMajorIndices: Bool)
        case average(countIncludePad: Bool)
        case lp(p: Int)
    }

    /// Pools each of `planes` contiguous planes of `window.input` with a direct loop over every
    /// output's window, in the element's compute type. MaxPool's `indices` (when given) are flat
    /// positions in the whole input (row-major, or column-major within a plane).
    @inlinable package static func window<E: PoolingElement>(
        _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, indices: UnsafeMutablePointer<Int64>?, planes: Int,
        _ w: PoolingWindow, kind: WindowKind, pool: ComputePool
    ) {
        let rank = w.input.count
        let inputArea = w.input.reduce(1, *), outputArea = w.output.reduce(1, *)
        guard outputArea > 0 else { return }
        // Row-major strides of the plane, and the column-major ones the Indices output may use.
        var rowStrides = [Int](repeating: 1, count: rank), columnStrides = [Int](repeating: 1, count: rank)
        for a in stride(from: rank - 2, through: 0, by: -1) { rowStrides[a] = rowStrides[a + 1] * w.input[a + 1] }
        for a in 1..<Swift.max(rank, 1) { columnStrides[a] = columnStrides[a - 1] * w.input[a - 1] }
        var columnMajor = false
        if case .max(let c) = kind { columnMajor = c }
        let indexStrides = columnMajor ? columnStrides : rowStrides
        pool.forEachChunk(planes * outputArea, costPerItem: w.kernel.reduce(1, *)) { range in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 4 * rank) { buffer in
                let outIndex = buffer.baseAddress!, low = outIndex + rank, high = low + rank, tap = high + rank
                for item in range {
                    let plane = item / outputArea
                    var rest = item % outputArea
                    for a in stride(from: rank - 1, through: 0, by: -1) {
                        outIndex[a] = rest % w.output[a]
                        rest /= w.output[a]
                    }
                    // The taps of each axis that land in the input, and (for count_include_pad) in its padding.
                    var count = 1, paddedCount = 1, empty = false
                    for a in 0..<rank {
                        let start = outIndex[a] * w.strides[a] - w.begin[a]
                        let taps = PoolingGeometry.taps(start: start, extent: w.input[a], kernel: w.kernel[a], dilation: w.dilations[a])
                        low[a] = taps.lowerBound
                        high[a] = taps.upperBound
                        tap[a] = taps.lowerBound
                        count *= taps.count
                        if taps.isEmpty { empty = true }
                        paddedCount *= PoolingGeometry.taps(
                            start: outIndex[a] * w.strides[a], extent: w.paddedInput[a], kernel: w.kernel[a],
                            dilation: w.dilations[a]).count
                    }
                    let src = x + plane * inputArea
                    var best = -E.Compute.infinity, bestOffset = -1
                    var sum: E.Compute = 0
                    if !empty {
                        while true {
                            var offset = 0
                            for a in 0..<rank {
                                offset += (outIndex[a] * w.strides[a] - w.begin[a] + tap[a] * w.dilations[a]) * rowStrides[a]
                            }
                            let v = src[offset].pooled
                            switch kind {
                            case .max: if v > best || bestOffset < 0 { best = v; bestOffset = offset }
                            case .average: sum += v
                            case .lp(let p):
                                let m = v.magnitude
                                sum += p == 1 ? m : p == 2 ? m * m : E.Compute.power(m, E.Compute(p))
                            }
                            var a = rank - 1
                            while a >= 0 {
                                tap[a] += 1
                                if tap[a] < high[a] { break }
                                tap[a] = low[a]
                                a -= 1
                            }
                            if a < 0 { break }
                        }
                    }
                    let o = plane * outputArea + item % outputArea
                    switch kind {
                    case .max:
                        y[o] = E(pooled: best)
                        if let indices {
                            var within = 0, r = bestOffset < 0 ? 0 : bestOffset
                            for a in 0..<rank {
                                within += (r / rowStrides[a]) * indexStrides[a]
                                r %= rowStrides[a]
                            }
                            indices[o] = Int64(plane * inputArea + within)
                        }
                    case .average(let countIncludePad):
                        let divisor = countIncludePad ? paddedCount : count
                        y[o] = E(pooled: divisor > 0 ? sum / E.Compute(divisor) : 0)
                    case .lp(let p):
                        y[o] = E(pooled: p == 1 ? sum : p == 2 ? sum.squareRoot() : E.Compute.power(sum, 1 / E.Compute(p)))
                    }
                }
            }
        }
    }
}

/// An element type pooling works on, with the type it computes in: float16, float and double,
/// and int8/uint8 for MaxPool (exact in Float).
@usableFromInline package protocol PoolingElement {
    associatedtype Compute: WideFloat
    var pooled: Compute { get }
    init(pooled: Compute)
}

extension Float: PoolingElement {
    @inlinable @inline(__always) package var pooled: Float { self }
    @inlinable @inline(__always) package init(pooled: Float) { self = pooled }
}
extension Double: PoolingElement {
    @inlinable @inline(__always) package var pooled: Double { self }
    @inlinable @inline(__always) package init(pooled: Double) { self = pooled }
}
extension Float16: PoolingElement {
    @inlinable @inline(__always) package var pooled: Float { castFloat }
    @inlinable @inline(__always) package init(pooled: Float) { self = pooled.castFloat16 }
}
extension Int8: PoolingElement {
    @inlinable @inline(__always) package var pooled: Float { Float(self) }
    @inlinable @inline(__always) package init(pooled: Float) { self = .saturating(pooled) }
}
extension UInt8: PoolingElement {
    @inlinable @inline(__always) package var pooled: Float { Float(self) }
    @inlinable @inline(__always) package init(pooled: Float) { self = .saturating(pooled) }
}

/// A resolved pooling window over any number of spatial axes.
@usableFromInline package struct PoolingWindow: Hashable {
    @usableFromInline package var input: [Int]
    @usableFromInline package var output: [Int]
    @usableFromInline package var kernel: [Int]
    @usableFromInline package var strides: [Int]
    @usableFromInline package var dilations: [Int]
    /// Padding before each axis.
    @usableFromInline package var begin: [Int]
    /// Each axis with its explicit padding (not the `ceil_mode` overhang): count_include_pad's extent.
    @usableFromInline package var paddedInput: [Int]

    package init(
        input: [Int], output: [Int], kernel: [Int], strides: [Int], dilations: [Int], begin: [Int],
        paddedInput: [Int]
    ) {
        self.input = input
        self.output = output
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        self.begin = begin
        self.paddedInput = paddedInput
    }
}
