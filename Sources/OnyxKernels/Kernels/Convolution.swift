internal import CKernels
import OnyxCore

/// The geometry of one 2-D convolution or pooling window (1-D uses height 1).
@usableFromInline package struct ConvolutionGeometry: Hashable {
    package var inputHeight: Int, inputWidth: Int
    package var kernelHeight: Int, kernelWidth: Int
    package var strideY: Int, strideX: Int
    package var dilationY: Int, dilationX: Int
    package var padTop: Int, padLeft: Int
    package var outputHeight: Int, outputWidth: Int

    package var kernelArea: Int { kernelHeight * kernelWidth }
    package var outputArea: Int { outputHeight * outputWidth }
    package var inputArea: Int { inputHeight * inputWidth }

    /// A 1×1, stride-1, unpadded window reads the image as it is.
    package var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && strideY == 1 && strideX == 1 && padTop == 0 && padLeft == 0
            && outputHeight == inputHeight && outputWidth == inputWidth
    }

    package init(
        inputHeight: Int, inputWidth: Int, kernelHeight: Int, kernelWidth: Int, strideY: Int, strideX: Int,
        dilationY: Int, dilationX: Int, padTop: Int, padLeft: Int, outputHeight: Int, outputWidth: Int
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
        self.outputHeight = outputHeight
        self.outputWidth = outputWidth
    }
}

/// One spatial axis of a sliding window (Conv, the pools and their NCHWc forms): the output
/// extent and the pads before and after, from auto_pad or the explicit pads. Callers check that
/// the window fits as their operator requires.
@usableFromInline package enum WindowAxis {
    @usableFromInline package enum AutoPad: String, Sendable { case notSet = "NOTSET", sameUpper = "SAME_UPPER", sameLower = "SAME_LOWER", valid = "VALID" }

    /// `span` is the padded input's extent minus the window's (negative when the window does not fit).
    package static func resolve(
        input: Int, kernel: Int, stride: Int, dilation: Int, padBegin: Int, padEnd: Int, autoPad: AutoPad, ceilMode: Bool
    ) -> (output: Int, begin: Int, end: Int, span: Int) {
        let extent = (kernel - 1) * dilation + 1
        switch autoPad {
        case .sameUpper, .sameLower:
            let output = (input + stride - 1) / stride
            let total = max(0, (output - 1) * stride + extent - input)
            let begin = autoPad == .sameUpper ? total / 2 : total - total / 2
            return (output, begin, total - begin, input + total - extent)
        case .valid, .notSet:
            // VALID is explicit padding of 0, ceil_mode included, as onnxruntime computes it.
            let begin = autoPad == .notSet ? padBegin : 0, end = autoPad == .notSet ? padEnd : 0
            let span = input + begin + end - extent
            var output = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1
            // A last window that would start in the end padding is dropped (as PyTorch and onnxruntime do).
            if ceilMode && (output - 1) * stride >= input + begin { output -= 1 }
            return (output, begin, end, span)
        }
    }
}

