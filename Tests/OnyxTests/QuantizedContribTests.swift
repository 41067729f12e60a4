import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// com.microsoft QLinearSigmoid, QLinearLeakyRelu, QLinearConcat, QLinearAveragePool,
/// QLinearSoftmax and DynamicQuantizeLSTM, and QdqFusion's rules for their QDQ groups, against
/// onnxruntime's outputs for the models of tools/make_qops_fixtures.py (Fixtures/qops/), and
/// malformed parameters refused at load.
@Suite struct QuantizedContribTests {
    typealias M = IntegerMatMulTests
    static let root = FixtureTests.root.appendingPathComponent("qops")

    /// The fixture's session, inputs and onnxruntime's outputs.
    static func fixture(_ name: String, level: OptimizationLevel, isa: KernelISA = .portable)
        throws -> (session: InferenceSession, inputs: [String: Tensor], expected: [(String, Tensor)])
    {
        let folder = root.appendingPathComponent(name)
        let session = try InferenceSession(
            contentsOf: folder.appendingPathComponent("model.onnx").path, options: SessionOptions(optimizationLevel: level, isa: isa))
        let data = folder.appendingPathComponent("test_data_set_0")
        var inputs: [String: Tensor] = [:]
        for (k, value) in session.inputs.enumerated() {
            inputs[value.name] = try FixtureTests.load(data.appendingPathComponent("input_\(k).pb")).tensor
        }
        let expected = try session.outputs.enumerated().map { k, value in
            (value.name, try FixtureTests.load(data.appendingPathComponent("output_\(k).pb")).tensor)
        }
        return (session, inputs, expected)
    }

    /// Values of an 8-bit or float tensor as doubles.
    static func doubles(_ t: Tensor) throws -> [Double] {
        switch t.dataType {
        case .uint8: try t.scalars(as: UInt8.self).map(Double.init)
        case .int8: try t.scalars(as: Int8.self).map(Double.init)
        default: try t.scalars(as: Float.self).map(Double.init)
        }
    }

    /// One node per operator on every byte value (both 8-bit types, Concat's requantization,
    /// Softmax along the last and a middle axis, a channels_last AveragePool): exactly onnxruntime's
    /// bytes, on every ISA, unoptimized and optimized.
    @Test(arguments: KernelISA.supported, OptimizationLevel.allCases)
    func operatorsMatchOnnxruntimeExactly(isa: KernelISA, level: OptimizationLevel) throws {
        let (session, inputs, expected) = try Self.fixture("tables", level: level, isa: isa)
        let outputs = try session.run(inputs)
        for (name, want) in expected {
            let got = try #require(outputs[name])
            #expect(got.shape == want.shape && got.dataType == want.dataType, "\(name)")
            let (a, b) = (try Self.doubles(got), try Self.doubles(want))
            let differing = zip(a, b).filter { $0 != $1 }.count
            #expect(differing == 0, "\(name): \(differing) of \(b.count) values differ from onnxruntime's")
        }
    }

