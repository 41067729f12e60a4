/// The window attributes of MaxPool and AveragePool, validated once per node.
struct PoolingAttributes: Sendable, Equatable {
    enum AutoPad: String, Sendable { case notSet = "NOTSET", sameUpper = "SAME_UPPER", sameLower = "SAME_LOWER", valid = "VALID" }

    /// One entry per spatial axis (1 or 2).
    let kernel: [Int]
    let strides: [Int]
    let dilations: [Int]
    /// `[begin…, end…]`, as ONNX lists them; ignored unless `autoPad` is `.notSet`.
    let pads: [Int]
    let autoPad: AutoPad
    let ceilMode: Bool

    /// Reads `kernel_shape`, `strides`, `dilations`, `pads`, `auto_pad` and `ceil_mode`.
    ///
    /// - Throws: ``OnyxError`` `.invalidAttribute` if one is missing, has the wrong length or an
    ///   out-of-range value, or the window has more than two spatial axes.
    init(_ context: NodeContext) throws {
        guard let kernel = try context.ints("kernel_shape") else { throw context.attributeError("missing 'kernel_shape'") }
        guard kernel.count == 1 || kernel.count == 2 else {
            throw context.attributeError(
                "only 1-D and 2-D pooling is supported; kernel_shape \(kernel) has \(kernel.count) axes")
        }
        let rank = kernel.count
        let strides = try context.ints("strides") ?? Array(repeating: 1, count: rank)
        let dilations = try context.ints("dilations") ?? Array(repeating: 1, count: rank)
        let pads = try context.ints("pads") ?? Array(repeating: 0, count: 2 * rank)
        let autoPadName = try context.string("auto_pad", default: "NOTSET")
        guard let autoPad = AutoPad(rawValue: autoPadName) else {
            throw context.attributeError("auto_pad '\(autoPadName)' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        }
        for (name, values, count) in [("strides", strides, rank), ("dilations", dilations, rank), ("pads", pads, 2 * rank)]
        where values.count != count {
            throw context.attributeError("'\(name)' has \(values.count) values; kernel_shape \(kernel) needs \(count)")
        }
        guard kernel.allSatisfy({ $0 >= 1 }) else { throw context.attributeError("kernel_shape \(kernel) must be ≥ 1") }
        guard strides.allSatisfy({ $0 >= 1 }) else { throw context.attributeError("strides \(strides) must be ≥ 1") }
        guard dilations.allSatisfy({ $0 >= 1 }) else { throw context.attributeError("dilations \(dilations) must be ≥ 1") }
        guard pads.allSatisfy({ $0 >= 0 }) else { throw context.attributeError("pads \(pads) must be ≥ 0") }
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        self.pads = pads
        self.autoPad = autoPad
        self.ceilMode = try context.int("ceil_mode", default: 0) != 0
    }

    /// The geometry for an input of shape `[N, C, spatial…]`.
    ///
    /// - Throws: ``OnyxError`` `.shapeMismatch` if the input's rank does not fit the kernel or
    ///   the window does not fit in the padded input.
    func geometry(input shape: [Int], op: String) throws -> PoolingGeometry {
        let rank = kernel.count
        guard shape.count == rank + 2 else {
            throw OnyxError.shapeMismatch(
                "\(op): input of shape \(shape) needs rank \(rank + 2) (N, C and \(rank) spatial axes) for kernel_shape \(kernel)")
        }
        let x = try resolve(axis: rank - 1, input: shape[rank + 1], op: op)
        if rank == 1 {
            return PoolingGeometry(
                inputHeight: 1, inputWidth: shape[2], kernelHeight: 1, kernelWidth: kernel[0],
                strideY: 1, strideX: strides[0], dilationY: 1, dilationX: dilations[0],
                padTop: 0, padLeft: x.begin, padBottom: 0, padRight: x.end,
                outputHeight: 1, outputWidth: x.output)
        }
        let y = try resolve(axis: 0, input: shape[2], op: op)
        return PoolingGeometry(
            inputHeight: shape[2], inputWidth: shape[3], kernelHeight: kernel[0], kernelWidth: kernel[1],
            strideY: strides[0], strideX: strides[1], dilationY: dilations[0], dilationX: dilations[1],
            padTop: y.begin, padLeft: x.begin, padBottom: y.end, padRight: x.end,
            outputHeight: y.output, outputWidth: x.output)
    }

    /// Output extent and the pads before and after one spatial axis of extent `input`.
    private func resolve(axis: Int, input: Int, op: String) throws -> (output: Int, begin: Int, end: Int) {
        let stride = strides[axis]
        let extent = (kernel[axis] - 1) * dilations[axis] + 1
        switch autoPad {
        case .sameUpper, .sameLower:
            let output = (input + stride - 1) / stride
            let total = max(0, (output - 1) * stride + extent - input)
            let begin = autoPad == .sameUpper ? total / 2 : total - total / 2
            return (output, begin, total - begin)
        case .valid, .notSet:
            // VALID is explicit padding of 0, ceil_mode included, as onnxruntime computes it.
            let begin = autoPad == .notSet ? pads[axis] : 0
            let end = autoPad == .notSet ? pads[axis + kernel.count] : 0
            let span = input + begin + end - extent
            guard span >= 0 else {
                throw OnyxError.shapeMismatch(
                    "\(op): a window of extent \(extent) does not fit spatial extent \(input) padded by \(begin)+\(end)")
            }
            var output = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1
            // A last window that would start in the end padding is dropped (as PyTorch and onnxruntime do).
            if ceilMode && (output - 1) * stride >= input + begin { output -= 1 }
            return (output, begin, end)
        }
    }
}

/// One resolved 2-D pooling window (a 1-D window has height 1).
struct PoolingGeometry: Hashable {
    var inputHeight: Int, inputWidth: Int
    var kernelHeight: Int, kernelWidth: Int
    var strideY: Int, strideX: Int
    var dilationY: Int, dilationX: Int
    var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
    var outputHeight: Int, outputWidth: Int

    var inputArea: Int { inputHeight * inputWidth }
    var outputArea: Int { outputHeight * outputWidth }
    var kernelArea: Int { kernelHeight * kernelWidth }

    /// Columns a padded input row must have for every output's window: the left pad, the
    /// input, and whatever the right pad and a `ceil_mode` overhang add.
    var paddedRowSpan: Int {
        Swift.max(padLeft + inputWidth, (outputWidth - 1) * strideX + (kernelWidth - 1) * dilationX + 1)
    }

    /// The taps `k` in `0..<kernel` whose position `start + k·dilation` lies in `0..<extent`.
    @inline(__always)
    static func taps(start: Int, extent: Int, kernel: Int, dilation: Int) -> Range<Int> {
        if dilation == 1 {
            let low = Swift.max(0, -start)
            return low..<Swift.max(low, Swift.min(kernel, extent - start))
        }
        let low = start >= 0 ? 0 : (dilation - 1 - start) / dilation
        let last = extent - 1 - start
        let high = last < 0 ? 0 : Swift.min(kernel, last / dilation + 1)
        return low..<Swift.max(low, high)
    }
}

/// Float32 pooling loops over `planes` contiguous `H×W` planes.
enum PoolingLoops {
    /// MaxPool: the largest value each window reads (padding never wins). A window that reads
    /// only padding yields −∞.
    ///
    /// Separable: for each output row the window's input rows are first combined column by
    /// column into a padded row buffer (contiguous, vectorised), then each output takes the
    /// maximum of its `kernelWidth` taps in that buffer.
    static func max(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, planes: Int, _ g: PoolingGeometry, pool: ComputePool
    ) {
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
                                for i in 0..<width { columns[i] = line[i] > columns[i] ? line[i] : columns[i] }
                            }
                        }
                        horizontalMax(row, dst, g)
                        dst += g.outputWidth
                    }
                }
            }
        }
    }

    /// `out[ox] = max over kx of row[ox·strideX + kx·dilationX]` (row in padded coordinates).
    @inline(__always)
    private static func horizontalMax(_ row: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ g: PoolingGeometry) {
        let n = g.outputWidth, stride = g.strideX
        if stride == 1 {
            out.update(from: row, count: n)
            for kx in 1..<Swift.max(g.kernelWidth, 1) {
                let tap = row + kx * g.dilationX
                for ox in 0..<n { out[ox] = tap[ox] > out[ox] ? tap[ox] : out[ox] }
            }
        } else {
            for ox in 0..<n {
                let window = row + ox * stride
                var best = window[0]
                for kx in 1..<Swift.max(g.kernelWidth, 1) {
                    let v = window[kx * g.dilationX]
                    best = v > best ? v : best
                }
                out[ox] = best
            }
        }
    }

    /// MaxPool with the Indices output: each maximum's position in the flattened input
    /// (`[N, C, H, W]` row-major, or within a plane column-major when `columnMajor`). Ties go to
    /// the first position in row-major window order.
    static func maxWithIndices(
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
    static func average(
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
    static func global(
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
