import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// MatMulInteger and QLinearMatMul on the integer GEMM, com.microsoft MatMulIntegerToFloat and
/// DynamicQuantizeMatMul, and IntegerMatMulFusion on quantize_dynamic's node chain: exact against
/// naive references and the unfused graph on every ISA; malformed parameters refused at load.
@Suite struct IntegerMatMulTests {
    static func t<T: TensorElement>(_ shape: [Int], _ values: [T]) -> Tensor { try! Tensor(shape: shape, scalars: values) }

    static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var stream = IntegerGemmTests.Bytes(state: seed)
        return (0..<count).map { _ in stream.next() }
    }

    static func session(_ graph: Graph, isa: KernelISA, level: OptimizationLevel = .all) throws -> InferenceSession {
        try InferenceSession(model: Model(opsetImports: ["": 21, "com.microsoft": 1], graph: graph),
                             options: SessionOptions(optimizationLevel: level, isa: isa))
    }

    static func value(_ name: String, _ type: DataType, _ shape: [Int]) -> Value {
        Value(name: name, type: TensorType(dataType: type, shape: Shape(fixed: shape)))
    }

    /// The int32 product of batched A (`batch` × M × K) and B (K × N, or `batch` × K × N),
    /// zero points per tensor (scalars) or per row of A / column of B.
    static func reference(
        a: [UInt8], aType: DataType, b: [UInt8], bType: DataType, batch: Int, batchedB: Bool, m: Int, n: Int, k: Int,
        za: [Int32], zb: [Int32]
    ) -> [Int32] {
        var c: [Int32] = []
        for s in 0..<batch {
            let ab = Array(a[(s * m * k)..<((s + 1) * m * k)])
            let bb = batchedB ? Array(b[(s * k * n)..<((s + 1) * k * n)]) : b
            c += IntegerGemmTests.reference(
                m: m, n: n, k: k, a: ab, aSigned: aType == .int8, b: bb, bSigned: bType == .int8,
                za: (0..<m).map { za[za.count == 1 ? 0 : $0] }, zb: (0..<n).map { zb[zb.count == 1 ? 0 : $0] })
        }
        return c
    }

    static func tensor(_ type: DataType, _ shape: [Int], _ bytes: [UInt8]) -> Tensor {
        type == .int8 ? t(shape, bytes.map { Int8(bitPattern: $0) }) : t(shape, bytes)
    }

    static func zeroTensor(_ type: DataType, _ values: [Int32]) -> Tensor {
        let shape = values.count == 1 ? [] : [values.count]
        return type == .int8 ? t(shape, values.map { Int8($0) }) : t(shape, values.map { UInt8($0) })
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var batch, m, n, k: Int
        var aType: DataType, bType: DataType
        var perLine: Bool
        var constantB: Bool
        var batchedB = false
        var testDescription: String {
            "\(batch)×\(m)×\(n)×\(k) \(aType)×\(bType)\(perLine ? " per line" : "")\(constantB ? " constant B" : "")\(batchedB ? " batched B" : "")"
        }
    }

    static let cases: [Case] = [
        Case(batch: 1, m: 1, n: 17, k: 7, aType: .uint8, bType: .int8, perLine: true, constantB: true),
        Case(batch: 2, m: 5, n: 33, k: 63, aType: .uint8, bType: .int8, perLine: false, constantB: true),
        Case(batch: 3, m: 9, n: 7, k: 17, aType: .int8, bType: .uint8, perLine: true, constantB: true),
        Case(batch: 1, m: 17, n: 65, k: 130, aType: .uint8, bType: .uint8, perLine: true, constantB: false),
        Case(batch: 2, m: 3, n: 40, k: 5, aType: .int8, bType: .int8, perLine: false, constantB: false, batchedB: true),
        Case(batch: 1, m: 8, n: 32, k: 1, aType: .uint8, bType: .int8, perLine: false, constantB: true),
    ]

    @Test(arguments: KernelISA.supported, cases)
    func matMulIntegerIsExact(isa: KernelISA, c: Case) throws {
        let a = Self.bytes(c.batch * c.m * c.k, seed: 11), b = Self.bytes((c.batchedB ? c.batch : 1) * c.k * c.n, seed: 12)
        let za: [Int32] = c.perLine ? (0..<c.m).map { Int32($0 % 5) + (c.aType == .int8 ? -2 : 120) } : [c.aType == .int8 ? -3 : 128]
        let zb: [Int32] = c.perLine ? (0..<c.n).map { Int32($0 % 7) + (c.bType == .int8 ? -3 : 125) } : [c.bType == .int8 ? 0 : 131]
        let bShape = c.batchedB ? [c.batch, c.k, c.n] : [c.k, c.n]
        var inputs = [Self.value("a", c.aType, [c.batch, c.m, c.k])]
        var initializers: [(String, Tensor)] = [("za", Self.zeroTensor(c.aType, za)), ("zb", Self.zeroTensor(c.bType, zb))]
        var feeds = ["a": Self.tensor(c.aType, [c.batch, c.m, c.k], a)]
        if c.constantB {
            initializers.append(("b", Self.tensor(c.bType, bShape, b)))
        } else {
            inputs.append(Self.value("b", c.bType, bShape))
            feeds["b"] = Self.tensor(c.bType, bShape, b)
        }
        let graph = Graph(
            nodes: [Node(name: "mmi", opType: "MatMulInteger", inputs: ["a", "b", "za", "zb"], outputs: ["y"])],
            inputs: inputs, outputs: [Value(name: "y", type: nil)], initializers: initializers)
        let y = try #require(try Self.session(graph, isa: isa).run(feeds)["y"])
        #expect(y.shape == [c.batch, c.m, c.n])
        let want = Self.reference(a: a, aType: c.aType, b: b, bType: c.bType, batch: c.batch, batchedB: c.batchedB,
                                  m: c.m, n: c.n, k: c.k, za: za, zb: zb)
        #expect(try y.scalars(as: Int32.self) == want)
    }

    @Test(arguments: KernelISA.supported)
    func qLinearMatMulRequantizes(isa: KernelISA) throws {
        let (m, n, k) = (3, 19, 9)
        let a = Self.bytes(m * k, seed: 3), b = Self.bytes(k * n, seed: 4)
        let bScales = (0..<n).map { Float($0 + 1) * 0.0021 }
        let graph = Graph(
            nodes: [Node(name: "q", opType: "QLinearMatMul", inputs: ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], outputs: ["y"])],
            inputs: [Self.value("a", .uint8, [m, k])], outputs: [Value(name: "y", type: nil)],
            initializers: [
                ("sa", Self.t([], [Float(0.05)])), ("za", Self.t([], [UInt8(120)])), ("b", Self.tensor(.int8, [k, n], b)),
                ("sb", Self.t([n], bScales)), ("zb", Self.t([n], [Int8](repeating: 0, count: n))),
                ("sy", Self.t([], [Float(0.37)])), ("zy", Self.t([], [UInt8(128)])),
            ])
        let y = try #require(try Self.session(graph, isa: isa).run(["a": Self.tensor(.uint8, [m, k], a)])["y"])
        let c = Self.reference(a: a, aType: .uint8, b: b, bType: .int8, batch: 1, batchedB: false, m: m, n: n, k: k,
                               za: [120], zb: [0])
        let want = (0..<(m * n)).map { index -> UInt8 in
            let multiplier = Double(Float(0.05) * bScales[index % n] / Float(0.37))
            let q = (Double(c[index]) * multiplier).rounded(.toNearestOrEven) + 128
            return UInt8(min(max(q, 0), 255))
        }
        #expect(try y.scalars(as: UInt8.self) == want)
    }

    // MARK: - quantize_dynamic's chain

    /// The chain quantize_dynamic writes for `Relu(x · W + bias)`, W per-channel int8 (or
    /// per-tensor uint8 with a zero point), optionally with a second product reading the same
    /// DynamicQuantizeLinear.
    static func dynamicChain(m: Int, k: Int, n: Int, uint8Weights: Bool, shared: Bool) -> (Graph, Tensor) {
        let w = bytes(k * n, seed: 21)
        let wType: DataType = uint8Weights ? .uint8 : .int8
        let scales = uint8Weights ? [Float(0.0031)] : (0..<n).map { Float($0 % 9 + 1) * 0.0007 }
        let zeros = uint8Weights ? zeroTensor(.uint8, [119]) : zeroTensor(.int8, [Int32](repeating: 0, count: n))
        var nodes = [
            Node(name: "dq", opType: "DynamicQuantizeLinear", inputs: ["x"], outputs: ["xq", "xs", "xz"]),
            Node(name: "scales", opType: "Mul", inputs: ["xs", "ws"], outputs: ["s"]),
            Node(name: "mmi", opType: "MatMulInteger", inputs: ["xq", "w", "xz", "wz"], outputs: ["p"]),
            Node(name: "cast", opType: "Cast", inputs: ["p"], outputs: ["f"], attributes: ["to": .int(1)]),
            Node(name: "mul", opType: "Mul", inputs: ["f", "s"], outputs: ["y0"]),
            Node(name: "add", opType: "Add", inputs: ["bias", "y0"], outputs: ["y1"]),
            Node(name: "relu", opType: "Relu", inputs: ["y1"], outputs: ["y"]),
        ]
        var outputs = [Value(name: "y", type: nil)]
        if shared {
            nodes += [
                // Its own weights and scales, as quantize_dynamic writes them: equal ones would make
                // the two products one (common subexpressions).
                Node(name: "scales2", opType: "Mul", inputs: ["xs", "ws2"], outputs: ["s2"]),
                Node(name: "mmi2", opType: "MatMulInteger", inputs: ["xq", "w2", "xz", "wz"], outputs: ["p2"]),
                Node(name: "cast2", opType: "Cast", inputs: ["p2"], outputs: ["f2"], attributes: ["to": .int(1)]),
                Node(name: "mul2", opType: "Mul", inputs: ["s2", "f2"], outputs: ["z"]),
            ]
            outputs.append(Value(name: "z", type: nil))
        }
        var x = GemmConvTests.random([m, k], seed: 9)
        x = t([m, k], try! x.scalars(as: Float.self).map { $0 * 3 })
        let graph = Graph(
            nodes: nodes, inputs: [value("x", .float, [m, k])], outputs: outputs,
            initializers: [
                ("w", tensor(wType, [k, n], w)), ("ws", t(scales.count == 1 ? [] : [n], scales)), ("wz", zeros),
                ("bias", GemmConvTests.random([n], seed: 8)), ("w2", tensor(wType, [k, n], bytes(k * n, seed: 22))),
                ("ws2", t(scales.count == 1 ? [] : [n], scales.map { $0 * 1.5 })),
            ])
        return (graph, x)
    }

    static func optimizedOps(_ graph: Graph) -> [String] {
        GraphOptimizer(level: .all).optimize(graph).nodes.map(\.opType)
    }

    @Test(arguments: KernelISA.supported, [(1, 784, 512), (7, 33, 17), (32, 64, 10), (3, 5, 257)])
    func fusedDynamicChainMatchesTheNodes(isa: KernelISA, shape: (Int, Int, Int)) throws {
        let (m, k, n) = shape
        for uint8Weights in [false, true] {
            let (graph, x) = Self.dynamicChain(m: m, k: k, n: n, uint8Weights: uint8Weights, shared: false)
            #expect(Self.optimizedOps(graph) == ["DynamicQuantizeMatMul"])
            let fused = try Self.session(graph, isa: isa).run(["x": x])["y"]!
            let nodes = try Self.session(graph, isa: isa, level: .none).run(["x": x])["y"]!
            #expect(fused.shape == [m, n])
            #expect(try fused.scalars(as: Float.self) == nodes.scalars(as: Float.self), "\(isa) \(shape) uint8 W: \(uint8Weights)")
        }
    }

    @Test(arguments: KernelISA.supported)
    func sharedQuantizationStaysOneNode(isa: KernelISA) throws {
        let (graph, x) = Self.dynamicChain(m: 4, k: 31, n: 9, uint8Weights: false, shared: true)
        #expect(Self.optimizedOps(graph).sorted() == ["DynamicQuantizeLinear", "MatMulIntegerToFloat", "MatMulIntegerToFloat"])
        let fused = try Self.session(graph, isa: isa).run(["x": x])
        let nodes = try Self.session(graph, isa: isa, level: .none).run(["x": x])
        for name in ["y", "z"] {
            #expect(try fused[name]!.scalars(as: Float.self) == nodes[name]!.scalars(as: Float.self), "\(name)")
        }
    }

    @Test func chainReadElsewhereIsLeftAlone() throws {
        var (graph, _) = Self.dynamicChain(m: 2, k: 8, n: 4, uint8Weights: false, shared: false)
        graph.outputs.append(Value(name: "p", type: nil))  // the int32 product is wanted too
        #expect(Self.optimizedOps(graph).contains("MatMulInteger"))
    }

    // MARK: - com.microsoft operators directly

    @Test(arguments: KernelISA.supported)
    func matMulIntegerToFloatOnNonConstantB(isa: KernelISA) throws {
        let (m, k, n) = (5, 11, 6)
        let a = Self.bytes(m * k, seed: 31), b = Self.bytes(k * n, seed: 32)
        let bScale = (0..<n).map { Float($0 + 2) * 0.01 }, bias = (0..<n).map { Float($0) - 2.5 }
        let graph = Graph(
            nodes: [Node(name: "f", opType: "MatMulIntegerToFloat", domain: "com.microsoft",
                         inputs: ["a", "b", "sa", "sb", "za", "zb", "bias"], outputs: ["y"])],
            inputs: [Self.value("a", .int8, [m, k]), Self.value("b", .uint8, [k, n])], outputs: [Value(name: "y", type: nil)],
            initializers: [("sa", Self.t([], [Float(0.125)])), ("sb", Self.t([n], bScale)), ("za", Self.t([], [Int8(-4)])),
                           ("zb", Self.t([n], (0..<n).map { UInt8(120 + $0) })), ("bias", Self.t([n], bias))])
        let y = try Self.session(graph, isa: isa).run(["a": Self.tensor(.int8, [m, k], a), "b": Self.tensor(.uint8, [k, n], b)])["y"]!
        let c = Self.reference(a: a, aType: .int8, b: b, bType: .uint8, batch: 1, batchedB: false, m: m, n: n, k: k,
                               za: [-4], zb: (0..<n).map { Int32(120 + $0) })
        let want = (0..<(m * n)).map { i -> Float in
            var v = Float(c[i]) * (Float(0.125) * bScale[i % n])
            v += bias[i % n]
            return v
        }
        #expect(try y.scalars(as: Float.self) == want)
    }

    // MARK: - Malformed parameters

    static func loadError(_ graph: Graph) -> String? {
        do {
            let session = try session(graph, isa: .preferred)
            _ = try session.run(["a": t([2, 4], [UInt8](repeating: 1, count: 8))])
            return nil
        } catch let error as OnyxError {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    static func product(_ op: String, domain: String = "", inputs: [String], _ initializers: [(String, Tensor)]) -> Graph {
        Graph(nodes: [Node(name: "p", opType: op, domain: domain, inputs: inputs, outputs: ["y"])],
              inputs: [value("a", .uint8, [2, 4])], outputs: [Value(name: "y", type: nil)], initializers: initializers)
    }

    @Test func malformedZeroPointsAndScalesAreRefusedAtLoad() throws {
        let b = Self.t([4, 3], [Int8](repeating: 1, count: 12))
        // A zero point of the wrong type (uint8 for int8 B) — at load, while packing B.
        var graph = Self.product("MatMulInteger", inputs: ["a", "b", "", "zb"], [("b", b), ("zb", Self.t([3], [UInt8](repeating: 0, count: 3)))])
        #expect(throws: OnyxError.self) { try Self.session(graph, isa: .preferred) }
        #expect(Self.loadError(graph)?.contains("b_zero_point") == true)
        // Per-column zero points of the wrong length.
        graph = Self.product("MatMulInteger", inputs: ["a", "b", "", "zb"], [("b", b), ("zb", Self.t([4], [Int8](repeating: 0, count: 4)))])
        #expect(throws: OnyxError.self) { try Self.session(graph, isa: .preferred) }
        // A zero point for A of B's type.
        graph = Self.product("MatMulInteger", inputs: ["a", "b", "za"], [("b", b), ("za", Self.t([], [Int8(0)]))])
        #expect(Self.loadError(graph)?.contains("a_zero_point") == true)
        // MatMulIntegerToFloat: b_scale per column of the wrong length, a_scale not a scalar.
        graph = Self.product("MatMulIntegerToFloat", domain: "com.microsoft", inputs: ["a", "b", "sa", "sb"],
                             [("b", b), ("sa", Self.t([], [Float(1)])), ("sb", Self.t([2], [Float(1), 2]))])
        #expect(throws: OnyxError.self) { try Self.session(graph, isa: .preferred) }
        #expect(Self.loadError(graph)?.contains("b_scale") == true)
        graph = Self.product("MatMulIntegerToFloat", domain: "com.microsoft", inputs: ["a", "b", "sa", "sb"],
                             [("b", b), ("sa", Self.t([4], [Float](repeating: 1, count: 4))), ("sb", Self.t([], [Float(1)]))])
        #expect(Self.loadError(graph)?.contains("a_scale") == true)
        // A bias of the wrong length.
        graph = Self.product("MatMulIntegerToFloat", domain: "com.microsoft", inputs: ["a", "b", "sa", "sb", "", "", "bias"],
                             [("b", b), ("sa", Self.t([], [Float(1)])), ("sb", Self.t([], [Float(1)])), ("bias", Self.t([4], [Float](repeating: 0, count: 4)))])
        #expect(Self.loadError(graph)?.contains("bias") == true)
        // B of three dimensions for the float product.
        graph = Self.product("MatMulIntegerToFloat", domain: "com.microsoft", inputs: ["a", "b", "sa", "sb"],
                             [("b", Self.t([1, 4, 3], [Int8](repeating: 1, count: 12))), ("sa", Self.t([], [Float(1)])), ("sb", Self.t([], [Float(1)]))])
        #expect(Self.loadError(graph) != nil)
    }
}
