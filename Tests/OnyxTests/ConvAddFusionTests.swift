import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// `Add(Conv(x, W, b), r)` → one Conv that adds the residual as it stores: what the pass fuses and
/// leaves alone, and that fused and unfused graphs agree on every convolution layout, every
/// micro-kernel variant, one and two threads.
@Suite struct ConvAddFusionTests {
    /// One residual block's tail: `y = Softsign(act(Add(Conv(x, w, b), r)))`.
    struct Block: CustomTestStringConvertible, Sendable {
        var batch = 1, channels = 8, filters = 8, height = 6, width = 6
        var kernel = [3, 3], strides = [1, 1], pads = [1, 1, 1, 1], group = 1
        var bias = true
        /// `nil`, "Relu" or "Clip" after the Add.
        var activation: String? = "Relu"
        var residualFirst = false
        /// The residual is `Relu(t)`, an arena value that dies at the Add (the planner can give the
        /// fused Conv its buffer); otherwise it is the graph input `r`.
        var residualInArena = true

        var oneD: Bool { kernel.count == 1 }
        var inputShape: [Int] { [batch, channels] + (oneD ? [width] : [height, width]) }
        var weightShape: [Int] { [filters, channels / group] + kernel }
        var outputShape: [Int] {
            let spatial = oneD ? [width] : [height, width]
            let axes = spatial.count
            return [batch, filters] + (0..<axes).map { i in
                (spatial[i] + pads[i] + pads[i + axes] - kernel[i]) / strides[i] + 1
            }
        }

        /// The geometry the kernel derives, to name the layout the case exercises.
        var geometry: ConvolutionGeometry {
            let out = outputShape
            if oneD {
                return ConvolutionGeometry(
                    inputHeight: 1, inputWidth: width, kernelHeight: 1, kernelWidth: kernel[0], strideY: 1,
                    strideX: strides[0], dilationY: 1, dilationX: 1, padTop: 0, padLeft: pads[0],
                    outputHeight: 1, outputWidth: out[2])
            }
            return ConvolutionGeometry(
                inputHeight: height, inputWidth: width, kernelHeight: kernel[0], kernelWidth: kernel[1],
                strideY: strides[0], strideX: strides[1], dilationY: 1, dilationX: 1, padTop: pads[0], padLeft: pads[1],
                outputHeight: out[2], outputWidth: out[3])
        }

        func layout(_ isa: KernelISA) -> ConvColumns.Layout {
            ConvColumns(geometry, channels: channels / group, filters: filters / group, isa: isa, allowsTransposed: true).layout
        }

        var fusedOutput: String { activation == nil ? "s" : "z" }

        var testDescription: String {
            "N\(batch) C\(channels) M\(filters) \(oneD ? "\(width)" : "\(height)×\(width)") k\(kernel) s\(strides) p\(pads) g\(group)"
                + "\(bias ? " +b" : "") \(activation ?? "linear")\(residualFirst ? " r+conv" : "")\(residualInArena ? " arena" : " input")"
        }
    }

    static func value(_ name: String, _ shape: [Int]) -> Value {
        Value(name: name, type: TensorType(dataType: .float, shape: Shape(fixed: shape)))
    }

