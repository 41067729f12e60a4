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
        ConvBatchNormFolding().apply(to: &graph)
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
        ConvBatchNormFolding().apply(to: &folded)
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
