import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// The NCHWc layout: each internal operator against the plain ONNX operator on awkward shapes,
/// on every kernel variant this CPU runs with one and two threads; and what ``NchwcLayout``
/// converts in ResNet-, MobileNet- and SqueezeNet-style chains, and what it leaves alone.
@Suite struct NchwcTests {
    static let domain = NchwcFormat.domain

    static func value(_ name: String, _ shape: [Int]) -> Value {
        Value(name: name, type: TensorType(dataType: .float, shape: Shape(fixed: shape)))
    }

    static func model(_ graph: Graph) -> Model {
        Model(opsetImports: ["": 18, domain: 1], graph: graph)
    }

    /// Runs `expected` at level `.none` and `actual` at `level`, for every variant, one and two
    /// threads, and checks the outputs agree within 1e-4 (relative and absolute).
    static func expectSameOutputs(
        _ expected: Graph, _ actual: Graph, level: OptimizationLevel = .none, _ feeds: [String: Tensor], _ label: String
    ) throws {
        for (isa, threads) in GemmConvTests.variants {
            let reference = try InferenceSession(
                model: model(expected), options: SessionOptions(threadCount: threads, optimizationLevel: .none, isa: isa))
                .run(feeds)
            let outputs = try InferenceSession(
                model: model(actual), options: SessionOptions(threadCount: threads, optimizationLevel: level, isa: isa))
                .run(feeds)
            for (name, tensor) in reference {
                let result = try #require(outputs[name], "\(label): no output \(name)")
                #expect(result.shape == tensor.shape, "\(label) \(isa) ×\(threads) \(name): shape")
                try GemmConvTests.expectClose(result, try tensor.scalars(as: Float.self), "\(label) \(isa) ×\(threads) \(name)")
            }
        }
    }

    // MARK: - Conv

    struct ConvCase: CustomTestStringConvertible, Sendable {
        var batch = 1, channels = 24, filters = 40, height = 7, width = 13
        var kernel = 3, stride = 1, pad = 1, dilation = 1
        var autoPad: String? = nil
        var depthwise = false
        var bias = true
        /// `nil`, "Relu", "Clip" (0, 6), "SiLU" (Sigmoid and Mul), "Sigmoid", "HardSigmoid" (0.3, 0.4),
        /// "HardSwish" or "LeakyRelu" (0.2).
        var activation: String? = "Relu"
        var residual = false
        /// The input stays `[N, C, H, W]` (`onyx.input_layout` = "NCHW").
        var plainInput = false

        var outputHeight: Int { (height + 2 * pad - (kernel - 1) * dilation - 1) / stride + 1 }
        var outputWidth: Int { (width + 2 * pad - (kernel - 1) * dilation - 1) / stride + 1 }
        var outputShape: [Int] {
            guard let autoPad, autoPad != "NOTSET" else { return [batch, filters, outputHeight, outputWidth] }
            return [batch, filters, (height + stride - 1) / stride, (width + stride - 1) / stride]
        }

        var attributes: [String: Attribute] {
            var a: [String: Attribute] = [
                "kernel_shape": .ints([kernel, kernel]), "strides": .ints([stride, stride]),
                "dilations": .ints([dilation, dilation]),
            ]
            if let autoPad { a["auto_pad"] = .string(autoPad) } else { a["pads"] = .ints([pad, pad, pad, pad]) }
            if depthwise { a["group"] = .int(channels) }
            return a
        }

        var testDescription: String {
            "N\(batch) C\(channels) M\(filters) \(height)×\(width) k\(kernel) s\(stride) p\(autoPad ?? "\(pad)") d\(dilation)"
                + "\(depthwise ? " dw" : "")\(bias ? " +b" : "") \(activation ?? "linear")\(residual ? " +r" : "")\(plainInput ? " NCHW" : "")"
        }
    }

    static let convCases: [ConvCase] = [
        // 1×1, stride 1 and 2.
        ConvCase(channels: 24, filters: 40, height: 7, width: 13, kernel: 1, pad: 0, activation: nil),
        ConvCase(batch: 2, channels: 64, filters: 96, height: 14, width: 14, kernel: 1, stride: 2, pad: 0, bias: false, residual: true),
        ConvCase(channels: 40, filters: 24, height: 13, width: 7, kernel: 1, pad: 0, activation: "Clip", residual: true),
        // 3×3, pad 1, stride 1 and 2.
        ConvCase(channels: 40, filters: 24, height: 13, width: 7),
        ConvCase(channels: 24, filters: 40, height: 14, width: 28, activation: "Clip", residual: true),
        ConvCase(channels: 64, filters: 64, height: 28, width: 28, bias: false, residual: true),
        ConvCase(channels: 96, filters: 64, height: 14, width: 14, stride: 2),
        ConvCase(channels: 3, filters: 24, height: 13, width: 13, stride: 2, activation: nil),
        ConvCase(batch: 2, channels: 40, filters: 3, height: 7, width: 7, stride: 2, bias: false, activation: "Clip"),
        // 7×7 stride 2 pad 3 on a 3-channel image, read as NCHW.
        ConvCase(channels: 3, filters: 64, height: 56, width: 56, kernel: 7, stride: 2, pad: 3, plainInput: true),
        ConvCase(batch: 2, channels: 3, filters: 24, height: 13, width: 14, kernel: 7, stride: 2, pad: 3, bias: false,
                 activation: nil, plainInput: true),
        ConvCase(channels: 5, filters: 40, height: 14, width: 7, activation: "Clip", residual: true, plainInput: true),
        // Padding wider than a tile: the edge columns take several checked tiles.
        ConvCase(channels: 3, filters: 24, height: 9, width: 10, pad: 15, plainInput: true),
        ConvCase(channels: 24, filters: 40, height: 6, width: 5, pad: 13),
        // Dilation 2; SAME padding with stride 2.
        ConvCase(channels: 24, filters: 40, height: 14, width: 13, pad: 2, dilation: 2),
        ConvCase(channels: 40, filters: 24, height: 13, width: 14, stride: 2, autoPad: "SAME_UPPER", residual: true),
        ConvCase(channels: 24, filters: 24, height: 7, width: 13, kernel: 2, autoPad: "SAME_LOWER", activation: nil),
        // Depthwise 3×3, stride 1 and 2.
        ConvCase(channels: 40, filters: 40, height: 14, width: 14, depthwise: true, activation: "Clip"),
        ConvCase(batch: 2, channels: 96, filters: 96, height: 13, width: 13, stride: 2, depthwise: true, bias: false),
        ConvCase(channels: 24, filters: 24, height: 56, width: 56, stride: 2, depthwise: true, activation: nil),
        ConvCase(channels: 3, filters: 3, height: 7, width: 28, depthwise: true),
        // The other fused activations, in registers: 1×1, 3×3 with a residual, NCHW input, depthwise.
        ConvCase(channels: 24, filters: 40, height: 7, width: 13, kernel: 1, pad: 0, activation: "SiLU"),
        ConvCase(channels: 40, filters: 24, height: 13, width: 7, activation: "SiLU", residual: true),
        ConvCase(channels: 3, filters: 24, height: 13, width: 14, stride: 2, activation: "HardSwish", plainInput: true),
        ConvCase(channels: 40, filters: 40, height: 14, width: 14, depthwise: true, activation: "SiLU"),
        ConvCase(channels: 24, filters: 24, height: 9, width: 11, stride: 2, depthwise: true, activation: "HardSwish"),
        ConvCase(channels: 24, filters: 40, height: 7, width: 13, activation: "LeakyRelu"),
        ConvCase(channels: 8, filters: 24, height: 1, width: 1, kernel: 1, pad: 0, activation: "Sigmoid", plainInput: true),
        ConvCase(channels: 40, filters: 24, height: 5, width: 6, kernel: 1, pad: 0, activation: "HardSigmoid"),
        // Filter groups of 4 + 1 blocks; stride 2 with dilation; a dilated depthwise window (AVX2 splits a
        // group of 4 into two register tiles of 2).
        ConvCase(channels: 17, filters: 72, height: 9, width: 11, activation: "SiLU", residual: true),
        ConvCase(channels: 33, filters: 50, height: 10, width: 9, stride: 2, pad: 2, dilation: 2, activation: "LeakyRelu"),
        ConvCase(channels: 33, filters: 33, height: 12, width: 13, pad: 2, dilation: 2, depthwise: true, activation: "HardSigmoid"),
    ]