    static func graph(_ b: Block, valueInfo: [Value] = [], residualInput: Value? = nil) -> Graph {
        var nodes: [Node] = []
        var inputs = [value("x", b.inputShape)]
        if b.residualInArena {
            inputs.append(value("t", b.outputShape))
            nodes.append(Node(name: "shortcut", opType: "Relu", inputs: ["t"], outputs: ["r"]))
        } else {
            inputs.append(residualInput ?? value("r", b.outputShape))
        }
        var attributes: [String: Attribute] = ["kernel_shape": .ints(b.kernel), "strides": .ints(b.strides), "pads": .ints(b.pads)]
        if b.group != 1 { attributes["group"] = .int(b.group) }
        nodes.append(Node(name: "conv", opType: "Conv", inputs: b.bias ? ["x", "w", "b"] : ["x", "w"], outputs: ["c"],
                          attributes: attributes))
        nodes.append(Node(name: "add", opType: "Add", inputs: b.residualFirst ? ["r", "c"] : ["c", "r"], outputs: ["s"]))
        var initializers = [("w", GemmConvTests.random(b.weightShape, seed: b.filters * 5 + b.kernel[0])),
                            ("b", GemmConvTests.random([b.filters], seed: 7))]
        switch b.activation {
        case "Relu": nodes.append(Node(name: "act", opType: "Relu", inputs: ["s"], outputs: ["z"]))
        case "Clip":
            nodes.append(Node(name: "act", opType: "Clip", inputs: ["s", "lo", "hi"], outputs: ["z"]))
            initializers += [("lo", Tensor(scalar: Float(-0.5))), ("hi", Tensor(scalar: Float(1.5)))]
        default: break
        }
        nodes.append(Node(name: "tail", opType: "Softsign", inputs: [b.fusedOutput], outputs: ["y"]))
        return Graph(nodes: nodes, inputs: inputs, outputs: [Value(name: "y", type: nil)], valueInfo: valueInfo,
                     initializers: initializers)
    }

    static func feeds(_ b: Block, residualShape: [Int]? = nil) -> [String: Tensor] {
        [
            "x": GemmConvTests.random(b.inputShape, seed: b.channels * 3 + b.width),
            b.residualInArena ? "t" : "r": GemmConvTests.random(residualShape ?? b.outputShape, seed: b.filters + 1),
        ]
    }

    static func optimized(_ graph: Graph) -> Graph {
        GraphOptimizer(level: .all).optimize(graph)
    }

    static func fused(_ graph: Graph) -> Graph {
        var graph = graph
        ConvAddFusion().apply(to: &graph)
        return graph
    }

    /// Runs `graph` unoptimized and at `.all` and checks the outputs agree within 1e-4 (relative
    /// and absolute).
    static func expectSameOutputs(
        _ graph: Graph, _ feeds: [String: Tensor], isa: KernelISA = .preferred, threads: Int = 1, _ label: String = ""
    ) throws {
        let model = Model(opsetImports: ["": 13], graph: graph)
        let reference = try InferenceSession(
            model: model, options: SessionOptions(threadCount: threads, optimizationLevel: .none, isa: isa)).run(feeds)
        let optimized = try InferenceSession(
            model: model, options: SessionOptions(threadCount: threads, optimizationLevel: .all, isa: isa)).run(feeds)
        for (name, expected) in reference {
            let actual = try #require(optimized[name])
            #expect(actual.shape == expected.shape, "\(label) \(name): shape")
            try GemmConvTests.expectClose(actual, try expected.scalars(as: Float.self), "\(label) \(name)")
        }
    }

    // MARK: - Fuses, and keeps the outputs