    /// quantize_static's model in QOperator form (QLinearConv, QLinearSigmoid, QLinearLeakyRelu,
    /// QLinearConcat, two QLinearAveragePools, QLinearSoftmax) and in QDQ form (fused by QdqFusion):
    /// exactly onnxruntime's output, which is the DequantizeLinear of QLinearSoftmax's bytes.
    @Test(arguments: ["qop", "qdq"], OptimizationLevel.allCases)
    func staticModelsMatchOnnxruntime(fixture: String, level: OptimizationLevel) throws {
        guard fixture == "qop" || level == .all else { return }  // unfused QDQ runs in float, tested below
        let (session, inputs, expected) = try Self.fixture(fixture, level: level)
        let got = try Self.doubles(try #require(try session.run(inputs)[expected[0].0]))
        let want = try Self.doubles(expected[0].1)
        let worst = zip(got, want).map { abs($0 - $1) }.max() ?? 0
        #expect(worst == 0, "\(fixture): largest difference \(worst) from onnxruntime's")
    }

    /// QdqFusion turns the QDQ model's groups into the com.microsoft operators (no float Sigmoid,
    /// LeakyRelu, Concat, AveragePool or Softmax left), and without it the model runs in float
    /// within one output step (1/255) of onnxruntime.
    @Test func qdqGroupsAreFused() throws {
        let url = Self.root.appendingPathComponent("qdq").appendingPathComponent("model.onnx")
        var graph = try Model(contentsOf: url.path).graph
        ConstantLifting().apply(to: &graph)
        QdqFusion().apply(to: &graph)
        let ops = Set(graph.nodes.map(\.opType))
        #expect(ops.isDisjoint(with: ["Sigmoid", "LeakyRelu", "Concat", "AveragePool", "Softmax", "Conv"]), "\(ops)")
        #expect(ops.isSuperset(of: ["QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "QLinearAveragePool", "QLinearSoftmax"]))
        let (session, inputs, expected) = try Self.fixture("qdq", level: .none)
        let got = try Self.doubles(try #require(try session.run(inputs)[expected[0].0]))
        let want = try Self.doubles(expected[0].1)
        let worst = zip(got, want).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1.0 / 255 + 1e-6, "float QDQ: largest difference \(worst)")
    }

    /// A Softmax over an axis other than −1 stays in float (its meaning depends on the opset,
    /// which the pass does not see); one over −1 is fused.
    @Test(arguments: [1, -1])
    func qdqSoftmaxFusedOnlyOverTheLastAxis(axis: Int) {
        var graph = Graph(
            nodes: [
                Node(name: "dq", opType: "DequantizeLinear", inputs: ["xq", "s", "z"], outputs: ["x"]),
                Node(name: "softmax", opType: "Softmax", inputs: ["x"], outputs: ["p"], attributes: ["axis": .int(axis)]),
                Node(name: "q", opType: "QuantizeLinear", inputs: ["p", "sy", "z"], outputs: ["y"]),
            ],
            inputs: [M.value("xq", .uint8, [2, 8])], outputs: [Value(name: "y", type: nil)],
            initializers: [("s", M.t([], [Float(0.1)])), ("sy", M.t([], [Float(1.0 / 256)])), ("z", M.t([], [UInt8(0)]))])
        QdqFusion().apply(to: &graph)
        #expect(graph.nodes.map(\.opType) == (axis == -1 ? ["QLinearSoftmax"] : ["DequantizeLinear", "Softmax", "QuantizeLinear"]))
    }

    /// `Q(f(DQ(x)))` for HardSigmoid, HardSwish and Tanh becomes one `onyx.quantized` QLinearUnary,
    /// whose table gives on every byte of both 8-bit types what the float operators between the
    /// DQ and the Q give (the unoptimized session), but where the float function's last bit
    /// decides a rounding tie.
    @Test(arguments: ["HardSigmoid", "HardSwish", "Tanh"], [DataType.uint8, .int8])
    func qdqTabulatedUnaryMatchesFloat(op: String, type: DataType) throws {
        let bytes = type == .uint8 ? M.t([256], (0...255).map { UInt8($0) }) : M.t([256], (-128...127).map { Int8($0) })
        let zero = type == .uint8 ? M.t([], [UInt8(128)]) : M.t([], [Int8(0)])
        let attributes: [String: Attribute] = op == "HardSigmoid" ? ["alpha": .float(0.25), "beta": .float(0.4)] : [:]
        let graph = Graph(
            nodes: [
                Node(name: "dq", opType: "DequantizeLinear", inputs: ["xq", "s", "z"], outputs: ["x"]),
                Node(name: "f", opType: op, inputs: ["x"], outputs: ["v"], attributes: attributes),
                Node(name: "q", opType: "QuantizeLinear", inputs: ["v", "sy", "z"], outputs: ["y"]),
            ],
            inputs: [M.value("xq", type, [256])], outputs: [Value(name: "y", type: nil)],
            initializers: [("s", M.t([], [Float(0.05)])), ("sy", M.t([], [Float(0.01)])), ("z", zero)])
        var fused = graph
        QdqFusion().apply(to: &fused)
        #expect(fused.nodes.map(\.opType) == ["QLinearUnary"])
        #expect(fused.nodes.first?.domain == QuantizedLookupTable.domain)
        let fast = try Self.doubles(try #require(try M.session(graph, isa: .portable).run(["xq": bytes])["y"]))
        let slow = try Self.doubles(try #require(try M.session(graph, isa: .portable, level: .none).run(["xq": bytes])["y"]))
        #expect(zip(fast, slow).allSatisfy { abs($0 - $1) <= 1 })
        #expect(zip(fast, slow).filter { $0 != $1 }.count <= 2, "\(op) \(type)")
        #expect(Set(fast).count > 50, "a degenerate (saturated) output tests nothing")
    }

    /// quantize_dynamic's bidirectional LSTM (DynamicQuantizeLSTM, then a dynamically quantized
    /// MatMul): within one step of the read-out's quantization of onnxruntime's output on every ISA.
    @Test(arguments: KernelISA.supported)
    func dynamicQuantizeLSTMMatchesOnnxruntime(isa: KernelISA) throws {
        let (session, inputs, expected) = try Self.fixture("lstm", level: .all, isa: isa)
        let got = try Self.doubles(try #require(try session.run(inputs)[expected[0].0]))
        let want = try Self.doubles(expected[0].1)
        let worst = zip(got, want).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-3, "largest difference \(worst) from onnxruntime's")
        #expect(want.contains { abs($0) > 0.05 })
    }

    /// The tabulated logistic is MLAS's: 0.5 at 0, odd around it, saturating at ±18.
    @Test func logisticIsMlasApproximation() {
        #expect(QuantizedLookupTable.logistic(0) == 0.5)
        #expect(QuantizedLookupTable.logistic(30) == QuantizedLookupTable.logistic(18))
        for x: Float in [-7, -1.5, -0.25, 0.3, 2, 9] {
            #expect(abs(QuantizedLookupTable.logistic(x) - 1 / (1 + exp(-x))) < 1e-6)
        }
    }

    static func unary(_ op: String, scale: Tensor, zero: Tensor) -> Graph {
        Graph(
            nodes: [Node(name: "op", opType: op, domain: "com.microsoft", inputs: ["x", "sx", "zx", "sy", "zy"], outputs: ["y"])],
            inputs: [M.value("x", .uint8, [4])], outputs: [Value(name: "y", type: nil)],
            initializers: [("sx", scale), ("zx", zero), ("sy", M.t([], [Float(0.01)])), ("zy", M.t([], [UInt8(0)]))])
    }

    /// Scales and zero points of the wrong type or shape, a missing Softmax opset, a Concat
    /// without triples and an LSTM's per-column scales of the wrong length fail at load, naming what.
    @Test func malformedParametersAreRefusedAtLoad() throws {
        func refused(_ graph: Graph, _ fragment: String) {
            do {
                _ = try M.session(graph, isa: .portable)
                Issue.record("loaded; expected an error naming \(fragment)")
            } catch let error as OnyxError {
                #expect(error.message.contains(fragment), "\(error.message)")
            } catch {
                Issue.record("\(error)")
            }
        }
        let byte = M.t([], [UInt8(3)])
        refused(Self.unary("QLinearSigmoid", scale: M.t([], [Int32(1)]), zero: byte), "X_scale must be float")
        refused(Self.unary("QLinearLeakyRelu", scale: M.t([2], [Float(1), 2]), zero: byte), "X_scale of shape [2] must be a scalar")
        refused(Self.unary("QLinearSigmoid", scale: M.t([], [Float(0.1)]), zero: M.t([], [Int8(3)])), "Y_zero_point is uint8 but must be int8")
        refused(Self.unary("QLinearSigmoid", scale: M.t([], [Float(-0.1)]), zero: byte), "X_scale must be finite and > 0")
        refused(Self.unary("QLinearSoftmax", scale: M.t([], [Float(0.1)]), zero: byte), "missing 'opset'")
        var concat = Self.unary("QLinearConcat", scale: M.t([], [Float(0.1)]), zero: byte)
        concat.nodes[0].inputs = ["sy", "zy", "x", "sx"]
        concat.nodes[0].attributes["axis"] = .int(0)
        refused(concat, "triples")

        let (directions, hidden, input) = (1, 2, 3)
        let lstm = Graph(
            nodes: [Node(name: "lstm", opType: "DynamicQuantizeLSTM", domain: "com.microsoft",
                         inputs: ["x", "w", "r", "", "", "", "", "", "ws", "wz", "rs", "rz"], outputs: ["y"],
                         attributes: ["hidden_size": .int(hidden)])],
            inputs: [M.value("x", .float, [1, 1, input])], outputs: [Value(name: "y", type: nil)],
            initializers: [
                ("w", M.t([directions, input, 4 * hidden], [Int8](repeating: 1, count: input * 4 * hidden))),
                ("r", M.t([directions, hidden, 4 * hidden], [Int8](repeating: 1, count: hidden * 4 * hidden))),
                ("ws", M.t([directions, 3], [Float](repeating: 0.1, count: 3))), ("wz", M.t([directions], [Int8(0)])),
                ("rs", M.t([directions], [Float(0.1)])), ("rz", M.t([directions], [Int8(0)])),
            ])
        refused(lstm, "W_scale of shape [1,3] must be [1] or [1,8]")
    }
}
