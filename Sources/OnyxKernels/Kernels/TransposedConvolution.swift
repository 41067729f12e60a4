/// The geometry of one transposed convolution, with 1-D and 2-D inputs lifted to 3-D (leading
/// extents of 1): input pixel `i` and kernel tap `k` add into output pixel `i·s + k·d − pad`.
@usableFromInline package struct TransposedConvolutionGeometry: Equatable {
    @usableFromInline package var input: [Int]
    @usableFromInline package var kernel: [Int]
    @usableFromInline package var output: [Int]
    @usableFromInline package var strides: [Int]
    @usableFromInline package var dilations: [Int]
    @usableFromInline package var padBegin: [Int]

    @usableFromInline package var inputArea: Int { input.reduce(1, *) }
    @usableFromInline package var kernelArea: Int { kernel.reduce(1, *) }
    @usableFromInline package var outputArea: Int { output.reduce(1, *) }

    /// Lifts spatial extents of rank 1…3 to rank 3.
    package init(input: [Int], kernel: [Int], output: [Int], strides: [Int], dilations: [Int], padBegin: [Int]) {
        let lift = 3 - input.count
        func lifted(_ values: [Int], _ fill: Int) -> [Int] { Array(repeating: fill, count: lift) + values }
        self.input = lifted(input, 1)
        self.kernel = lifted(kernel, 1)
        self.output = lifted(output, 1)
        self.strides = lifted(strides, 1)
        self.dilations = lifted(dilations, 1)
        self.padBegin = lifted(padBegin, 0)
    }

    /// Input positions `i` along `axis` with `0 ≤ i·s + k·d − pad < output` for tap `k`.
    @inlinable @inline(__always)
    package func validInputs(axis: Int, tap: Int) -> Range<Int> {
        let offset = tap * dilations[axis] - padBegin[axis]
        let s = strides[axis]
        // First i with i·s + offset ≥ 0, and first i with i·s + offset ≥ output.
        let first = offset >= 0 ? 0 : (-offset + s - 1) / s
        let limit = output[axis] - offset
        let last = limit <= 0 ? 0 : (limit + s - 1) / s
        let lower = min(first, input[axis]), upper = min(max(last, lower), input[axis])
        return lower..<upper
    }
}

@usableFromInline package enum TransposedConvolution {
    /// Adds the columns of one output channel into its plane (col2im): `columns` holds
    /// `kernelArea` rows of `inputArea` values, row `(kz, ky, kx)`.
    ///
    /// - Parameter outputRows: Only the output rows (axis 1) in this range, so that threads can
    ///   share one plane; `nil`, all of them.
    @inlinable package static func accumulateColumns<T: BinaryFloatingPoint>(
        _ columns: UnsafePointer<T>, into plane: UnsafeMutablePointer<T>, geometry g: TransposedConvolutionGeometry,
        outputRows: Range<Int>? = nil
    ) {
        let (ih, iw) = (g.input[1], g.input[2])
        let (oh, ow) = (g.output[1], g.output[2])
        var tap = 0
        for kz in 0..<g.kernel[0] {
            let zs = g.validInputs(axis: 0, tap: kz)
            for ky in 0..<g.kernel[1] {
                var ys = g.validInputs(axis: 1, tap: ky)
                if let outputRows {
                    // The input rows iy whose output row iy·s + offset lies in outputRows.
                    let offset = ky * g.dilations[1] - g.padBegin[1], s = g.strides[1]
                    func ceilingQuotient(_ a: Int) -> Int { a >= 0 ? (a + s - 1) / s : -(-a / s) }
                    let lower = max(ys.lowerBound, ceilingQuotient(outputRows.lowerBound - offset))
                    let upper = min(ys.upperBound, ceilingQuotient(outputRows.upperBound - offset))
                    ys = lower..<max(lower, upper)
                }
                for kx in 0..<g.kernel[2] {
                    defer { tap += 1 }
                    let xs = g.validInputs(axis: 2, tap: kx)
                    guard !xs.isEmpty else { continue }
                    let row = columns + tap * g.inputArea
                    let dx = kx * g.dilations[2] - g.padBegin[2], sx = g.strides[2]
                    for iz in zs {
                        let oz = iz * g.strides[0] + kz * g.dilations[0] - g.padBegin[0]
                        for iy in ys {
                            let oy = iy * g.strides[1] + ky * g.dilations[1] - g.padBegin[1]
                            let source = row + (iz * ih + iy) * iw
                            let target = plane + (oz * oh + oy) * ow + dx
                            if sx == 1 {
                                for ix in xs { target[ix] += source[ix] }
                            } else {
                                for ix in xs { target[ix * sx] += source[ix] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Direct transposed convolution for one image and group, accumulating in Double:
    /// `out[m] += Σ_c x[c] ⋆ w[c, m]` over `channels` input planes and `filters` output planes.
    @inlinable package static func direct<T: BinaryFloatingPoint>(
        _ x: UnsafePointer<T>, _ w: UnsafePointer<T>, into out: UnsafeMutablePointer<Double>,
        channels: Int, filters: Int, geometry g: TransposedConvolutionGeometry
    ) {
        let (ih, iw) = (g.input[1], g.input[2])
        let (oh, ow) = (g.output[1], g.output[2])
        for c in 0..<channels {
            let image = x + c * g.inputArea
            for m in 0..<filters {
                let plane = out + m * g.outputArea
                let taps = w + (c * filters + m) * g.kernelArea
                var tap = 0
                for kz in 0..<g.kernel[0] {
                    for ky in 0..<g.kernel[1] {
                        for kx in 0..<g.kernel[2] {
                            defer { tap += 1 }
                            let weight = Double(taps[tap])
                            let oz0 = kz * g.dilations[0] - g.padBegin[0]
                            let oy0 = ky * g.dilations[1] - g.padBegin[1]
                            let ox0 = kx * g.dilations[2] - g.padBegin[2]
                            for iz in g.validInputs(axis: 0, tap: kz) {
                                for iy in g.validInputs(axis: 1, tap: ky) {
                                    let oz = iz * g.strides[0] + oz0, oy = iy * g.strides[1] + oy0
                                    let source = image + (iz * ih + iy) * iw
                                    let target = plane + (oz * oh + oy) * ow
                                    for ix in g.validInputs(axis: 2, tap: kx) {
                                        target[ix * g.strides[2] + ox0] += weight * Double(source[ix])
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