    static let blocks: [Block] = [
        // Pointwise: the planes read in place.
        Block(channels: 16, filters: 24, height: 9, width: 11, kernel: [1, 1], pads: [0, 0, 0, 0], bias: false),
        Block(batch: 2, channels: 7, filters: 30, height: 5, width: 7, kernel: [1, 1], pads: [0, 0, 0, 0], residualFirst: true,
              residualInArena: false),
        // 1×1 stride 2 (a downsampling shortcut): phase planes, no columns dropped.
        Block(channels: 8, filters: 16, height: 8, width: 8, kernel: [1, 1], strides: [2, 2], pads: [0, 0, 0, 0], activation: nil),
        // 3×3 stride 1, padded: outputs on the padded grid, extra columns dropped as the residual joins.
        Block(channels: 8, filters: 13, height: 12, width: 20),
        Block(batch: 2, channels: 16, filters: 64, height: 7, width: 7, activation: "Clip", residualInArena: false),
        Block(channels: 32, filters: 40, height: 30, width: 34, bias: false, residualFirst: true),
        // 3×3 stride 2, padded.
        Block(channels: 6, filters: 13, height: 20, width: 40, strides: [2, 2], bias: false, activation: "Clip"),
        Block(channels: 32, filters: 96, height: 13, width: 13, strides: [2, 2], activation: nil, residualInArena: false),
        // A 3×1 window, unpadded: read in place, nothing dropped.
        Block(channels: 3, filters: 7, height: 9, width: 37, kernel: [3, 1], pads: [0, 0, 0, 0]),
        // A wide window on a small map: im2col into packed panels.
        Block(channels: 3, filters: 16, height: 4, width: 4, kernel: [7, 7], pads: [3, 3, 3, 3], residualFirst: true),
        Block(channels: 3, filters: 16, height: 4, width: 4, kernel: [7, 7], pads: [3, 3, 3, 3], bias: false, activation: nil,
              residualInArena: false),
        // A 7×7 map with many filters: the transposed tile on AVX-512.
        Block(channels: 128, filters: 256, height: 7, width: 7),
        Block(channels: 64, filters: 128, height: 7, width: 7, kernel: [1, 1], pads: [0, 0, 0, 0], bias: false, activation: nil,
              residualInArena: false),
        // Groups (not depthwise), and 1-D.
        Block(batch: 2, channels: 4, filters: 6, height: 12, width: 12, group: 2),
        Block(channels: 3, filters: 5, width: 70, kernel: [3], strides: [1], pads: [1, 1], activation: "Clip"),
    ]

    @Test(arguments: blocks)
    func fusesAndKeepsOutputs(_ b: Block) throws {
        let graph = Self.graph(b)
        let optimized = Self.optimized(graph)
        #expect(optimized.nodes.map(\.opType) == (b.residualInArena ? ["Relu"] : []) + ["Conv", "Softsign"])
        let conv = try #require(optimized.nodes.first { $0.opType == "Conv" })
        #expect(conv.inputs == ["x", "w", b.bias ? "b" : "", "r"])
        #expect(conv.outputs == [b.fusedOutput])
        if case .int(1)? = conv.attributes["onyx.residual"] {} else { Issue.record("no onyx.residual: \(conv.attributes)") }
        if let activation = b.activation {
            guard case .string(let fusedActivation)? = conv.attributes["onyx.activation"] else {
                Issue.record("the \(activation) after the Add did not join the Conv")
                return
            }
            #expect(fusedActivation == activation)
        }
        for isa in KernelISA.supported {
            for threads in [1, 2] {
                try Self.expectSameOutputs(graph, Self.feeds(b), isa: isa, threads: threads, "\(b.testDescription) \(isa) ×\(threads)")
            }
        }
    }

    /// The cases above reach every layout the kernel can pick on this CPU.
    @Test func blocksCoverEveryLayout() {
        for isa in KernelISA.supported {
            var names = Set<String>()
            for b in Self.blocks {
                switch b.layout(isa) {
                case .pointwise: names.insert("pointwise")
                case .shiftedRows(_, let width, let copies):
                    names.insert(copies ? "shifted copy" : "shifted in place")
                    names.insert(width == b.geometry.outputWidth ? "shifted kept" : "shifted dropped")
                case .packed: names.insert("packed")
                case .transposed: names.insert("transposed")
                }
            }
            var expected: Set = ["pointwise", "shifted copy", "shifted in place", "shifted kept", "shifted dropped", "packed"]
            if Gemm.transposedMR(isa) > 0 { expected.insert("transposed") }
            #expect(names == expected, "\(isa)")
        }
    }

    /// The fused Conv writes over the residual's buffer when the residual dies there.
    @Test func theOutputTakesTheResidualsBuffer() throws {
        let b = Block(channels: 8, filters: 13, height: 12, width: 20)
        let session = try InferenceSession(model: Model(opsetImports: ["": 13], graph: Self.graph(b)))
        let feeds = Self.feeds(b)
        let plan = try session.plan(for: session.inputs.map { feeds[$0.name]! })
        let names = plan.graph.valueNames
        let residual = try #require(names.firstIndex(of: "r")), output = try #require(names.firstIndex(of: "z"))
        guard case .arena(let a) = plan.locations[residual], case .arena(let o) = plan.locations[output] else {
            Issue.record("r at \(plan.locations[residual]), z at \(plan.locations[output])")
            return
        }
        #expect(a == o)
    }

