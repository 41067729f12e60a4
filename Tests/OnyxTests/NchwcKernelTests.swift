import Testing
@testable import OnyxKernels

/// The NCHWc C kernels of every vector variant this CPU runs against the portable ones, called
/// directly: filter groups, channel blocks and output rows in ranges (as threads split them),
/// accumulation onto what the output holds, every fused activation, and shapes that leave lanes,
/// register tiles and filter groups partly filled. (``NchwcTests`` checks the operators against
/// the plain ONNX ones.)
@Suite struct NchwcKernelTests {
    static let block = NchwcLoops.block
    static var vectorVariants: [KernelISA] { KernelISA.supported.filter { $0 != .portable } }

    static let activations: [FusedActivation?] = [
        nil, .relu, .clip(min: -0.5, max: 0.7), .sigmoid, .silu, .hardSigmoid(alpha: 0.3, beta: 0.4), .hardSwish,
        .leakyRelu(alpha: 0.2), .gelu, .geluTanh,
    ]

    static func random(_ count: Int, seed: Int) -> [Float] {
        var state = UInt64(truncatingIfNeeded: seed &* 2654435761 &+ 97)
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(state >> 41) % 2001 - 1000) / 1000
        }
    }

    static func blocks(_ channels: Int) -> Int { (channels + block - 1) / block }

    /// `[C][H][W]` as NCHWc (zero lanes), through the portable reorder.
    static func blocked(_ plain: [Float], channels: Int, area: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: blocks(channels) * area * block)
        NchwcLoops.reorderIn(plain, channels: channels, area: area, into: &out, blocks: 0..<blocks(channels), isa: .portable)
        return out
    }

    /// `a` and `b` agree within 1e-4 (relative and absolute); NaN only where the other is NaN.
    static func expectClose(_ a: [Float], _ b: [Float], _ label: String) {
        #expect(a.count == b.count, "\(label): count")
        var worst: Float = 0, mismatchedNaN = 0
        for (x, y) in zip(a, b) {
            if x.isNaN || y.isNaN { mismatchedNaN += x.isNaN == y.isNaN ? 0 : 1; continue }
            worst = max(worst, abs(x - y) - 1e-4 * abs(y) - 1e-4)
        }
        #expect(worst <= 0 && mismatchedNaN == 0, "\(label): exceeds tolerance by \(worst), \(mismatchedNaN) NaN mismatches")
    }

    /// Splits `0..<count` into two ranges at about a third (one range when count is 1).
    static func halves(_ count: Int) -> [Range<Int>] {
        let cut = max(count / 3, 1)
        return cut < count ? [0..<cut, cut..<count] : [0..<count]
    }

    struct Window: CustomTestStringConvertible, Sendable {
        var inChannels = 17, outChannels = 72, height = 9, width = 11
        var kernel = (3, 3), stride = (1, 1), dilation = (1, 1), pad = (1, 1)
        var plainInput = false

        func geometry(outChannels: Int? = nil) -> NchwcGeometry {
            let outH = (height + 2 * pad.0 - (kernel.0 - 1) * dilation.0 - 1) / stride.0 + 1
            let outW = (width + 2 * pad.1 - (kernel.1 - 1) * dilation.1 - 1) / stride.1 + 1
            return NchwcGeometry(
                inHeight: height, inWidth: width, outHeight: outH, outWidth: outW, kernelHeight: kernel.0,
                kernelWidth: kernel.1, strideY: stride.0, strideX: stride.1, dilationY: dilation.0, dilationX: dilation.1,
                padTop: pad.0, padLeft: pad.1, inChannels: inChannels, outChannels: outChannels ?? self.outChannels,
                plainInput: plainInput)
        }

        var testDescription: String {
            "C\(inChannels) M\(outChannels) \(height)×\(width) k\(kernel.0)×\(kernel.1) s\(stride.0),\(stride.1) "
                + "d\(dilation.0),\(dilation.1) p\(pad.0),\(pad.1)\(plainInput ? " NCHW" : "")"
        }
    }

    /// Group widths 4 + 1, 3, 2, 4 and 1 blocks; partial lanes; strides, dilations and pads
    /// (one wider than a tile); 1×1 (pointwise) and non-square windows; plain NCHW inputs (groups
    /// 4, 3, 1 and 2 blocks wide).
    static let convWindows: [Window] = [
        Window(),
        Window(inChannels: 33, outChannels: 40, height: 7, width: 13, stride: (2, 2)),
        Window(inChannels: 24, outChannels: 24, height: 13, width: 7, dilation: (2, 2), pad: (2, 2)),
        Window(inChannels: 3, outChannels: 50, height: 15, width: 16, kernel: (7, 7), stride: (2, 2), pad: (3, 3),
               plainInput: true),
        Window(inChannels: 40, outChannels: 17, height: 6, width: 7, kernel: (1, 1), pad: (0, 0)),
        Window(inChannels: 16, outChannels: 64, height: 9, width: 9, kernel: (1, 1), stride: (2, 2), pad: (0, 0)),
        Window(inChannels: 5, outChannels: 33, height: 6, width: 5, pad: (4, 4), plainInput: true),
        Window(inChannels: 20, outChannels: 36, height: 9, width: 10, kernel: (2, 3), stride: (2, 1), dilation: (1, 2),
               pad: (0, 1)),
        Window(inChannels: 48, outChannels: 64, height: 8, width: 9, kernel: (5, 5), pad: (2, 2)),
        Window(inChannels: 1, outChannels: 16, height: 5, width: 19, kernel: (1, 1), pad: (0, 0), plainInput: true),
        Window(inChannels: 3, outChannels: 24, height: 11, width: 14, stride: (2, 2), plainInput: true),
    ]

    @Test(arguments: convWindows)
    func convolutionMatchesPortable(_ w: Window) {
        let g = w.geometry()
        let area = w.height * w.width, outArea = g.outHeight * g.outWidth, kernelArea = w.kernel.0 * w.kernel.1
        let plain = Self.random(w.inChannels * area, seed: w.inChannels + w.width)
        let input = w.plainInput ? plain : Self.blocked(plain, channels: w.inChannels, area: area)
        let weights = Self.random(w.outChannels * w.inChannels * kernelArea, seed: w.outChannels)
        var filter = [Float](repeating: .nan, count: Self.blocks(w.outChannels) * Self.blocks(w.inChannels) * Self.block * Self.block * kernelArea)
        NchwcLoops.packFilter(weights, outChannels: w.outChannels, inChannels: w.inChannels, kernelHeight: w.kernel.0,
                              kernelWidth: w.kernel.1, into: &filter)
        var bias = Self.random(Self.blocks(w.outChannels) * Self.block, seed: 5)
        for c in w.outChannels..<bias.count { bias[c] = 0 }
        let residual = Self.random(Self.blocks(w.outChannels) * outArea * Self.block, seed: 9)
        let groups = NchwcLoops.filterGroups(w.outChannels)

        func run(_ isa: KernelISA, _ tiles: NchwcTileSet, _ activation: FusedActivation?, accumulate: Bool,
                 withBias: Bool) -> [Float] {
            var output = accumulate ? residual : [Float](repeating: .nan, count: residual.count)
            bias.withUnsafeBufferPointer { bias in
                for groupRange in Self.halves(groups) {
                    for rowRange in Self.halves(g.outHeight) {
                        NchwcLoops.convolve(g, input, filter: filter, bias: withBias ? bias.baseAddress : nil, into: &output,
                                            groups: groupRange, rows: rowRange, accumulate: accumulate,
                                            activation: activation, isa: isa, tiles: tiles)
                    }
                }
            }
            return output
        }
        // Both sets of register tiles, whichever this CPU prefers (they differ for AVX-512).
        for isa in Self.vectorVariants {
            for tiles in [NchwcTileSet.full, .split] {
                for (index, activation) in Self.activations.enumerated() {
                    let accumulate = index % 2 == 1, withBias = index % 3 != 2
                    Self.expectClose(run(isa, tiles, activation, accumulate: accumulate, withBias: withBias),
                                     run(.portable, .cpu, activation, accumulate: accumulate, withBias: withBias),
                                     "\(isa) \(tiles) \(w.testDescription) \(activation.map { "\($0)" } ?? "linear") accumulate \(accumulate) bias \(withBias)")
                }
            }
        }
    }

    static let depthwiseWindows: [Window] = [
        Window(inChannels: 40, outChannels: 40, height: 14, width: 15),
        Window(inChannels: 17, outChannels: 17, height: 13, width: 13, stride: (2, 2)),
        Window(inChannels: 72, outChannels: 72, height: 9, width: 20, kernel: (5, 5), dilation: (2, 2), pad: (4, 4)),
        Window(inChannels: 3, outChannels: 3, height: 7, width: 28, kernel: (3, 5), stride: (1, 2), pad: (3, 2)),
        Window(inChannels: 33, outChannels: 33, height: 5, width: 6, kernel: (1, 1), pad: (0, 0)),
        // Rows of at most two tiles, every tile reaching an edge (EfficientNet's 5×5 on 7² and 14²),
        // a window wider than the image, and rows long enough for interior tiles.
        Window(inChannels: 40, outChannels: 40, height: 7, width: 7, kernel: (5, 5), pad: (2, 2)),
        Window(inChannels: 17, outChannels: 17, height: 6, width: 14, kernel: (5, 5), pad: (2, 2)),
        Window(inChannels: 24, outChannels: 24, height: 4, width: 3, kernel: (5, 5), pad: (2, 2)),
        Window(inChannels: 20, outChannels: 20, height: 9, width: 9, kernel: (5, 5), stride: (2, 2), pad: (2, 2)),
        Window(inChannels: 16, outChannels: 16, height: 3, width: 17, kernel: (3, 3), stride: (1, 1), pad: (1, 1)),
        Window(inChannels: 16, outChannels: 16, height: 4, width: 23, kernel: (3, 3), stride: (2, 2), pad: (1, 1)),
    ]

    @Test(arguments: depthwiseWindows)
    func depthwiseMatchesPortable(_ w: Window) {
        let g = w.geometry()
        let c = w.inChannels, area = w.height * w.width, outArea = g.outHeight * g.outWidth
        let kernelArea = w.kernel.0 * w.kernel.1, blocks = Self.blocks(c)
        let input = Self.blocked(Self.random(c * area, seed: c + w.height), channels: c, area: area)
        var filter = [Float](repeating: .nan, count: blocks * Self.block * kernelArea)
        NchwcLoops.packDepthwiseFilter(Self.random(c * kernelArea, seed: c), channels: c, kernelHeight: w.kernel.0,
                                       kernelWidth: w.kernel.1, into: &filter)
        let bias = Self.random(blocks * Self.block, seed: 3)

        func run(_ isa: KernelISA, _ activation: FusedActivation?, withBias: Bool) -> [Float] {
            var output = [Float](repeating: .nan, count: blocks * outArea * Self.block)
            bias.withUnsafeBufferPointer { bias in
                for blockRange in Self.halves(blocks) {
                    for rowRange in Self.halves(g.outHeight) {
                        NchwcLoops.depthwise(g, input, filter: filter, bias: withBias ? bias.baseAddress : nil, into: &output,
                                             blocks: blockRange, rows: rowRange, activation: activation, isa: isa)
                    }
                }
            }
            return output
        }
        for isa in Self.vectorVariants {
            for (index, activation) in Self.activations.enumerated() {
                Self.expectClose(run(isa, activation, withBias: index % 2 == 0), run(.portable, activation, withBias: index % 2 == 0),
                                 "\(isa) depthwise \(w.testDescription) \(activation.map { "\($0)" } ?? "linear")")
            }
        }
    }

    /// Pools over pads, strides, dilations and windows reaching past the image (as ceil_mode
    /// makes them: more output columns than the symmetric pads give), with NaN and −∞ inputs.
    @Test(arguments: [
        Window(inChannels: 40, outChannels: 40, height: 14, width: 15, stride: (2, 2)),
        Window(inChannels: 17, outChannels: 17, height: 13, width: 7, kernel: (2, 2), stride: (2, 2), pad: (0, 0)),
        Window(inChannels: 72, outChannels: 72, height: 9, width: 20, kernel: (5, 5), pad: (2, 2)),
        Window(inChannels: 3, outChannels: 3, height: 7, width: 28, kernel: (3, 2), stride: (2, 3), dilation: (2, 1),
               pad: (1, 1)),
        Window(inChannels: 24, outChannels: 24, height: 4, width: 4, kernel: (3, 3), pad: (3, 3)),
    ])
    func poolMatchesPortable(_ w: Window) {
        var g = w.geometry()
        g.outWidth += 1  // the last window overhangs the image
        let c = w.inChannels, area = w.height * w.width, blocks = Self.blocks(c)
        var plain = Self.random(c * area, seed: c + w.width)
        plain[area / 2] = .nan
        plain[area + 1] = -.infinity
        let input = Self.blocked(plain, channels: c, area: area)
        for kind in [NchwcPoolKind.max, .average, .averageFull] {
            func run(_ isa: KernelISA) -> [Float] {
                var output = [Float](repeating: 7, count: blocks * g.outHeight * g.outWidth * Self.block)
                for blockRange in Self.halves(blocks) {
                    NchwcLoops.pool(kind, g, input, into: &output, blocks: blockRange, isa: isa)
                }
                return output
            }
            for isa in Self.vectorVariants { Self.expectClose(run(isa), run(.portable), "\(isa) \(kind) \(w.testDescription)") }
        }
    }

    /// Reorders are exact: every channel count around the block and the 8-lane halves, every
    /// pixel count around the 8 × 8 transposes, blocks in ranges.
    @Test func reordersMatchPortable() {
        for channels in [1, 7, 8, 9, 16, 17, 24, 33, 40] {
            for area in [1, 7, 8, 9, 15, 63, 64] {
                let blocks = Self.blocks(channels)
                let plain = Self.random(channels * area, seed: channels * 100 + area)
                let expected = Self.blocked(plain, channels: channels, area: area)
                var back = [Float](repeating: .nan, count: plain.count)
                NchwcLoops.reorderOut(expected, channels: channels, area: area, into: &back, blocks: 0..<blocks, isa: .portable)
                #expect(back == plain, "portable round trip C\(channels) area \(area)")
                for isa in Self.vectorVariants {
                    var blocked = [Float](repeating: .nan, count: expected.count)
                    var unblocked = [Float](repeating: .nan, count: plain.count)
                    for range in Self.halves(blocks) {
                        NchwcLoops.reorderIn(plain, channels: channels, area: area, into: &blocked, blocks: range, isa: isa)
                        NchwcLoops.reorderOut(expected, channels: channels, area: area, into: &unblocked, blocks: range, isa: isa)
                    }
                    #expect(blocked == expected, "\(isa) reorder in C\(channels) area \(area)")
                    #expect(unblocked == plain, "\(isa) reorder out C\(channels) area \(area)")
                }
            }
        }
    }
}
