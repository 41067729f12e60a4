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

    /// Bytes of one slot of ``convolve``: the block's im2col rows, their row terms and the int32 sums.
    static func slotBytes(depth: Int, filters: Int, isa: KernelISA) -> Int {
        let rows = blockRows(depth: depth, isa: isa)
        let a = onyx_qgemm_packed_a_bytes(isa.cValue, rows, depth)
        return roundedUp(a) + roundedUp(2 * rows * 4) + roundedUp(rows * filters * 4)
    }

    private static func roundedUp(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }

    /// Workspace of ``convolve`` for one image.
    package static func workspaceByteCount(depth: Int, filters: Int, isa: KernelISA) -> Int {
        slots * slotBytes(depth: depth, filters: filters, isa: isa)
    }

    /// The C geometry of a window over an NHWC image.
    static func window(_ g: ConvolutionGeometry, channels: Int, inputZero: Int32) -> onyx_qdepthwise_geometry {
        onyx_qdepthwise_geometry(
            in_h: g.inputHeight, in_w: g.inputWidth, channels: channels, out_h: g.outputHeight, out_w: g.outputWidth,
            kernel_h: g.kernelHeight, kernel_w: g.kernelWidth, stride_h: g.strideY, stride_w: g.strideX,
            dilation_h: g.dilationY, dilation_w: g.dilationX, pad_top: g.padTop, pad_left: g.padLeft,
            input_zero: inputZero)
    }

    /// One NHWC image `x` (`channels` per pixel) convolved with the packed filters into `y`
    /// (`filters.n` per pixel): `y = requantize(Σ (x − inputZero)(w − w_zero) + bias)`.
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
        let rowsPerBlock = blockRows(depth: k, isa: isa)
        let blocks = (pixels + rowsPerBlock - 1) / rowsPerBlock
        let slot = slotBytes(depth: k, filters: n, isa: isa)
        let aBytes = roundedUp(onyx_qgemm_packed_a_bytes(cIsa, rowsPerBlock, k))
        let stride = onyx_qgemm_a_stride(cIsa, k)
        let elementSize = onyx_qgemm_packed_a_bytes(cIsa, 1, k) / max(stride, 1)
        // A 1×1, stride-1, unpadded convolution reads its pixels as the GEMM's rows in place.
        let inPlace = g.kernelArea == 1 && g.strideY == 1 && g.strideX == 1 && g.padTop == 0 && g.padLeft == 0
            && onyx_qgemm_reads_a_in_place(cIsa, k) != 0
        let geometry = window(g, channels: channels, inputZero: inputZero)
        let q = requantization.c
        let nr = IntegerGemm.nr(isa)
        let panels = (n + nr - 1) / nr
        // Panels per GEMM call: as many as keep the weights read per call within ~256 KB.
        let panelsPerCall = max(1, (256 * 1024) / max(stride * nr, 1))
        let workers = min(pool.threadCount, slots, blocks)

        withUnsafePointer(to: geometry) { geometry in withUnsafePointer(to: q) { q in
        pool.parallelFor(workers) { worker in
            let base = workspace + worker * slot
            let rowZero = (base + aBytes).assumingMemoryBound(to: Int32.self)
            let rowSums = filters.zeroPointsAreZero ? nil : rowZero + rowsPerBlock
            let sums = (base + aBytes + roundedUp(2 * rowsPerBlock * 4)).assumingMemoryBound(to: Int32.self)
            for r in 0..<rowsPerBlock { rowZero[r] = inputZero }
            var block = worker
            while block < blocks {
                let first = block * rowsPerBlock, rows = min(rowsPerBlock, pixels - first)
                let a: UnsafeRawPointer, lda: Int
                if inPlace {
                    (a, lda) = (UnsafeRawPointer(x + first * channels), channels)
                    if let rowSums { onyx_qgemm_row_sums(x + first * channels, channels, rows, k, rowSums) }
                } else {
                    onyx_qconv_im2col(geometry, x, first, first + rows, elementSize, stride, base, rowSums)
                    (a, lda) = (UnsafeRawPointer(base), stride)
                }
                var out = onyx_qgemm_output()
                out.c = sums
                out.ldc = n
                out.row_zero = UnsafePointer(rowZero)
                out.row_sums = rowSums.map { UnsafePointer($0) }
                out.col_zero = filters.columnZero
                out.col_comp = filters.columnTerm
                var panel = 0
                while panel < panels {
                    let end = min(panels, panel + panelsPerCall)
                    onyx_qgemm(cIsa, rows, n, k, a, lda, filters.panels, panel, end, &out)
                    panel = end
                }
                onyx_qrequantize(cIsa, sums, n, bias, multiplier, q, y + first * n, n, rows, n)
                block += workers
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

    /// Workspace of ``depthwise`` (one int32 accumulator row per slot).
    package static func depthwiseWorkspaceByteCount(channels: Int) -> Int { slots * roundedUp(channels * 4) }

    /// One NHWC image through a depthwise convolution (``depthwiseFilters(_:signed:filters:area:zeroPoint:)``).
    package static func depthwise(
        _ x: UnsafePointer<UInt8>, channels: Int, geometry g: ConvolutionGeometry, inputZero: Int32,
        filters: UnsafePointer<Int16>, bias: UnsafePointer<Int32>?, multiplier: UnsafePointer<Float>,
        requantization: Requantization, into y: UnsafeMutableRawPointer, workspace: UnsafeMutableRawPointer,
        isa: KernelISA, pool: ComputePool
    ) {
        let geometry = window(g, channels: channels, inputZero: inputZero)
        let q = requantization.c
        let rows = g.outputHeight, rowBytes = g.outputWidth * channels
        let workers = min(pool.threadCount, slots, rows)
        let cIsa = isa.cValue
        withUnsafePointer(to: geometry) { geometry in withUnsafePointer(to: q) { q in
        pool.parallelFor(workers) { worker in
            let acc = (workspace + worker * roundedUp(channels * 4)).assumingMemoryBound(to: Int32.self)
            var oh = worker
            while oh < rows {
                onyx_qdepthwise_row(cIsa, geometry, x, filters, bias, multiplier, q, oh, acc, y + oh * rowBytes)
                oh += workers
            }
        }
        } }
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

    /// QLinearAdd (or, `multiply`, QLinearMul) of `count` elements of a and b (`bStep` 0: one b
    /// broadcast), with `aRatio = a_scale / y_scale` and `bRatio = b_scale / y_scale` (for a product,
    /// `aRatio = a_scale · b_scale / y_scale`).
    package static func binary(
        multiply: Bool, _ a: UnsafeRawPointer, aZero: Int32, aRatio: Float, _ b: UnsafeRawPointer, bStep: Int,
        bZero: Int32, bRatio: Float, requantization: Requantization, into y: UnsafeMutableRawPointer, count: Int,
        inputSigned: Bool, isa: KernelISA, pool: ComputePool
    ) {
        let cIsa = isa.cValue
        withUnsafePointer(to: requantization.c) { q in
            pool.forEachChunk(count, costPerItem: 2) { r in
                onyx_qlinear_binary(cIsa, multiply ? 1 : 0, a + r.lowerBound, aZero, aRatio, b + r.lowerBound * bStep,
                                    bStep, bZero, bRatio, q, y + r.lowerBound, r.count, inputSigned ? 1 : 0)
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