    /// Both exports of the small ResNet fixture: every residual Add joins its Conv, with the Relu after it.
    @Test(arguments: ["resnet_small_legacy", "resnet_small_dynamo"])
    func fusesEveryResidualOfTheResNetFixture(_ fixture: String) throws {
        let model = try Model(contentsOf: FixtureTests.root.appendingPathComponent("\(fixture)/model.onnx").path)
        let adds = model.graph.nodes.filter { $0.opType == "Add" }.count
        #expect(adds == 2)
        let optimized = Self.optimized(model.graph)
        #expect(!optimized.nodes.contains { $0.opType == "Add" })
        let residual = optimized.nodes.filter { $0.attributes["onyx.residual"] != nil }
        #expect(residual.count == adds)
        for conv in residual {
            guard case .string("Relu")? = conv.attributes["onyx.activation"] else {
                Issue.record("\(conv.name): the Relu after the Add did not join")
                continue
            }
        }
    }

    @Test func declaredEqualShapesFuse() throws {
        let b = Block(channels: 4, filters: 6, height: 5, width: 5, residualInArena: false)
        let batch = Shape([.symbolic("batch"), .fixed(6), .fixed(5), .fixed(5)])
        let graph = Self.graph(
            b, valueInfo: [Value(name: "c", type: TensorType(dataType: .float, shape: batch))],
            residualInput: Value(name: "r", type: TensorType(dataType: .float, shape: batch)))
        #expect(Self.fused(graph).nodes.map(\.opType) == ["Conv", "Relu", "Softsign"])
    }

    // MARK: - Leaves alone

    @Test func leavesADeclaredBroadcast() throws {
        let b = Block(channels: 4, filters: 6, height: 5, width: 5, residualInArena: false)
        let graph = Self.graph(b, valueInfo: [Self.value("c", b.outputShape)], residualInput: Self.value("r", [1, 6, 1, 1]))
        #expect(Self.fused(graph).nodes.map(\.opType) == ["Conv", "Add", "Relu", "Softsign"])
        try Self.expectSameOutputs(graph, Self.feeds(b, residualShape: [1, 6, 1, 1]))
    }

    @Test func leavesAConstantAddend() throws {
        let b = Block(channels: 4, filters: 6, height: 5, width: 5, residualInArena: false)
        var graph = Self.graph(b)
        graph.inputs.removeAll { $0.name == "r" }
        graph.setInitializer("r", GemmConvTests.random([6, 1, 1], seed: 3))
        #expect(Self.fused(graph).nodes.map(\.opType) == ["Conv", "Add", "Relu", "Softsign"])
        try Self.expectSameOutputs(graph, ["x": GemmConvTests.random(b.inputShape, seed: 1)])
    }

    @Test func leavesAConvOutputReadElsewhere() throws {
        let b = Block(channels: 4, filters: 6, height: 5, width: 5, residualInArena: false)
        var graph = Self.graph(b)
        graph.nodes.append(Node(name: "other", opType: "Tanh", inputs: ["c"], outputs: ["u"]))
        graph.outputs.append(Value(name: "u", type: nil))
        #expect(Self.fused(graph).nodes.map(\.opType) == ["Conv", "Add", "Relu", "Softsign", "Tanh"])
        try Self.expectSameOutputs(graph, Self.feeds(b))
    }

    @Test func leavesAConvOutputThatIsAGraphOutput() throws {
        let b = Block(channels: 4, filters: 6, height: 5, width: 5, residualInArena: false)
        var graph = Self.graph(b)
        graph.outputs.append(Value(name: "c", type: nil))
        #expect(Self.fused(graph).nodes.map(\.opType) == ["Conv", "Add", "Relu", "Softsign"])
        try Self.expectSameOutputs(graph, Self.feeds(b))
    }

