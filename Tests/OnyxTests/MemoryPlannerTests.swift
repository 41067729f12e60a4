import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

@Suite struct MemoryPlannerTests {
    @Test func reusesReleasedSpace() {
        var planner = MemoryPlanner()
        let a = planner.allocate(1000)
        let b = planner.allocate(500)
        #expect(a != b)
        planner.release(offset: a, byteCount: 1000)
        let c = planner.allocate(900)
        #expect(c == a)
        #expect(planner.arenaByteCount == MemoryPlanner.rounded(1000) + MemoryPlanner.rounded(500))
    }

    @Test func mergesNeighbours() {
        var planner = MemoryPlanner()
        let a = planner.allocate(256)
        let b = planner.allocate(256)
        _ = planner.allocate(64)
        planner.release(offset: a, byteCount: 256)
        planner.release(offset: b, byteCount: 256)
        #expect(planner.allocate(512) == a)
    }

    @Test func growsFromTrailingFreeBlock() {
        var planner = MemoryPlanner()
        _ = planner.allocate(128)
        let b = planner.allocate(128)
        planner.release(offset: b, byteCount: 128)
        let c = planner.allocate(1024)
        #expect(c == b)
        #expect(planner.arenaByteCount == 128 + 1024)
    }

    @Test func blocksAreAligned() {
        var planner = MemoryPlanner()
        for size in [1, 3, 65, 127, 4097] {
            #expect(planner.allocate(size) % MemoryPlanner.alignment == 0)
        }
    }
}

/// Concats whose inputs the planner writes straight into the output (``ConcatPlacements``).
@Suite struct ConcatPlacementTests {
    /// `a = Relu(x)`, `b = Neg(x)`, `c = Concat(a, b)` along `axis`, `y = Sigmoid(c)`, plus
    /// `extra` nodes; `outputs` are the graph outputs.
    static func graph(axis: Int = 1, extra: [Node] = [], outputs: [String] = ["y"]) -> Graph {
        Graph(
            nodes: [
                Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["a"]),
                Node(name: "neg", opType: "Neg", inputs: ["x"], outputs: ["b"]),
                Node(name: "concat", opType: "Concat", inputs: ["a", "b"], outputs: ["c"], attributes: ["axis": .int(axis)]),
                Node(name: "sigmoid", opType: "Sigmoid", inputs: ["c"], outputs: ["y"]),
            ] + extra,
            inputs: [Value(name: "x", type: nil)], outputs: outputs.map { Value(name: $0, type: nil) })
    }

    /// Runs the graph on `x` and returns the outputs and whether the Concat step was elided.
    static func run(_ graph: Graph, _ x: Tensor) throws -> (outputs: [String: Tensor], elided: Bool) {
        let session = try InferenceSession(
            model: Model(opsetImports: ["": 13], graph: graph), options: SessionOptions(optimizationLevel: .none))
        let outputs = try session.run(["x": x])
        let plan = try session.plan(for: [x])
        let concat = try #require(plan.steps.first { plan.graph.steps[$0.graphStep].opType == "Concat" })
        return (outputs, concat.isElided)
    }

    /// Sigmoid of the concatenation of Relu(x) and −x along `axis`, computed directly.
    static func expected(_ x: Tensor, axis: Int) throws -> [Float] {
        let values = try x.scalars(as: Float.self)
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[axis...].reduce(1, *)
        var result: [Float] = []
        for o in 0..<outer {
            let row = values[(o * inner)..<((o + 1) * inner)]
            result += row.map { max($0, 0) } + row.map { -$0 }
        }
        return result.map { 1 / (1 + exp(-$0)) }
    }

    @Test func writesBothBranchesIntoTheOutput() throws {
        let x = GemmConvTests.random([1, 16, 5, 5], seed: 3)
        let (outputs, elided) = try Self.run(Self.graph(), x)
        #expect(elided)
        try GemmConvTests.expectClose(try #require(outputs["y"]), try Self.expected(x, axis: 1), "placed")
    }

    @Test func keepsTheCopyWhenSlicesAreNotContiguous() throws {
        // Batch 2: each image's channels are two separate runs of the output.
        let x = GemmConvTests.random([2, 16, 5, 5], seed: 4)
        let (outputs, elided) = try Self.run(Self.graph(), x)
        #expect(!elided)
        try GemmConvTests.expectClose(try #require(outputs["y"]), try Self.expected(x, axis: 1), "batch 2")
    }

    @Test func keepsTheCopyForGraphOutputsAndUnalignedSlices() throws {
        let x = GemmConvTests.random([1, 16, 5, 5], seed: 5)
        let asOutput = try Self.run(Self.graph(outputs: ["y", "a"]), x)
        #expect(!asOutput.elided)
        try GemmConvTests.expectClose(try #require(asOutput.outputs["y"]), try Self.expected(x, axis: 1), "a is an output")
        // 3 floats = 12 bytes: the second slice would not be 64-byte aligned.
        let small = GemmConvTests.random([1, 3, 1, 1], seed: 6)
        let unaligned = try Self.run(Self.graph(), small)
        #expect(!unaligned.elided)
        try GemmConvTests.expectClose(try #require(unaligned.outputs["y"]), try Self.expected(small, axis: 1), "unaligned")
    }

    @Test func nestedConcatsKeepTheInnerResult() throws {
        // c = Concat(a, b) is itself an input of an outer Concat (Inception's branches): the inner
        // one is placed, the outer one copies it.
        let x = GemmConvTests.random([1, 16, 4, 4], seed: 8)
        var graph = Self.graph()
        graph.nodes.append(Node(name: "outer", opType: "Concat", inputs: ["t", "c"],
                                outputs: ["o"], attributes: ["axis": .int(1)]))
        graph.nodes.append(Node(name: "tanh", opType: "Tanh", inputs: ["x"], outputs: ["t"]))
        graph.nodes.append(Node(name: "last", opType: "Relu", inputs: ["o"], outputs: ["z"]))
        graph.outputs.append(Value(name: "z", type: nil))
        let session = try InferenceSession(
            model: Model(opsetImports: ["": 13], graph: graph), options: SessionOptions(optimizationLevel: .none))
        let outputs = try session.run(["x": x])
        let values = try x.scalars(as: Float.self)
        let inner = values.map { max($0, 0) } + values.map { -$0 }
        let expected = (values.map { tanh($0) } + inner).map { max($0, 0) }
        try GemmConvTests.expectClose(try #require(outputs["z"]), expected, "outer")
        try GemmConvTests.expectClose(try #require(outputs["y"]), try Self.expected(x, axis: 1), "inner")
    }

    @Test func anInputReadAfterTheConcatKeepsItsValues() throws {
        // `a` is read again after the Concat, by a node that could work in place.
        let x = GemmConvTests.random([1, 32, 4, 4], seed: 7)
        let graph = Self.graph(extra: [
            Node(name: "late", opType: "Relu", inputs: ["a"], outputs: ["d"]),
            Node(name: "sum", opType: "Sum", inputs: ["d", "d"], outputs: ["e"]),
        ], outputs: ["y", "e"])
        let (outputs, elided) = try Self.run(graph, x)
        #expect(elided)
        try GemmConvTests.expectClose(try #require(outputs["y"]), try Self.expected(x, axis: 1), "y")
        let twice = try x.scalars(as: Float.self).map { 2 * max($0, 0) }
        try GemmConvTests.expectClose(try #require(outputs["e"]), twice, "e")
    }
}
