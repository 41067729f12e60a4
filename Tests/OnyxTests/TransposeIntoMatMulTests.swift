import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// `MatMul(Transpose(x), Transpose(y))` → one MatMul reading x and y in place: when it fires, the
/// Transposes are gone and outputs match the unoptimised graph on every ISA at one and two threads;
/// when it must not, the graph is left alone.
@Suite struct TransposeIntoMatMulTests {
    static func value(_ name: String, _ shape: [Int]) -> Value {
        Value(name: name, type: TensorType(dataType: .float, shape: Shape(fixed: shape)))
    }

    /// `MatMul(Transpose(a, permA) or a, Transpose(b, permB) or b)`, a and b graph inputs.
    static func graph(a: [Int], permA: [Int]?, b: [Int], permB: [Int]?, extraOutputs: [String] = []) -> Graph {
        var nodes: [Node] = []
        var operands = ["a", "b"]
        for (index, perm) in [permA, permB].enumerated() {
            guard let perm else { continue }
            operands[index] = "t\(index)"
            nodes.append(Node(name: "transpose\(index)", opType: "Transpose", inputs: [index == 0 ? "a" : "b"],
                              outputs: ["t\(index)"], attributes: ["perm": .ints(perm)]))
        }
        nodes.append(Node(name: "matmul", opType: "MatMul", inputs: operands, outputs: ["y"]))
        return Graph(nodes: nodes, inputs: [value("a", a), value("b", b)],
                     outputs: ([Value(name: "y", type: nil)]) + extraOutputs.map { Value(name: $0, type: nil) }, initializers: [])
    }

    static func optimized(_ graph: Graph) -> Graph {
        var graph = graph
        TransposeIntoMatMul().apply(to: &graph)
        return graph
    }

