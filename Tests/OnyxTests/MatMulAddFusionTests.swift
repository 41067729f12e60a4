import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// `Add(MatMul(A, W), bias)` → one MatMul with a fused bias: when it fires, outputs match the
/// unfused graph; when it must not, the graph is left alone.
@Suite struct MatMulAddFusionTests {
    static func value(_ name: String, _ shape: [Int]) -> Value {
        Value(name: name, type: TensorType(dataType: .float, shape: Shape(fixed: shape)))
    }

    /// `y = Add(MatMul(x, w), b)` (or `Add(b, MatMul(x, w))`), optionally followed by Relu.
    static func linear(
        x: [Int], w: [Int], bias: [Int], biasFirst: Bool = false, relu: Bool = false,
        weightIsInput: Bool = false, extraOutputs: [Value] = [], extraNodes: [Node] = []
    ) -> Graph {
        let addInputs = biasFirst ? ["b", "m"] : ["m", "b"]
        var nodes = [
            Node(name: "matmul", opType: "MatMul", inputs: ["x", "w"], outputs: ["m"]),
            Node(name: "add", opType: "Add", inputs: addInputs, outputs: [relu ? "s" : "y"]),
        ]
        if relu { nodes.append(Node(name: "relu", opType: "Relu", inputs: ["s"], outputs: ["y"])) }
        var inputs = [value("x", x)]
        var initializers = [("b", GemmConvTests.random(bias, seed: 5))]
        if weightIsInput { inputs.append(value("w", w)) } else { initializers.append(("w", GemmConvTests.random(w, seed: 4))) }
        return Graph(
            nodes: nodes + extraNodes, inputs: inputs,
            outputs: [Value(name: "y", type: nil)] + extraOutputs, initializers: initializers)
    }

    static func fused(_ graph: Graph) -> Graph {
        var graph = graph
        MatMulAddFusion().apply(to: &graph)
        return graph
    }

    /// Runs `graph` at `.none` and `.all` and checks every output agrees within 1e-5.
    static func expectSameOutputs(_ graph: Graph, _ feeds: [String: Tensor]) throws {
        let model = Model(opsetImports: ["": 13], graph: graph)
        let reference = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .none)).run(feeds)
        let optimized = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .all)).run(feeds)
        for (name, expected) in reference {
            let actual = try #require(optimized[name])
            #expect(actual.shape == expected.shape, "\(name): shape")
            let a = try actual.scalars(as: Float.self), e = try expected.scalars(as: Float.self)
            #expect(a.count == e.count)
            let worst = zip(a, e).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-5, "\(name): differs by \(worst)")
        }
    }

    @Test(arguments: [
        // x, w, bias
        ([5, 7], [7, 3], [3]),
        ([2, 5, 7], [7, 3], [3]),  // nn.Linear on a 3-D input, as TorchScript exports it
        ([2, 3, 5, 17], [17, 9], [1, 9]),
        ([1, 7], [7, 1], [1]),
        ([4, 7], [7, 6], [1]),  // one element broadcast to every column
        ([4, 7], [7, 6], []),  // a scalar bias
        ([7], [7, 6], [6]),  // a 1-D activation
        ([7], [7, 6], [1, 6]),  // the bias adds an axis
        ([3, 7], [7, 6], [1, 1, 6]),
        ([1, 63], [63, 257], [257]),
    ])
    func firesAndKeepsOutputs(x: [Int], w: [Int], bias: [Int]) throws {
        let graph = Self.linear(x: x, w: w, bias: bias)
        #expect(Self.fused(graph).nodes.map(\.opType) == ["MatMul"])
        try Self.expectSameOutputs(graph, ["x": GemmConvTests.random(x, seed: 1)])
    }

    @Test func biasFirstAndAFollowingRelu() throws {
        let graph = Self.linear(x: [2, 4, 7], w: [7, 5], bias: [5], biasFirst: true, relu: true)
        var optimized = graph
        for pass in GraphOptimizer(level: .all).passes { pass.apply(to: &optimized) }
        #expect(optimized.nodes.map(\.opType) == ["MatMul"])
        var fusedRelu = false
        if case .string("Relu")? = optimized.nodes.first?.attributes["onyx.activation"] { fusedRelu = true }
        #expect(fusedRelu)
        try Self.expectSameOutputs(graph, ["x": GemmConvTests.random([2, 4, 7], seed: 2)])
    }

    @Test func leavesANonConstantWeight() throws {
        let graph = Self.linear(x: [3, 7], w: [7, 4], bias: [4], weightIsInput: true)
        #expect(Self.fused(graph).nodes.map(\.opType) == ["MatMul", "Add"])
        try Self.expectSameOutputs(graph, ["x": GemmConvTests.random([3, 7], seed: 1), "w": GemmConvTests.random([7, 4], seed: 3)])
    }

    @Test(arguments: [
        // x, bias
        ([3, 7], [3, 4]),
        ([2, 3, 7], [2, 1, 4]),
        ([4, 7], [4, 1]),
        ([4, 7], [5]),  // would not broadcast at all
    ])
    func leavesABiasThatIsNotPerColumn(x: [Int], bias: [Int]) throws {
        let graph = Self.linear(x: x, w: [7, 4], bias: bias)
        #expect(Self.fused(graph).nodes.map(\.opType) == ["MatMul", "Add"])
        if bias != [5] { try Self.expectSameOutputs(graph, ["x": GemmConvTests.random(x, seed: 1)]) }
    }

    @Test func leavesAProductThatIsAlsoAGraphOutput() throws {
        let graph = Self.linear(x: [3, 7], w: [7, 4], bias: [4], extraOutputs: [Value(name: "m", type: nil)])
        #expect(Self.fused(graph).nodes.map(\.opType) == ["MatMul", "Add"])
        try Self.expectSameOutputs(graph, ["x": GemmConvTests.random([3, 7], seed: 1)])
    }

    @Test func leavesAProductReadElsewhere() throws {
        let graph = Self.linear(
            x: [3, 7], w: [7, 4], bias: [4], extraOutputs: [Value(name: "t", type: nil)],
            extraNodes: [Node(name: "tanh", opType: "Tanh", inputs: ["m"], outputs: ["t"])])
        #expect(Self.fused(graph).nodes.map(\.opType) == ["MatMul", "Add", "Tanh"])
        try Self.expectSameOutputs(graph, ["x": GemmConvTests.random([3, 7], seed: 1)])
    }

    @Test func leavesANonFloatBias() {
        var graph = Self.linear(x: [3, 7], w: [7, 4], bias: [4])
        graph.setInitializer("b", try! Tensor(shape: [4], scalars: [Double](repeating: 1, count: 4)))
        #expect(Self.fused(graph).nodes.map(\.opType) == ["MatMul", "Add"])
    }

    @Test func aFusedBiasWithoutItsConstantIsAnError() throws {
        let graph = Graph(
            nodes: [Node(name: "mm", opType: "MatMul", inputs: ["x", "w", "b"], outputs: ["y"], attributes: ["onyx.bias": .int(1)])],
            inputs: [Self.value("x", [2, 3]), Self.value("b", [4])], outputs: [Value(name: "y", type: nil)],
            initializers: [("w", GemmConvTests.random([3, 4], seed: 1))])
        let model = Model(opsetImports: ["": 13], graph: graph)
        #expect {
            _ = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .none))
        } throws: { error in
            "\(error)".contains("fused bias")
        }
    }
}