    /// `y = act(Conv(x, w, b) [+ r])` with the plain operators.
    static func plainConv(_ c: ConvCase) -> Graph {
        var nodes = [Node(name: "conv", opType: "Conv", inputs: c.bias ? ["x", "w", "b"] : ["x", "w"], outputs: ["c"],
                          attributes: c.attributes)]
        var last = "c"
        if c.residual {
            nodes.append(Node(name: "add", opType: "Add", inputs: ["c", "r"], outputs: ["s"]))
            last = "s"
        }
        switch c.activation {
        case "Relu": nodes.append(Node(name: "act", opType: "Relu", inputs: [last], outputs: ["y"]))
        case "Clip": nodes.append(Node(name: "act", opType: "Clip", inputs: [last, "lo", "hi"], outputs: ["y"]))
        case "SiLU":
            nodes.append(Node(name: "gate", opType: "Sigmoid", inputs: [last], outputs: ["g"]))
            nodes.append(Node(name: "act", opType: "Mul", inputs: [last, "g"], outputs: ["y"]))
        case let op?:
            nodes.append(Node(name: "act", opType: op, inputs: [last], outputs: ["y"], attributes: activationAttributes[op] ?? [:]))
        default: nodes.append(Node(name: "act", opType: "Identity", inputs: [last], outputs: ["y"]))
        }
        return convGraph(c, nodes)
    }

    static let activationAttributes: [String: [String: Attribute]] = [
        "HardSigmoid": ["alpha": .float(0.3), "beta": .float(0.4)], "LeakyRelu": ["alpha": .float(0.2)],
    ]

    /// The same convolution as the NCHWc Conv between reorders.
    static func blockedConv(_ c: ConvCase) -> Graph {
        var attributes = c.attributes
        switch c.activation {
        case "Relu": attributes["onyx.activation"] = .string("Relu")
        case "Clip":
            attributes["onyx.activation"] = .string("Clip")
            attributes["onyx.activation_min"] = .float(0)
            attributes["onyx.activation_max"] = .float(6)
        case "HardSigmoid":
            attributes["onyx.activation"] = .string("HardSigmoid")
            attributes["onyx.activation_alpha"] = .float(0.3)
            attributes["onyx.activation_beta"] = .float(0.4)
        case "LeakyRelu":
            attributes["onyx.activation"] = .string("LeakyRelu")
            attributes["onyx.activation_alpha"] = .float(0.2)
        case let op?: attributes["onyx.activation"] = .string(op)
        default: break
        }
        var nodes: [Node] = []
        var inputs = ["xb", "w", c.bias ? "b" : ""]
        if c.plainInput {
            attributes["onyx.input_layout"] = .string("NCHW")
            inputs[0] = "x"
        } else {
            nodes.append(Node(name: "in", opType: "ReorderInput", domain: domain, inputs: ["x"], outputs: ["xb"]))
        }
        if c.residual {
            attributes["onyx.residual"] = .int(1)
            nodes.append(Node(name: "in_r", opType: "ReorderInput", domain: domain, inputs: ["r"], outputs: ["rb"]))
            inputs.append("rb")
        }
        nodes.append(Node(name: "conv", opType: "Conv", domain: domain, inputs: inputs, outputs: ["yb"], attributes: attributes))
        nodes.append(Node(name: "out", opType: "ReorderOutput", domain: domain, inputs: ["yb"], outputs: ["y"],
                          attributes: ["channels": .int(c.filters)]))
        return convGraph(c, nodes)
    }

    static func convGraph(_ c: ConvCase, _ nodes: [Node]) -> Graph {
        var inputs = [value("x", [c.batch, c.channels, c.height, c.width])]
        if c.residual { inputs.append(value("r", c.outputShape)) }
        return Graph(
            nodes: nodes, inputs: inputs, outputs: [Value(name: "y", type: nil)],
            initializers: [
                ("w", GemmConvTests.random([c.filters, c.depthwise ? 1 : c.channels, c.kernel, c.kernel], seed: c.filters + c.kernel)),
                ("b", GemmConvTests.random([c.filters], seed: c.filters * 7)),
                ("lo", Tensor(scalar: Float(0))), ("hi", Tensor(scalar: Float(6))),
            ])
    }

    @Test(arguments: convCases)
    func convolutionMatchesConv(_ c: ConvCase) throws {
        var feeds = ["x": GemmConvTests.random([c.batch, c.channels, c.height, c.width], seed: c.channels * 3 + c.width)]
        if c.residual { feeds["r"] = GemmConvTests.random(c.outputShape, seed: c.filters + 1) }
        try Self.expectSameOutputs(Self.plainConv(c), Self.blockedConv(c), feeds, c.testDescription)
    }

    /// A residual the convolution's output broadcasts against, as an unfused Add would.
    @Test func broadcastResidualMatchesAdd() throws {
        let c = ConvCase(channels: 24, filters: 40, height: 7, width: 13, kernel: 1, pad: 0, activation: "Clip", residual: true)
        let rShape = [1, 40, 1, 13]
        var plain = Self.plainConv(c), blocked = Self.blockedConv(c)
        plain.inputs[1] = Self.value("r", rShape)
        blocked.inputs[1] = Self.value("r", rShape)
        let feeds = ["x": GemmConvTests.random([1, 24, 7, 13], seed: 3), "r": GemmConvTests.random(rShape, seed: 4)]
        try Self.expectSameOutputs(plain, blocked, feeds, "broadcast residual")
    }

    // MARK: - Pools

    struct PoolCase: CustomTestStringConvertible, Sendable {
        var op = "MaxPool"
        var channels = 24, height = 13, width = 14
        var attributes: [String: Attribute] = [:]
        var testDescription: String { "\(op) C\(channels) \(height)×\(width) \(attributes.keys.sorted().map { "\($0)=\(attributes[$0]!)" })" }
    }