    @Test(arguments: [
        // The legacy exporter's attention: Q·Kᵀ with the head split and Kᵀ as transposes, then P·V.
        ([2, 7, 3, 5], [0, 2, 1, 3] as [Int]?, [2, 9, 3, 5], [0, 2, 3, 1] as [Int]?),
        ([2, 3, 7, 9], nil, [2, 9, 3, 5], [0, 2, 1, 3] as [Int]?),
        // A read transposed (its rows have unit stride), a plain 2-D transpose, a broadcast batch.
        ([3, 9, 7], [0, 2, 1] as [Int]?, [3, 9, 4], nil),
        ([9, 20], [1, 0] as [Int]?, [17, 9], [1, 0] as [Int]?),
        ([1, 11, 4, 6], [0, 2, 1, 3] as [Int]?, [4, 6, 5], nil),
        ([2, 1, 5], [0, 2, 1] as [Int]?, [2, 1, 3], nil),  // an operand whose rows are one element long
    ])
    func firesAndKeepsOutputs(a: [Int], permA: [Int]?, b: [Int], permB: [Int]?) throws {
        let graph = Self.graph(a: a, permA: permA, b: b, permB: permB)
        let optimized = Self.optimized(graph)
        #expect(optimized.nodes.map(\.opType) == ["MatMul"])
        #expect(optimized.nodes[0].inputs == ["a", "b"])
        let feeds = ["a": GemmConvTests.random(a, seed: 3), "b": GemmConvTests.random(b, seed: 8)]
        let model = Model(opsetImports: ["": 13], graph: graph)
        let reference = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .none)).run(feeds)["y"]!
        for (isa, threads) in GemmConvTests.variants {
            let options = SessionOptions(threadCount: threads, optimizationLevel: .all, isa: isa)
            let y = try #require(try InferenceSession(model: model, options: options).run(feeds)["y"])
            #expect(y.shape == reference.shape)
            try GemmConvTests.expectClose(y, try reference.scalars(as: Float.self), "\(a)\(permA ?? []) × \(b)\(permB ?? []) \(isa) ×\(threads)")
        }
    }

    /// The legacy ViT export also reads V's head split with a Shape: the Transpose stays for it,
    /// the plan folds the Shape and no longer runs the Transpose.
    @Test func foldsATransposeAShapeAlsoReads() throws {
        var graph = Self.graph(a: [2, 3, 7, 9], permA: nil, b: [2, 9, 3, 5], permB: [0, 2, 1, 3], extraOutputs: ["s"])
        graph.nodes.append(Node(name: "shape", opType: "Shape", inputs: ["t1"], outputs: ["s"]))
        let optimized = Self.optimized(graph)
        #expect(optimized.nodes.first { $0.opType == "MatMul" }?.inputs == ["a", "b"])
        let model = Model(opsetImports: ["": 13], graph: graph)
        let feeds = ["a": GemmConvTests.random([2, 3, 7, 9], seed: 3), "b": GemmConvTests.random([2, 9, 3, 5], seed: 8)]
        let reference = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .none)).run(feeds)
        let session = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .all))
        let outputs = try session.run(feeds)
        #expect(try outputs["s"]!.scalars(as: Int64.self) == [2, 3, 9, 5])
        try GemmConvTests.expectClose(outputs["y"]!, try reference["y"]!.scalars(as: Float.self), "y")
        var profile = RunProfile()
        _ = try session.run(feeds, profile: &profile)
        #expect(profile.byNode.map(\.opType) == ["MatMul"], "only the MatMul runs")
    }

    /// The legacy exporters scale the head-split Q and Kᵀ each by 1/⁴√d: both Muls and both
    /// Transposes fold, the factors into the product's alpha.
    @Test func foldsScalarMulsBetween() throws {
        var graph = Self.graph(a: [2, 7, 3, 5], permA: [0, 2, 1, 3], b: [2, 9, 3, 5], permB: [0, 2, 3, 1])
        graph.nodes.removeLast()
        graph.nodes += [
            Node(name: "scale_q", opType: "Mul", inputs: ["t0", "s0"], outputs: ["q"]),
            Node(name: "scale_k", opType: "Mul", inputs: ["s1", "t1"], outputs: ["k"]),
            Node(name: "matmul", opType: "MatMul", inputs: ["q", "k"], outputs: ["y"]),
        ]
        graph.initializers += [("s0", Tensor(scalar: Float(0.5))), ("s1", Tensor(scalar: Float(-0.25)))]
        let optimized = Self.optimized(graph)
        #expect(optimized.nodes.map(\.opType) == ["MatMul"])
        if case .float(let alpha)? = optimized.nodes.first?.attributes["onyx.alpha"] { #expect(alpha == -0.125) } else { Issue.record("no alpha") }
        let feeds = ["a": GemmConvTests.random([2, 7, 3, 5], seed: 3), "b": GemmConvTests.random([2, 9, 3, 5], seed: 8)]
        let model = Model(opsetImports: ["": 13], graph: graph)
        let reference = try InferenceSession(model: model, options: SessionOptions(optimizationLevel: .none)).run(feeds)["y"]!
        for (isa, threads) in GemmConvTests.variants {
            let y = try InferenceSession(model: model, options: SessionOptions(threadCount: threads, isa: isa)).run(feeds)["y"]!
            try GemmConvTests.expectClose(y, try reference.scalars(as: Float.self), "\(isa) ×\(threads)")
        }
    }

    @Test func leavesPermsThatMoveTheLastAxisOut() {
        // [0, 3, 1, 2] puts the last axis first among the matrix axes' neighbours: no unit stride left.
        let graph = Self.graph(a: [2, 3, 4, 5], permA: [0, 3, 1, 2], b: [2, 5, 4, 6], permB: nil)
        #expect(Self.optimized(graph).nodes.count == 2)
    }

    @Test func leavesATransposeReadElsewhere() {
        let graph = Self.graph(a: [2, 7, 3, 5], permA: [0, 2, 1, 3], b: [2, 3, 5, 4], permB: nil, extraOutputs: ["t0"])
        #expect(Self.optimized(graph).nodes.count == 2)
    }

    @Test func aMisfittingFoldedPermIsAnError() throws {
        let node = Node(name: "mm", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"],
                        attributes: ["onyx.perm_a": .ints([0, 2, 1])])
        #expect(throws: OnyxError.self) {
            try OperatorRegistry.evaluate(node, opset: 13, inputs: [GemmConvTests.random([4, 5], seed: 1),
                                                                      GemmConvTests.random([5, 3], seed: 2)])
        }
        let invalid = Node(name: "mm", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"],
                           attributes: ["onyx.perm_a": .ints([1, 2, 0])])
        #expect(throws: OnyxError.self) {
            try OperatorRegistry.evaluate(invalid, opset: 13, inputs: [GemmConvTests.random([2, 4, 5], seed: 1),
                                                                         GemmConvTests.random([5, 3], seed: 2)])
        }
    }
}
