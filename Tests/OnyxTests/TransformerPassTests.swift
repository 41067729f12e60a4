import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// The passes for the transformer exporters' patterns: common-subexpression elimination (GPT-2's
/// per-layer mask Where) and the Softmax → IsNaN → Where(NaN → 0) fusion. Each is checked to fire
/// (the nodes it removes are gone, outputs match the unoptimised graph on every ISA at one and
/// two threads) and to leave alone what it must not touch.
@Suite struct TransformerPassTests {
    static func value(_ name: String, _ shape: [Int], _ type: DataType = .float) -> Value {
        Value(name: name, type: TensorType(dataType: type, shape: Shape(fixed: shape)))
    }

    static func output(_ name: String) -> Value { Value(name: name, type: nil) }

    static func optimized(_ graph: Graph, _ pass: some GraphPass) -> Graph {
        var graph = graph
        pass.apply(to: &graph)
        return graph
    }

    /// Runs `graph` unoptimised and optimised on every variant and compares `outputs`.
    static func expectSameOutputs(_ graph: Graph, _ feeds: [String: Tensor], _ outputs: [String], opset: Int = 13) throws {
        let model = Model(opsetImports: ["": opset], graph: graph)
        let reference = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .none)).run(feeds)
        for (isa, threads) in GemmConvTests.variants {
            let options = SessionOptions(threadCount: threads, optimizationLevel: .all, isa: isa)
            let results = try InferenceSession(model: model, options: options).run(feeds)
            for name in outputs {
                let expected = try reference[name]!.scalars(as: Float.self)
                let actual = try #require(results[name])
                #expect(actual.shape == reference[name]!.shape, "\(name) \(isa) ×\(threads)")
                // NaN and ±∞ must match exactly; finite values within the kernels' tolerance.
                let values = try actual.scalars(as: Float.self)
                #expect(values.count == expected.count, "\(name) \(isa) ×\(threads): count")
                for (i, (a, e)) in zip(values, expected).enumerated() {
                    let close = e.isNaN ? a.isNaN : e.isInfinite ? a == e : abs(a - e) <= 1e-4 * abs(e) + 1e-4
                    #expect(close, "\(name) \(isa) ×\(threads) [\(i)]: \(a) for \(e)")
                }
            }
        }
    }

    // MARK: - Common subexpressions

    /// The legacy GPT-2 export's mask: each layer computes `Where(mask, 0, −∞)` from its own
    /// Constant nodes and adds it to its scores.
    static func maskedLayers(_ layers: Int, distinctFill: Bool = false) -> Graph {
        var nodes: [Node] = []
        var initializers: [(name: String, tensor: Tensor)] = []
        for layer in 0..<layers {
            nodes.append(Node(name: "zero\(layer)", opType: "Constant", inputs: [], outputs: ["zero\(layer)"],
                              attributes: ["value": .tensor(Tensor(scalar: Float(0)))]))
            let fill: Float = distinctFill && layer == layers - 1 ? -1e9 : -.infinity
            initializers.append(("fill\(layer)", Tensor(scalar: fill)))
            nodes.append(Node(name: "where\(layer)", opType: "Where", inputs: ["mask", "zero\(layer)", "fill\(layer)"],
                              outputs: ["bias\(layer)"]))
            nodes.append(Node(name: "add\(layer)", opType: "Add", inputs: ["x\(layer)", "bias\(layer)"], outputs: ["y\(layer)"]))
        }
        return Graph(nodes: nodes, inputs: [Self.value("mask", [1, 1, 3, 3], .bool)] + (0..<layers).map { Self.value("x\($0)", [1, 2, 3, 3]) },
                     outputs: (0..<layers).map { output("y\($0)") }, initializers: initializers)
    }

    static func maskFeeds(_ layers: Int) throws -> [String: Tensor] {
        var feeds = ["mask": try Tensor(shape: [1, 1, 3, 3], scalars: [true, false, false, true, true, false, true, true, true])]
        for layer in 0..<layers { feeds["x\(layer)"] = GemmConvTests.random([1, 2, 3, 3], seed: layer) }
        return feeds
    }

    @Test func mergesThePerLayerMask() throws {
        let graph = Self.maskedLayers(3)
        var lifted = graph
        ConstantLifting().apply(to: &lifted)
        let optimized = Self.optimized(lifted, CommonSubexpressionElimination())
        #expect(optimized.nodes.map(\.opType) == ["Where", "Add", "Add", "Add"])
        #expect(Set(optimized.nodes.filter { $0.opType == "Add" }.map { $0.inputs[1] }) == ["bias0"])
        try Self.expectSameOutputs(graph, try Self.maskFeeds(3), ["y0", "y1", "y2"])
    }

    @Test func keepsNodesThatDiffer() throws {
        // A different fill value: two Wheres stay.
        var graph = Self.maskedLayers(3, distinctFill: true)
        ConstantLifting().apply(to: &graph)
        #expect(Self.optimized(graph, CommonSubexpressionElimination()).nodes.filter { $0.opType == "Where" }.count == 2)
        try Self.expectSameOutputs(Self.maskedLayers(3, distinctFill: true), try Self.maskFeeds(3), ["y0", "y1", "y2"])

        // Different attributes, and a nondeterministic operator.
        let x = Self.value("x", [2, 3])
        let nodes = [
            Node(name: "s0", opType: "Softmax", inputs: ["x"], outputs: ["s0"], attributes: ["axis": .int(0)]),
            Node(name: "s1", opType: "Softmax", inputs: ["x"], outputs: ["s1"], attributes: ["axis": .int(1)]),
            Node(name: "r0", opType: "RandomUniformLike", inputs: ["x"], outputs: ["r0"]),
            Node(name: "r1", opType: "RandomUniformLike", inputs: ["x"], outputs: ["r1"]),
        ]
        let differing = Graph(nodes: nodes, inputs: [x], outputs: ["s0", "s1", "r0", "r1"].map(Self.output), initializers: [])
        #expect(Self.optimized(differing, CommonSubexpressionElimination()).nodes.count == 4)
    }

    @Test func keepsDuplicatesWhoseNamesMustSurvive() throws {
        // Both Relus' outputs are graph outputs: neither may go.
        let x = Self.value("x", [4])
        let twins = Graph(nodes: [Node(name: "a", opType: "Relu", inputs: ["x"], outputs: ["a"]),
                                  Node(name: "b", opType: "Relu", inputs: ["x"], outputs: ["b"])],
                          inputs: [x], outputs: [Self.output("a"), Self.output("b")], initializers: [])
        #expect(Self.optimized(twins, CommonSubexpressionElimination()).nodes.count == 2)

        // Equal initializers that are also graph inputs may be overridden by the caller: kept apart.
        let c0 = Tensor(scalar: Float(2)), c1 = Tensor(scalar: Float(2))
        let overridable = Graph(
            nodes: [Node(name: "m0", opType: "Mul", inputs: ["x", "c0"], outputs: ["y0"]),
                    Node(name: "m1", opType: "Mul", inputs: ["x", "c1"], outputs: ["y1"])],
            inputs: [x, Self.value("c0", []), Self.value("c1", [])], outputs: [Self.output("y0"), Self.output("y1")],
            initializers: [("c0", c0), ("c1", c1)])
        #expect(Self.optimized(overridable, CommonSubexpressionElimination()).nodes.count == 2)
    }

    @Test func mergesChainsThroughMergedValues() throws {
        // Two equal Mul → Relu chains; the second chain's Relu reads a merged value and merges too.
        let x = Self.value("x", [5])
        let graph = Graph(
            nodes: [Node(name: "m0", opType: "Mul", inputs: ["x", "c0"], outputs: ["p0"]),
                    Node(name: "m1", opType: "Mul", inputs: ["x", "c1"], outputs: ["p1"]),
                    Node(name: "r0", opType: "Relu", inputs: ["p0"], outputs: ["q0"]),
                    Node(name: "r1", opType: "Relu", inputs: ["p1"], outputs: ["q1"]),
                    Node(name: "sum", opType: "Add", inputs: ["q0", "q1"], outputs: ["y"])],
            inputs: [x], outputs: [Self.output("y")],
            initializers: [("c0", Tensor(scalar: Float(-1.5))), ("c1", Tensor(scalar: Float(-1.5)))])
        let optimized = Self.optimized(graph, CommonSubexpressionElimination())
        #expect(optimized.nodes.map(\.opType) == ["Mul", "Relu", "Add"])
        #expect(optimized.nodes.last?.inputs == ["q0", "q0"])
        try Self.expectSameOutputs(graph, ["x": GemmConvTests.random([5], seed: 4)], ["y"])
    }

    // MARK: - Softmax → IsNaN → Where

    /// `Where(IsNaN(Softmax(x)), zero, Softmax(x))` over `axis`.
    static func maskedSoftmax(shape: [Int], axis: Int, zero: Float = 0, softmaxIsOutput: Bool = false) -> Graph {
        let nodes = [
            Node(name: "softmax", opType: "Softmax", inputs: ["x"], outputs: ["s"], attributes: ["axis": .int(axis)]),
            Node(name: "isnan", opType: "IsNaN", inputs: ["s"], outputs: ["n"]),
            Node(name: "where", opType: "Where", inputs: ["n", "zero", "s"], outputs: ["y"]),
        ]
        return Graph(nodes: nodes, inputs: [Self.value("x", shape)],
                     outputs: [output("y")] + (softmaxIsOutput ? [output("s")] : []),
                     initializers: [("zero", Tensor(scalar: zero))])
    }

    /// Rows of random logits, one fully masked (−∞), one with a NaN, one partly masked.
    static func logits(_ shape: [Int]) throws -> Tensor {
        var values = try GemmConvTests.random(shape, seed: 11).scalars(as: Float.self)
        let n = shape.last!
        for i in 0..<n { values[i] = -.infinity }
        values[n + 1] = .nan
        if values.count > 2 * n { values[2 * n] = -.infinity }
        return try Tensor(shape: shape, scalars: values)
    }

    @Test(arguments: [([3, 4, 17], -1), ([2, 37], 1), ([3, 5, 4], 1), ([6, 128], -1)])
    func fusesSoftmaxNaNToZero(shape: [Int], axis: Int) throws {
        let graph = Self.maskedSoftmax(shape: shape, axis: axis)
        let optimized = Self.optimized(graph, SoftmaxNaNFusion())
        #expect(optimized.nodes.map(\.opType) == ["Softmax"])
        #expect(optimized.nodes.first?.outputs == ["y"])
        let x = try Self.logits(shape)
        try Self.expectSameOutputs(graph, ["x": x], ["y"])
        // The rows made NaN by the mask or the NaN are zeros now (checked against the definition,
        // not only against the unfused graph).
        let y = try InferenceSession(model: Model(opsetImports: ["": 13], graph: graph)).run(["x": x])["y"]!
        #expect(try y.scalars(as: Float.self).allSatisfy { !$0.isNaN })
    }

    @Test func leavesOtherWheresAlone() throws {
        // A fill that is not +0, and a Softmax output that is also a graph output.
        for graph in [Self.maskedSoftmax(shape: [2, 8], axis: -1, zero: -0.0),
                      Self.maskedSoftmax(shape: [2, 8], axis: -1, zero: 1),
                      Self.maskedSoftmax(shape: [2, 8], axis: -1, softmaxIsOutput: true)] {
            #expect(Self.optimized(graph, SoftmaxNaNFusion()).nodes.count == 3)
        }
        let graph = Self.maskedSoftmax(shape: [2, 8], axis: -1, zero: 1)
        try Self.expectSameOutputs(graph, ["x": try Self.logits([2, 8])], ["y"])
    }
}
