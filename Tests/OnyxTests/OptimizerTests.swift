import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Each graph pass on its own: what it rewrites, and that outputs stay the same.
@Suite struct OptimizerTests {
    static func value(_ name: String, _ shape: [Int]) -> Value {
        Value(name: name, type: TensorType(dataType: .float, shape: Shape(fixed: shape)))
    }

    /// Conv → BatchNormalization → Clip(Constant, Constant) → Identity → Relu, legacy-export style.
    static func convChain() -> Graph {
        Graph(
            nodes: [
                Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])]),
                Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "scale", "bias", "mean", "var"], outputs: ["b"]),
                Node(name: "lo", opType: "Constant", inputs: [], outputs: ["lo"], attributes: ["value": .tensor(Tensor(scalar: Float(0)))]),
                Node(name: "hi", opType: "Constant", inputs: [], outputs: ["hi"], attributes: ["value": .tensor(Tensor(scalar: Float(0.5)))]),
                Node(name: "clip", opType: "Clip", inputs: ["b", "lo", "hi"], outputs: ["k"]),
                Node(name: "id", opType: "Identity", inputs: ["k"], outputs: ["i"]),
                Node(name: "relu", opType: "Relu", inputs: ["i"], outputs: ["y"]),
            ],
            inputs: [value("x", [1, 2, 5, 5])], outputs: [value("y", [1, 3, 5, 5])],
            initializers: [
                ("w", GemmConvTests.random([3, 2, 3, 3], seed: 3)),
                ("scale", try! Tensor(shape: [3], scalars: [Float(1.5), 0.5, 2])),
                ("bias", try! Tensor(shape: [3], scalars: [Float(0.1), -0.2, 0.3])),
                ("mean", try! Tensor(shape: [3], scalars: [Float(0.05), 0.1, -0.1])),
                ("var", try! Tensor(shape: [3], scalars: [Float(0.9), 1.2, 0.4])),
            ])
    }

    @Test func passesRewriteTheChain() {
        var graph = Self.convChain()
        ConstantLifting().apply(to: &graph)
        #expect(!graph.nodes.contains { $0.opType == "Constant" })
        #expect(graph.initializer(named: "hi") != nil)
        IdentityElimination().apply(to: &graph)
        #expect(!graph.nodes.contains { $0.opType == "Identity" })
        ConvAffineFolding().apply(to: &graph)
        #expect(!graph.nodes.contains { $0.opType == "BatchNormalization" })
        #expect(graph.nodes.first { $0.opType == "Conv" }?.inputs.count == 3)
        ActivationFusion().apply(to: &graph)
        let conv = graph.nodes.first { $0.opType == "Conv" }
        guard case .string("Clip")? = conv?.attributes["onyx.activation"] else {
            Issue.record("Clip was not fused: \(graph.nodes.map(\.opType))")
            return
        }
        // Relu after the fused Clip stays a node (a producer takes one activation).
        #expect(graph.nodes.map(\.opType) == ["Conv", "Relu"])
    }

    @Test(arguments: OptimizationLevel.allCases)
    func everyLevelGivesTheSameOutputs(level: OptimizationLevel) throws {
        let model = Model(opsetImports: ["": 13], graph: Self.convChain())
        let x = GemmConvTests.random([1, 2, 5, 5], seed: 9)
        let reference = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .none)).run(["x": x])["y"]!
        let optimized = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: level)).run(["x": x])["y"]!
        try GemmConvTests.expectClose(optimized, try reference.scalars(as: Float.self), "level \(level)")
    }

    @Test func keepsNodesWhoseOutputsAreGraphOutputs() {
        var graph = Graph(
            nodes: [
                Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["r"]),
                Node(name: "id", opType: "Identity", inputs: ["r"], outputs: ["y"]),
            ],
            inputs: [Self.value("x", [2])], outputs: [Self.value("r", [2]), Self.value("y", [2])])
        IdentityElimination().apply(to: &graph)
        ActivationFusion().apply(to: &graph)
        #expect(graph.nodes.map(\.opType) == ["Relu", "Identity"])
    }

    /// `product → activation → y` for a Conv (GEMM and depthwise), a Gemm and a MatMul (one row and
    /// several), with `activation` one node, or written out: Sigmoid then Mul for "SiLU"
    /// (`mulFirst`: the Mul names the Sigmoid's output first), the legacy exporter's Div, Erf,
    /// Add, Mul, Mul for "Gelu" (`mulFirst`: the 0.5 first), GPT-2's Pow and Tanh form for
    /// "GeluTanh"; "GeluOp" is the opset-20 Gelu node. `view`: a Reshape between product and activation.
    static func activationGraph(_ producer: String, _ activation: String, mulFirst: Bool = false, view: Bool = false) -> Graph {
        var nodes: [Node]
        var inputs: [Value]
        var initializers: [(name: String, tensor: Tensor)]
        switch producer {
        case "Conv", "DepthwiseConv":
            let depthwise = producer == "DepthwiseConv"
            var attributes: [String: Attribute] = ["pads": .ints([1, 1, 1, 1]), "kernel_shape": .ints([3, 3])]
            if depthwise { attributes["group"] = .int(6) }
            nodes = [Node(name: "p", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: attributes)]
            inputs = [value("x", [2, 6, 7, 9])]
            initializers = [("w", GemmConvTests.random([depthwise ? 6 : 10, depthwise ? 1 : 6, 3, 3], seed: 5)),
                            ("b", GemmConvTests.random([depthwise ? 6 : 10], seed: 6))]
        case "Gemm":
            nodes = [Node(name: "p", opType: "Gemm", inputs: ["x", "w", "b"], outputs: ["c"], attributes: ["transB": .int(1)])]
            inputs = [value("x", [5, 12])]
            initializers = [("w", GemmConvTests.random([37, 12], seed: 7)), ("b", GemmConvTests.random([37], seed: 8))]
        default:
            nodes = [Node(name: "p", opType: "MatMul", inputs: ["x", "w"], outputs: ["c"])]
            inputs = [value("x", producer == "MatMulRow" ? [1, 40] : [3, 4, 40])]
            initializers = [("w", GemmConvTests.random([40, 33], seed: 9))]
        }
        initializers += [
            ("sqrt2", Tensor(scalar: Float(2).squareRoot())), ("one", Tensor(scalar: Float(1))), ("half", Tensor(scalar: Float(0.5))),
            ("three", Tensor(scalar: Float(3))), ("cubic", Tensor(scalar: Float(0.044715))),
            ("sqrt2pi", Tensor(scalar: (2 / Float.pi).squareRoot())), ("flat", try! Tensor(shape: [1], scalars: [Int64(-1)])),
        ]
        var c = "c"
        if view {
            nodes.append(Node(name: "view", opType: "Reshape", inputs: ["c", "flat"], outputs: ["v"]))
            c = "v"
        }
        func mul(_ name: String, _ a: String, _ b: String, _ y: String) -> Node {
            Node(name: name, opType: "Mul", inputs: [a, b], outputs: [y])
        }
        switch activation {
        case "SiLU":
            nodes.append(Node(name: "s", opType: "Sigmoid", inputs: [c], outputs: ["g"]))
            nodes.append(Node(name: "m", opType: "Mul", inputs: mulFirst ? ["g", c] : [c, "g"], outputs: ["y"]))
        case "Gelu":
            nodes += [
                Node(name: "d", opType: "Div", inputs: [c, "sqrt2"], outputs: ["d"]),
                Node(name: "e", opType: "Erf", inputs: ["d"], outputs: ["e"]),
                Node(name: "a", opType: "Add", inputs: ["e", "one"], outputs: ["a"]),
            ]
            nodes += mulFirst ? [mul("h", "half", c, "h"), mul("y", "a", "h", "y")] : [mul("m", c, "a", "m"), mul("y", "m", "half", "y")]
        case "GeluTanh":
            nodes += [
                mul("h", c, "half", "h"),
                Node(name: "p", opType: "Pow", inputs: [c, "three"], outputs: ["p"]),
                mul("pc", "p", "cubic", "pc"),
                Node(name: "s", opType: "Add", inputs: [c, "pc"], outputs: ["s"]),
                mul("i", "s", "sqrt2pi", "i"),
                Node(name: "t", opType: "Tanh", inputs: ["i"], outputs: ["t"]),
                Node(name: "a", opType: "Add", inputs: ["t", "one"], outputs: ["a"]),
                mul("y", "h", "a", "y"),
            ]
        case "GeluOp":
            nodes.append(Node(name: "a", opType: "Gelu", inputs: [c], outputs: ["y"]))
        case "LeakyRelu":
            nodes.append(Node(name: "a", opType: activation, inputs: [c], outputs: ["y"], attributes: ["alpha": .float(0.3)]))
        case "HardSigmoid":
            nodes.append(Node(name: "a", opType: activation, inputs: [c], outputs: ["y"], attributes: ["beta": .float(0.6)]))
        default:
            nodes.append(Node(name: "a", opType: activation, inputs: [c], outputs: ["y"]))
        }
        return Graph(nodes: nodes, inputs: inputs, outputs: [Value(name: "y", type: nil)], initializers: initializers)
    }

    @Test(arguments: ["Conv", "DepthwiseConv", "Gemm", "MatMul", "MatMulRow"])
    func activationsJoinTheirProducers(producer: String) throws {
        for activation in ["SiLU", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Gelu", "GeluTanh", "GeluOp"] {
            for (mulFirst, view) in [(false, false), (true, false), (false, true)]
            where !mulFirst || ["SiLU", "Gelu"].contains(activation) {
                let graph = Self.activationGraph(producer, activation, mulFirst: mulFirst, view: view)
                let label = "\(producer) \(activation)\(mulFirst ? " mul first" : "")\(view ? " via Reshape" : "")"
                var fused = graph
                ActivationFusion().apply(to: &fused)
                #expect(fused.nodes.count == (view ? 2 : 1) && fused.nodes.last?.outputs == ["y"], "\(label): \(fused.nodes)")
                let expected = activation == "GeluOp" ? "Gelu" : activation
                if case .string(expected)? = fused.nodes.first?.attributes["onyx.activation"] {} else {
                    Issue.record("\(label): \(fused.nodes)")
                }
                let model = Model(opsetImports: ["": 20], graph: graph)
                let feeds = Dictionary(uniqueKeysWithValues: graph.inputs.map {
                    ($0.name, GemmConvTests.random($0.type!.shape!.fixedExtents!, seed: 4))
                })
                for (isa, threads) in GemmConvTests.variants {
                    let reference = try InferenceSession(
                        model: model, options: SessionOptions(threadCount: threads, optimizationLevel: .none, isa: isa)).run(feeds)
                    let optimized = try InferenceSession(
                        model: model, options: SessionOptions(threadCount: threads, optimizationLevel: .all, isa: isa)).run(feeds)
                    try GemmConvTests.expectClose(optimized["y"]!, try reference["y"]!.scalars(as: Float.self),
                                                  "\(label) \(isa) ×\(threads)")
                }
            }
        }
    }

    /// SiLU fuses only when the Sigmoid and the Mul are the product's only readers, and the Mul
    /// multiplies the product by that Sigmoid.
    @Test func siluNeedsTheWholePattern() {
        // The product also read elsewhere.
        var graph = Self.activationGraph("Gemm", "SiLU")
        graph.nodes.append(Node(name: "other", opType: "Neg", inputs: ["c"], outputs: ["z"]))
        graph.outputs.append(Value(name: "z", type: nil))
        ActivationFusion().apply(to: &graph)
        #expect(graph.nodes.map(\.opType) == ["Gemm", "Sigmoid", "Mul", "Neg"])
        // The gate also read elsewhere.
        graph = Self.activationGraph("Gemm", "SiLU")
        graph.outputs.append(Value(name: "g", type: nil))
        ActivationFusion().apply(to: &graph)
        #expect(graph.nodes.map(\.opType) == ["Gemm", "Sigmoid", "Mul"])
        // A Mul by something else.
        graph = Self.activationGraph("Gemm", "SiLU")
        graph.nodes[2].inputs = ["c", "c"]
        graph.nodes.append(Node(name: "use", opType: "Neg", inputs: ["g"], outputs: ["z"]))
        ActivationFusion().apply(to: &graph)
        #expect(graph.nodes.map(\.opType) == ["Gemm", "Sigmoid", "Mul", "Neg"])
    }

    @Test func foldingLeavesTheCallersModelAlone() throws {
        // The session folds BatchNormalization into the weights in place only when it holds the
        // only reference; a caller that keeps its model must find its weights unchanged.
        let model = Model(opsetImports: ["": 13], graph: Self.convChain())
        let before = try model.graph.initializer(named: "w")!.scalars(as: Float.self)
        let session = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .all))
        #expect(try model.graph.initializer(named: "w")!.scalars(as: Float.self) == before)
        // A second session from the same model folds from the original weights too.
        let x = GemmConvTests.random([1, 2, 5, 5], seed: 9)
        let again = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .all))
        let first = try session.run(["x": x])["y"]!, second = try again.run(["x": x])["y"]!
        #expect(try first.scalars(as: Float.self) == second.scalars(as: Float.self))
    }

    @Test func foldingSharedWeightsCopiesThem() throws {
        // Two Convs read one weight; only the first is followed by a BatchNormalization. The fold
        // must give it its own scaled copy and leave the other Conv's weight as it was.
        let graph = Graph(
            nodes: [
                Node(name: "c1", opType: "Conv", inputs: ["x", "w"], outputs: ["a"]),
                Node(name: "bn", opType: "BatchNormalization", inputs: ["a", "scale", "bias", "mean", "var"], outputs: ["b"]),
                Node(name: "c2", opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
                Node(name: "add", opType: "Add", inputs: ["b", "c"], outputs: ["y"]),
            ],
            inputs: [Self.value("x", [1, 2, 4, 4])], outputs: [Self.value("y", [1, 3, 2, 2])],
            initializers: Array(Self.convChain().initializers))
        var folded = graph
        ConvAffineFolding().apply(to: &folded)
        #expect(!folded.nodes.contains { $0.opType == "BatchNormalization" })
        let c1 = folded.nodes.first { $0.name == "c1" }!, c2 = folded.nodes.first { $0.name == "c2" }!
        #expect(c1.inputs[1] != "w" && c2.inputs[1] == "w")
        #expect(try folded.initializer(named: "w")!.scalars(as: Float.self)
                == graph.initializer(named: "w")!.scalars(as: Float.self))
        let x = GemmConvTests.random([1, 2, 4, 4], seed: 5)
        let model = Model(opsetImports: ["": 13], graph: graph)
        let reference = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .none)).run(["x": x])["y"]!
        let optimized = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .all)).run(["x": x])["y"]!
        try GemmConvTests.expectClose(optimized, try reference.scalars(as: Float.self), "shared weight")
    }

    /// Conv → Mul(scalar) → Add([1, M, 1, 1]) → Sub([M, 1, 1]) → Div(scalar) folds into the
    /// Conv's weights and bias; `c − y`, a divisor of 0 and a constant broadcast along the width stop it.
    @Test func affineMapsFoldIntoTheConv() throws {
        func graph(_ tail: [Node]) -> Graph {
            Graph(
                nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"],
                             attributes: ["pads": .ints([1, 1, 1, 1])])] + tail,
                inputs: [Self.value("x", [1, 2, 5, 5])], outputs: [Value(name: "y", type: nil)],
                initializers: [
                    ("w", GemmConvTests.random([3, 2, 3, 3], seed: 3)), ("s", Tensor(scalar: Float(1.5))),
                    ("perChannel", try! Tensor(shape: [1, 3, 1, 1], scalars: [Float(0.5), -1, 2])),
                    ("perChannel3", try! Tensor(shape: [3, 1, 1], scalars: [Float(0.25), 3, -2])),
                    ("zero", Tensor(scalar: Float(0))), ("alongWidth", try! Tensor(shape: [1, 1, 1, 5], scalars: [Float](repeating: 2, count: 5))),
                ])
        }
        let folding = graph([
            Node(name: "mul", opType: "Mul", inputs: ["s", "c"], outputs: ["m"]),
            Node(name: "add", opType: "Add", inputs: ["m", "perChannel"], outputs: ["a"]),
            Node(name: "sub", opType: "Sub", inputs: ["a", "perChannel3"], outputs: ["d"]),
            Node(name: "div", opType: "Div", inputs: ["d", "s"], outputs: ["y"]),
        ])
        var folded = folding
        ConvAffineFolding().apply(to: &folded)
        #expect(folded.nodes.map(\.opType) == ["Conv"] && folded.nodes[0].outputs == ["y"] && folded.nodes[0].inputs.count == 3)
        for stop in [
            Node(name: "rsub", opType: "Sub", inputs: ["s", "c"], outputs: ["y"]),
            Node(name: "div0", opType: "Div", inputs: ["c", "zero"], outputs: ["y"]),
            Node(name: "wide", opType: "Mul", inputs: ["c", "alongWidth"], outputs: ["y"]),
        ] {
            var kept = graph([stop])
            ConvAffineFolding().apply(to: &kept)
            #expect(kept.nodes.count == 2, "\(stop.name) was folded")
            if stop.name == "div0" { continue }  // ±inf and NaN: not a comparison of kernels
            let model = Model(opsetImports: ["": 13], graph: graph([stop]))
            let x = GemmConvTests.random([1, 2, 5, 5], seed: 5)
            let reference = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .none)).run(["x": x])["y"]!
            let optimized = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .all)).run(["x": x])["y"]!
            try GemmConvTests.expectClose(optimized, try reference.scalars(as: Float.self), stop.name)
        }
        let model = Model(opsetImports: ["": 13], graph: folding)
        let x = GemmConvTests.random([1, 2, 5, 5], seed: 5)
        let reference = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .none)).run(["x": x])["y"]!
        let optimized = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .basic)).run(["x": x])["y"]!
        try GemmConvTests.expectClose(optimized, try reference.scalars(as: Float.self), "affine maps")
    }

    /// Paddle's hand-written hard swish and hard sigmoid (`x · clip(x + 3, 0, 6) / 6`,
    /// `clip(x + 3, 0, 6) · (1/6)`) become HardSigmoid nodes, and the swish then fuses into its Conv.
    @Test func handWrittenHardSwishIsRecognised() throws {
        let nodes: [Node] = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "add3", opType: "Add", inputs: ["c", "three"], outputs: ["c3"]),
            Node(name: "clip", opType: "Clip", inputs: ["c3", "zero", "six"], outputs: ["k"]),
            Node(name: "mul", opType: "Mul", inputs: ["k", "c"], outputs: ["ck"]),
            Node(name: "div", opType: "Div", inputs: ["ck", "six"], outputs: ["h"]),
            Node(name: "gadd3", opType: "Add", inputs: ["three", "h"], outputs: ["h3"]),
            Node(name: "gclip", opType: "Clip", inputs: ["h3", "zero", "six"], outputs: ["hk"]),
            Node(name: "gmul", opType: "Mul", inputs: ["hk", "sixth"], outputs: ["y"]),
        ]
        let graph = Graph(
            nodes: nodes, inputs: [Self.value("x", [1, 2, 5, 5])], outputs: [Value(name: "y", type: nil)],
            initializers: [
                ("w", GemmConvTests.random([3, 2, 3, 3], seed: 3)), ("three", Tensor(scalar: Float(3))),
                ("zero", Tensor(scalar: Float(0))), ("six", Tensor(scalar: Float(6))), ("sixth", Tensor(scalar: Float(1) / 6)),
            ])
        var recognised = graph
        HardSigmoidRecognition().apply(to: &recognised)
        #expect(recognised.nodes.map(\.opType) == ["Conv", "HardSigmoid", "Mul", "HardSigmoid"])
        #expect(try recognised.topologicallySortedNodes().count == 4)
        let optimized = GraphOptimizer(level: .all).optimize(graph)
        #expect(optimized.nodes.map(\.opType) == ["Conv", "HardSigmoid"])
        if case .string("HardSwish")? = optimized.nodes.first?.attributes["onyx.activation"] {} else {
            Issue.record("HardSwish was not fused: \(optimized.nodes)")
        }
        let model = Model(opsetImports: ["": 13], graph: graph)
        let x = GemmConvTests.random([1, 2, 5, 5], seed: 5)
        for (isa, threads) in GemmConvTests.variants {
            let reference = try InferenceSession(
                model: model, options: SessionOptions(threadCount: threads, optimizationLevel: .none, isa: isa)).run(["x": x])["y"]!
            let result = try InferenceSession(
                model: model, options: SessionOptions(threadCount: threads, optimizationLevel: .all, isa: isa)).run(["x": x])["y"]!
            try GemmConvTests.expectClose(result, try reference.scalars(as: Float.self), "hard swish \(isa) ×\(threads)")
        }
    }

    @Test func unreadInitializersAreDropped() {
        var graph = Self.convChain()
        graph.initializers.append(("unused", Tensor(scalar: Float(1))))
        let optimized = GraphOptimizer(level: .basic).optimize(graph)
        let names = Set(optimized.initializers.map(\.name))
        // The BatchNormalization parameters were folded away; the weight was scaled under its name.
        #expect(!names.contains("unused") && !names.contains("scale") && !names.contains("mean"))
        #expect(names.contains("w"))
        #expect(GraphOptimizer(level: .none).optimize(graph).initializers.count == graph.initializers.count)
    }

    @Test func sessionKeepsMetadataNotWeights() throws {
        let model = Model(opsetImports: ["": 13], graph: Self.convChain())
        let session = try InferenceSession(model: model)
        #expect(session.model.graph.initializers.isEmpty)
        #expect(session.model.graph.nodes.count == model.graph.nodes.count)
        #expect(session.parameterCount.elements == model.parameterCount.elements)
        #expect(session.parameterCount.bytes == 4 * (3 * 2 * 3 * 3 + 4 * 3))
    }
}