/// Resolving spatial attributes (kernel_shape, strides, dilations, pads, auto_pad) against input shapes.
@usableFromInline package struct SpatialAttributes: Sendable {
    package var kernelShape: [Int]?
    package var strides: [Int]?
    package var dilations: [Int]?
    package var pads: [Int]?
    package var autoPad: String
    package var ceilMode: Bool = false

    package init(
        kernelShape: [Int]?, strides: [Int]?, dilations: [Int]?, pads: [Int]?, autoPad: String, ceilMode: Bool
    ) {
        (self.kernelShape, self.strides, self.dilations, self.pads) = (kernelShape, strides, dilations, pads)
        (self.autoPad, self.ceilMode) = (autoPad, ceilMode)
    }

    /// Output extents and begin pads for `spatial` input extents and the given kernel.
    package func resolve(spatial: [Int], kernel: [Int], op: String) throws -> (output: [Int], padBegin: [Int]) {
        let rank = spatial.count
        let strides = self.strides ?? Array(repeating: 1, count: rank)
        let dilations = self.dilations ?? Array(repeating: 1, count: rank)
        let pads = self.pads ?? Array(repeating: 0, count: 2 * rank)
        guard strides.count == rank, dilations.count == rank, pads.count == 2 * rank, kernel.count == rank else {
            throw OnyxError.invalidAttribute(
                "\(op): strides \(strides), dilations \(dilations), pads \(pads) and kernel \(kernel) do not fit \(rank) spatial axes")
        }
        guard strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }),
              kernel.allSatisfy({ $0 >= 1 }) else {
            throw OnyxError.invalidAttribute("\(op): strides, dilations and kernel must be ≥ 1 and pads ≥ 0")
        }
        var output: [Int] = []
        var begin: [Int] = []
        let mode = WindowAxis.AutoPad(rawValue: autoPad) ?? .notSet
        for axis in 0..<rank {
            let r = WindowAxis.resolve(
                input: spatial[axis], kernel: kernel[axis], stride: strides[axis], dilation: dilations[axis],
                padBegin: pads[axis], padEnd: pads[axis + rank], autoPad: mode, ceilMode: ceilMode && mode == .notSet)
            guard r.output >= 1 else {
                let extent = (kernel[axis] - 1) * dilations[axis] + 1
                throw OnyxError.shapeMismatch("\(op): a window of \(extent) does not fit spatial extent \(spatial[axis]) with the given pads")
            }
            output.append(r.output)
            begin.append(r.begin)
        }
        return (output, begin)
    }

    /// The 2-D geometry (1-D inputs get height 1).
    package func geometry(spatial: [Int], kernel: [Int], op: String) throws -> ConvolutionGeometry {
        let (output, begin) = try resolve(spatial: spatial, kernel: kernel, op: op)
        let strides = self.strides ?? Array(repeating: 1, count: spatial.count)
        let dilations = self.dilations ?? Array(repeating: 1, count: spatial.count)
        if spatial.count == 1 {
            return ConvolutionGeometry(
                inputHeight: 1, inputWidth: spatial[0], kernelHeight: 1, kernelWidth: kernel[0],
                strideY: 1, strideX: strides[0], dilationY: 1, dilationX: dilations[0],
                padTop: 0, padLeft: begin[0], outputHeight: 1, outputWidth: output[0])
        }
        guard spatial.count == 2 else {
            throw OnyxError.shapeMismatch("\(op): only 1-D and 2-D spatial inputs are supported, got \(spatial.count)-D")
        }
        return ConvolutionGeometry(
            inputHeight: spatial[0], inputWidth: spatial[1], kernelHeight: kernel[0], kernelWidth: kernel[1],
            strideY: strides[0], strideX: strides[1], dilationY: dilations[0], dilationX: dilations[1],
            padTop: begin[0], padLeft: begin[1], outputHeight: output[0], outputWidth: output[1])
    }
}

