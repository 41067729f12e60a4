import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// If, Loop and Scan through the whole session: subgraphs reading outer values, per-run plans.
@Suite struct ControlFlowTests {
    static func value(_ name: String, _ type: DataType, _ shape: [Int]?) -> Value {
        Value(name: name, type: TensorType(dataType: type, shape: shape.map { Shape(fixed: $0) }))
    }

    static func floats(_ shape: [Int], _ values: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: values) }

    /// y = cond ? x + x : x * 3, where both branches read the outer x.
    static func ifModel() -> Model {
        let thenBranch = Graph(
            nodes: [Node(name: "add", opType: "Add", inputs: ["x", "x"], outputs: ["t"])],
            inputs: [], outputs: [value("t", .float, nil)])
        let elseBranch = Graph(
            nodes: [Node(name: "mul", opType: "Mul", inputs: ["x", "three"], outputs: ["e"])],
            inputs: [], outputs: [value("e", .float, nil)],
            initializers: [("three", Tensor(scalar: Float(3)))])
        let graph = Graph(
            nodes: [
                Node(name: "relu", opType: "Relu", inputs: ["input"], outputs: ["x"]),
                Node(name: "if", opType: "If", inputs: ["cond"], outputs: ["y"],
                     attributes: ["then_branch": .graph(thenBranch), "else_branch": .graph(elseBranch)]),
            ],
            inputs: [value("cond", .bool, []), value("input", .float, [3])],
            outputs: [value("y", .float, nil)])
        return Model(opsetImports: ["": 16], graph: graph)
    }

    @Test func ifRunsTheBranchTheConditionPicks() throws {
        let session = try InferenceSession(model: Self.ifModel())
        let x = Self.floats([3], [1, -2, 3])
        let yes = try session.run(["cond": Tensor(scalar: true), "input": x])["y"]!
        #expect(try yes.scalars(as: Float.self) == [2, 0, 6])
        let no = try session.run(["cond": Tensor(scalar: false), "input": x])["y"]!
        #expect(try no.scalars(as: Float.self) == [3, 0, 9])
    }

    @Test func subgraphReadsCountAsUses() throws {
        // The Relu feeding only the branches must survive optimization and ordering.
        let graph = Self.ifModel().graph
        #expect(graph.nodes[1].implicitInputs == ["x"])
        #expect(graph.protectedValueNames.contains("x"))
        let optimized = GraphOptimizer(level: .all).optimize(graph)
        #expect(optimized.nodes.contains { $0.opType == "Relu" })
        var reversed = graph
        reversed.nodes.reverse()
        #expect(try reversed.topologicallySortedNodes().map(\.opType) == ["Relu", "If"])
    }

    @Test func ifRefusesMalformedBranches() throws {
        var model = Self.ifModel()
        model.graph.nodes[1].attributes["else_branch"] = nil
        let missing = #expect(throws: OnyxError.self) { try InferenceSession(model: model) }
        #expect(missing?.message.contains("'else_branch' (a graph) is required") == true)

        model = Self.ifModel()
        model.graph.nodes[1].attributes["then_branch"] = .graph(Graph(
            nodes: [Node(name: "neg", opType: "Add", inputs: ["nowhere", "x"], outputs: ["t"])],
            inputs: [], outputs: [Self.value("t", .float, nil)]))
        let unknown = #expect(throws: OnyxError.self) { try InferenceSession(model: model) }
        #expect(unknown?.message.contains("'nowhere'") == true)
    }

    /// Loop: sum = sum + i for i in 0..<M, with a scan output of each partial sum.
    static func loopModel(withTripCount: Bool = true, withCondition: Bool = true) -> Model {
        let body = Graph(
            nodes: [
                Node(name: "cast", opType: "Cast", inputs: ["i"], outputs: ["fi"], attributes: ["to": .int(1)]),
                Node(name: "add", opType: "Add", inputs: ["sum_in", "fi"], outputs: ["sum_out"]),
                Node(name: "keep", opType: "Identity", inputs: ["cond_in"], outputs: ["cond_out"]),
                Node(name: "copy", opType: "Identity", inputs: ["sum_out"], outputs: ["partial"]),
            ],
            inputs: [value("i", .int64, []), value("cond_in", .bool, []), value("sum_in", .float, [])],
            outputs: [value("cond_out", .bool, []), value("sum_out", .float, []), value("partial", .float, [])])
        let graph = Graph(
            nodes: [Node(name: "loop", opType: "Loop",
                         inputs: [withTripCount ? "M" : "", withCondition ? "cond" : "", "start"],
                         outputs: ["total", "partials"], attributes: ["body": .graph(body)])],
            inputs: [value("M", .int64, []), value("cond", .bool, []), value("start", .float, [])],
            outputs: [value("total", .float, nil), value("partials", .float, nil)])
        return Model(opsetImports: ["": 16], graph: graph)
    }

    @Test func loopCarriesValuesAndStacksScanOutputs() throws {
        let session = try InferenceSession(model: Self.loopModel())
        let outputs = try session.run(["M": Tensor(scalar: Int64(4)), "cond": Tensor(scalar: true), "start": Tensor(scalar: Float(10))])
        #expect(try outputs["total"]!.scalars(as: Float.self) == [16])
        #expect(outputs["partials"]!.shape == [4])
        #expect(try outputs["partials"]!.scalars(as: Float.self) == [10, 11, 13, 16])
        // A false condition runs no iteration.
        let none = try session.run(["M": Tensor(scalar: Int64(4)), "cond": Tensor(scalar: false), "start": Tensor(scalar: Float(10))])
        #expect(try none["total"]!.scalars(as: Float.self) == [10])
    }

    @Test func loopWithoutBoundIsRefused() throws {
        let session = try InferenceSession(model: Self.loopModel(withTripCount: false, withCondition: false))
        let error = #expect(throws: OnyxError.self) {
            try session.run(["M": Tensor(scalar: Int64(4)), "cond": Tensor(scalar: true), "start": Tensor(scalar: Float(0))])
        }
        #expect(error?.message.contains("never ends") == true)
    }

    @Test func scanSlicesAndStacks() throws {
        // Running sum over the rows of a [3, 2] input: state [2], scan output [3, 2].
        let body = Graph(
            nodes: [
                Node(name: "add", opType: "Add", inputs: ["state_in", "row"], outputs: ["state_out"]),
                Node(name: "copy", opType: "Identity", inputs: ["state_out"], outputs: ["row_out"]),
            ],
            inputs: [Self.value("state_in", .float, [2]), Self.value("row", .float, [2])],
            outputs: [Self.value("state_out", .float, [2]), Self.value("row_out", .float, [2])])
        let graph = Graph(
            nodes: [Node(name: "scan", opType: "Scan", inputs: ["init", "rows"], outputs: ["final", "sums"],
                         attributes: ["body": .graph(body), "num_scan_inputs": .int(1), "scan_input_directions": .ints([1])])],
            inputs: [Self.value("init", .float, [2]), Self.value("rows", .float, [3, 2])],
            outputs: [Self.value("final", .float, nil), Self.value("sums", .float, nil)])
        let session = try InferenceSession(model: Model(opsetImports: ["": 16], graph: graph))
        let outputs = try session.run(["init": Self.floats([2], [0, 0]), "rows": Self.floats([3, 2], [1, 2, 3, 4, 5, 6])])
        #expect(try outputs["final"]!.scalars(as: Float.self) == [9, 12])
        // Reversed input direction: rows 2, 1, 0.
        #expect(try outputs["sums"]!.scalars(as: Float.self) == [5, 6, 8, 10, 9, 12])
    }

    // MARK: - Planning from shapes

    /// An If whose branches agree on shapes is planned once from shapes, like any graph: no
    /// run is planned with its values, and each run runs only the branch taken.
    @Test func ifWithAgreeingBranchesIsPlannedFromShapes() throws {
        let session = try InferenceSession(model: Self.ifModel())
        let x = Self.floats([3], [1, -2, 3])
        for (cond, expected) in [(true, [Float(2), 0, 6]), (false, [3, 0, 9]), (true, [2, 0, 6])] {
            let y = try #require(try session.run(["cond": Tensor(scalar: cond), "input": x])["y"])
            #expect(try y.scalars(as: Float.self) == expected)
        }
        #expect(!session.runsInStages)
    }

    /// Branches of different shapes still work: the run is planned with the condition's value.
    @Test func ifWithBranchesOfDifferentShapesPlansWithValues() throws {
        var model = Self.ifModel()
        let elseBranch = Graph(
            nodes: [Node(name: "concat", opType: "Concat", inputs: ["x", "x"], outputs: ["e"], attributes: ["axis": .int(0)])],
            inputs: [], outputs: [Self.value("e", .float, nil)])
        model.graph.nodes[1].attributes["else_branch"] = .graph(elseBranch)
        let session = try InferenceSession(model: model)
        let x = Self.floats([3], [1, -2, 3])
        #expect(try session.run(["cond": Tensor(scalar: true), "input": x])["y"]?.shape == [3])
        #expect(try session.run(["cond": Tensor(scalar: false), "input": x])["y"]?.scalars(as: Float.self) == [1, 0, 3, 1, 0, 3])
        #expect(session.runsInStages)
    }

    /// A branch reading the enclosing graph's constant (here a Reshape target) gets it as its
    /// own initializer, so its shapes are known without a run's values.
    @Test func outerConstantsBecomeBranchInitializers() throws {
        let branch = { (name: String) in
            Graph(
                nodes: [Node(name: name, opType: "Reshape", inputs: ["x", "target"], outputs: [name + "_y"])],
                inputs: [], outputs: [Self.value(name + "_y", .float, nil)])
        }
        let graph = Graph(
            nodes: [
                Node(name: "relu", opType: "Relu", inputs: ["input"], outputs: ["x"]),
                Node(name: "if", opType: "If", inputs: ["cond"], outputs: ["y"],
                     attributes: ["then_branch": .graph(branch("a")), "else_branch": .graph(branch("b"))]),
            ],
            inputs: [Self.value("cond", .bool, []), Self.value("input", .float, [2, 3])],
            outputs: [Self.value("y", .float, nil)],
            initializers: [("target", try Tensor(shape: [2], scalars: [Int64(3), 2]))])
        let session = try InferenceSession(model: Model(opsetImports: ["": 16], graph: graph))
        let y = try session.run(["cond": Tensor(scalar: false), "input": Self.floats([2, 3], [1, -2, 3, -4, 5, -6])])["y"]
        #expect(y?.shape == [3, 2])
        #expect(try y?.scalars(as: Float.self) == [1, 0, 3, 0, 5, 0])
        #expect(!session.runsInStages)
    }
}
