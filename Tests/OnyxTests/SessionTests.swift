import Dispatch
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Small graphs built in Swift, run through the whole session path.
@Suite struct SessionTests {
    static func floats(_ shape: [Int], seed: Int = 1) -> Tensor {
        let count = shape.reduce(1, *)
        var state = UInt64(seed * 7919 + 17)
        let values = (0..<count).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(state >> 40) % 2001 - 1000) / 1000
        }
        return try! Tensor(shape: shape, scalars: values)
    }

    static func value(_ name: String, _ type: DataType = .float, _ dims: [Shape.Dimension]) -> Value {
        Value(name: name, type: TensorType(dataType: type, shape: Shape(dims)))
    }

    /// x[batch, 4] → MatMul W[4, 3] → Add b[3] → Relu → y
    static func mlp() -> Model {
        let graph = Graph(
            nodes: [
                Node(name: "mm", opType: "MatMul", inputs: ["x", "W"], outputs: ["h"]),
                Node(name: "add", opType: "Add", inputs: ["h", "b"], outputs: ["a"]),
                Node(name: "relu", opType: "Relu", inputs: ["a"], outputs: ["y"]),
            ],
            inputs: [value("x", .float, [.symbolic("batch"), .fixed(4)])],
            outputs: [value("y", .float, [.symbolic("batch"), .fixed(3)])],
            initializers: [("W", floats([4, 3], seed: 2)), ("b", floats([3], seed: 3))])
        return Model(opsetImports: ["": 17], graph: graph)
    }

    static func referenceMLP(_ x: Tensor) throws -> [Float] {
        let w = try floats([4, 3], seed: 2).scalars(as: Float.self)
        let b = try floats([3], seed: 3).scalars(as: Float.self)
        let xs = try x.scalars(as: Float.self)
        let batch = x.shape[0]
        var out = [Float](repeating: 0, count: batch * 3)
        for n in 0..<batch {
            for j in 0..<3 {
                var sum: Float = 0
                for k in 0..<4 { sum += xs[n * 4 + k] * w[k * 3 + j] }
                out[n * 3 + j] = max(0, sum + b[j])
            }
        }
        return out
    }

    static func expectClose(_ a: [Float], _ b: [Float], tolerance: Float = 1e-5) {
        #expect(a.count == b.count)
        for (x, y) in zip(a, b) {
            #expect(abs(x - y) <= tolerance + tolerance * abs(y), "\(x) vs \(y)")
        }
    }

    @Test(arguments: OptimizationLevel.allCases)
    func runsMLPAtSeveralBatchSizes(level: OptimizationLevel) throws {
        let session = try InferenceSession(model: Self.mlp(), options: SessionOptions(optimizationLevel: level))
        for batch in [1, 3, 1, 5] {
            let x = Self.floats([batch, 4], seed: batch)
            let y = try #require(try session.run(["x": x])["y"])
            #expect(y.shape == [batch, 3])
            Self.expectClose(try y.scalars(as: Float.self), try Self.referenceMLP(x))
        }
    }

    @Test func runsConcurrently() throws {
        let session = try InferenceSession(model: Self.mlp())
        let inputs = (0..<16).map { Self.floats([1 + $0 % 4, 4], seed: $0) }
        let expected = try inputs.map { try Self.referenceMLP($0) }
        let results = ResultBox(count: inputs.count)
        DispatchQueue.concurrentPerform(iterations: inputs.count * 4) { i in
            let k = i % inputs.count
            let y = try? session.run(["x": inputs[k]])["y"]?.scalars(as: Float.self)
            results.set(k, y ?? [])
        }
        for k in inputs.indices { Self.expectClose(results.get(k), expected[k]) }
    }

    /// Legacy exports flatten with Shape → Gather → Unsqueeze → Concat → Reshape.
    @Test func foldsShapeChainsPerSignature() throws {
        let graph = Graph(
            nodes: [
                Node(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"]),
                Node(name: "gather", opType: "Gather", inputs: ["s", "zero"], outputs: ["n"], attributes: ["axis": .int(0)]),
                Node(name: "unsq", opType: "Unsqueeze", inputs: ["n"], outputs: ["n1"], attributes: ["axes": .ints([0])]),
                Node(name: "concat", opType: "Concat", inputs: ["n1", "minus1"], outputs: ["target"], attributes: ["axis": .int(0)]),
                Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["r"]),
                Node(name: "reshape", opType: "Reshape", inputs: ["r", "target"], outputs: ["y"]),
            ],
            inputs: [Self.value("x", .float, [.symbolic("batch"), .fixed(2), .fixed(3)])],
            outputs: [Self.value("y", .float, [.symbolic("batch"), .fixed(6)])],
            initializers: [
                ("zero", Tensor(scalar: Int64(0))),
                ("minus1", try Tensor(shape: [1], scalars: [Int64(-1)])),
            ])
        let session = try InferenceSession(model: Model(opsetImports: ["": 11], graph: graph))
        for batch in [2, 1] {
            let x = Self.floats([batch, 2, 3], seed: batch)
            let y = try #require(try session.run(["x": x])["y"])
            #expect(y.shape == [batch, 6])
            #expect(try y.scalars(as: Float.self) == x.scalars(as: Float.self).map { max(0, $0) })
        }
    }

    /// A shape given as a graph input is known only in a run: the Reshape runs with its values
    /// known, between the plans before and after it.
    @Test func plansWithInputValuesWhenShapesDependOnThem() throws {
        let graph = Graph(
            nodes: [
                Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["r"]),
                Node(name: "reshape", opType: "Reshape", inputs: ["r", "shape"], outputs: ["y"]),
            ],
            inputs: [Self.value("x", .float, [.fixed(2), .fixed(3)]), Self.value("shape", .int64, [.fixed(2)])],
            outputs: [Self.value("y", .float, [.symbolic("a"), .symbolic("b")])])
        let session = try InferenceSession(model: Model(opsetImports: ["": 14], graph: graph))
        let x = Self.floats([2, 3])
        for target in [[3, 2], [1, 6], [6, -1]] {
            let y = try #require(try session.run(["x": x, "shape": Tensor(shape: [2], scalars: target.map(Int64.init))])["y"])
            #expect(y.shape == (target == [6, -1] ? [6, 1] : target))
            #expect(try y.scalars(as: Float.self) == x.scalars(as: Float.self).map { max(0, $0) })
        }
        #expect(session.runsInStages)
        let bad = #expect(throws: OnyxError.self) {
            try session.run(["x": x, "shape": Tensor(shape: [2], scalars: [Int64(4), 2])])
        }
        #expect(bad?.code == .shapeMismatch)
    }

    /// A run in stages: NonZero's output shape depends on values, so it runs between the plan
    /// before it and one for what follows, which is made once per shape NonZero produces and then
    /// reused. Across the NonZero go a graph output produced before it, a value read on both
    /// sides (`r`), and a shape folded in the first plan (`Shape(x)`, read by the last Reshape).
    @Test func runsInStagesAroundValueDependentShapes() throws {
        let graph = Graph(
            nodes: [
                Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["r"]),
                Node(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"]),
                Node(name: "nonzero", opType: "NonZero", inputs: ["r"], outputs: ["nz"]),
                Node(name: "count", opType: "Shape", inputs: ["nz"], outputs: ["n"]),
                Node(name: "cast", opType: "Cast", inputs: ["n"], outputs: ["nf"], attributes: ["to": .int(1)]),
                Node(name: "sum", opType: "ReduceSum", inputs: ["nf"], outputs: ["total"], attributes: ["keepdims": .int(0)]),
                Node(name: "scale", opType: "Mul", inputs: ["r", "total"], outputs: ["scaled"]),
                Node(name: "flat", opType: "Reshape", inputs: ["scaled", "minus_one"], outputs: ["flat"]),
                Node(name: "back", opType: "Reshape", inputs: ["flat", "s"], outputs: ["y"]),
            ],
            inputs: [Self.value("x", .float, [.fixed(2), .fixed(3)])],
            outputs: [Self.value("r", .float, [.fixed(2), .fixed(3)]), Self.value("nz", .int64, [.fixed(2), .symbolic("n")]), Self.value("y", .float, [.fixed(2), .fixed(3)])],
            initializers: [("minus_one", try Tensor(shape: [1], scalars: [Int64(-1)]))])
        let session = try InferenceSession(model: Model(opsetImports: ["": 14], graph: graph))
        let inputs: [[Float]] = [[1, -2, 3, -4, 5, -6], [-1, 2, -3, 4, -5, 6], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 0]]
        for values in inputs + inputs {
            let outputs = try session.run(["x": try Tensor(shape: [2, 3], scalars: values)])
            let relu = values.map { max(0, $0) }
            let positive = relu.indices.filter { relu[$0] > 0 }
            #expect(try outputs["r"]?.scalars(as: Float.self) == relu)
            #expect(outputs["nz"]?.shape == [2, positive.count])
            #expect(try outputs["nz"]?.scalars(as: Int64.self) == positive.map { Int64($0 / 3) } + positive.map { Int64($0 % 3) })
            // ReduceSum of [2, count] as floats: 2 + count.
            let total = Float(2 + positive.count)
            #expect(outputs["y"]?.shape == [2, 3])
            #expect(try outputs["y"]?.scalars(as: Float.self) == relu.map { $0 * total })
        }
        #expect(session.runsInStages)
        // One plan after the NonZero per shape it produced: 3, 3, 6 and 0 positives.
        #expect(session.stagePlanCount == 3)
    }

    /// A value read after an in-place candidate must keep its bytes; outputs that are also read stay intact.
    @Test func inPlaceNeverClobbersLiveValues() throws {
        let graph = Graph(
            nodes: [
                Node(name: "a", opType: "Add", inputs: ["x", "x"], outputs: ["a"]),
                Node(name: "r", opType: "Relu", inputs: ["a"], outputs: ["r"]),
                Node(name: "c", opType: "Sub", inputs: ["a", "r"], outputs: ["c"]),
                Node(name: "d", opType: "Relu", inputs: ["c"], outputs: ["d"]),
                Node(name: "e", opType: "Mul", inputs: ["d", "r"], outputs: ["e"]),
                Node(name: "f", opType: "Flatten", inputs: ["e"], outputs: ["f"], attributes: ["axis": .int(1)]),
            ],
            inputs: [Self.value("x", .float, [.fixed(2), .fixed(3)])],
            outputs: [Self.value("r", .float, [.fixed(2), .fixed(3)]), Self.value("f", .float, [.fixed(2), .fixed(3)]),
                      Self.value("x", .float, [.fixed(2), .fixed(3)])])
        let session = try InferenceSession(model: Model(opsetImports: ["": 13], graph: graph))
        let x = Self.floats([2, 3])
        let out = try session.run(["x": x])
        let xs = try x.scalars(as: Float.self)
        let a = xs.map { $0 + $0 }
        let r = a.map { max(0, $0) }
        let c = zip(a, r).map { $0 - $1 }
        let e = zip(c.map { max(0, $0) }, r).map { $0 * $1 }
        #expect(try out["r"]!.scalars(as: Float.self) == r)
        #expect(try out["f"]!.scalars(as: Float.self) == e)
        #expect(try out["x"]!.scalars(as: Float.self) == xs)
    }

    @Test func reportsUnsupportedOperator() throws {
        let graph = Graph(
            nodes: [Node(name: "bar", opType: "Foo", inputs: ["x"], outputs: ["y"])],
            inputs: [Self.value("x", .float, [.fixed(1)])],
            outputs: [Self.value("y", .float, [.fixed(1)])])
        #expect(throws: OnyxError(.unsupportedOperator, "unsupported operator Foo (ai.onnx, opset 17) at node 'bar'")) {
            try InferenceSession(model: Model(opsetImports: ["": 17], graph: graph))
        }
    }

    @Test func rejectsBadInputs() throws {
        let session = try InferenceSession(model: Self.mlp())
        func message(_ inputs: [String: Tensor]) -> String {
            do {
                _ = try session.run(inputs)
                return "no error"
            } catch let error as OnyxError {
                return error.message
            } catch {
                return "\(error)"
            }
        }
        #expect(message([:]).contains("missing input 'x'"))
        #expect(message(["x": Self.floats([1, 4]), "z": Self.floats([1])]).contains("unknown input 'z'"))
        #expect(message(["x": try Tensor(shape: [1, 4], scalars: [Int64](repeating: 0, count: 4))]).contains("must be float, got int64"))
        #expect(message(["x": Self.floats([1, 5])]).contains("has shape [1, 5]"))
        #expect(message(["x": Self.floats([4])]).contains("has shape [4]"))
    }

    @Test func foldsConstantSubgraphsAtCreation() throws {
        // W is produced by Transpose of an initializer: folded once, then MatMul sees a constant.
        let graph = Graph(
            nodes: [
                Node(name: "t", opType: "Transpose", inputs: ["Wt"], outputs: ["W"], attributes: ["perm": .ints([1, 0])]),
                Node(name: "mm", opType: "MatMul", inputs: ["x", "W"], outputs: ["y"]),
            ],
            inputs: [Self.value("x", .float, [.fixed(1), .fixed(2)])],
            outputs: [Self.value("y", .float, [.fixed(1), .fixed(2)])],
            initializers: [("Wt", try Tensor(shape: [2, 2], scalars: [Float(1), 2, 3, 4]))])
        let session = try InferenceSession(model: Model(opsetImports: ["": 17], graph: graph))
        #expect(session.graph.steps.count == 1)
        let y = try session.run(["x": try Tensor(shape: [1, 2], scalars: [Float(1), 1])])["y"]!
        #expect(try y.scalars(as: Float.self) == [3, 7])
    }

    /// A profiled run gives the same outputs and times every node that runs, by operator type.
    @Test func profiledRunsTimeEachOperatorType() throws {
        let session = try InferenceSession(model: Self.mlp())
        let x = Self.floats([2, 4], seed: 5)
        var profile = RunProfile()
        for _ in 0..<3 {
            let y = try #require(try session.run(["x": x], profile: &profile)["y"])
            #expect(try y.scalars(as: Float.self) == session.run(["x": x])["y"]?.scalars(as: Float.self))
        }
        #expect(profile.runs == 3)
        let types = profile.byOperatorType
        #expect(!types.isEmpty)
        #expect(Set(types.map(\.opType)).isSubset(of: Set(session.graph.steps.map(\.opType))))
        #expect(types.reduce(0) { $0 + $1.nodeCount } <= session.graph.steps.count)
        #expect(abs(types.reduce(0) { $0 + $1.share } - 1) < 1e-9)
        #expect(profile.byNode.count == session.graph.steps.count)
        // A node's fastest run is one of its three runs: no more than their sum, no less than a third of it.
        for node in profile.byNode {
            #expect(node.fastestSeconds > 0)
            #expect(node.fastestSeconds * 3 <= node.seconds * (1 + 1e-12))
        }
        #expect(abs(types.reduce(0) { $0 + $1.fastestSeconds } - profile.byNode.reduce(0) { $0 + $1.fastestSeconds }) < 1e-12)
    }

    /// A repeated symbolic axis is a name, not a constraint (Paddle writes `?` for every dynamic
    /// axis): inputs whose `?` axes differ run; a real mismatch is still caught by the node.
    @Test func symbolicAxesAreNamesNotConstraints() throws {
        let graph = Graph(
            nodes: [
                Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["a"]),
                Node(name: "add", opType: "Add", inputs: ["y", "z"], outputs: ["b"]),
            ],
            inputs: [
                Self.value("x", .float, [.symbolic("?"), .fixed(3), .symbolic("?"), .symbolic("?")]),
                Self.value("y", .float, [.symbolic("?"), .fixed(2)]),
                Self.value("z", .float, [.symbolic("?"), .fixed(2)]),
            ],
            outputs: [Value(name: "a", type: nil), Value(name: "b", type: nil)])
        let session = try InferenceSession(model: Model(opsetImports: ["": 17], graph: graph))
        let outputs = try session.run([
            "x": Self.floats([1, 3, 48, 192], seed: 1), "y": Self.floats([4, 2], seed: 2), "z": Self.floats([1, 2], seed: 3),
        ])
        #expect(outputs["a"]?.shape == [1, 3, 48, 192])
        #expect(outputs["b"]?.shape == [4, 2])
        let mismatch = #expect(throws: OnyxError.self) {
            try session.run(["x": Self.floats([1, 3, 2, 2], seed: 1), "y": Self.floats([4, 2], seed: 2), "z": Self.floats([3, 2], seed: 3)])
        }
        #expect(mismatch?.code == .shapeMismatch)
        #expect(mismatch?.message.contains("add") == true)
    }
}

final class ResultBox: @unchecked Sendable {
    private var values: [[Float]]
    private let lock = DispatchQueue(label: "results")
    init(count: Int) { values = Array(repeating: [], count: count) }
    func set(_ i: Int, _ v: [Float]) { lock.sync { values[i] = v } }
    func get(_ i: Int) -> [Float] { lock.sync { values[i] } }
}
