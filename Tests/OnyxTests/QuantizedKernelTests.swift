import Testing
@testable import OnyxCore
@testable import OnyxKernels

/// The quantized convolution kernels (`Sources/CKernels/qconv*.c`, and the integer GEMM's
/// requantizing epilogue in `qgemm*.c`) on every ISA this CPU runs, one and two threads, against a
/// direct scalar loop that requantizes as the kernels document: exactly the same bytes.
@Suite struct QuantizedKernelTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var channels, filters, height, width, kernel, stride, pad: Int
        var dilation = 1
        var weightZero = false
        var signedOutput = false
        var narrowed = false
        var bias = true
        var testDescription: String {
            "\(channels)→\(filters) \(height)×\(width) k\(kernel) s\(stride) p\(pad) d\(dilation)"
                + "\(weightZero ? " w_zero" : "")\(signedOutput ? " int8" : "")\(narrowed ? " relu" : "")"
                + "\(bias ? "" : " no bias")"
        }

        var geometry: ConvolutionGeometry {
            let span = dilation * (kernel - 1) + 1
            return ConvolutionGeometry(
                inputHeight: height, inputWidth: width, kernelHeight: kernel, kernelWidth: kernel, strideY: stride,
                strideX: stride, dilationY: dilation, dilationX: dilation, padTop: pad, padLeft: pad,
                outputHeight: (height + 2 * pad - span) / stride + 1, outputWidth: (width + 2 * pad - span) / stride + 1)
        }

        var requantization: Requantization {
            var q = Requantization(zeroPoint: signedOutput ? -7 : 93, signed: signedOutput)
            if narrowed { q.low = q.zeroPoint + 2 }
            return q
        }
    }

    /// Depthwise: channel counts around the 32-channel blocks (a tail, none, one short block),
    /// borders, strides, dilation, and a kernel of more taps than one chunk (81 > 64).
    static let depthwiseCases: [Case] = [
        Case(channels: 32, filters: 32, height: 9, width: 11, kernel: 3, stride: 1, pad: 1),
        Case(channels: 144, filters: 144, height: 7, width: 6, kernel: 3, stride: 1, pad: 1, signedOutput: true),
        Case(channels: 5, filters: 5, height: 10, width: 9, kernel: 3, stride: 2, pad: 1, narrowed: true),
        Case(channels: 33, filters: 33, height: 8, width: 8, kernel: 5, stride: 1, pad: 2, dilation: 2, weightZero: true),
        Case(channels: 40, filters: 40, height: 12, width: 12, kernel: 9, stride: 1, pad: 4, bias: false),
        Case(channels: 64, filters: 64, height: 5, width: 5, kernel: 1, stride: 1, pad: 0),
        Case(channels: 96, filters: 96, height: 13, width: 13, kernel: 3, stride: 2, pad: 0),
    ]

    /// GEMM convolutions: 1×1 read in place, few pixels (the filters split between threads), many
    /// pixels (several blocks), im2col with padding, filter counts off the 32-column panels.
    static let gemmCases: [Case] = [
        Case(channels: 16, filters: 96, height: 20, width: 20, kernel: 1, stride: 1, pad: 0),
        Case(channels: 160, filters: 320, height: 7, width: 7, kernel: 1, stride: 1, pad: 0, narrowed: true),
        Case(channels: 24, filters: 40, height: 3, width: 3, kernel: 1, stride: 1, pad: 0, weightZero: true),
        Case(channels: 3, filters: 32, height: 33, width: 31, kernel: 3, stride: 2, pad: 1),
        Case(channels: 20, filters: 7, height: 9, width: 9, kernel: 3, stride: 1, pad: 1, weightZero: true,
             signedOutput: true),
        Case(channels: 8, filters: 70, height: 64, width: 64, kernel: 1, stride: 1, pad: 0, bias: false),
        Case(channels: 12, filters: 24, height: 11, width: 11, kernel: 1, stride: 2, pad: 0),
    ]

    static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var stream = IntegerGemmTests.Bytes(state: seed)
        return (0..<count).map { _ in stream.next() }
    }

    /// `saturate(round_half_even(float(sum) · multiplier) + zero)` into [low, high], in plain Swift.
    static func requantized(_ sum: Int32, _ multiplier: Float, _ q: Requantization) -> UInt8 {
        let lo = Float(q.low - q.zeroPoint), hi = Float(q.high - q.zeroPoint)
        let v = min(max(Float(sum) * multiplier, lo), hi)
        let r = Int32(v.rounded(.toNearestOrEven)) + q.zeroPoint
        return UInt8(truncatingIfNeeded: r)
    }

    struct Operands {
        let x: [UInt8]
        let w: [UInt8]  // int8 bit patterns, [F][C/groups][kh][kw]
        let wZero: [Int32]
        let bias: [Int32]?
        let multiplier: [Float]
        let inputZero: Int32 = 117

        init(_ c: Case, perFilter: Int) {
            x = QuantizedKernelTests.bytes(c.height * c.width * c.channels, seed: UInt64(c.channels * 31 + c.height))
            w = QuantizedKernelTests.bytes(c.filters * perFilter * c.kernel * c.kernel, seed: UInt64(c.filters + 5))
            wZero = (0..<c.filters).map { c.weightZero ? Int32($0 % 7) - 3 : 0 }
            bias = c.bias ? (0..<c.filters).map { Int32($0 * 977 % 20000) - 10000 } : nil
            // Scales that spread the sums over the output range without saturating all of it.
            let scale = 1 / Float(perFilter * c.kernel * c.kernel * 100)
            multiplier = (0..<c.filters).map { scale * Float($0 % 5 + 1) }
        }

        func weight(_ f: Int, _ i: Int) -> Int32 { Int32(Int8(bitPattern: w[i])) - wZero[f] }
    }

    /// The expected NHWC output of a convolution of `groups` 1 (all channels) or `channels` (depthwise).
    static func reference(_ c: Case, _ o: Operands, depthwise: Bool) -> [UInt8] {
        let g = c.geometry, q = c.requantization, perFilter = depthwise ? 1 : c.channels
        var y = [UInt8](repeating: 0, count: g.outputArea * c.filters)
        for oh in 0..<g.outputHeight {
            for ow in 0..<g.outputWidth {
                for f in 0..<c.filters {
                    var sum = o.bias?[f] ?? 0
                    for ky in 0..<c.kernel {
                        for kx in 0..<c.kernel {
                            let iy = oh * c.stride + ky * c.dilation - c.pad, ix = ow * c.stride + kx * c.dilation - c.pad
                            guard iy >= 0, iy < c.height, ix >= 0, ix < c.width else { continue }
                            for ch in 0..<perFilter {
                                let channel = depthwise ? f : ch
                                let xv = Int32(o.x[(iy * c.width + ix) * c.channels + channel]) - o.inputZero
                                sum &+= xv &* o.weight(f, ((f * perFilter + ch) * c.kernel + ky) * c.kernel + kx)
                            }
                        }
                    }
                    y[(oh * g.outputWidth + ow) * c.filters + f] = requantized(sum, o.multiplier[f], q)
                }
            }
        }
        return y
    }

    static func expectSame(_ got: [UInt8], _ want: [UInt8], _ what: String) {
        #expect(got.count == want.count)
        let wrong = zip(got, want).enumerated().filter { $0.element.0 != $0.element.1 }
        #expect(wrong.isEmpty, "\(what): \(wrong.count) of \(got.count) differ, first at \(wrong.first?.offset ?? -1)")
        #expect(Set(want).count > 8, "\(what): a degenerate (saturated) output tests nothing")
    }

    static func workspace(_ bytes: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
    }

    @Test(arguments: KernelISA.supported, depthwiseCases)
    func depthwiseIsExact(isa: KernelISA, c: Case) throws {
        let o = Operands(c, perFilter: 1)
        let g = c.geometry, taps = c.kernel * c.kernel
        let unpacked = o.w.withUnsafeBytes {
            QuantizedConvolution.depthwiseFilters($0.baseAddress!, signed: true, filters: c.filters, area: taps) {
                o.wZero[$0]
            }
        }
        let filters = QuantizedConvolution.DepthwiseFilters(
            unpacked, taps: taps, channels: c.channels, bias: o.bias, multiplier: o.multiplier, inputZero: o.inputZero)
        let want = Self.reference(c, o, depthwise: true)
        let space = Self.workspace(QuantizedConvolution.depthwiseWorkspaceByteCount(channels: c.channels))
        defer { space.deallocate() }
        for threads in [1, 2] {
            var y = [UInt8](repeating: 0, count: want.count)
            o.x.withUnsafeBufferPointer { x in
                y.withUnsafeMutableBytes { out in
                    QuantizedConvolution.depthwise(
                        x.baseAddress!, channels: c.channels, geometry: g, inputZero: o.inputZero, filters: filters,
                        requantization: c.requantization, into: out.baseAddress!, workspace: space, isa: isa,
                        pool: ComputePool(threadCount: threads))
                }
            }
            Self.expectSame(y, want, "\(isa) \(c) on \(threads) threads")
        }
    }

    @Test(arguments: KernelISA.supported, gemmCases)
    func gemmConvolutionIsExact(isa: KernelISA, c: Case) throws {
        let o = Operands(c, perFilter: c.channels)
        let g = c.geometry, k = c.kernel * c.kernel * c.channels
        // [F][C][kh][kw] → K × F with K in (ky, kx, c) order, as QLinearConv's NHWC kernel packs it.
        var matrix = [UInt8](repeating: 0, count: k * c.filters)
        for f in 0..<c.filters {
            for ch in 0..<c.channels {
                for i in 0..<(c.kernel * c.kernel) {
                    matrix[(i * c.channels + ch) * c.filters + f] = o.w[(f * c.channels + ch) * c.kernel * c.kernel + i]
                }
            }
        }
        let packed = matrix.withUnsafeBytes {
            PackedIntegerMatrix.prepack($0.baseAddress!, signed: true, k: k, n: c.filters, ld: c.filters, isa: isa) {
                o.wZero[$0]
            }
        }
        let want = Self.reference(c, o, depthwise: false)
        let space = Self.workspace(QuantizedConvolution.workspaceByteCount(depth: k, filters: c.filters, isa: isa))
        defer { space.deallocate() }
        for threads in [1, 2] {
            var y = [UInt8](repeating: 0, count: want.count)
            o.x.withUnsafeBufferPointer { x in
                o.multiplier.withUnsafeBufferPointer { m in
                    (o.bias ?? []).withUnsafeBufferPointer { b in
                        y.withUnsafeMutableBytes { out in
                            QuantizedConvolution.convolve(
                                x.baseAddress!, channels: c.channels, geometry: g, inputZero: o.inputZero,
                                filters: packed, bias: o.bias == nil ? nil : b.baseAddress, multiplier: m.baseAddress!,
                                requantization: c.requantization, into: out.baseAddress!, workspace: space,
                                pool: ComputePool(threadCount: threads))
                        }
                    }
                }
            }
            Self.expectSame(y, want, "\(isa) \(c) on \(threads) threads")
        }
    }

    /// How ``QuantizedConvolution/convolve`` cuts an image: whole rounds of blocks for many pixels,
    /// the filters split between threads for few, every pixel covered once.
    /// The 256-byte table lookup of the quantized unary operators, on every ISA (AVX-512 with VBMI:
    /// 64 bytes per step, a masked tail), at lengths around the step, against the plain loop.
    @Test(arguments: KernelISA.supported)
    func tableLookupIsExact(isa: KernelISA) {
        let table = (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 167 &+ 13) }
        var stream = IntegerGemmTests.Bytes(state: 31)
        for count in [0, 1, 63, 64, 65, 127, 128, 200, 1000] {
            let x = (0..<count).map { _ in stream.next() }
            var y = [UInt8](repeating: 0, count: count + 1)
            y[count] = 0xA5  // past the end: left alone
            table.withUnsafeBufferPointer { t in
                x.withUnsafeBufferPointer { x in
                    y.withUnsafeMutableBufferPointer { y in
                        QuantizationLoops.lookup(t.baseAddress!, x.baseAddress ?? t.baseAddress!, into: y.baseAddress!,
                                                 count: count, isa: isa)
                    }
                }
            }
            #expect(Array(y.prefix(count)) == x.map { table[Int($0)] }, "\(isa) \(count) bytes")
            #expect(y[count] == 0xA5, "\(isa) \(count) bytes: wrote past the end")
        }
    }

    @Test func convolutionSplitCoversEveryPixel() {
        for isa in KernelISA.supported {
            for (pixels, depth, panels, threads) in [(49, 960, 10, 2), (12544, 27, 1, 2), (12544, 16, 3, 2), (3136, 144, 1, 1),
                                                     (5, 8, 1, 2), (196, 384, 2, 2), (100_000, 4096, 40, 8)] {
                let s = QuantizedConvolution.split(pixels: pixels, depth: depth, panels: panels, threads: threads, isa: isa)
                #expect(s.rows * s.blocks >= pixels && s.rows * (s.blocks - 1) < pixels, "\(pixels) pixels")
                #expect(s.rows <= QuantizedConvolution.blockRows(depth: depth, isa: isa))
                #expect(s.parts == 1 || s.parts == threads)
            }
        }
    }
}