@usableFromInline package enum Convolution {
    /// Writes im2col of `image` (`channels` planes of the input) straight into packed B panels:
    /// row `p = (c, ky, kx)`, column = output pixel, zero where the window reads padding.
    ///
    /// Each row is first gathered into `line` (one contiguous run per output row, so the inner
    /// loops are plain copies), then cut into NR-wide pieces of the panels.
    package static func packImageColumns(
        _ image: UnsafePointer<Float>, channels: Int, geometry g: ConvolutionGeometry,
        nr: Int, into destination: UnsafeMutablePointer<Float>, rows: Range<Int>, line: UnsafeMutablePointer<Float>
    ) {
        if nr < 16 {
            return packImageStrips(image, channels: channels, geometry: g, nr: nr, into: destination, rows: rows)
        }
        let depth = channels * g.kernelArea
        let n = g.outputArea
        let panels = (n + nr - 1) / nr
        let ow = g.outputWidth
        for p in rows {
            let c = p / g.kernelArea
            let ky = (p % g.kernelArea) / g.kernelWidth
            let kx = p % g.kernelWidth
            let plane = image + c * g.inputArea
            let source: UnsafePointer<Float>
            if g.isPointwise {
                source = plane
            } else {
                let dx = kx * g.dilationX - g.padLeft
                // Output columns whose input column lies inside the image.
                let first = min(ow, max(0, (-dx + g.strideX - 1) / g.strideX))
                let last = max(first, min(ow, (g.inputWidth - dx + g.strideX - 1) / g.strideX))
                for oy in 0..<g.outputHeight {
                    let out = line + oy * ow
                    let iy = oy * g.strideY + ky * g.dilationY - g.padTop
                    guard iy >= 0 && iy < g.inputHeight else {
                        out.update(repeating: 0, count: ow)
                        continue
                    }
                    let inRow = plane + iy * g.inputWidth + dx
                    if first > 0 { out.update(repeating: 0, count: first) }
                    if g.strideX == 1 {
                        (out + first).update(from: inRow + first, count: last - first)
                    } else {
                        for ox in first..<last { out[ox] = inRow[ox * g.strideX] }
                    }
                    if last < ow { (out + last).update(repeating: 0, count: ow - last) }
                }
                source = UnsafePointer(line)
            }
            for panel in 0..<panels {
                let j0 = panel * nr
                let width = min(nr, n - j0)
                let out = destination + panel * depth * nr + p * nr
                out.update(from: source + j0, count: width)
                if width < nr { (out + width).update(repeating: 0, count: nr - width) }
            }
        }
    }

    /// im2col into strips narrower than a vector (the transposed tile's 7 pixels), for maps of few
    /// output pixels: per kernel tap, each pixel's offset in a channel plane (−1 in the padding) is
    /// found once, and that tap's row of every channel is a gather through them. (Row by row, as
    /// ``packImageColumns`` goes, the per-row set-up cost more than the few pixels it copies: a
    /// streaming 1-D model's convolutions of 1–4 pixels spent a third of their time there.)
    private static func packImageStrips(
        _ image: UnsafePointer<Float>, channels: Int, geometry g: ConvolutionGeometry,
        nr: Int, into destination: UnsafeMutablePointer<Float>, rows: Range<Int>
    ) {
        let area = g.kernelArea, depth = channels * area, n = g.outputArea
        let strips = (n + nr - 1) / nr
        withUnsafeTemporaryAllocation(of: Int.self, capacity: n) { buffer in
            let offsets = buffer.baseAddress!
            for tap in 0..<area {
                // The channels whose row p = c · area + tap lies in `rows`.
                let firstChannel = (rows.lowerBound - tap + area - 1) / area
                let endChannel = min(channels, (rows.upperBound - tap + area - 1) / area)
                guard firstChannel < endChannel else { continue }
                let ky = tap / g.kernelWidth, kx = tap % g.kernelWidth
                for oy in 0..<g.outputHeight {
                    let iy = oy * g.strideY + ky * g.dilationY - g.padTop
                    for ox in 0..<g.outputWidth {
                        let ix = ox * g.strideX + kx * g.dilationX - g.padLeft
                        let inside = iy >= 0 && iy < g.inputHeight && ix >= 0 && ix < g.inputWidth
                        offsets[oy * g.outputWidth + ox] = inside ? iy * g.inputWidth + ix : -1
                    }
                }
                for c in firstChannel..<endChannel {
                    let plane = image + c * g.inputArea
                    let p = c * area + tap
                    for strip in 0..<strips {
                        let j0 = strip * nr, width = min(nr, n - j0)
                        let out = destination + strip * depth * nr + p * nr
                        for j in 0..<width {
                            let offset = offsets[j0 + j]
                            out[j] = offset >= 0 ? plane[offset] : 0
                        }
                        for j in width..<nr { out[j] = 0 }
                    }
                }
            }
        }
    }

    /// Direct depthwise convolution of one channel plane (one filter per channel): the
    /// micro-kernel of the ISA in `CKernels`, vectorised along output rows.
    package static func depthwisePlane(
        _ input: UnsafePointer<Float>, _ filter: UnsafePointer<Float>, bias: Float,
        _ output: UnsafeMutablePointer<Float>, geometry g: ConvolutionGeometry, activation: FusedActivation?,
        isa: KernelISA
    ) {
        var window = onyx_depthwise_geometry(
            in_h: g.inputHeight, in_w: g.inputWidth, out_h: g.outputHeight, out_w: g.outputWidth,
            kernel_h: g.kernelHeight, kernel_w: g.kernelWidth, stride_y: g.strideY, stride_x: g.strideX,
            dilation_y: g.dilationY, dilation_x: g.dilationX, pad_top: g.padTop, pad_left: g.padLeft)
        FusedActivation.withCValue(activation) {
            onyx_depthwise_plane(isa.cValue, input, filter, bias, output, &window, $0)
        }
    }
}
