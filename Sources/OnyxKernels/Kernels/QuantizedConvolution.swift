internal import CKernels
import OnyxCore

/// How int32 sums become 8-bit outputs: `saturate(round_half_even(float(sum) · multiplier) + zeroPoint)`
/// into `low...high` (the output type's range, narrowed by a fused Relu or Clip).
package struct Requantization: Sendable {
    package var zeroPoint: Int32
    package var low: Int32
    package var high: Int32
    package var signed: Bool

    /// The full range of int8 (`signed`) or uint8 outputs.
    package init(zeroPoint: Int32, signed: Bool) {
        self.zeroPoint = zeroPoint
        self.signed = signed
        (low, high) = signed ? (-128, 127) : (0, 255)
    }

    var c: onyx_requantization {
        onyx_requantization(zero_point: zeroPoint, low: low, high: high, output_signed: signed ? 1 : 0)
    }
}

/// Quantized 2-D convolution, pooling and elementwise arithmetic over NHWC uint8 images on the
/// CKernels qconv loops (im2col and the integer GEMM for ordinary convolutions, a direct loop for
/// depthwise ones), each output channel requantized with its own multiplier.
package enum QuantizedConvolution {
    /// Output pixels one thread computes at a time: the im2col rows of a block stay in L2 while
    /// the packed weights stream by.
    static func blockRows(depth: Int, isa: KernelISA) -> Int {
        let mr = IntegerGemm.mr(isa)
        let rows = (96 * 1024) / max(onyx_qgemm_a_stride(isa.cValue, depth), 1)
        return max(mr, rows / mr * mr)
    }

    /// Scratch slots for parallel blocks (each thread uses one).
    package static let slots = 8

    /// Bytes of one slot of ``convolve``: the block's im2col rows and their row sums.
    static func slotBytes(depth: Int, isa: KernelISA) -> Int {
        let rows = blockRows(depth: depth, isa: isa)
        return roundedUp(onyx_qgemm_packed_a_bytes(isa.cValue, rows, depth)) + roundedUp(rows * 4)
    }

    private static func roundedUp(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }

    /// Workspace of ``convolve`` for one image: the bias with the input's zero point folded in, and the slots.
    package static func workspaceByteCount(depth: Int, filters: Int, isa: KernelISA) -> Int {
        roundedUp(filters * 4) + slots * slotBytes(depth: depth, isa: isa)
    }

    /// The C geometry of a window over an NHWC image.
    static func window(_ g: ConvolutionGeometry, channels: Int, inputZero: Int32) -> onyx_qdepthwise_geometry {
        onyx_qdepthwise_geometry(
            in_h: g.inputHeight, in_w: g.inputWidth, channels: channels, out_h: g.outputHeight, out_w: g.outputWidth,
            kernel_h: g.kernelHeight, kernel_w: g.kernelWidth, stride_h: g.strideY, stride_w: g.strideX,
            dilation_h: g.dilationY, dilation_w: g.dilationX, pad_top: g.padTop, pad_left: g.padLeft,
            input_zero: inputZero)
    }

    /// Output pixels below which (per thread) ``convolve`` splits the filters between threads
    /// rather than the pixels: each thread then reads part of the weights once instead of all of
    /// them for a few rows (MobileNetV2's last 7 × 7 layers).
    static let pixelsPerThreadForRowSplit = 128

    /// How ``convolve`` cuts one image into work items: `blocks` blocks of `rows` output pixels, each
    /// in `parts` ranges of the weights' panels.
    static func split(pixels: Int, depth: Int, panels: Int, threads: Int, isa: KernelISA)
        -> (rows: Int, blocks: Int, parts: Int)
    {
        let mr = IntegerGemm.mr(isa), most = blockRows(depth: depth, isa: isa)
        var blocks = (pixels + most - 1) / most, parts = 1
        if threads > 1 {
            if pixels < pixelsPerThreadForRowSplit * threads && panels >= threads {
                parts = threads
            } else {
                // Whole rounds of blocks, so no thread takes one block more than the others.
                blocks = (blocks + threads - 1) / threads * threads
            }
        }
        let rows = min(most, ((pixels + blocks - 1) / blocks + mr - 1) / mr * mr)
        return (rows, (pixels + rows - 1) / rows, parts)
    }

    /// One NHWC image `x` (`channels` per pixel) convolved with the packed filters into `y`
    /// (`filters.n` per pixel): `y = requantize(Σ (x − inputZero)(w − w_zero) + bias)`, requantized
    /// as the integer GEMM stores each tile.
    ///
    /// - Parameters:
    ///   - filters: K × F with K ordered (ky, kx, c), packed with the filters' zero points.
    ///   - bias: F int32 values, or nil.
    ///   - multiplier: F values `x_scale · w_scale[f] / y_scale`.
    ///   - workspace: ``workspaceByteCount(depth:filters:isa:)`` bytes, 64-byte aligned.
    package static func convolve(
        _ x: UnsafePointer<UInt8>, channels: Int, geometry g: ConvolutionGeometry, inputZero: Int32,
        filters: PackedIntegerMatrix, bias: UnsafePointer<Int32>?, multiplier: UnsafePointer<Float>,
        requantization: Requantization, into y: UnsafeMutableRawPointer, workspace: UnsafeMutableRawPointer,
        pool: ComputePool
    ) {
        let isa = filters.isa, cIsa = isa.cValue, k = filters.k, n = filters.n
        let pixels = g.outputArea
        let nr = IntegerGemm.nr(isa)
        let panels = (n + nr - 1) / nr
        let threads = min(pool.threadCount, slots)
        let (rowsPerBlock, blocks, parts) = split(pixels: pixels, depth: k, panels: panels, threads: threads, isa: isa)
        let slot = slotBytes(depth: k, isa: isa)
        let aBytes = roundedUp(onyx_qgemm_packed_a_bytes(cIsa, blockRows(depth: k, isa: isa), k))
        let stride = onyx_qgemm_a_stride(cIsa, k)
        let elementSize = onyx_qgemm_packed_a_bytes(cIsa, 1, k) / max(stride, 1)
        // A 1×1, stride-1, unpadded convolution reads its pixels as the GEMM's rows in place.
        let inPlace = g.kernelArea == 1 && g.strideY == 1 && g.strideX == 1 && g.padTop == 0 && g.padLeft == 0
            && onyx_qgemm_reads_a_in_place(cIsa, k) != 0
        let geometry = window(g, channels: channels, inputZero: inputZero)
        let q = requantization.c
        // Panels per GEMM call: as many as keep the weights read per call within ~256 KB.
        let panelsPerCall = max(1, (256 * 1024) / max(stride * nr, 1))
        let items = blocks * parts
        let workers = min(threads, items)

        // Every row's zero point is the input's: its term inputZero · columnTerm[f] joins the bias.
        let foldedBias = workspace.assumingMemoryBound(to: Int32.self)
        for f in 0..<n { foldedBias[f] = (bias?[f] ?? 0) &+ inputZero &* filters.columnTerm[f] }
        let slotBase = workspace + roundedUp(n * 4)

        withUnsafePointer(to: geometry) { geometry in withUnsafePointer(to: q) { q in
        pool.parallelFor(workers) { worker in
            let base = slotBase + worker * slot
            let rowSums = filters.zeroPointsAreZero ? nil : (base + aBytes).assumingMemoryBound(to: Int32.self)
            var out = onyx_qgemm_output()
            out.row_sums = rowSums.map { UnsafePointer($0) }
            out.ldc = n
            out.int_bias = UnsafePointer(foldedBias)
            out.requantize = q
            out.col_scale = multiplier
            out.row_zero = nil
            out.col_zero = filters.columnZero
            out.col_comp = filters.columnTerm
            var item = worker, prepared = -1
            var a = UnsafeRawPointer(base), lda = stride
            while item < items {
                let block = item / parts, part = item % parts
                let first = block * rowsPerBlock, rows = min(rowsPerBlock, pixels - first)
                if block != prepared {
                    if inPlace {
                        (a, lda) = (UnsafeRawPointer(x + first * channels), channels)
                        if let rowSums { onyx_qgemm_row_sums(x + first * channels, channels, rows, k, rowSums) }
                    } else {
                        onyx_qconv_im2col(geometry, x, first, first + rows, elementSize, stride, base, rowSums)
                        (a, lda) = (UnsafeRawPointer(base), stride)
                    }
                    prepared = block
                }
                out.y8 = y + first * n
                var panel = panels * part / parts
                let last = panels * (part + 1) / parts
                while panel < last {
                    let end = min(last, panel + panelsPerCall)
                    onyx_qgemm(cIsa, rows, n, k, a, lda, filters.panels, panel, end, &out)
                    panel = end
                }
                item += workers
            }
        }
        } }
    }

    /// Depthwise filters `[F][1][kh][kw]` (8-bit, minus their zero points) as `[kh][kw][F]` int16.
    package static func depthwiseFilters(
        _ w: UnsafeRawPointer, signed: Bool, filters: Int, area: Int, zeroPoint: (Int) -> Int32
    ) -> [Int16] {
        var out = [Int16](repeating: 0, count: filters * area)
        for f in 0..<filters {
            let z = zeroPoint(f)
            for i in 0..<area {
                let raw = w.load(fromByteOffset: f * area + i, as: UInt8.self)
                let v = signed ? Int32(Int8(bitPattern: raw)) : Int32(raw)
                out[i * filters + f] = Int16(v - z)
            }
        }
        return out
    }

    /// Depthwise filters packed for the row kernel (`onyx_qdepthwise_pack`): the weights in blocks of
    /// channels and pairs of taps, the bias with the input's zero point folded in, the multipliers.
    package struct DepthwiseFilters: Sendable {
        let weights: [Int16]
        let bias: [Int32]
        let multiplier: [Float]

        /// - Parameters:
        ///   - filters: ``depthwiseFilters(_:signed:filters:area:zeroPoint:)`` of `taps` taps.
        ///   - bias: One per channel, or nil.
        ///   - multiplier: One per channel.
        package init(_ filters: [Int16], taps: Int, channels: Int, bias: [Int32]?, multiplier: [Float], inputZero: Int32) {
            let padded = onyx_qdepthwise_packed_channels(channels)
            var weights = [Int16](repeating: 0, count: onyx_qdepthwise_packed_weights(taps, channels))
            var packedBias = [Int32](repeating: 0, count: padded)
            var packedMultiplier = [Float](repeating: 0, count: padded)
            filters.withUnsafeBufferPointer { w in multiplier.withUnsafeBufferPointer { m in
                (bias ?? []).withUnsafeBufferPointer { b in
                    onyx_qdepthwise_pack(w.baseAddress, taps, channels, bias == nil ? nil : b.baseAddress, m.baseAddress,
                                         inputZero, &weights, &packedBias, &packedMultiplier)
                }
            } }
            self.weights = weights
            self.bias = packedBias
            self.multiplier = packedMultiplier
        }
    }

    /// Workspace of ``depthwise``: per slot, an int32 accumulator row and a row of the input's zero point.
    package static func depthwiseWorkspaceByteCount(channels: Int) -> Int {
        slots * depthwiseSlotBytes(channels: channels)
    }

    private static func depthwiseSlotBytes(channels: Int) -> Int {
        let padded = onyx_qdepthwise_packed_channels(channels)
        return roundedUp(padded * 4) + roundedUp(padded)
    }

    /// One NHWC image through a depthwise convolution (``DepthwiseFilters``).
    package static func depthwise(
        _ x: UnsafePointer<UInt8>, channels: Int, geometry g: ConvolutionGeometry, inputZero: Int32,
        filters: DepthwiseFilters, requantization: Requantization, into y: UnsafeMutableRawPointer,
        workspace: UnsafeMutableRawPointer, isa: KernelISA, pool: ComputePool
    ) {
        let geometry = window(g, channels: channels, inputZero: inputZero)
        let q = requantization.c
        let rows = g.outputHeight, rowBytes = g.outputWidth * channels
        let workers = min(pool.threadCount, slots, rows)
        let cIsa = isa.cValue
        let padded = onyx_qdepthwise_packed_channels(channels), slot = depthwiseSlotBytes(channels: channels)
        filters.weights.withUnsafeBufferPointer { w in filters.bias.withUnsafeBufferPointer { b in
        filters.multiplier.withUnsafeBufferPointer { m in
        let packed = onyx_qdepthwise_filters(weights: w.baseAddress, bias: b.baseAddress, multiplier: m.baseAddress)
        withUnsafePointer(to: packed) { packed in withUnsafePointer(to: geometry) { geometry in
        withUnsafePointer(to: q) { q in
        pool.parallelFor(workers) { worker in
            let base = workspace + worker * slot
            let acc = base.assumingMemoryBound(to: Int32.self)
            let pad = (base + roundedUp(padded * 4)).assumingMemoryBound(to: UInt8.self)
            pad.initialize(repeating: UInt8(truncatingIfNeeded: inputZero), count: padded)
            // Rows in contiguous runs, so a thread's input rows overlap from one output row to the next.
            for oh in (rows * worker / workers)..<(rows * (worker + 1) / workers) {
                onyx_qdepthwise_row(cIsa, geometry, x, packed, q, oh, acc, pad, y + oh * rowBytes)
            }
        }
        } } } } } }
    }

    /// One NHWC uint8 image max-pooled (padded taps skipped).
    package static func maxPool(
        _ x: UnsafePointer<UInt8>, channels: Int, geometry g: ConvolutionGeometry, into y: UnsafeMutablePointer<UInt8>,
        pool: ComputePool
    ) {
        let rowBytes = g.outputWidth * channels
        withUnsafePointer(to: window(g, channels: channels, inputZero: 0)) { geometry in
            pool.parallelRanges(g.outputHeight) { rows in
                for oh in rows { onyx_qmax_pool_row(geometry, x, oh, y + oh * rowBytes) }
            }
        }
    }

    /// QLinearAdd (or, `multiply`, QLinearMul) of 8-bit `a` and `b` broadcast to `shape` (NumPy
    /// rules), with `aRatio = a_scale / y_scale` and `bRatio = b_scale / y_scale` (for a product,
    /// `aRatio = a_scale · b_scale / y_scale`). Each row of the broadcast (``BinaryBroadcastPlan``:
    /// a squeeze-excitation scale `[N, C, 1, 1]` against `[N, C, H, W]` is N·C rows of H·W against
    /// one value) is one kernel call, an operand repeated along it passed as its scalar; rows are
    /// split between threads.
    package static func binary(
        multiply: Bool, _ a: UnsafeRawPointer, shape aShape: [Int], aZero: Int32, aRatio: Float,
        _ b: UnsafeRawPointer, shape bShape: [Int], bZero: Int32, bRatio: Float, requantization: Requantization,
        into y: UnsafeMutableRawPointer, shape: [Int], inputSigned: Bool, isa: KernelISA, pool: ComputePool
    ) {
        let cIsa = isa.cValue, op: Int32 = multiply ? 1 : 0, signed: Int32 = inputSigned ? 1 : 0
        // Both operations commute; with a as the repeated one, b goes first, and for a product
        // the first ratio is the whole scale product.
        let swappedRatios = multiply ? (aRatio, Float(0)) : (bRatio, aRatio)
        withUnsafePointer(to: requantization.c) { q in
        BinaryBroadcastPlan.withPlan(aShape, bShape, output: shape) { plan in
            let (stepA, stepB) = (plan.stepA, plan.stepB)
            pool.forEachChunk(plan.elementCount, costPerItem: 2) { range in
                plan.forEachSegment(range) { o, offsetA, offsetB, count in
                    switch (stepA, stepB) {
                    case (1, _):
                        onyx_qlinear_binary(cIsa, op, a + offsetA, aZero, aRatio, b + offsetB, stepB, bZero, bRatio, q,
                                            y + o, count, signed)
                    case (0, 1):
                        onyx_qlinear_binary(cIsa, op, b + offsetB, bZero, swappedRatios.0, a + offsetA, 0, aZero,
                                            swappedRatios.1, q, y + o, count, signed)
                    default:  // one value along the row
                        onyx_qlinear_binary(cIsa, op, a + offsetA, aZero, aRatio, b + offsetB, 0, bZero, bRatio, q,
                                            y + o, 1, signed)
                        (y + o + 1).initializeMemory(as: UInt8.self, repeating: y.load(fromByteOffset: o, as: UInt8.self),
                                                     count: count - 1)
                    }
                }
            }
        }
        }
    }

    /// The requantization loop alone: `rows` rows of `n` int32 sums (`ldAcc` apart) into `y` (`ldY` bytes apart).
    package static func requantize(
        _ acc: UnsafePointer<Int32>, ldAcc: Int, bias: UnsafePointer<Int32>?, multiplier: UnsafePointer<Float>,
        requantization: Requantization, into y: UnsafeMutableRawPointer, ldY: Int, rows: Int, n: Int, isa: KernelISA
    ) {
        var q = requantization.c
        onyx_qrequantize(isa.cValue, acc, ldAcc, bias, multiplier, &q, y, ldY, rows, n)
    }
}