    static let poolCases: [PoolCase] = [
        PoolCase(channels: 64, height: 28, width: 28,
                 attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
        PoolCase(channels: 24, height: 13, width: 7, attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]),
        PoolCase(channels: 40, height: 14, width: 13,
                 attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]),
        PoolCase(op: "AveragePool", channels: 40, height: 7, width: 13,
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
        PoolCase(op: "AveragePool", channels: 24, height: 14, width: 7,
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(1)]),
        PoolCase(op: "AveragePool", channels: 3, height: 13, width: 13,
                 attributes: ["kernel_shape": .ints([3, 2]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]),
        PoolCase(op: "AveragePool", channels: 96, height: 14, width: 14,
                 attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER"),
                              "count_include_pad": .int(1)]),
        PoolCase(op: "GlobalAveragePool", channels: 40, height: 7, width: 7),
        PoolCase(op: "GlobalAveragePool", channels: 64, height: 13, width: 14),
    ]

    @Test(arguments: poolCases)
    func poolMatchesPool(_ p: PoolCase) throws {
        let input = Self.value("x", [2, p.channels, p.height, p.width])
        let plain = Graph(nodes: [Node(name: "pool", opType: p.op, inputs: ["x"], outputs: ["y"], attributes: p.attributes)],
                          inputs: [input], outputs: [Value(name: "y", type: nil)])
        let blocked = Graph(
            nodes: [
                Node(name: "in", opType: "ReorderInput", domain: Self.domain, inputs: ["x"], outputs: ["xb"]),
                Node(name: "pool", opType: p.op, domain: Self.domain, inputs: ["xb"], outputs: ["yb"], attributes: p.attributes),
                Node(name: "out", opType: "ReorderOutput", domain: Self.domain, inputs: ["yb"], outputs: ["y"],
                     attributes: ["channels": .int(p.channels)]),
            ],
            inputs: [input], outputs: [Value(name: "y", type: nil)])
        let feeds = ["x": GemmConvTests.random([2, p.channels, p.height, p.width], seed: p.channels + p.width)]
        try Self.expectSameOutputs(plain, blocked, feeds, p.testDescription)
    }

    /// The NCHWc Mul against the plain one: a squeeze-excitation gate either side, equal shapes,
    /// and a broadcast along the height (the general loops).
    @Test(arguments: [
        ([2, 40, 7, 9], [2, 40, 1, 1]), ([1, 24, 5, 6], [1, 24, 1, 1]), ([2, 24, 1, 1], [2, 24, 5, 3]),
        ([1, 40, 7, 9], [1, 40, 7, 9]), ([1, 24, 5, 6], [1, 24, 1, 6]),
    ])
    func mulMatchesMul(_ a: [Int], _ b: [Int]) throws {
        let inputs = [Self.value("a", a), Self.value("b", b)]
        let plain = Graph(nodes: [Node(name: "mul", opType: "Mul", inputs: ["a", "b"], outputs: ["y"])], inputs: inputs,
                          outputs: [Value(name: "y", type: nil)])
        let blocked = Graph(
            nodes: [
                Node(name: "in_a", opType: "ReorderInput", domain: Self.domain, inputs: ["a"], outputs: ["ab"]),
                Node(name: "in_b", opType: "ReorderInput", domain: Self.domain, inputs: ["b"], outputs: ["bb"]),
                Node(name: "mul", opType: "Mul", domain: Self.domain, inputs: ["ab", "bb"], outputs: ["yb"]),
                Node(name: "out", opType: "ReorderOutput", domain: Self.domain, inputs: ["yb"], outputs: ["y"],
                     attributes: ["channels": .int(a[1])]),
            ],
            inputs: inputs, outputs: [Value(name: "y", type: nil)])
        let feeds = ["a": GemmConvTests.random(a, seed: 3), "b": GemmConvTests.random(b, seed: 4)]
        try Self.expectSameOutputs(plain, blocked, feeds, "Mul \(a) \(b)")
    }

    // MARK: - Bad nodes

    /// Internal nodes a hostile model may contain: each fails with an error naming the problem.
    @Test(arguments: [
        ("Conv", ["group": Attribute.int(2)], [8, 4, 3, 3], [1, 1, 5, 5, 16], "group"),
        ("Conv", [:], [8, 4, 3, 3], [1, 2, 5, 5, 16], "channels"),
        ("Conv", [:], [8, 4, 3, 3], [1, 1, 5, 5, 8], "N×1×H×W×16"),
        ("Conv", ["onyx.input_layout": .string("NHWC")], [8, 4, 3, 3], [1, 1, 5, 5, 16], "input_layout"),
        ("Conv", ["onyx.input_layout": .string("NCHW")], [8, 4, 3, 3], [1, 5, 5, 5], "N×4×H×W"),
        ("Conv", ["group": .int(8), "onyx.input_layout": .string("NCHW")], [8, 1, 3, 3], [1, 8, 5, 5], "depthwise"),
        ("Conv", ["kernel_shape": .ints([3, 3, 3])], [8, 4, 3, 3], [1, 1, 5, 5, 16], "kernel_shape"),
        ("Conv", [:], [8, 4, 9, 9], [1, 1, 5, 5, 16], "does not fit"),
        ("Conv", ["onyx.residual": .int(1)], [8, 4, 3, 3], [1, 1, 5, 5, 16], "fourth input"),
        ("ReorderOutput", ["channels": .int(40)], [], [1, 2, 5, 5, 16], "N×3×H×W×16"),
        ("ReorderOutput", [:], [], [1, 2, 5, 5, 16], "channels"),
        ("ReorderOutput", ["channels": .int(Int.max)], [], [1, 2, 5, 5, 16], "\(Int.max) channels"),
        ("ReorderInput", [:], [], [1, 2, 5], "N×C×H×W"),
        ("MaxPool", ["kernel_shape": .ints([3])], [], [1, 1, 5, 5, 16], "2 spatial axes"),
        ("MaxPool", ["kernel_shape": .ints([2, 2]), "strides": .ints([1 << 40, 1])], [], [1, 1, 5, 5, 16], "must be in"),
        ("AveragePool", ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "ceil_mode": .int(1),
                         "count_include_pad": .int(1)], [], [1, 1, 5, 5, 16], "reaches past"),
        ("GlobalAveragePool", [:], [], [1, 16, 5, 5], "N×blocks×H×W×16"),
        ("Upsample", [:], [], [1, 1, 5, 5, 16], "scales"),
        ("Upsample", ["scales": .ints([2, 0])], [], [1, 1, 5, 5, 16], "scales"),
        ("Upsample", ["scales": .ints([2, 2])], [], [1, 16, 5, 5], "N×blocks×H×W×16"),
        ("ScaleShift", [:], [], [1, 2, 5, 5, 16], "takes a float"),
        ("Mul", [:], [], [1, 2, 5, 5, 16], "two float"),
    ] as [(String, [String: Attribute], [Int], [Int], String)])
    func badNodesThrow(op: String, attributes: [String: Attribute], weight: [Int], input: [Int], message: String) throws {
        let graph = Graph(
            nodes: [Node(name: "bad", opType: op, domain: Self.domain, inputs: weight.isEmpty ? ["x"] : ["x", "w"], outputs: ["y"],
                         attributes: attributes)],
            inputs: [Self.value("x", input)], outputs: [Value(name: "y", type: nil)],
            initializers: weight.isEmpty ? [] : [("w", GemmConvTests.random(weight, seed: 1))])
        do {
            let session = try InferenceSession(model: Self.model(graph), options: SessionOptions(optimizationLevel: .none))
            _ = try session.run(["x": GemmConvTests.random(input, seed: 2)])
            Issue.record("\(op) \(attributes) ran")
        } catch let error as OnyxError {
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    // MARK: - The pass

    static func conv(_ name: String, _ x: String, _ y: String, weight: String, bias: String? = nil, kernel: Int = 3,
                     stride: Int = 1, group: Int = 1, pad: Int? = nil) -> Node {
        var attributes: [String: Attribute] = [
            "kernel_shape": .ints([kernel, kernel]), "strides": .ints([stride, stride]),
            "pads": .ints(Array(repeating: pad ?? kernel / 2, count: 4)),
        ]
        if group != 1 { attributes["group"] = .int(group) }
        return Node(name: name, opType: "Conv", inputs: [x, weight] + (bias.map { [$0] } ?? []), outputs: [y], attributes: attributes)
    }

    /// Each weight, scaled by 1/√fan-in so that values keep their size along a chain (then the
    /// tolerance measures the kernels, not cancellation), and a bias `<name>_b` of its first extent.
    static func weights(_ shapes: [String: [Int]]) -> [(name: String, tensor: Tensor)] {
        shapes.sorted { $0.key < $1.key }.enumerated().flatMap { i, entry -> [(name: String, tensor: Tensor)] in
            let random = try! GemmConvTests.random(entry.value, seed: i * 13 + 5).scalars(as: Float.self)
            let scale = 1 / Float(entry.value.dropFirst().reduce(1, *)).squareRoot()
            return [(entry.key, try! Tensor(shape: entry.value, scalars: random.map { $0 * scale })),
             (entry.key + "_b", GemmConvTests.random([entry.value[0]], seed: i * 7 + 1))]
        }
    }

    /// conv1 7×7/2 (3 → 24) + Relu → MaxPool 3×3/2 → a basic block (24) → a downsampling block
    /// (24 → 40, 1×1/2 shortcut) → GlobalAveragePool → Flatten → Gemm.
    static func resNetStyle() -> Graph {
        let nodes: [Node] = [
            conv("conv1", "x", "c1", weight: "w1", bias: "w1_b", kernel: 7, stride: 2),
            Node(name: "relu1", opType: "Relu", inputs: ["c1"], outputs: ["r1"]),
            Node(name: "pool", opType: "MaxPool", inputs: ["r1"], outputs: ["p"],
                 attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
            conv("a1", "p", "a1c", weight: "wa1", bias: "wa1_b"),
            Node(name: "a1r", opType: "Relu", inputs: ["a1c"], outputs: ["a1y"]),
            conv("a2", "a1y", "a2c", weight: "wa2", bias: "wa2_b"),
            Node(name: "a_add", opType: "Add", inputs: ["a2c", "p"], outputs: ["as"]),
            Node(name: "a_relu", opType: "Relu", inputs: ["as"], outputs: ["ay"]),
            conv("b1", "ay", "b1c", weight: "wb1", bias: "wb1_b", stride: 2),
            Node(name: "b1r", opType: "Relu", inputs: ["b1c"], outputs: ["b1y"]),
            conv("b2", "b1y", "b2c", weight: "wb2", bias: "wb2_b"),
            conv("down", "ay", "dc", weight: "wd", bias: "wd_b", kernel: 1, stride: 2),
            Node(name: "b_add", opType: "Add", inputs: ["b2c", "dc"], outputs: ["bs"]),
            Node(name: "b_relu", opType: "Relu", inputs: ["bs"], outputs: ["by"]),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["by"], outputs: ["g"]),
            Node(name: "flat", opType: "Flatten", inputs: ["g"], outputs: ["f"]),
            Node(name: "fc", opType: "Gemm", inputs: ["f", "fc", "fc_b"], outputs: ["y"], attributes: ["transB": .int(1)]),
        ]
        return Graph(
            nodes: nodes, inputs: [value("x", [1, 3, 30, 29])], outputs: [value("y", [1, 10])],
            initializers: weights([
                "w1": [24, 3, 7, 7], "wa1": [24, 24, 3, 3], "wa2": [24, 24, 3, 3], "wb1": [40, 24, 3, 3],
                "wb2": [40, 40, 3, 3], "wd": [40, 24, 1, 1], "fc": [10, 40],
            ]))
    }

    /// A MobileNet-v2-style stem and two inverted residual blocks (Clip(0, 6), depthwise 3×3,
    /// linear 1×1 projections, one residual Add), then GlobalAveragePool.
    static func mobileNetStyle() -> Graph {
        func clip(_ name: String, _ x: String, _ y: String) -> Node {
            Node(name: name, opType: "Clip", inputs: [x, "zero", "six"], outputs: [y])
        }
        let nodes: [Node] = [
            conv("stem", "x", "s", weight: "w0", bias: "w0_b", stride: 2), clip("stem6", "s", "s6"),
            conv("dw1", "s6", "d1", weight: "wdw1", bias: "wdw1_b", group: 24), clip("dw1_6", "d1", "d16"),
            conv("pw1", "d16", "p1", weight: "wp1", bias: "wp1_b", kernel: 1),
            conv("ex2", "p1", "e2", weight: "we2", bias: "we2_b", kernel: 1), clip("ex2_6", "e2", "e26"),
            conv("dw2", "e26", "d2", weight: "wdw2", bias: "wdw2_b", group: 96), clip("dw2_6", "d2", "d26"),
            conv("pw2", "d26", "p2", weight: "wp2", bias: "wp2_b", kernel: 1),
            Node(name: "add", opType: "Add", inputs: ["p1", "p2"], outputs: ["a"]),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["a"], outputs: ["y"]),
        ]
        var initializers = weights([
            "w0": [24, 3, 3, 3], "wdw1": [24, 1, 3, 3], "wp1": [16, 24, 1, 1], "we2": [96, 16, 1, 1], "wdw2": [96, 1, 3, 3],
            "wp2": [16, 96, 1, 1],
        ])
        initializers += [("zero", Tensor(scalar: Float(0))), ("six", Tensor(scalar: Float(6)))]
        return Graph(nodes: nodes, inputs: [value("x", [2, 3, 28, 27])], outputs: [value("y", [2, 16, 1, 1])],
                     initializers: initializers)
    }

    /// A SqueezeNet-style fire module: squeeze 1×1 (24 → 16), expand 1×1 and 3×3 (16 → 16 and
    /// 16 → `expand`), Concat, then a 1×1 classifier (20 filters), Relu, GlobalAveragePool.
    static func squeezeNetStyle(expand: Int) -> Graph {
        let nodes: [Node] = [
            Node(name: "pool", opType: "MaxPool", inputs: ["x"], outputs: ["p"],
                 attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]),
            conv("squeeze", "p", "s", weight: "ws", bias: "ws_b", kernel: 1),
            Node(name: "squeeze_relu", opType: "Relu", inputs: ["s"], outputs: ["sr"]),
            conv("e1", "sr", "e1c", weight: "we1", bias: "we1_b", kernel: 1),
            Node(name: "e1_relu", opType: "Relu", inputs: ["e1c"], outputs: ["e1r"]),
            conv("e3", "sr", "e3c", weight: "we3", bias: "we3_b"),
            Node(name: "e3_relu", opType: "Relu", inputs: ["e3c"], outputs: ["e3r"]),
            Node(name: "cat", opType: "Concat", inputs: ["e1r", "e3r"], outputs: ["cat"], attributes: ["axis": .int(1)]),
            conv("classifier", "cat", "k", weight: "wk", bias: "wk_b", kernel: 1),
            Node(name: "k_relu", opType: "Relu", inputs: ["k"], outputs: ["kr"]),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["kr"], outputs: ["y"]),
        ]
        return Graph(
            nodes: nodes, inputs: [value("x", [1, 24, 15, 16])], outputs: [value("y", [1, 20, 1, 1])],
            initializers: weights([
                "ws": [16, 24, 1, 1], "we1": [expand, 16, 1, 1], "we3": [16, 16, 3, 3], "wk": [20, 16 + expand, 1, 1],
            ]))
    }

    static func optimized(_ graph: Graph, isa: KernelISA) -> Graph {
        GraphOptimizer(level: .all, isa: isa).optimize(graph)
    }

    /// Internal op types with their counts, as `"Conv": 3`; standard ops are left out.
    static func blockedOps(_ graph: Graph) -> [String: Int] {
        graph.nodes.filter { $0.domain == domain }.reduce(into: [:]) { counts, node in counts[node.opType, default: 0] += 1 }
    }

    static func feeds(_ graph: Graph) -> [String: Tensor] {
        var feeds: [String: Tensor] = [:]
        for (i, input) in graph.inputs.enumerated() {
            feeds[input.name] = GemmConvTests.random(input.type!.shape!.fixedExtents!, seed: 31 + i)
        }
        return feeds
    }

    /// The vector variants this CPU runs: those the pass converts for.
    /// The variants the pass rewrites for (a rewrite runs no kernel, so any CPU can check it).
    static var vectorISAs: [KernelISA] { KernelISA.allCases.filter(NchwcLayout.isUsed(with:)) }

    @Test func resNetStyleChainIsConverted() throws {
        let graph = Self.resNetStyle()
        for isa in Self.vectorISAs {
            let rewritten = Self.optimized(graph, isa: isa)
            #expect(Self.blockedOps(rewritten) == ["Conv": 6, "MaxPool": 1, "GlobalAveragePool": 1, "ReorderOutput": 1], "\(isa)")
            let conv1 = try #require(rewritten.nodes.first { $0.outputs == ["r1"] })
            if case .string("NCHW")? = conv1.attributes["onyx.input_layout"] {} else { Issue.record("conv1 reads NCHWc: \(conv1)") }
            // Both residual Adds joined a convolution; their Relus too.
            #expect(!rewritten.nodes.contains { $0.opType == "Add" || $0.opType == "Relu" })
            let reorder = try #require(rewritten.nodes.first { $0.opType == "ReorderOutput" })
            #expect(reorder.outputs == ["g"])
        }
        try Self.expectSameOutputs(graph, graph, level: .all, Self.feeds(graph), "ResNet-style")
    }

    @Test func mobileNetStyleChainIsConverted() throws {
        let graph = Self.mobileNetStyle()
        for isa in Self.vectorISAs {
            let rewritten = Self.optimized(graph, isa: isa)
            #expect(Self.blockedOps(rewritten) == ["Conv": 6, "GlobalAveragePool": 1, "ReorderOutput": 1], "\(isa)")
            #expect(rewritten.nodes.filter { $0.opType == "Clip" || $0.opType == "Add" }.isEmpty)
        }
        try Self.expectSameOutputs(graph, graph, level: .all, Self.feeds(graph), "MobileNet-style")
    }

    @Test(arguments: [16, 24])
    func squeezeNetStyleConcat(expand: Int) throws {
        let graph = Self.squeezeNetStyle(expand: expand)
        for isa in Self.vectorISAs {
            let rewritten = Self.optimized(graph, isa: isa)
            let concat = try #require(rewritten.nodes.first { $0.opType == "Concat" })
            if expand == 16 {
                // The pool reads a graph input: it stays; the squeeze reads 24 channels through a reorder.
                #expect(Self.blockedOps(rewritten) == ["ReorderInput": 1, "Conv": 4, "GlobalAveragePool": 1, "ReorderOutput": 1])
                #expect(rewritten.nodes.first { $0.opType == "MaxPool" }?.domain == "")
            } else {
                // 24 channels first would misalign the blocks: the Concat runs on NCHW between two chains.
                #expect(Self.blockedOps(rewritten) == ["ReorderInput": 1, "Conv": 3, "ReorderOutput": 2])
                #expect(!concat.inputs.contains { $0.hasSuffix("_nchwc") })
            }
        }
        try Self.expectSameOutputs(graph, graph, level: .all, Self.feeds(graph), "SqueezeNet-style \(expand)")
    }

    @Test func aLoneConvIsLeftAlone() {
        let graph = Graph(
            nodes: [
                Self.conv("conv", "x", "c", weight: "w", bias: "w_b"),
                Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
                Node(name: "pool", opType: "MaxPool", inputs: ["r"], outputs: ["y"], attributes: ["kernel_shape": .ints([2, 2])]),
            ],
            inputs: [Self.value("x", [1, 24, 8, 8])], outputs: [Self.value("y", [1, 32, 7, 7])],
            initializers: Self.weights(["w": [32, 24, 3, 3]]))
        for isa in Self.vectorISAs { #expect(Self.blockedOps(Self.optimized(graph, isa: isa)).isEmpty) }
    }

    /// conv1 → conv2 → conv3, with conv2's output also a graph output and conv1's read by a Flatten.
    @Test func valuesLeavingTheChainAreReorderedUnderTheirNames() throws {
        let graph = Graph(
            nodes: [
                Self.conv("conv1", "x", "c1", weight: "w1", bias: "w1_b"),
                Self.conv("conv2", "c1", "c2", weight: "w2"),
                Self.conv("conv3", "c2", "y", weight: "w3", bias: "w3_b", kernel: 1),
                Node(name: "side", opType: "Flatten", inputs: ["c1"], outputs: ["z"]),
            ],
            inputs: [Self.value("x", [1, 24, 9, 10])],
            outputs: [Self.value("y", [1, 20, 9, 10]), Self.value("c2", [1, 40, 9, 10]), Self.value("z", [1, 3600])],
            valueInfo: [Self.value("c1", [1, 40, 9, 10])],
            initializers: Self.weights(["w1": [40, 24, 3, 3], "w2": [40, 40, 3, 3], "w3": [20, 40, 1, 1]]))
        for isa in Self.vectorISAs {
            let rewritten = Self.optimized(graph, isa: isa)
            #expect(Self.blockedOps(rewritten) == ["ReorderInput": 1, "Conv": 3, "ReorderOutput": 3], "\(isa)")
            let producers = Dictionary(rewritten.nodes.map { ($0.outputs[0], $0.opType) }, uniquingKeysWith: { a, _ in a })
            #expect(producers["c1"] == "ReorderOutput" && producers["c2"] == "ReorderOutput" && producers["y"] == "ReorderOutput")
            #expect(rewritten.valueInfo.map(\.name) == ["c1"])
            let order = try rewritten.topologicallySortedNodes().map(\.name)
            #expect(order == rewritten.nodes.map(\.name), "the pass keeps the nodes in topological order")
        }
        try Self.expectSameOutputs(graph, graph, level: .all, Self.feeds(graph), "outputs inside the chain")
    }

    /// Clip(1, 6) turns the lanes past C into ones: no real channel reads them, so the whole
    /// chain converts (24 channels: the second block of each value has 8 such lanes).
    @Test func aClipAwayFromZeroStaysInTheChain() throws {
        let graph = Graph(
            nodes: [
                Self.conv("conv1", "x", "c1", weight: "w1", bias: "w1_b"),
                Node(name: "relu1", opType: "Relu", inputs: ["c1"], outputs: ["r1"]),
                Self.conv("conv2", "r1", "c2", weight: "w2", bias: "w2_b"),
                Node(name: "clip", opType: "Clip", inputs: ["c2", "one", "six"], outputs: ["k"]),
                Self.conv("conv3", "k", "c3", weight: "w3", bias: "w3_b"),
                Node(name: "relu3", opType: "Relu", inputs: ["c3"], outputs: ["r3"]),
                Self.conv("conv4", "r3", "c4", weight: "w4", bias: "w4_b", group: 24),
                Node(name: "pool", opType: "MaxPool", inputs: ["c4"], outputs: ["y"], attributes: ["kernel_shape": .ints([2, 2])]),
            ],
            inputs: [Self.value("x", [1, 8, 9, 9])], outputs: [Self.value("y", [1, 24, 8, 8])],
            initializers: Self.weights(["w1": [24, 8, 3, 3], "w2": [24, 24, 3, 3], "w3": [24, 24, 3, 3], "w4": [24, 1, 3, 3]])
                + [("one", Tensor(scalar: Float(1))), ("six", Tensor(scalar: Float(6)))])
        for isa in Self.vectorISAs {
            let rewritten = Self.optimized(graph, isa: isa)
            #expect(Self.blockedOps(rewritten) == ["Conv": 4, "MaxPool": 1, "ReorderOutput": 1], "\(isa)")
        }
        try Self.expectSameOutputs(graph, graph, level: .all, Self.feeds(graph), "Clip(1, 6)")
    }

    /// An EfficientNet / MobileNetV3-style block: stem 3×3/2 (3 → 24) + SiLU, depthwise 3×3 +
    /// SiLU, squeeze-excitation (global average — GlobalAveragePool, or ReduceMean as the dynamo
    /// exporter writes it — 1×1 to 8 + SiLU, 1×1 back to 24 + Sigmoid, Mul), projection 1×1 to 16,
    /// expansion 1×1 to 40 + HardSwish, depthwise + LeakyRelu, projection to 16 with the residual,
    /// then a global average and a HardSigmoid. Everything but the 8-filter squeeze stays NCHWc.
    static func efficientNetStyle(reduceMean: Bool) -> Graph {
        func silu(_ x: String, _ y: String) -> [Node] {
            [Node(name: y + "_s", opType: "Sigmoid", inputs: [x], outputs: [y + "_g"]),
             Node(name: y, opType: "Mul", inputs: [x, y + "_g"], outputs: [y])]
        }
        let squeeze = reduceMean
            ? Node(name: "se_mean", opType: "ReduceMean", inputs: ["d1a", "axes"], outputs: ["se"])
            : Node(name: "se_mean", opType: "GlobalAveragePool", inputs: ["d1a"], outputs: ["se"])
        var nodes: [Node] = [conv("stem", "x", "s", weight: "w0", bias: "w0_b", stride: 2)] + silu("s", "sa")
        nodes += [conv("dw1", "sa", "d1", weight: "wdw1", bias: "wdw1_b", group: 24)] + silu("d1", "d1a")
        nodes += [squeeze, conv("se1", "se", "q", weight: "wq", bias: "wq_b", kernel: 1)] + silu("q", "qa")
        nodes += [
            conv("se2", "qa", "e", weight: "we", bias: "we_b", kernel: 1),
            Node(name: "se_gate", opType: "Sigmoid", inputs: ["e"], outputs: ["eg"]),
            Node(name: "se_mul", opType: "Mul", inputs: ["eg", "d1a"], outputs: ["m"]),
            conv("pw1", "m", "p1", weight: "wp1", bias: "wp1_b", kernel: 1),
            conv("ex2", "p1", "e2", weight: "we2", bias: "we2_b", kernel: 1),
            Node(name: "ex2_hs", opType: "HardSwish", inputs: ["e2"], outputs: ["e2a"]),
            conv("dw2", "e2a", "d2", weight: "wdw2", bias: "wdw2_b", group: 40),
            Node(name: "dw2_lr", opType: "LeakyRelu", inputs: ["d2"], outputs: ["d2a"], attributes: ["alpha": .float(0.1)]),
            conv("pw2", "d2a", "p2", weight: "wp2", bias: "wp2_b", kernel: 1),
            Node(name: "add", opType: "Add", inputs: ["p1", "p2"], outputs: ["a"]),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["a"], outputs: ["ga"]),
            Node(name: "hsig", opType: "HardSigmoid", inputs: ["ga"], outputs: ["y"]),
        ]
        var initializers = weights([
            "w0": [24, 3, 3, 3], "wdw1": [24, 1, 3, 3], "wq": [8, 24, 1, 1], "we": [24, 8, 1, 1], "wp1": [16, 24, 1, 1],
            "we2": [40, 16, 1, 1], "wdw2": [40, 1, 3, 3], "wp2": [16, 40, 1, 1],
        ])
        initializers.append(("axes", try! Tensor(shape: [2], scalars: [Int64(-1), -2])))
        return Graph(nodes: nodes, inputs: [value("x", [2, 3, 29, 30])], outputs: [value("y", [2, 16, 1, 1])],
                     initializers: initializers)
    }

    @Test(arguments: [false, true])
    func efficientNetStyleBlockStaysBlocked(reduceMean: Bool) throws {
        let graph = Self.efficientNetStyle(reduceMean: reduceMean)
        for isa in Self.vectorISAs {
            let rewritten = Self.optimized(graph, isa: isa)
            // Every Sigmoid·Mul pair, HardSwish and LeakyRelu joined its convolution; the squeeze
            // (8 filters) runs NCHW between a ReorderOutput of the average and the gate's NCHW read.
            #expect(Self.blockedOps(rewritten) == ["Conv": 7, "GlobalAveragePool": 2, "Mul": 1, "ReorderOutput": 2], "\(isa)")
            let standard = rewritten.nodes.filter { $0.domain.isEmpty }.map(\.opType).sorted()
            #expect(standard == ["Conv", "HardSigmoid"], "\(isa): \(standard)")
            let squeeze = try #require(rewritten.nodes.first { $0.name == "se1" })
            if case .string("SiLU")? = squeeze.attributes["onyx.activation"] {} else { Issue.record("squeeze: \(squeeze)") }
        }
        try Self.expectSameOutputs(graph, graph, level: .all, Self.feeds(graph), "EfficientNet-style \(reduceMean)")
    }

    /// A YOLOv8-style C2f block and neck: stem 3×3/2 (3 → 32) + SiLU, Split [16, 16] (an input),
    /// two bottlenecks on the second half (3×3 + SiLU, residual Add), Concat of the three, 1×1 to
    /// 32 + SiLU, MaxPool 5×5/1 (SPPF), nearest ×2 Resize, Concat with a full-resolution
    /// convolution (3 → 16), 1×1 to 24; and a Split of 24 into [16, 8] (`num_outputs`), the
    /// 8-channel part a graph output.
    static func yoloStyle(resizeMode: String = "asymmetric", rounding: String = "floor") -> Graph {
        func silu(_ x: String, _ y: String) -> [Node] {
            [Node(name: y + "_s", opType: "Sigmoid", inputs: [x], outputs: [y + "_g"]),
             Node(name: y, opType: "Mul", inputs: [x, y + "_g"], outputs: [y])]
        }
        var nodes = [conv("stem", "x", "s", weight: "w0", bias: "w0_b", stride: 2)] + silu("s", "sa")
        nodes.append(Node(name: "split", opType: "Split", inputs: ["sa", "halves"], outputs: ["h1", "h2"], attributes: ["axis": .int(1)]))
        nodes += [conv("b1", "h2", "b1c", weight: "wb1", bias: "wb1_b")] + silu("b1c", "b1a")
        nodes.append(Node(name: "b1_add", opType: "Add", inputs: ["h2", "b1a"], outputs: ["m1"]))
        nodes += [conv("b2", "m1", "b2c", weight: "wb2", bias: "wb2_b")] + silu("b2c", "b2a")
        nodes.append(Node(name: "b2_add", opType: "Add", inputs: ["m1", "b2a"], outputs: ["m2"]))
        nodes.append(Node(name: "cat1", opType: "Concat", inputs: ["h1", "h2", "m2"], outputs: ["k"], attributes: ["axis": .int(1)]))
        nodes += [conv("cv2", "k", "c2", weight: "wc2", bias: "wc2_b", kernel: 1)] + silu("c2", "c2a")
        nodes += [
            Node(name: "pool", opType: "MaxPool", inputs: ["c2a"], outputs: ["p"],
                 attributes: ["kernel_shape": .ints([5, 5]), "pads": .ints([2, 2, 2, 2])]),
            Node(name: "up", opType: "Resize", inputs: ["p", "", "scales"], outputs: ["u"],
                 attributes: ["mode": .string("nearest"), "coordinate_transformation_mode": .string(resizeMode),
                              "nearest_mode": .string(rounding)]),
            conv("full", "x", "f", weight: "wf", bias: "wf_b"),
            Node(name: "cat2", opType: "Concat", inputs: ["u", "f"], outputs: ["k2"], attributes: ["axis": .int(1)]),
            conv("head", "k2", "y", weight: "wh", bias: "wh_b", kernel: 1),
            Node(name: "split2", opType: "Split", inputs: ["y"], outputs: ["z1", "z2"],
                 attributes: ["axis": .int(1), "num_outputs": .int(2)]),
            Node(name: "tail", opType: "Relu", inputs: ["z1"], outputs: ["z"]),
        ]
        var initializers = weights([
            "w0": [32, 3, 3, 3], "wb1": [16, 16, 3, 3], "wb2": [16, 16, 3, 3], "wc2": [32, 48, 1, 1], "wf": [16, 3, 3, 3],
            "wh": [24, 48, 1, 1],
        ])
        initializers.append(("halves", try! Tensor(shape: [2], scalars: [Int64(16), 16])))
        initializers.append(("scales", try! Tensor(shape: [4], scalars: [Float(1), 1, 2, 2])))
        return Graph(nodes: nodes, inputs: [value("x", [2, 3, 26, 28])],
                     outputs: [value("y", [2, 24, 26, 28]), value("z", [2, 12, 26, 28]), value("z2", [2, 12, 26, 28])],
                     initializers: initializers)
    }

    @Test func yoloStyleSplitsConcatsAndUpsamplesInBlocks() throws {
        let graph = Self.yoloStyle()
        for isa in Self.vectorISAs {
            let rewritten = Self.optimized(graph, isa: isa)
            // y, and the halves of its 24-channel split (12 and 12: not whole blocks), leave the chain;
            // the first Split, both Concats and the Resize stay inside it.
            #expect(Self.blockedOps(rewritten) == ["Conv": 6, "MaxPool": 1, "Upsample": 1, "ReorderOutput": 1], "\(isa)")
            let split = try #require(rewritten.nodes.first { $0.name == "split" })
            #expect(split.inputs.count == 2 && split.inputs[1] != "halves", "the split counts blocks: \(split)")
            #expect(rewritten.nodes.filter { $0.opType == "Split" }.count == 2)
            #expect(!rewritten.nodes.contains { $0.opType == "Resize" || $0.opType == "Sigmoid" })
        }
        try Self.expectSameOutputs(graph, graph, level: .all, Self.feeds(graph), "YOLO-style")
    }

    /// Resizes whose nearest pixel is not (y / 2, x / 2) stay plain ONNX Resizes; the rest convert.
    @Test(arguments: [
        ("asymmetric", "floor", true), ("asymmetric", "round_prefer_floor", true), ("asymmetric", "round_prefer_ceil", false),
        ("asymmetric", "ceil", false), ("half_pixel", "round_prefer_floor", true), ("half_pixel", "floor", false),
        ("pytorch_half_pixel", "round_prefer_ceil", true), ("align_corners", "round_prefer_floor", false),
    ])
    func onlyExactResizesUpsampleInBlocks(mode: String, rounding: String, converted: Bool) throws {
        let graph = Self.yoloStyle(resizeMode: mode, rounding: rounding)
        for isa in Self.vectorISAs {
            let rewritten = Self.optimized(graph, isa: isa)
            #expect(rewritten.nodes.contains { $0.opType == "Upsample" } == converted, "\(mode) \(rounding)")
        }
        try Self.expectSameOutputs(graph, graph, level: .all, Self.feeds(graph), "Resize \(mode) \(rounding)")
    }

    /// A PP-LCNet-style stack as Paddle exports it: every Conv followed by a scalar affine
    /// (Mul, Add), a hand-written hard swish, another affine (Div, Sub) and a Clip before the next
    /// Conv. The affines after Convs fold into them, the swishes fuse, and the rest runs in blocks.
    @Test func paddleStyleScalarOpsStayBlocked() throws {
        func hardSwish(_ x: String, _ y: String) -> [Node] {
            [Node(name: y + "_a", opType: "Add", inputs: [x, "three"], outputs: [y + "_3"]),
             Node(name: y + "_c", opType: "Clip", inputs: [y + "_3", "zero", "six"], outputs: [y + "_k"]),
             Node(name: y + "_m", opType: "Mul", inputs: [x, y + "_k"], outputs: [y + "_xk"]),
             Node(name: y, opType: "Div", inputs: [y + "_xk", "six"], outputs: [y])]
        }
        func affine(_ x: String, _ y: String, _ ops: (String, String) = ("Mul", "Add")) -> [Node] {
            [Node(name: y + "_1", opType: ops.0, inputs: [x, "a"], outputs: [y + "_s"]),
             Node(name: y, opType: ops.1, inputs: [y + "_s", "b"], outputs: [y])]
        }
        var nodes = [Self.conv("stem", "x", "s", weight: "w0", stride: 2)] + affine("s", "sa") + hardSwish("sa", "sh")
        nodes += affine("sh", "sb", ("Div", "Sub"))
        nodes.append(Node(name: "clip", opType: "Clip", inputs: ["sb", "zero", "six"], outputs: ["sk"]))
        nodes += [Self.conv("dw", "sk", "d", weight: "wdw", bias: "wdw_b", group: 32)] + affine("d", "da") + hardSwish("da", "dh")
        nodes += affine("dh", "db")
        nodes += [Self.conv("pw", "db", "y", weight: "wpw", bias: "wpw_b", kernel: 1)]
        let graph = Graph(
            nodes: nodes, inputs: [Self.value("x", [1, 3, 22, 21])], outputs: [Self.value("y", [1, 48, 11, 11])],
            initializers: Self.weights(["w0": [32, 3, 3, 3], "wdw": [32, 1, 3, 3], "wpw": [48, 32, 1, 1]]) + [
                ("three", Tensor(scalar: Float(3))), ("zero", Tensor(scalar: Float(0))), ("six", Tensor(scalar: Float(6))),
                ("a", Tensor(scalar: Float(0.8))), ("b", Tensor(scalar: Float(-0.3))),
            ])
        for isa in Self.vectorISAs {
            let rewritten = Self.optimized(graph, isa: isa)
            #expect(Self.blockedOps(rewritten) == ["Conv": 3, "ReorderOutput": 1], "\(isa)")
            let standard = rewritten.nodes.filter { $0.domain.isEmpty }.map(\.opType)
            #expect(standard == ["Div", "Sub", "Clip", "Mul", "Add"], "\(isa): \(standard)")
        }
        try Self.expectSameOutputs(graph, graph, level: .all, Self.feeds(graph), "Paddle-style")
    }

    /// A DenseNet-style block: stem conv (3 → 32), then two dense layers, each BatchNormalization
    /// → Relu → 1×1 (→ 48) → BatchNormalization → Relu → 3×3 (→ 16) and a Concat with its input;
    /// the BatchNormalizations after Concats (and one after a Split, then a LeakyRelu) run as
    /// ScaleShift in the chain, each with the activation reading it. A training-mode one stays out.
    @Test func denseNetStyleBatchNormalizationsStayBlocked() throws {
        func bn(_ name: String, _ x: String, _ y: String) -> Node {
            Node(name: name, opType: "BatchNormalization", inputs: [x, name + "_g", name + "_b", name + "_m", name + "_v"],
                 outputs: [y], attributes: ["epsilon": .float(1e-3)])
        }
        func parameters(_ name: String, _ c: Int) -> [(name: String, tensor: Tensor)] {
            let random = try! GemmConvTests.random([4, c], seed: c + name.count).scalars(as: Float.self)
            return [(name + "_g", try! Tensor(shape: [c], scalars: Array(random[0..<c]))),
                    (name + "_b", try! Tensor(shape: [c], scalars: Array(random[c..<2 * c]))),
                    (name + "_m", try! Tensor(shape: [c], scalars: Array(random[2 * c..<3 * c]))),
                    (name + "_v", try! Tensor(shape: [c], scalars: random[3 * c..<4 * c].map { abs($0) + 0.5 }))]
        }
        var nodes = [Self.conv("stem", "x", "s", weight: "w0", bias: "w0_b", stride: 2)]
        var input = "s", channels = 32
        var initializers = Self.weights(["w0": [32, 3, 3, 3], "wa1": [48, 32, 1, 1], "wa3": [16, 48, 3, 3],
                                         "wb1": [48, 48, 1, 1], "wb3": [16, 48, 3, 3]])
        for layer in ["a", "b"] {
            nodes += [
                bn("\(layer)n1", input, "\(layer)x1"),
                Node(name: "\(layer)r1", opType: "Relu", inputs: ["\(layer)x1"], outputs: ["\(layer)y1"]),
                Self.conv("\(layer)c1", "\(layer)y1", "\(layer)z1", weight: "w\(layer)1", kernel: 1),
                bn("\(layer)n2", "\(layer)z1", "\(layer)x2"),
                Node(name: "\(layer)r2", opType: "Relu", inputs: ["\(layer)x2"], outputs: ["\(layer)y2"]),
                Self.conv("\(layer)c3", "\(layer)y2", "\(layer)z3", weight: "w\(layer)3"),
                Node(name: "\(layer)cat", opType: "Concat", inputs: [input, "\(layer)z3"], outputs: ["\(layer)k"],
                     attributes: ["axis": .int(1)]),
            ]
            initializers += parameters("\(layer)n1", channels) + parameters("\(layer)n2", 48)
            (input, channels) = ("\(layer)k", channels + 16)
        }
        nodes.append(Node(name: "split", opType: "Split", inputs: [input, "parts"], outputs: ["p1", "p2"], attributes: ["axis": .int(1)]))
        nodes.append(bn("tail", "p2", "t"))
        nodes.append(Node(name: "leaky", opType: "LeakyRelu", inputs: ["t"], outputs: ["y"], attributes: ["alpha": .float(0.3)]))
        initializers += parameters("tail", 48) + [("parts", try! Tensor(shape: [2], scalars: [Int64(16), 48]))]
        var graph = Graph(nodes: nodes, inputs: [Self.value("x", [2, 3, 18, 17])], outputs: [Self.value("y", [2, 48, 9, 9])],
                          initializers: initializers)
        for isa in Self.vectorISAs {
            let rewritten = Self.optimized(graph, isa: isa)
            // The BatchNormalizations after 1×1 convolutions fold into them; the others run blocked.
            #expect(Self.blockedOps(rewritten) == ["Conv": 5, "ScaleShift": 3, "ReorderOutput": 1], "\(isa)")
            #expect(!rewritten.nodes.contains { $0.opType == "BatchNormalization" })
            // The activation after each ScaleShift runs in it.
            let fused = rewritten.nodes.filter { $0.opType == "ScaleShift" }.map { node -> String in
                guard case .string(let kind)? = node.attributes["onyx.activation"] else { return "none" }
                return kind
            }
            #expect(fused.sorted() == ["LeakyRelu", "Relu", "Relu"], "\(isa): \(fused)")
            #expect(!rewritten.nodes.contains { $0.opType == "Relu" || $0.opType == "LeakyRelu" }, "\(isa)")
        }
        try Self.expectSameOutputs(graph, graph, level: .all, Self.feeds(graph), "DenseNet-style")

        graph.nodes[1].attributes["training_mode"] = .int(1)
        for isa in Self.vectorISAs {
            #expect(Self.optimized(graph, isa: isa).nodes.contains { $0.opType == "BatchNormalization" })
        }
    }

    /// A session of each vector variant this CPU runs (`SessionOptions.isa`, as `ONYX_ISA` forces it)
    /// runs the convolutions in the layout, and its profile names the blocked operators by their
    /// domain, apart from the plain ones.
    @Test(arguments: [KernelISA.avx2, .avx512])
    func sessionsRunTheBlockedOperators(_ isa: KernelISA) throws {
        guard KernelISA.supported.contains(isa) else { return }
        let session = try InferenceSession(model: Self.model(Self.resNetStyle()), options: SessionOptions(threadCount: 1, isa: isa))
        var profile = RunProfile()
        let outputs = try session.run(Self.feeds(Self.resNetStyle()), profile: &profile)
        let types = Dictionary(uniqueKeysWithValues: profile.byOperatorType.map { ($0.opType, $0.nodeCount) })
        #expect(types["Conv (onyx.nchwc)"] == 6 && types["Conv"] == nil, "\(isa): \(types)")
        #expect(types["MaxPool (onyx.nchwc)"] == 1 && types["ReorderOutput (onyx.nchwc)"] == 1, "\(isa): \(types)")
        #expect(types["Gemm"] == 1)
        let plain = try InferenceSession(
            model: Self.model(Self.resNetStyle()), options: SessionOptions(threadCount: 1, optimizationLevel: .none, isa: isa))
            .run(Self.feeds(Self.resNetStyle()))
        try GemmConvTests.expectClose(try #require(outputs["y"]), try #require(plain["y"]).scalars(as: Float.self), "\(isa)")
    }

    @Test func onlyTheVectorKernelsTakeTheLayout() {
        for graph in [Self.resNetStyle(), Self.mobileNetStyle()] {
            #expect(Self.blockedOps(Self.optimized(graph, isa: .portable)).isEmpty)
            #expect(Self.blockedOps(GraphOptimizer(level: .all).optimize(graph)).isEmpty)
            #expect(!Self.blockedOps(Self.optimized(graph, isa: .avx2)).isEmpty)
            #expect(!Self.blockedOps(Self.optimized(graph, isa: .avx512)).isEmpty)
        }
    }

    @Test func convolutionsWithFewerThan16FiltersStayNCHW() throws {
        // LeNet: 6 filters, then 16 reading those 6. The first is not converted, so the second
        // would be a lone convolution.
        let graph = Graph(
            nodes: [
                Self.conv("conv1", "x", "c1", weight: "w1", bias: "w1_b", kernel: 5, pad: 2),
                Node(name: "relu1", opType: "Relu", inputs: ["c1"], outputs: ["r1"]),
                Node(name: "pool1", opType: "MaxPool", inputs: ["r1"], outputs: ["p1"],
                     attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]),
                Self.conv("conv2", "p1", "c2", weight: "w2", bias: "w2_b", kernel: 5, pad: 0),
                Node(name: "relu2", opType: "Relu", inputs: ["c2"], outputs: ["y"]),
            ],
            inputs: [Self.value("x", [2, 1, 28, 28])], outputs: [Self.value("y", [2, 16, 10, 10])],
            initializers: Self.weights(["w1": [6, 1, 5, 5], "w2": [16, 6, 5, 5]]))
        for isa in Self.vectorISAs { #expect(Self.blockedOps(Self.optimized(graph, isa: isa)).isEmpty, "\(isa)") }
        try Self.expectSameOutputs(graph, graph, level: .all, Self.feeds(graph), "LeNet-style")
    }
}
