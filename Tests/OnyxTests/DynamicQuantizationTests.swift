import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR

/// `Model.quantizedDynamically`: the graph it writes (quantize_dynamic's node chain, weights as
/// onnxruntime quantizes them), that it loads again and runs fused, that its outputs stay within
/// the error int8 allows of the float model's, and what it refuses or skips.
@Suite struct DynamicQuantizationTests {
    static func t(_ shape: [Int], _ values: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: values) }

    static func value(_ name: String, _ shape: [Shape.Dimension]) -> Value {
        Value(name: name, type: TensorType(dataType: .float, shape: Shape(shape)))
    }

    /// Deterministic values in [-1, 1) with a few larger ones, so columns get different scales.
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { i in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let unit = Float(state >> 40) / Float(1 << 24) * 2 - 1
            return i % 11 == 0 ? unit * 3 : unit
        }
    }

    /// x [batch, 16] → MatMul W1 [16, 8] → Add b1 → Relu → MatMul W2 [8, 4] → y; a second
    /// MatMul W3 [16, 4] also reads x.
    static func mlp(opset: Int = 17) -> Model {
        let graph = Graph(
            nodes: [
                Node(name: "mm1", opType: "MatMul", inputs: ["x", "W1"], outputs: ["h"]),
                Node(name: "add1", opType: "Add", inputs: ["h", "b1"], outputs: ["h2"]),
                Node(name: "relu", opType: "Relu", inputs: ["h2"], outputs: ["h3"]),
                Node(name: "mm2", opType: "MatMul", inputs: ["h3", "W2"], outputs: ["y"]),
                Node(name: "mm3", opType: "MatMul", inputs: ["x", "W3"], outputs: ["z"]),
            ],
            inputs: [value("x", [.symbolic("batch"), .fixed(16)])],
            outputs: [value("y", [.symbolic("batch"), .fixed(4)]), value("z", [.symbolic("batch"), .fixed(4)])],
            initializers: [
                ("W1", t([16, 8], values(128, seed: 1))), ("b1", t([8], values(8, seed: 2))),
                ("W2", t([8, 4], values(32, seed: 3))), ("W3", t([16, 4], values(64, seed: 4))),
            ])
        return Model(opsetImports: ["": opset], graph: graph)
    }

    static func initializer(_ model: Model, _ name: String) throws -> Tensor {
        try #require(model.graph.initializers.first { $0.name == name }?.tensor)
    }

    @Test func writesQuantizeDynamicsChain() throws {
        let result = try Self.mlp().quantizedDynamically()
        #expect(result.quantizedNodes.map(\.name) == ["mm1", "mm2", "mm3"])
        #expect(result.skippedNodes.isEmpty)
        let ops = result.model.graph.nodes.map(\.opType)
        // x is quantized once for both products reading it; the bias Add stays as the file had it.
        #expect(ops == ["DynamicQuantizeLinear", "Mul", "MatMulInteger", "Cast", "Mul", "Add", "Relu",
                        "DynamicQuantizeLinear", "Mul", "MatMulInteger", "Cast", "Mul",
                        "Mul", "MatMulInteger", "Cast", "Mul"])
        #expect(!result.model.graph.initializers.contains { ["W1", "W2", "W3"].contains($0.name) })
        #expect(result.model.opsetImports[""] == 17)
        #expect(result.floatWeightBytes == (128 + 32 + 64) * 4)
        #expect(result.quantizedWeightBytes == 128 + 32 + 64 + (8 + 4 + 4) * 5)
        // Onyx's optimizer recognises every chain.
        let optimized = GraphOptimizer(level: .all).optimize(result.model.graph).nodes.map(\.opType)
        #expect(!optimized.contains("MatMulInteger") && !optimized.contains("Cast"))
        #expect(optimized.filter { ["MatMulIntegerToFloat", "DynamicQuantizeMatMul"].contains($0) }.count == 3)
    }

    @Test(arguments: [true, false])
    func weightsAreQuantizedAsOnnxruntimeDoes(perChannel: Bool) throws {
        let model = Self.mlp()
        let result = try model.quantizedDynamically(options: DynamicQuantizationOptions(perChannel: perChannel))
        for (weight, (k, n)) in [("W1", (16, 8)), ("W2", (8, 4)), ("W3", (16, 4))] {
            let w = try Self.initializer(model, weight).scalars(as: Float.self)
            let scale = try Self.initializer(result.model, "\(weight)_scale")
            let q = try Self.initializer(result.model, "\(weight)_quantized").scalars(as: Int8.self)
            let zeroPoint = try Self.initializer(result.model, "\(weight)_zero_point")
            #expect(zeroPoint.dataType == .int8)
            #expect(try zeroPoint.scalars(as: Int8.self).allSatisfy { $0 == 0 })
            let scales = try scale.scalars(as: Float.self)
            if perChannel {
                #expect(scale.shape == [n] && zeroPoint.shape == [n])
                for j in 0..<n {
                    let absMax = (0..<k).map { abs(w[$0 * n + j]) }.max()!
                    #expect(scales[j] == Float(Double(absMax) / 127), "\(weight) column \(j)")
                }
            } else {
                #expect(scale.shape == [] && zeroPoint.shape == [])
                #expect(scales == [Float(Double(w.map(abs).max()!) / 127)])
            }
            for i in 0..<(k * n) {
                let s = scales[perChannel ? i % n : 0]
                #expect(q[i] == Int8((w[i] / s).rounded(.toNearestOrEven)), "\(weight)[\(i)]")
            }
        }
    }

    /// One product Y = X·W + b: every output within the bound int8 allows, summed over K:
    /// |x|·(s_w/2) + |w|·s_x + s_x·s_w/2, with s_x DynamicQuantizeLinear's scale of X (a whole
    /// step, not half: its rounded zero point can push the largest x into saturation).
    @Test(arguments: KernelISA.supported)
    func singleProductIsWithinQuantizationError(isa: KernelISA) throws {
        let (m, k, n) = (5, 33, 7)
        let w = Self.values(k * n, seed: 9), b = Self.values(n, seed: 10), x = Self.values(m * k, seed: 11)
        let graph = Graph(
            nodes: [Node(name: "gemm", opType: "Gemm", inputs: ["x", "W", "b"], outputs: ["y"])],
            inputs: [Self.value("x", [.symbolic("m"), .fixed(k)])], outputs: [Self.value("y", [.symbolic("m"), .fixed(n)])],
            initializers: [("W", Self.t([k, n], w)), ("b", Self.t([n], b))])
        let result = try Model(opsetImports: ["": 13], graph: graph).quantizedDynamically()
        #expect(result.model.graph.nodes.map(\.opType) == ["DynamicQuantizeLinear", "Mul", "MatMulInteger", "Cast", "Mul", "Add"])
        let scales = try Self.initializer(result.model, "W_scale").scalars(as: Float.self)
        let session = try InferenceSession(model: result.model, options: SessionOptions(isa: isa))
        let y = try #require(try session.run(["x": Self.t([m, k], x)])["y"]).scalars(as: Float.self)
        let sx = Double(max(x.max()!, 0) - min(x.min()!, 0)) / 255
        for i in 0..<m {
            for j in 0..<n {
                var exact = Double(b[j]), bound = 1e-5
                for p in 0..<k {
                    exact += Double(x[i * k + p]) * Double(w[p * n + j])
                    bound += Double(abs(x[i * k + p])) * Double(scales[j]) / 2 + Double(abs(w[p * n + j])) * sx
                        + sx * Double(scales[j]) / 2
                }
                #expect(abs(Double(y[i * n + j]) - exact) <= bound, "y[\(i), \(j)]")
            }
        }
    }

    /// DynamicQuantizeLinear as the ONNX spec defines it: uint8 over [min(x, 0), max(x, 0)].
    static func dynamicQuantize(_ x: [Float]) -> (q: [Int32], scale: Float, zeroPoint: Int32) {
        let low = min(x.min()!, 0), high = max(x.max()!, 0)
        let scale = (high - low) / 255
        let zeroPoint = Int32(min(max((-low / scale).rounded(.toNearestOrEven), 0), 255))
        let q = x.map { Int32(min(max(($0 / scale).rounded(.toNearestOrEven) + Float(zeroPoint), 0), 255)) }
        return (q, scale, zeroPoint)
    }

    /// Fixtures/mlp_legacy (three Gemms with transB, ReLUs): quantized, written, read back and run.
    /// Its outputs are the int8 computation the file describes, done here by hand from the weights
    /// it holds; and they stay within the error int8 can make of the float model's, a bound carried
    /// layer by layer (ReLU does not widen it).
    @Test func mlpFixtureRunsItsInt8ComputationWithinQuantizationError() throws {
        let folder = FixtureTests.root.appendingPathComponent("mlp_legacy")
        let float = try Model(contentsOf: folder.appendingPathComponent("model.onnx").path)
        let result = try float.quantizedDynamically()
        #expect(result.quantizedNodes.map(\.opType) == ["Gemm", "Gemm", "Gemm"])
        #expect(result.quantizedNodes.map(\.shape) == [[64, 128], [128, 64], [64, 2]])
        let path = try DecodingTests.temporaryDirectory() + "/mlp_int8.onnx"
        try result.model.write(to: path)
        let session = try InferenceSession(contentsOf: path)
        #expect(!session.model.graph.nodes.contains { $0.opType == "Gemm" })
        // Each layer runs as one fused product, standing for the seven or six nodes of its chain.
        let prepared = session.preparedNodes
        #expect(prepared.map(\.opType) == ["DynamicQuantizeMatMul", "DynamicQuantizeMatMul", "DynamicQuantizeMatMul"])
        let chain = ["DynamicQuantizeLinear", "Mul", "MatMulInteger", "Cast", "Mul", "Add"]
        #expect(prepared.map { $0.absorbed.map(\.opType) } == [chain + ["Relu"], chain + ["Relu"], chain])
        let input = try FixtureTests.load(folder.appendingPathComponent("test_data_set_0/input_0.pb")).tensor
        let y = try #require(try session.run([session.inputs[0].name: input])[session.outputs[0].name]).scalars(as: Float.self)

        let rows = input.shape[0]
        var simulated = try input.scalars(as: Float.self)
        var x = simulated.map(Double.init), error = [Double](repeating: 0, count: x.count)
        for (layer, name) in ["net.0", "net.2", "net.4"].enumerated() {
            let w = try Self.initializer(float, "\(name).weight"), b = try Self.initializer(float, "\(name).bias").scalars(as: Float.self)
            let (n, k) = (w.shape[0], w.shape[1])  // transB: stored N × K
            let relu = layer < 2
            // The int8 computation the file describes, row by row as DynamicQuantizeLinear sees the batch.
            let q = try Self.initializer(result.model, "\(name).weight_Transposed_quantized").scalars(as: Int8.self)  // K × N
            let scales = try Self.initializer(result.model, "\(name).weight_Transposed_scale").scalars(as: Float.self)
            let a = Self.dynamicQuantize(simulated)
            simulated = (0..<(rows * n)).map { index in
                let (i, j) = (index / n, index % n)
                var sum: Int32 = 0
                for p in 0..<k { sum += (a.q[i * k + p] - a.zeroPoint) * Int32(q[p * n + j]) }
                let v = Float(sum) * (a.scale * scales[j]) + b[j]
                return relu ? max(v, 0) : v
            }
            // The float forward pass and a bound on each activation's error, in double: with Q(x) = x + δ,
            // |δ| ≤ error + s_x (a whole step: the rounded zero point can saturate the largest x), and
            // |Δw| ≤ s_w / 2: |Σ Q(x)·Q(w) − x·w| ≤ Σ |δ|·|w| + (|x| + |δ|)·s_w / 2.
            let weights = try w.scalars(as: Float.self).map(Double.init)
            let low = zip(x, error).map { $0 - $1 }.min()!, high = zip(x, error).map { $0 + $1 }.max()!
            let sx = (max(high, 0) - min(low, 0)) / 255
            var next = [Double](repeating: 0, count: rows * n), nextError = next
            for i in 0..<rows {
                for j in 0..<n {
                    var sum = Double(b[j]), bound = 1e-5
                    for p in 0..<k {
                        let xv = x[i * k + p], e = error[i * k + p] + sx
                        sum += xv * weights[j * k + p]
                        bound += e * abs(weights[j * k + p]) + (abs(xv) + e) * Double(scales[j]) / 2
                    }
                    next[i * n + j] = relu ? max(sum, 0) : sum
                    nextError[i * n + j] = bound
                }
            }
            (x, error) = (next, nextError)
        }
        #expect(y.count == x.count)
        for i in y.indices {
            #expect(abs(y[i] - simulated[i]) <= 1e-6 * max(1, abs(simulated[i])), "output \(i): \(y[i]) vs \(simulated[i]) by hand")
            #expect(abs(Double(y[i]) - x[i]) <= error[i], "output \(i): \(y[i]) vs float \(x[i]), bound \(error[i])")
        }
    }

    @Test func gemmFoldsAlphaBetaAndTransposition() throws {
        let (k, n) = (6, 3)
        let stored = Self.values(n * k, seed: 5)  // N × K
        let graph = Graph(
            nodes: [Node(name: "g", opType: "Gemm", inputs: ["x", "B", "C"], outputs: ["y"],
                         attributes: ["transB": .int(1), "alpha": .float(0.5), "beta": .float(2)])],
            inputs: [Self.value("x", [.fixed(2), .fixed(k)])], outputs: [Self.value("y", [.fixed(2), .fixed(n)])],
            initializers: [("B", Self.t([n, k], stored)), ("C", Self.t([1], [0.25]))])
        let result = try Model(opsetImports: ["": 13], graph: graph).quantizedDynamically()
        let q = try Self.initializer(result.model, "B_Transposed_quantized")
        #expect(q.shape == [k, n])
        let scales = try Self.initializer(result.model, "B_Transposed_scale").scalars(as: Float.self)
        for j in 0..<n {
            let absMax = (0..<k).map { abs(stored[j * k + $0] * 0.5) }.max()!
            #expect(scales[j] == Float(Double(absMax) / 127))
        }
        let bias = try Self.initializer(result.model, "g_bias")
        #expect(bias.shape == [n])
        #expect(try bias.scalars(as: Float.self) == [0.5, 0.5, 0.5])
        #expect(!result.model.graph.initializers.contains { $0.name == "B" || $0.name == "C" })
    }

    @Test func skipsWhatItCannotQuantizeAndSaysWhy() throws {
        let graph = Graph(
            nodes: [
                Node(name: "dynamic", opType: "MatMul", inputs: ["x", "w"], outputs: ["a"]),
                Node(name: "tiny", opType: "MatMul", inputs: ["a", "T"], outputs: ["b"]),
                Node(name: "kept", opType: "MatMul", inputs: ["b", "K"], outputs: ["c"]),
                Node(name: "transposedA", opType: "Gemm", inputs: ["c", "G"], outputs: ["d"], attributes: ["transA": .int(1)]),
            ],
            inputs: [Self.value("x", [.fixed(1), .fixed(4)]), Self.value("w", [.fixed(4), .fixed(4)])],
            outputs: [Self.value("d", [.fixed(4), .fixed(1)])],
            initializers: [("T", Self.t([4, 2], Self.values(8, seed: 1))), ("K", Self.t([2, 4], Self.values(8, seed: 2))),
                           ("G", Self.t([1, 8], Self.values(8, seed: 3)))])
        let model = Model(opsetImports: ["": 13], graph: graph)
        let result = try model.quantizedDynamically(
            options: DynamicQuantizationOptions(minimumWeightElements: 8, excludedNodes: ["kept"]))
        #expect(result.quantizedNodes.map(\.name) == ["tiny"])
        let reasons = Dictionary(uniqueKeysWithValues: result.skippedNodes.map { ($0.name, $0.reason) })
        #expect(reasons["dynamic"]?.contains("not a constant initializer") == true)
        #expect(reasons["kept"] == "excluded by name")
        #expect(reasons["transposedA"]?.contains("transA") == true)
        let small = try model.quantizedDynamically(options: DynamicQuantizationOptions(minimumWeightElements: 9))
        #expect(small.skippedNodes.first { $0.name == "tiny" }?.reason.contains("fewer than the minimum of 9") == true)
    }

    @Test func modelWithoutProductsIsReturnedUnchanged() throws {
        let graph = Graph(nodes: [Node(name: "r", opType: "Relu", inputs: ["x"], outputs: ["y"])],
                          inputs: [Self.value("x", [.fixed(3)])], outputs: [Self.value("y", [.fixed(3)])])
        let model = Model(opsetImports: ["": 9], graph: graph)
        let result = try model.quantizedDynamically()
        #expect(result.quantizedNodes.isEmpty && result.skippedNodes.isEmpty)
        #expect(result.notes.contains { $0.contains("unchanged") })
        #expect(result.model.serializedBytes() == model.serializedBytes())
    }

    @Test func refusesBadOptionsAndMalformedModels() throws {
        #expect(throws: OnyxError.self) { try Self.mlp().quantizedDynamically(options: DynamicQuantizationOptions(operatorTypes: ["Conv"])) }
        #expect(throws: OnyxError.self) { try Self.mlp().quantizedDynamically(options: DynamicQuantizationOptions(minimumWeightElements: -1)) }
        var broken = Self.mlp()
        broken.graph.nodes.removeFirst()  // h is read but never produced
        do {
            _ = try broken.quantizedDynamically()
            Issue.record("a graph reading a value nothing produces was quantized")
        } catch let error as OnyxError {
            #expect(error.code == .invalidModel && error.message.contains("'h'"))
        }
        #expect(throws: OnyxError.self) { try Model(bytes: Array("not a model".utf8)) }
    }

    @Test func raisesAnOldOpsetOnlyWhenNothingChangesMeaning() throws {
        let raised = try Self.mlp(opset: 9).quantizedDynamically()
        #expect(raised.model.opsetImports[""] == 11)
        #expect(raised.notes.contains { $0.contains("from 9 to 11") })
        _ = try InferenceSession(model: raised.model)

        // Clip's bounds are attributes up to opset 10 and inputs from 11.
        var clipped = Self.mlp(opset: 10)
        clipped.graph.nodes[2] = Node(name: "clip", opType: "Clip", inputs: ["h2"], outputs: ["h3"],
                                      attributes: ["min": .float(0), "max": .float(6)])
        do {
            _ = try clipped.quantizedDynamically()
            Issue.record("raised opset 10 to 11 under a Clip")
        } catch let error as OnyxError {
            #expect(error.code == .unsupportedOperator && error.message.contains("'clip' (Clip)"))
        }
    }

    @Test func writeRefusesWhatProtobufCannotHold() throws {
        #expect(throws: OnyxError.self) { try ModelEncoder.encode(Self.mlp(), limit: 100) }
        let folder = try DecodingTests.temporaryDirectory()
        #expect(throws: OnyxError.self) { try Self.mlp().write(to: folder + "/missing/model.onnx") }
    }
}
