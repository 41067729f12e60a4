import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Gemm, MatMul and Conv against naive references on awkward shapes, on every micro-kernel
/// variant this CPU runs, with one and two threads.
@Suite struct GemmConvTests {
    static func random(_ shape: [Int], seed: Int) -> Tensor {
        var state = UInt64(truncatingIfNeeded: seed &* 2654435761 &+ 97)
        let values = (0..<shape.reduce(1, *)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(state >> 41) % 2001 - 1000) / 1000
        }
        return try! Tensor(shape: shape, scalars: values)
    }

    static func expectClose(_ actual: Tensor, _ expected: [Float], _ label: String) throws {
        let values = try actual.scalars(as: Float.self)
        #expect(values.count == expected.count, "\(label): count")
        var worst: Float = 0
        for (a, e) in zip(values, expected) { worst = max(worst, abs(a - e) - 1e-4 * abs(e) - 1e-4) }
        #expect(worst <= 0, "\(label): exceeds tolerance by \(worst)")
    }

    static var variants: [(KernelISA, Int)] { KernelISA.supported.flatMap { isa in [(isa, 1), (isa, 2)] } }

    // MARK: - Gemm

    struct GemmCase: CustomTestStringConvertible, Sendable {
        let m: Int, n: Int, k: Int
        let transA: Bool, transB: Bool
        let alpha: Float, beta: Float
        let cShape: [Int]?
        let constantB: Bool
        let activation: String?
        var testDescription: String {
            "\(m)×\(n)×\(k) tA\(transA ? 1 : 0) tB\(transB ? 1 : 0) α\(alpha) β\(beta) C\(cShape.map { "\($0)" } ?? "-") \(constantB ? "constB" : "varB") \(activation ?? "")"
        }
    }

    static let gemmCases: [GemmCase] = {
        var cases: [GemmCase] = []
        let sizes = [(1, 7, 17), (7, 17, 63), (17, 63, 7), (63, 1, 257), (1, 257, 63), (13, 33, 300), (257, 17, 1),
                     (2, 33, 65), (4, 40, 9), (3, 600, 300),  // 2–4 rows: one row at a time, or the tile (B past L2)
                     (70, 1000, 300)]  // panels in two groups (Gemm.slabBytes), each over two K blocks
        for (i, (m, n, k)) in sizes.enumerated() {
            let cShapes: [[Int]?] = [nil, [n], [1, n], [m, 1], [m, n], [1]]
            cases.append(GemmCase(m: m, n: n, k: k, transA: i % 2 == 1, transB: i % 3 == 0, alpha: i == 2 ? 0.5 : 1,
                                  beta: i == 4 ? 2 : 1, cShape: cShapes[i % cShapes.count], constantB: i % 2 == 0,
                                  activation: [nil, "Relu", "Clip"][i % 3]))
            cases.append(GemmCase(m: m, n: n, k: k, transA: false, transB: true, alpha: 1, beta: 1, cShape: [n],
                                  constantB: true, activation: nil))
        }
        return cases
    }()

    static func naiveGemm(_ c: GemmCase, a: [Float], b: [Float], bias: [Float]?) -> [Float] {
        var out = [Float](repeating: 0, count: c.m * c.n)
        for i in 0..<c.m {
            for j in 0..<c.n {
                var sum: Float = 0
                for p in 0..<c.k {
                    let x = c.transA ? a[p * c.m + i] : a[i * c.k + p]
                    let y = c.transB ? b[j * c.k + p] : b[p * c.n + j]
                    sum += x * y
                }
                var v = c.alpha * sum
                if let bias, let shape = c.cShape {
                    let full = Broadcasting.strides(of: shape, in: [c.m, c.n])
                    v += c.beta * bias[i * full[0] + j * full[1]]
                }
                if c.activation == "Relu" { v = max(0, v) }
                if c.activation == "Clip" { v = min(max(v, -0.25), 0.5) }
                out[i * c.n + j] = v
            }
        }
        return out
    }

    @Test(arguments: gemmCases)
    func gemmMatchesNaive(_ c: GemmCase) throws {
        let a = Self.random(c.transA ? [c.k, c.m] : [c.m, c.k], seed: c.m * 31 + c.k)
        let b = Self.random(c.transB ? [c.n, c.k] : [c.k, c.n], seed: c.n * 17 + c.k)
        let bias = c.cShape.map { Self.random($0, seed: 5) }
        var attributes: [String: Attribute] = [
            "transA": .int(c.transA ? 1 : 0), "transB": .int(c.transB ? 1 : 0), "alpha": .float(c.alpha), "beta": .float(c.beta),
        ]
        if let activation = c.activation {
            attributes["onyx.activation"] = .string(activation)
            attributes["onyx.activation_min"] = .float(-0.25)
            attributes["onyx.activation_max"] = .float(0.5)
        }
        let node = Node(name: "g", opType: "Gemm", inputs: bias == nil ? ["A", "B"] : ["A", "B", "C"], outputs: ["Y"], attributes: attributes)
        let expected = Self.naiveGemm(c, a: try a.scalars(as: Float.self), b: try b.scalars(as: Float.self), bias: try bias?.scalars(as: Float.self))
        for (isa, threads) in Self.variants {
            // evaluate() treats every input as constant; for a variable B, prepare without it.
            let inputs: [Tensor?] = [a, b] + (bias.map { [$0] } ?? [])
            let result: Tensor
            if c.constantB {
                result = try OperatorRegistry.evaluate(node, opset: 13, inputs: inputs, isa: isa, threads: threads)[0]
            } else {
                let kernel = try GemmKernel(NodeContext(node: node, opset: 13, constantInputs: [nil, nil, nil], isa: isa))
                result = try kernel.evaluate(inputs: inputs, pool: ComputePool(threadCount: threads))[0]
            }
            try Self.expectClose(result, expected, "\(c.testDescription) \(isa) ×\(threads)")
        }
    }

    // MARK: - MatMul

    @Test(arguments: [
        ([7, 17], [17, 63]), ([1, 257], [257, 7]), ([17], [17, 7]), ([7, 17], [17]), ([3, 5, 7], [7, 4]),
        ([2, 1, 5, 7], [3, 7, 6]), ([4, 63, 17], [4, 17, 9]), ([17], [17]), ([2, 33], [33, 40]), ([4, 1, 3, 9], [9, 17]),
        ([7, 20, 16], [7, 16, 21]),  // more batches than threads, each packed into its own slice
    ])
    func matMulMatchesNaive(_ aShape: [Int], _ bShape: [Int]) throws {
        let a = Self.random(aShape, seed: aShape.reduce(1, *))
        let b = Self.random(bShape, seed: bShape.reduce(3, *))
        let geometry = try MatMulKernel.Geometry(aShape, bShape)
        let av = try a.scalars(as: Float.self), bv = try b.scalars(as: Float.self)
        var expected: [Float] = []
        let rank = geometry.batchShape.count
        for batch in 0..<geometry.batchCount {
            var rest = batch, oa = 0, ob = 0
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let i = rest % geometry.batchShape[axis]
                rest /= geometry.batchShape[axis]
                oa += i * geometry.aBatchStrides[axis]
                ob += i * geometry.bBatchStrides[axis]
            }
            for i in 0..<geometry.m {
                for j in 0..<geometry.n {
                    var sum: Float = 0
                    for p in 0..<geometry.k { sum += av[oa + i * geometry.k + p] * bv[ob + p * geometry.n + j] }
                    expected.append(sum)
                }
            }
        }
        let node = Node(name: "mm", opType: "MatMul", inputs: ["A", "B"], outputs: ["Y"])
        for (isa, threads) in Self.variants {
            let y = try OperatorRegistry.evaluate(node, opset: 13, inputs: [a, b], isa: isa, threads: threads)[0]
            #expect(y.shape == geometry.outputShape)
            try Self.expectClose(y, expected, "\(aShape)×\(bShape) \(isa)")
            let kernel = try MatMulKernel(NodeContext(node: node, opset: 13, constantInputs: [nil, nil], isa: isa))
            try Self.expectClose(try kernel.evaluate(inputs: [a, b], pool: ComputePool(threadCount: threads))[0], expected, "variable B \(isa)")
        }
        #expect(throws: OnyxError.self) { try MatMulKernel.Geometry([3, 4], [5, 6]) }
    }

    // MARK: - Conv

    struct ConvCase: CustomTestStringConvertible, Sendable {
        var batch = 1, channels = 3, filters = 4, height = 7, width = 7
        var kernel = [3, 3], strides = [1, 1], pads = [0, 0, 0, 0], dilations = [1, 1], group = 1
        var autoPad = "NOTSET"
        var bias = true
        var oneD = false
        var activation: String?
        var testDescription: String {
            "N\(batch) C\(channels) M\(filters) \(oneD ? "\(width)" : "\(height)×\(width)") k\(kernel) s\(strides) p\(pads) d\(dilations) g\(group) \(autoPad)\(bias ? " +b" : "")\(activation.map { " " + $0 } ?? "")"
        }
    }

    static let convCases: [ConvCase] = [
        ConvCase(),
        ConvCase(batch: 2, channels: 1, filters: 7, height: 17, width: 17, kernel: [5, 5], pads: [2, 2, 2, 2]),
        ConvCase(channels: 16, filters: 17, height: 9, width: 11, kernel: [1, 1], bias: false),
        ConvCase(channels: 8, filters: 16, height: 8, width: 8, kernel: [1, 1], strides: [2, 2], activation: "Relu"),
        ConvCase(channels: 6, filters: 9, height: 15, width: 13, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], activation: "Clip"),
        ConvCase(channels: 4, filters: 6, height: 12, width: 12, kernel: [3, 3], dilations: [2, 2], group: 2),
        ConvCase(batch: 2, channels: 17, filters: 17, height: 10, width: 9, kernel: [3, 3], pads: [1, 1, 1, 1], group: 17, activation: "Clip"),
        ConvCase(channels: 8, filters: 8, height: 11, width: 11, kernel: [3, 3], strides: [2, 2], pads: [1, 0, 0, 1], group: 8),
        ConvCase(channels: 3, filters: 5, height: 10, width: 9, kernel: [3, 2], strides: [2, 1], autoPad: "SAME_UPPER"),
        ConvCase(channels: 3, filters: 5, height: 10, width: 9, kernel: [4, 4], strides: [3, 3], autoPad: "SAME_LOWER"),
        ConvCase(channels: 2, filters: 3, height: 8, width: 8, kernel: [3, 3], pads: [1, 1, 1, 1], autoPad: "VALID"),
        ConvCase(channels: 3, filters: 63, height: 1, width: 63, kernel: [5], strides: [2], pads: [2, 2], dilations: [1], oneD: true),
        ConvCase(channels: 12, filters: 12, height: 1, width: 257, kernel: [3], strides: [1], pads: [1, 1], dilations: [2], group: 12, oneD: true),
        // Stride-1 convolutions whose taps read the (padded) planes in place, outputs on the padded grid.
        ConvCase(channels: 5, filters: 13, height: 6, width: 20, kernel: [3, 3], pads: [1, 1, 1, 1]),
        ConvCase(channels: 3, filters: 14, height: 7, width: 40, kernel: [3, 3], pads: [0, 2, 1, 1], dilations: [1, 2], activation: "Clip"),
        ConvCase(channels: 4, filters: 5, height: 6, width: 33, kernel: [1, 5], bias: false),
        ConvCase(channels: 3, filters: 7, height: 9, width: 37, kernel: [3, 1]),
        ConvCase(batch: 2, channels: 4, filters: 6, height: 5, width: 24, kernel: [3, 3], pads: [1, 1, 1, 1], group: 2, activation: "Relu"),
        // Small images of a batch of 2–8 convolve in parallel, each with its own scratch.
        ConvCase(batch: 3, channels: 6, filters: 16, height: 14, width: 14, kernel: [5, 5], activation: "Relu"),
        ConvCase(batch: 8, channels: 5, filters: 9, height: 7, width: 6, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
        ConvCase(channels: 32, filters: 40, height: 30, width: 34, kernel: [3, 3], pads: [1, 1, 1, 1]),
        ConvCase(channels: 3, filters: 5, height: 1, width: 70, kernel: [3], strides: [1], pads: [1, 1], dilations: [1], oneD: true),
        // Strided convolutions on stride-phase planes.
        ConvCase(channels: 6, filters: 13, height: 20, width: 40, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
        ConvCase(channels: 3, filters: 16, height: 40, width: 44, kernel: [7, 7], strides: [2, 2], pads: [3, 3, 3, 3], activation: "Relu"),
        ConvCase(channels: 5, filters: 7, height: 11, width: 35, kernel: [3, 3], strides: [2, 1], pads: [1, 0, 0, 2]),
        ConvCase(channels: 4, filters: 9, height: 30, width: 50, kernel: [3, 3], strides: [3, 3], pads: [2, 2, 2, 2], dilations: [2, 2]),
        ConvCase(batch: 2, channels: 12, filters: 24, height: 14, width: 64, kernel: [1, 1], strides: [2, 2], bias: false),
        // Few output pixels, many filters and taps: the transposed tile (pixels in strips of 7,
        // filters as vectors) on AVX-512.
        ConvCase(channels: 128, filters: 256, height: 7, width: 7, kernel: [3, 3], pads: [1, 1, 1, 1], activation: "Relu"),
        ConvCase(channels: 64, filters: 256, height: 13, width: 13, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
        ConvCase(channels: 512, filters: 320, height: 7, width: 7, kernel: [1, 1]),
        // Strips of fewer than 7 pixels (1–6 rows of the transposed tile): a streaming VAD's 1-D
        // convolutions of 4, 2 and 1 output pixels (Silero's STFT and encoder), and maps of 9 and
        // 20 pixels whose last strip is partial.
        ConvCase(channels: 1, filters: 258, height: 1, width: 704, kernel: [256], strides: [128], pads: [0, 0], dilations: [1], oneD: true),
        ConvCase(channels: 129, filters: 128, height: 1, width: 4, kernel: [3], strides: [1], pads: [1, 1], dilations: [1], oneD: true, activation: "Relu"),
        ConvCase(channels: 128, filters: 64, height: 1, width: 4, kernel: [3], strides: [2], pads: [1, 1], dilations: [1], oneD: true, activation: "Relu"),
        ConvCase(channels: 64, filters: 64, height: 1, width: 2, kernel: [3], strides: [2], pads: [1, 1], dilations: [1], oneD: true),
        ConvCase(channels: 64, filters: 128, height: 1, width: 1, kernel: [3], strides: [1], pads: [1, 1], dilations: [1], oneD: true, activation: "Clip"),
        ConvCase(channels: 64, filters: 96, height: 5, width: 5, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
        ConvCase(channels: 48, filters: 96, height: 4, width: 5, kernel: [3, 3], pads: [1, 1, 1, 1], activation: "Relu"),
        // Few output pixels, fewer filters: shifted rows or pointwise.
        ConvCase(channels: 16, filters: 64, height: 7, width: 7, kernel: [3, 3], pads: [1, 1, 1, 1]),
        ConvCase(channels: 32, filters: 96, height: 13, width: 13, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], activation: "Clip"),
        ConvCase(channels: 16, filters: 80, height: 5, width: 5, kernel: [3, 3], pads: [1, 1, 1, 1]),
        ConvCase(channels: 128, filters: 32, height: 7, width: 7, kernel: [1, 1], bias: false),
        ConvCase(batch: 2, channels: 64, filters: 64, height: 7, width: 7, kernel: [3, 3], pads: [1, 1, 1, 1], group: 2, activation: "Relu"),
        // Pointwise: planes read in place, last panel partial.
        ConvCase(batch: 2, channels: 7, filters: 30, height: 5, width: 7, kernel: [1, 1], activation: "Relu"),
        ConvCase(channels: 48, filters: 96, height: 28, width: 28, kernel: [1, 1]),
    ]

    static func naiveConv(_ c: ConvCase, x: [Float], w: [Float], b: [Float]?, outH: Int, outW: Int, padTop: Int, padLeft: Int) -> [Float] {
        let kh = c.oneD ? 1 : c.kernel[0], kw = c.oneD ? c.kernel[0] : c.kernel[1]
        let sh = c.oneD ? 1 : c.strides[0], sw = c.oneD ? c.strides[0] : c.strides[1]
        let dh = c.oneD ? 1 : c.dilations[0], dw = c.oneD ? c.dilations[0] : c.dilations[1]
        let cg = c.channels / c.group, mg = c.filters / c.group
        var out = [Float](repeating: 0, count: c.batch * c.filters * outH * outW)
        for n in 0..<c.batch {
            for m in 0..<c.filters {
                let g = m / mg
                for oy in 0..<outH {
                    for ox in 0..<outW {
                        var sum = b?[m] ?? 0
                        for ci in 0..<cg {
                            let channel = g * cg + ci
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let iy = oy * sh + ky * dh - padTop, ix = ox * sw + kx * dw - padLeft
                                    guard iy >= 0, iy < c.height, ix >= 0, ix < c.width else { continue }
                                    sum += x[((n * c.channels + channel) * c.height + iy) * c.width + ix]
                                        * w[((m * cg + ci) * kh + ky) * kw + kx]
                                }
                            }
                        }
                        if c.activation == "Relu" { sum = max(0, sum) }
                        if c.activation == "Clip" { sum = min(max(sum, 0), 6) }
                        out[((n * c.filters + m) * outH + oy) * outW + ox] = sum
                    }
                }
            }
        }
        return out
    }

    @Test(arguments: convCases)
    func convMatchesNaive(_ c: ConvCase) throws {
        let spatialIn = c.oneD ? [c.width] : [c.height, c.width]
        let x = Self.random([c.batch, c.channels] + spatialIn, seed: c.channels * 7 + c.width)
        let w = Self.random([c.filters, c.channels / c.group] + c.kernel, seed: c.filters * 3 + c.kernel[0])
        let b = c.bias ? Self.random([c.filters], seed: 11) : nil
        var attributes: [String: Attribute] = [
            "kernel_shape": .ints(c.kernel), "strides": .ints(c.strides), "dilations": .ints(c.dilations),
            "group": .int(c.group), "auto_pad": .string(c.autoPad),
        ]
        if c.autoPad == "NOTSET" { attributes["pads"] = .ints(c.oneD ? Array(c.pads.prefix(2)) : c.pads) }
        if let activation = c.activation {
            attributes["onyx.activation"] = .string(activation)
            attributes["onyx.activation_min"] = .float(0)
            attributes["onyx.activation_max"] = .float(6)
        }
        // Reference geometry, computed independently of the kernel's SpatialAttributes.
        func extent(_ input: Int, _ k: Int, _ s: Int, _ d: Int, _ p0: Int, _ p1: Int) -> (out: Int, begin: Int) {
            let window = (k - 1) * d + 1
            switch c.autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                let out = (input + s - 1) / s
                let total = max(0, (out - 1) * s + window - input)
                return (out, c.autoPad == "SAME_UPPER" ? total / 2 : total - total / 2)
            case "VALID": return ((input - window) / s + 1, 0)
            default: return ((input + p0 + p1 - window) / s + 1, p0)
            }
        }
        let rows: (out: Int, begin: Int) = c.oneD ? (1, 0) : extent(c.height, c.kernel[0], c.strides[0], c.dilations[0], c.pads[0], c.pads[2])
        let columns = c.oneD
            ? extent(c.width, c.kernel[0], c.strides[0], c.dilations[0], c.pads[0], c.pads[1])
            : extent(c.width, c.kernel[1], c.strides[1], c.dilations[1], c.pads[1], c.pads[3])
        let expected = Self.naiveConv(c, x: try x.scalars(as: Float.self), w: try w.scalars(as: Float.self),
                                      b: try b?.scalars(as: Float.self), outH: rows.out, outW: columns.out,
                                      padTop: rows.begin, padLeft: columns.begin)
        let node = Node(name: "conv", opType: "Conv", inputs: b == nil ? ["X", "W"] : ["X", "W", "B"], outputs: ["Y"], attributes: attributes)
        let inputs: [Tensor?] = [x, w] + (b.map { [$0] } ?? [])
        for (isa, threads) in Self.variants {
            let y = try OperatorRegistry.evaluate(node, opset: 11, inputs: inputs, isa: isa, threads: threads)[0]
            #expect(y.shape == [c.batch, c.filters] + (c.oneD ? [columns.out] : [rows.out, columns.out]))
            try Self.expectClose(y, expected, "\(c.testDescription) \(isa) ×\(threads)")
            let variable = try ConvKernel(NodeContext(node: node, opset: 11, constantInputs: [nil, nil, nil], isa: isa))
            try Self.expectClose(try variable.evaluate(inputs: inputs, pool: ComputePool(threadCount: threads))[0], expected,
                                 "variable W \(c.testDescription) \(isa)")
        }
    }

    /// The few-pixel cases above reach the transposed tile's partial strips (where AVX-512 has it).
    @Test func fewPixelConvolutionsUseTheTransposedTile() {
        guard KernelISA.supported.contains(.avx512) else { return }
        let shapes: [(ConvolutionGeometry, channels: Int, filters: Int)] = [
            (ConvolutionGeometry(inputHeight: 1, inputWidth: 704, kernelHeight: 1, kernelWidth: 256, strideY: 1, strideX: 128,
                                 dilationY: 1, dilationX: 1, padTop: 0, padLeft: 0, outputHeight: 1, outputWidth: 4), 1, 258),
            (ConvolutionGeometry(inputHeight: 1, inputWidth: 2, kernelHeight: 1, kernelWidth: 3, strideY: 1, strideX: 2,
                                 dilationY: 1, dilationX: 1, padTop: 0, padLeft: 1, outputHeight: 1, outputWidth: 1), 64, 64),
            (ConvolutionGeometry(inputHeight: 4, inputWidth: 5, kernelHeight: 3, kernelWidth: 3, strideY: 1, strideX: 1,
                                 dilationY: 1, dilationX: 1, padTop: 1, padLeft: 1, outputHeight: 4, outputWidth: 5), 48, 96),
        ]
        for (geometry, channels, filters) in shapes {
            let columns = ConvColumns(geometry, channels: channels, filters: filters, isa: .avx512, allowsTransposed: true)
            #expect(columns.layout == .transposed, "\(geometry)")
        }
    }

    @Test func convRejectsMismatchedShapes() {
        let node = Node(name: "conv", opType: "Conv", inputs: ["X", "W"], outputs: ["Y"])
        #expect(throws: OnyxError.self) {
            try OperatorRegistry.evaluate(node, opset: 11, inputs: [Self.random([1, 3, 5, 5], seed: 1), Self.random([2, 4, 3, 3], seed: 2)])
        }
        #expect(throws: OnyxError.self) {
            try OperatorRegistry.evaluate(node, opset: 11, inputs: [Self.random([1, 3, 2, 2], seed: 1), Self.random([2, 3, 3, 3], seed: 2)])
        }
    }
}