    @Test func leavesADepthwiseConv() throws {
        let b = Block(channels: 6, filters: 6, height: 9, width: 9, group: 6, residualInArena: false)
        let graph = Self.graph(b)
        #expect(Self.fused(graph).nodes.map(\.opType) == ["Conv", "Add", "Relu", "Softsign"])
        try Self.expectSameOutputs(graph, Self.feeds(b))
    }

    @Test func leavesANonFloatConv() throws {
        let b = Block(channels: 4, filters: 6, height: 5, width: 5, residualInArena: false)
        var graph = Self.graph(b)
        let weights = try GemmConvTests.random(b.weightShape, seed: 2).converted(to: .double)
        graph.setInitializer("w", weights)
        #expect(Self.fused(graph).nodes.map(\.opType) == ["Conv", "Add", "Relu", "Softsign"])
        graph.inputs[1] = Value(name: "r", type: TensorType(dataType: .double, shape: Shape(fixed: b.outputShape)))
        #expect(!ConvAddFusion.mayHaveTheSameShape(nil, graph.inputs[1].type))
    }

    @Test func leavesALegacyBroadcastAdd() {
        let b = Block(channels: 4, filters: 6, height: 5, width: 5, residualInArena: false)
        var graph = Self.graph(b)
        let add = graph.nodes.firstIndex { $0.opType == "Add" }!
        graph.nodes[add].attributes["broadcast"] = .int(1)
        #expect(Self.fused(graph).nodes.map(\.opType) == ["Conv", "Add", "Relu", "Softsign"])
    }

    @Test func leavesAConvWithAnActivationAlready() {
        let b = Block(channels: 4, filters: 6, height: 5, width: 5, residualInArena: false)
        var graph = Self.graph(b)
        graph.nodes[0].attributes["onyx.activation"] = .string("Relu")
        #expect(Self.fused(graph).nodes.map(\.opType) == ["Conv", "Add", "Relu", "Softsign"])
    }

    // MARK: - Shapes the graph does not declare

    /// A legacy export declares no intermediate shapes, so the pass fuses and the kernel adds a
    /// residual of another shape by broadcasting, as the Add did.
    @Test(arguments: [
        // Block, residual shape
        (Block(batch: 2, channels: 4, filters: 6, height: 5, width: 5, residualInArena: false), [1, 6, 1, 1]),
        (Block(channels: 4, filters: 6, height: 5, width: 5, residualInArena: false), [6, 5, 1]),
        // The residual is larger than the convolution's output (a global-context block).
        (Block(channels: 4, filters: 6, height: 5, width: 5, kernel: [5, 5], pads: [0, 0, 0, 0], residualInArena: false),
         [1, 6, 3, 4]),
        (Block(channels: 4, filters: 6, height: 5, width: 5, activation: "Clip", residualInArena: false), [2, 1, 6, 5, 5]),
    ])
    func broadcastsAnUndeclaredResidual(_ b: Block, _ residual: [Int]) throws {
        let graph = Self.graph(b, residualInput: Value(name: "r", type: nil))
        #expect(Self.optimized(graph).nodes.map(\.opType) == ["Conv", "Softsign"])
        for isa in KernelISA.supported {
            for threads in [1, 2] {
                try Self.expectSameOutputs(graph, Self.feeds(b, residualShape: residual), isa: isa, threads: threads, "\(residual) \(isa)")
            }
        }
    }

    @Test func aResidualThatDoesNotBroadcastIsAnError() throws {
        let b = Block(channels: 4, filters: 6, height: 5, width: 5, residualInArena: false)
        let graph = Self.graph(b, residualInput: Value(name: "r", type: nil))
        let session = try InferenceSession(model: Model(opsetImports: ["": 13], graph: graph))
        #expect {
            _ = try session.run(Self.feeds(b, residualShape: [1, 6, 4, 5]))
        } throws: { error in
            "\(error)".contains("Conv (fused Add)")
        }
    }

    /// A depthwise Conv fused by hand (the pass does not) adds its residual through the broadcast path.
    @Test func aHandFusedDepthwiseConvAddsItsResidual() throws {
        let b = Block(channels: 6, filters: 6, height: 9, width: 9, group: 6, residualInArena: false)
        let graph = Self.graph(b)
        var fused = graph
        fused.nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b", "r"], outputs: ["z"],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "group": .int(6),
                              "onyx.residual": .int(1), "onyx.activation": .string("Relu")]),
            Node(name: "tail", opType: "Softsign", inputs: ["z"], outputs: ["y"]),
        ]
        let options = SessionOptions(optimizationLevel: .none)
        let expected = try InferenceSession(model: Model(opsetImports: ["": 13], graph: graph), options: options).run(Self.feeds(b))
        let actual = try InferenceSession(model: Model(opsetImports: ["": 13], graph: fused), options: options).run(Self.feeds(b))
        try GemmConvTests.expectClose(try #require(actual["y"]), try #require(expected["y"]).scalars(as: Float.self), "depthwise")
    }

    /// A float16 Conv fused by hand runs through float32 staging, its output over the residual's buffer.
    @Test func aHandFusedFloat16ConvAddsItsResidual() throws {
        let b = Block(channels: 8, filters: 13, height: 12, width: 20)
        func half(_ graph: Graph) throws -> Graph {
            var graph = graph
            graph.inputs = graph.inputs.map { Value(name: $0.name, type: TensorType(dataType: .float16, shape: $0.type?.shape)) }
            graph.initializers = try graph.initializers.map { ($0.name, try $0.tensor.converted(to: .float16)) }
            return graph
        }
        let graph = try half(Self.graph(b))
        var fused = graph
        fused.nodes = [
            graph.nodes[0],
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b", "r"], outputs: ["z"],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]),
                              "onyx.residual": .int(1), "onyx.activation": .string("Relu")]),
            Node(name: "tail", opType: "Softsign", inputs: ["z"], outputs: ["y"]),
        ]
        let feeds = try Self.feeds(b).mapValues { try $0.converted(to: .float16) }
        let options = SessionOptions(optimizationLevel: .none)
        let session = try InferenceSession(model: Model(opsetImports: ["": 13], graph: fused), options: options)
        let plan = try session.plan(for: session.inputs.map { feeds[$0.name]! })
        let names = plan.graph.valueNames
        let residual = try #require(names.firstIndex(of: "r")), output = try #require(names.firstIndex(of: "z"))
        if case .arena(let a) = plan.locations[residual], case .arena(let o) = plan.locations[output] {
            #expect(a == o)
        } else {
            Issue.record("r at \(plan.locations[residual]), z at \(plan.locations[output])")
        }
        let expected = try InferenceSession(model: Model(opsetImports: ["": 13], graph: graph), options: options).run(feeds)
        let actual = try session.run(feeds)
        let a = try #require(actual["y"]).converted(to: .float), e = try #require(expected["y"]).converted(to: .float)
        let worst = zip(try a.scalars(as: Float.self), try e.scalars(as: Float.self)).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 2e-3, "float16 differs by \(worst)")
    }

    @Test func aFusedResidualWithoutItsInputIsAnError() {
        let graph = Graph(
            nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["onyx.residual": .int(1)])],
            inputs: [Self.value("x", [1, 2, 3, 3])], outputs: [Value(name: "y", type: nil)],
            initializers: [("w", GemmConvTests.random([2, 2, 1, 1], seed: 1))])
        #expect {
            _ = try InferenceSession(model: Model(opsetImports: ["": 13], graph: graph), options: SessionOptions(optimizationLevel: .none))
        } throws: { error in
            "\(error)".contains("fused residual")
        }
    }
}
