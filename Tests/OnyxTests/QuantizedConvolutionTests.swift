import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// The NHWC quantized convolution path (QuantizedNhwcLayout and the qconv kernels) against the
/// reference QLinearConv loop, QdqFusion's rewrite of QDQ groups against the float graph they
/// stand for, com.microsoft QLinearAdd / QLinearMul against a direct computation, each on every
/// kernel variant; and malformed quantization parameters refused at load.
@Suite struct QuantizedConvolutionTests {
    typealias M = IntegerMatMulTests

    struct Case: CustomTestStringConvertible, Sendable {
        var channels, filters, size, kernel, stride, pad: Int
        var depthwise = false
        var weightZero = false
        var uint8Weights = false
        var bias = true
        var testDescription: String {
            "\(channels)→\(filters) \(size)² k\(kernel) s\(stride) p\(pad)\(depthwise ? " depthwise" : "")"
                + "\(weightZero ? " w_zero" : "")\(uint8Weights ? " uint8 w" : "")"
        }
    }

    static let cases: [Case] = [
        Case(channels: 5, filters: 7, size: 9, kernel: 3, stride: 1, pad: 1),
        Case(channels: 16, filters: 40, size: 6, kernel: 1, stride: 1, pad: 0, weightZero: true),
        Case(channels: 3, filters: 9, size: 15, kernel: 7, stride: 2, pad: 3, bias: false),
        Case(channels: 12, filters: 12, size: 10, kernel: 3, stride: 2, pad: 1, depthwise: true),
        Case(channels: 33, filters: 33, size: 7, kernel: 3, stride: 1, pad: 1, depthwise: true, weightZero: true),
        Case(channels: 8, filters: 70, size: 5, kernel: 3, stride: 2, pad: 0, uint8Weights: true),
    ]

    /// One QLinearConv over x `[1, C, size, size]`, per-filter scales, uint8 activations.
    static func conv(_ c: Case) -> Graph {
        let perFilter = c.depthwise ? 1 : c.channels
        let wType: DataType = c.uint8Weights ? .uint8 : .int8
        let w = M.bytes(c.filters * perFilter * c.kernel * c.kernel, seed: 5)
        let scales = (0..<c.filters).map { Float($0 % 5 + 1) * 0.0013 }
        let zeros: [Int32] = c.uint8Weights ? [117] : (0..<c.filters).map { c.weightZero ? Int32($0 % 7) - 3 : 0 }
        var inputs = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
        var initializers: [(String, Tensor)] = [
            ("xs", M.t([], [Float(0.021)])), ("xz", M.t([], [UInt8(121)])),
            ("w", M.tensor(wType, [c.filters, perFilter, c.kernel, c.kernel], w)),
            ("ws", c.uint8Weights ? M.t([], [Float(0.0029)]) : M.t([c.filters], scales)), ("wz", M.zeroTensor(wType, zeros)),
            ("ys", M.t([], [Float(0.013)])), ("yz", M.t([], [UInt8(97)])),
        ]
        if c.bias {
            inputs.append("b")
            initializers.append(("b", M.t([c.filters], (0..<c.filters).map { Int32($0 * 37 % 500) - 250 })))
        }
        var attributes: [String: Attribute] = [
            "kernel_shape": .ints([c.kernel, c.kernel]), "strides": .ints([c.stride, c.stride]),
            "pads": .ints([c.pad, c.pad, c.pad, c.pad]),
        ]
        if c.depthwise { attributes["group"] = .int(c.channels) }
        return Graph(
            nodes: [Node(name: "conv", opType: "QLinearConv", inputs: inputs, outputs: ["y"], attributes: attributes)],
            inputs: [M.value("x", .uint8, [1, c.channels, c.size, c.size])], outputs: [Value(name: "y", type: nil)],
            initializers: initializers)
    }

    /// The NHWC kernels (optimized session) agree with the reference loop (unoptimized) within one
    /// quantization step: both requantize in float, the reference through a double product.
    @Test(arguments: KernelISA.supported, cases)
    func nhwcConvolutionMatchesTheReference(isa: KernelISA, c: Case) throws {
        let graph = Self.conv(c)
        var optimized = graph
        QuantizedNhwcLayout().apply(to: &optimized)
        #expect(optimized.nodes.contains { $0.domain == QuantizedNhwc.domain && $0.opType == "QLinearConv" })
        let x = M.tensor(.uint8, [1, c.channels, c.size, c.size], M.bytes(c.channels * c.size * c.size, seed: 9))
        let fast = try #require(try M.session(graph, isa: isa).run(["x": x])["y"])
        let reference = try #require(try M.session(graph, isa: isa, level: .none).run(["x": x])["y"])
        #expect(fast.shape == reference.shape)
        let a = try fast.scalars(as: UInt8.self), b = try reference.scalars(as: UInt8.self)
        let worst = zip(a, b).map { abs(Int($0) - Int($1)) }.max() ?? 0
        #expect(worst <= 1)
        // Off by one only at (near) ties of the two roundings: a few elements at most.
        #expect(zip(a, b).filter { $0 != $1 }.count <= max(2, a.count / 100))
        #expect(Set(a).count > 8, "a degenerate (saturated) output tests nothing")
    }

    /// A residual block as quantize_static writes it in QDQ: Conv, Add, MaxPool, GlobalAveragePool
    /// between Q/DQ pairs, and a float Gemm on dequantized weights at the end.
    /// `x` quantized with the parameters `p_s`, `p_z`, as `x_q`.
    static func q(_ x: String, _ p: String) -> Node {
        Node(name: "q_" + x, opType: "QuantizeLinear", inputs: [x, p + "_s", p + "_z"], outputs: [x + "_q"])
    }

    /// `x` dequantized with the parameters `p_s`, `p_z` (per `axis` when given), as `x_dq`.
    static func dq(_ x: String, _ p: String, axis: Int? = nil) -> Node {
        Node(name: "dq_" + x, opType: "DequantizeLinear", inputs: [x, p + "_s", p + "_z"], outputs: [x + "_dq"],
             attributes: axis.map { ["axis": .int($0)] } ?? [:])
    }

    static func qdqBlock() -> Graph {
        let (c, size) = (8, 8)
        let ws = (0..<c).map { Float($0 % 3 + 1) * 0.004 }
        var initializers: [(String, Tensor)] = [
            ("in_s", M.t([], [Float(0.02)])), ("in_z", M.t([], [UInt8(128)])),
            ("c1_s", M.t([], [Float(0.05)])), ("c1_z", M.t([], [UInt8(10)])),
            ("add_s", M.t([], [Float(0.06)])), ("add_z", M.t([], [UInt8(20)])),
            ("gap_s", M.t([], [Float(0.01)])), ("gap_z", M.t([], [UInt8(30)])),
            ("w", M.tensor(.int8, [c, c, 3, 3], M.bytes(c * c * 9, seed: 7))),
            ("w_s", M.t([c], ws)), ("w_z", M.t([c], [Int8](repeating: 0, count: c))),
            ("b", M.t([c], (0..<c).map { Int32($0 * 50) - 100 })),
            ("b_s", M.t([c], ws.map { $0 * 0.02 })), ("b_z", M.t([c], [Int32](repeating: 0, count: c))),
            ("fc", M.tensor(.int8, [4, c], M.bytes(4 * c, seed: 8))), ("fc_s", M.t([], [Float(0.01)])),
            ("fc_z", M.t([], [Int8(0)])),
        ]
        initializers.append(("shape", M.t([2], [Int64(1), Int64(c)])))
        let nodes = [
            q("x", "in"), dq("x_q", "in"),
            dq("w", "w", axis: 0), dq("b", "b", axis: 0),
            Node(name: "conv", opType: "Conv", inputs: ["x_q_dq", "w_dq", "b_dq"], outputs: ["c1"],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
            q("c1", "c1"), dq("c1_q", "c1"),
            Node(name: "add", opType: "Add", inputs: ["c1_q_dq", "x_q_dq"], outputs: ["sum"]),
            q("sum", "add"), dq("sum_q", "add"),
            Node(name: "pool", opType: "MaxPool", inputs: ["sum_q_dq"], outputs: ["pooled"],
                 attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
            q("pooled", "add"), dq("pooled_q", "add"),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["pooled_q_dq"], outputs: ["avg"]),
            q("avg", "gap"), dq("avg_q", "gap"),
            Node(name: "flat", opType: "Reshape", inputs: ["avg_q_dq", "shape"], outputs: ["flat"]),
            dq("fc", "fc"),
            Node(name: "gemm", opType: "Gemm", inputs: ["flat", "fc_dq"], outputs: ["y"], attributes: ["transB": .int(1)]),
        ]
        return Graph(nodes: nodes, inputs: [M.value("x", .float, [1, c, size, size])], outputs: [Value(name: "y", type: nil)],
                     initializers: initializers)
    }

    /// QdqFusion leaves no float Conv, Add, MaxPool or GlobalAveragePool, and the fused graph's
    /// output is the float graph's within two steps of the last quantization (the pooled scale
    /// through a row of the Gemm's weights): each requantization may round a near-tie the other way.
    @Test(arguments: KernelISA.supported)
    func qdqGroupsRunQuantized(isa: KernelISA) throws {
        let graph = Self.qdqBlock()
        var fused = graph
        QdqFusion().apply(to: &fused)
        let ops = Set(fused.nodes.map(\.opType))
        #expect(ops.isDisjoint(with: ["Conv", "Add", "GlobalAveragePool"]), "\(ops)")
        // MaxPool stays, on the 8-bit values.
        #expect(fused.nodes.first { $0.opType == "MaxPool" }?.inputs == ["sum_q"])
        // Only the pooled average's DequantizeLinear stays (the float Reshape and Gemm read it); the
        // Gemm's weights were folded into a float initializer.
        #expect(fused.nodes.filter { $0.opType == "DequantizeLinear" }.map(\.inputs[0]) == ["avg_q"])
        #expect(ops.isSuperset(of: ["QLinearConv", "QLinearAdd", "QLinearGlobalAveragePool"]))
        var floats: [Float] = []
        var stream = IntegerGemmTests.Bytes(state: 3)
        for _ in 0..<(8 * 8 * 8) { floats.append(Float(Int(stream.next()) - 128) / 50) }
        let x = M.t([1, 8, 8, 8], floats)
        let fast = try #require(try M.session(graph, isa: isa).run(["x": x])["y"]).scalars(as: Float.self)
        let slow = try #require(try M.session(graph, isa: isa, level: .none).run(["x": x])["y"]).scalars(as: Float.self)
        // One step of the pooled average (0.01) through a row of the weights (8 × ≤ 128 × 0.01).
        let step: Float = 0.01 * 8 * 128 * 0.01
        for (a, b) in zip(fast, slow) { #expect(abs(a - b) <= 2 * step, "\(a) vs \(b)") }
        #expect(fast.contains { $0 != 0 })
    }

    /// A QDQ graph from float input `x` to `o_q_dq`: the graph after ConstantLifting, QdqFusion,
    /// UnsignedActivations and QuantizedNhwcLayout, and its output on a pseudo-random input optimized and unoptimized.
    static func fusedToNhwc(_ nodes: [Node], _ initializers: [(String, Tensor)], input shape: [Int], seed: UInt64, isa: KernelISA)
        throws -> (fused: Graph, fast: [Float], slow: [Float])
    {
        let graph = Graph(nodes: nodes, inputs: [M.value("x", .float, shape)], outputs: [Value(name: "o_q_dq", type: nil)],
                          initializers: initializers)
        var fused = graph
        ConstantLifting().apply(to: &fused)
        QdqFusion().apply(to: &fused)
        UnsignedActivations().apply(to: &fused)
        QuantizedNhwcLayout().apply(to: &fused)
        var stream = IntegerGemmTests.Bytes(state: seed)
        let x = M.t(shape, (0..<shape.reduce(1, *)).map { _ in Float(Int(stream.next()) - 128) / 50 })
        let fast = try #require(try M.session(graph, isa: isa).run(["x": x])["o_q_dq"]).scalars(as: Float.self)
        let slow = try #require(try M.session(graph, isa: isa, level: .none).run(["x": x])["o_q_dq"]).scalars(as: Float.self)
        return (fused, fast, slow)
    }

    /// Squeeze-excitation and activation blocks as quantize_static writes them for EfficientNet
    /// (SiLU: Sigmoid and Mul) and MobileNetV3 (HardSwish as HardSigmoid and Mul, the HardSigmoid
    /// left in float between a DQ and a Q): after QdqFusion and the NHWC layout, the whole
    /// chain stays NHWC (one Transpose in, one out), the squeeze-excitation product broadcasts a
    /// `[1, C, 1, 1]` scale over the image, and the result is the float graph's within one step.
    @Test(arguments: KernelISA.supported, ["Sigmoid", "HardSigmoid"])
    func excitationBlocksStayNhwc(isa: KernelISA, gate: String) throws {
        let c = 8
        let (q, dq) = (Self.q, { (x: String, p: String) in Self.dq(x, p) })
        let initializers: [(String, Tensor)] = [
            ("in_s", M.t([], [Float(0.02)])), ("in_z", M.t([], [UInt8(128)])),
            ("c_s", M.t([], [Float(0.04)])), ("c_z", M.t([], [UInt8(120)])),
            ("g_s", M.t([], [Float(1.0 / 255)])), ("g_z", M.t([], [UInt8(0)])),
            ("m_s", M.t([], [Float(0.03)])), ("m_z", M.t([], [UInt8(100)])),
            ("p_s", M.t([], [Float(0.01)])), ("p_z", M.t([], [UInt8(90)])),
            ("e_s", M.t([], [Float(1.0 / 255)])), ("e_z", M.t([], [UInt8(0)])),
            ("o_s", M.t([], [Float(0.025)])), ("o_z", M.t([], [UInt8(110)])),
            ("w", M.tensor(.int8, [c, c, 3, 3], M.bytes(c * c * 9, seed: 21))),
            ("w_s", M.t([], [Float(0.004)])), ("w_z", M.t([], [Int8(0)])),
        ]
        let nodes = [
            q("x", "in"), dq("x_q", "in"), dq("w", "w"),
            Node(name: "conv", opType: "Conv", inputs: ["x_q_dq", "w_dq"], outputs: ["c"],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
            q("c", "c"), dq("c_q", "c"),
            // The activation: x · gate(x).
            Node(name: "gate", opType: gate, inputs: ["c_q_dq"], outputs: ["g"]),
            q("g", "g"), dq("g_q", "g"),
            Node(name: "act", opType: "Mul", inputs: ["c_q_dq", "g_q_dq"], outputs: ["m"]),
            q("m", "m"), dq("m_q", "m"),
            // Squeeze-excitation: the image scaled per channel by gate(mean).
            Node(name: "pool", opType: "GlobalAveragePool", inputs: ["m_q_dq"], outputs: ["p"]),
            q("p", "p"), dq("p_q", "p"),
            Node(name: "excite", opType: gate, inputs: ["p_q_dq"], outputs: ["e"]),
            q("e", "e"), dq("e_q", "e"),
            Node(name: "scale", opType: "Mul", inputs: ["m_q_dq", "e_q_dq"], outputs: ["o"]),
            q("o", "o"), dq("o_q", "o"),
        ]
        let (fused, fast, slow) = try Self.fusedToNhwc(nodes, initializers, input: [1, c, 9, 9], seed: 9, isa: isa)
        let ops = fused.nodes.map(\.opType)
        #expect(ops.filter { $0 == "Transpose" }.count == 2, "\(ops)")
        #expect(!ops.contains(gate) && ops.filter { $0 == "QLinearMul" }.count == 2, "\(ops)")
        // Each requantization may round a near-tie the other way: a step of the output, rarely two.
        for (a, b) in zip(fast, slow) { #expect(abs(a - b) <= 2 * 0.025 + 1e-6, "\(a) vs \(b)") }
        #expect(zip(fast, slow).filter { $0 != $1 }.count <= fast.count / 20)
        #expect(Set(fast).count > 8, "a degenerate (saturated) output tests nothing")
    }

    /// quantize_static's defaults: int8 activations, per-tensor int8 weights, the bias's scale of
    /// shape [1] beside a scalar zero point. The activations run as uint8 (zero points shifted by
    /// 128, a fused Relu's range with them), so the convolutions, MaxPool and residual Add take the
    /// NHWC kernels, within a step of float; an int8 value that is a graph output keeps its type.
    @Test(arguments: KernelISA.supported)
    func signedActivationsRunAsUnsigned(isa: KernelISA) throws {
        let c = 8
        let (q, dq) = (Self.q, { (x: String, p: String) in Self.dq(x, p) })
        let initializers: [(String, Tensor)] = [
            ("in_s", M.t([], [Float(0.02)])), ("in_z", M.t([], [Int8(3)])),
            ("c_s", M.t([], [Float(0.03)])), ("c_z", M.t([], [Int8(-128)])),
            ("o_s", M.t([], [Float(0.04)])), ("o_z", M.t([], [Int8(-5)])),
            ("w", M.tensor(.int8, [c, c, 3, 3], M.bytes(c * c * 9, seed: 27))),
            ("w_s", M.t([], [Float(0.004)])), ("w_z", M.t([], [Int8(0)])),
            ("b", M.t([c], (0..<c).map { Int32($0 * 40) - 150 })), ("b_s", M.t([1], [Float(0.02 * 0.004)])),
            ("b_z", M.t([], [Int32(0)])),
        ]
        let nodes = [
            q("x", "in"), dq("x_q", "in"), dq("w", "w"), dq("b", "b"),
            Node(name: "conv", opType: "Conv", inputs: ["x_q_dq", "w_dq", "b_dq"], outputs: ["c"],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
            Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            q("r", "c"), dq("r_q", "c"),
            Node(name: "pool", opType: "MaxPool", inputs: ["r_q_dq"], outputs: ["p"],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
            q("p", "c"), dq("p_q", "c"),
            Node(name: "add", opType: "Add", inputs: ["p_q_dq", "x_q_dq"], outputs: ["o"]),
            q("o", "o"), dq("o_q", "o"),
        ]
        let (fused, fast, slow) = try Self.fusedToNhwc(nodes, initializers, input: [1, c, 9, 9], seed: 5, isa: isa)
        let ops = fused.nodes.map { "\($0.domain):\($0.opType)" }
        #expect(ops.filter { $0 == ":Transpose" }.count == 2, "\(ops)")
        #expect(ops.contains("onyx.nhwc:QLinearConv") && ops.contains("onyx.nhwc:MaxPool"), "\(ops)")
        let conv = try #require(fused.nodes.first { $0.opType == "QLinearConv" })
        for zero in [conv.inputs[2], conv.inputs[7]] { #expect(fused.initializer(named: zero)?.dataType == .uint8, "\(zero)") }
        for (a, b) in zip(fast, slow) { #expect(abs(a - b) <= 2 * 0.04 + 1e-6, "\(a) vs \(b)") }
        #expect(zip(fast, slow).filter { $0 != $1 }.count <= fast.count / 20)
        #expect(Set(fast).count > 8 && fast.min()! < 0, "a degenerate (saturated) output tests nothing")

        // The same graph with the int8 sum as an output: its group stays int8.
        var exposed = Graph(nodes: nodes, inputs: [M.value("x", .float, [1, c, 9, 9])],
                            outputs: [Value(name: "o_q_dq", type: nil), Value(name: "o_q", type: nil)], initializers: initializers)
        ConstantLifting().apply(to: &exposed)
        QdqFusion().apply(to: &exposed)
        UnsignedActivations().apply(to: &exposed)
        let add = try #require(exposed.nodes.first { $0.opType == "QLinearAdd" })
        #expect(exposed.initializer(named: add.inputs[7])?.dataType == .int8)
    }

    /// YOLOv8's C2f block as quantize_static writes it: a convolution's output split in two along
    /// the channels (a float Split between a DQ and a Q per output), one half through another
    /// convolution, and all concatenated. The Split moves to the 8-bit values and the whole block
    /// stays NHWC (Split and QLinearConcat along the renumbered channel axis), within a step of float.
    @Test(arguments: KernelISA.supported)
    func splitAndConcatStayNhwc(isa: KernelISA) throws {
        let c = 8
        let (q, dq) = (Self.q, { (x: String, p: String) in Self.dq(x, p) })
        let initializers: [(String, Tensor)] = [
            ("in_s", M.t([], [Float(0.02)])), ("in_z", M.t([], [UInt8(128)])),
            ("c_s", M.t([], [Float(0.04)])), ("c_z", M.t([], [UInt8(120)])),
            ("d_s", M.t([], [Float(0.03)])), ("d_z", M.t([], [UInt8(110)])),
            ("o_s", M.t([], [Float(0.05)])), ("o_z", M.t([], [UInt8(115)])),
            ("w", M.tensor(.int8, [c, c, 3, 3], M.bytes(c * c * 9, seed: 23))),
            ("v", M.tensor(.int8, [c / 2, c / 2, 3, 3], M.bytes(c * c * 9 / 4, seed: 24))),
            ("w_s", M.t([], [Float(0.004)])), ("w_z", M.t([], [Int8(0)])),
            ("halves", M.t([2], [Int64(c / 2), Int64(c / 2)])),
        ]
        let conv = { (name: String, input: String, weight: String, output: String) in
            Node(name: name, opType: "Conv", inputs: [input, weight], outputs: [output],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])])
        }
        let nodes = [
            q("x", "in"), dq("x_q", "in"), dq("w", "w"), dq("v", "w"),
            conv("conv", "x_q_dq", "w_dq", "c"), q("c", "c"), dq("c_q", "c"),
            Node(name: "split", opType: "Split", inputs: ["c_q_dq", "halves"], outputs: ["a", "b"], attributes: ["axis": .int(1)]),
            q("a", "c"), dq("a_q", "c"), q("b", "c"), dq("b_q", "c"),
            conv("conv2", "b_q_dq", "v_dq", "d"), q("d", "d"), dq("d_q", "d"),
            Node(name: "concat", opType: "Concat", inputs: ["a_q_dq", "b_q_dq", "d_q_dq"], outputs: ["o"], attributes: ["axis": .int(1)]),
            q("o", "o"), dq("o_q", "o"),
        ]
        let (fused, fast, slow) = try Self.fusedToNhwc(nodes, initializers, input: [1, c, 7, 7], seed: 12, isa: isa)
        let ops = fused.nodes.map(\.opType)
        #expect(ops.filter { $0 == "Transpose" }.count == 2, "\(ops)")
        #expect(fused.nodes.first { $0.opType == "Split" }?.attributes["axis"].flatMap { if case .int(let a) = $0 { a } else { nil } } == 3)
        #expect(fast.count == slow.count && fast.count == 12 * 49)
        for (a, b) in zip(fast, slow) { #expect(abs(a - b) <= 2 * 0.05 + 1e-6, "\(a) vs \(b)") }
        #expect(zip(fast, slow).filter { $0 != $1 }.count <= fast.count / 20)
        #expect(Set(fast).count > 8, "a degenerate (saturated) output tests nothing")
    }

    /// A Relu or Clip between the Conv and its Q is folded into the requantized range, on the NHWC
    /// kernel and on the reference one (optimized with the NHWC layout, and QdqFusion alone).
    @Test(arguments: KernelISA.supported, ["Relu", "Clip"])
    func activationBeforeQuantizationIsFolded(isa: KernelISA, activation: String) throws {
        let c = 6
        let initializers: [(String, Tensor)] = [
            ("in_s", M.t([], [Float(0.02)])), ("in_z", M.t([], [UInt8(128)])),
            ("y_s", M.t([], [Float(0.03)])), ("y_z", M.t([], [UInt8(100)])),
            ("w", M.tensor(.int8, [c, c, 3, 3], M.bytes(c * c * 9, seed: 17))),
            ("w_s", M.t([], [Float(0.003)])), ("w_z", M.t([], [Int8(0)])),
            ("lo", M.t([], [Float(-0.6)])), ("hi", M.t([], [Float(1.1)])),
        ]
        let nodes = [
            Node(name: "qx", opType: "QuantizeLinear", inputs: ["x", "in_s", "in_z"], outputs: ["xq"]),
            Node(name: "dqx", opType: "DequantizeLinear", inputs: ["xq", "in_s", "in_z"], outputs: ["xd"]),
            Node(name: "dqw", opType: "DequantizeLinear", inputs: ["w", "w_s", "w_z"], outputs: ["wd"]),
            Node(name: "conv", opType: "Conv", inputs: ["xd", "wd"], outputs: ["c"],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
            activation == "Relu"
                ? Node(name: "act", opType: "Relu", inputs: ["c"], outputs: ["a"])
                : Node(name: "act", opType: "Clip", inputs: ["c", "lo", "hi"], outputs: ["a"]),
            Node(name: "qy", opType: "QuantizeLinear", inputs: ["a", "y_s", "y_z"], outputs: ["yq"]),
            Node(name: "dqy", opType: "DequantizeLinear", inputs: ["yq", "y_s", "y_z"], outputs: ["y"]),
        ]
        let graph = Graph(nodes: nodes, inputs: [M.value("x", .float, [1, c, 7, 7])], outputs: [Value(name: "y", type: nil)],
                          initializers: initializers)
        var fused = graph
        QdqFusion().apply(to: &fused)
        #expect(!fused.nodes.contains { $0.opType == activation })
        var floats: [Float] = []
        var stream = IntegerGemmTests.Bytes(state: 5)
        for _ in 0..<(c * 49) { floats.append(Float(Int(stream.next()) - 128) / 50) }
        let x = M.t([1, c, 7, 7], floats)
        let fast = try #require(try M.session(graph, isa: isa).run(["x": x])["y"]).scalars(as: Float.self)
        let slow = try #require(try M.session(graph, isa: isa, level: .none).run(["x": x])["y"]).scalars(as: Float.self)
        let low: Float = activation == "Relu" ? 0 : -0.6
        #expect(fast.min()! >= low - 0.015 && fast.contains { $0 < low + 0.015 }, "the clamp is exercised")
        for (a, b) in zip(fast, slow) { #expect(abs(a - b) <= 0.03 + 1e-6, "\(a) vs \(b)") }
    }

    @Test(arguments: KernelISA.supported, [false, true])
    func qLinearAddAndMulBroadcast(isa: KernelISA, multiply: Bool) throws {
        let shapes: [([Int], [Int])] = [([2, 3, 4, 5], [2, 3, 4, 5]), ([2, 3, 4, 5], []), ([], [2, 3, 4, 5]),
                                        ([2, 3, 4, 5], [1, 3, 1, 1]), ([3, 1], [1, 7]),
                                        // A squeeze-excitation scale first (rows against one a each),
                                        // both broadcast, a scalar output, and one large enough to be
                                        // split between threads mid-row.
                                        ([1, 3, 1, 1], [2, 3, 4, 5]), ([2, 1, 4, 1], [1, 3, 1, 5]), ([1, 1], [1]),
                                        ([1, 48, 37, 37], [1, 48, 1, 1])]
        for (aShape, bShape) in shapes {
            let a = M.bytes(aShape.reduce(1, *), seed: 1), b = M.bytes(bShape.reduce(1, *), seed: 2)
            let (sa, sb, sy): (Float, Float, Float) = multiply ? (0.05, 0.04, 0.3) : (0.05, 0.04, 0.07)
            let (za, zb, zy): (Int32, Int32, Int32) = (128, 100, 60)
            let graph = Graph(
                nodes: [Node(name: "op", opType: multiply ? "QLinearMul" : "QLinearAdd", domain: "com.microsoft",
                             inputs: ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], outputs: ["y"])],
                inputs: [M.value("a", .uint8, aShape), M.value("b", .uint8, bShape)], outputs: [Value(name: "y", type: nil)],
                initializers: [("sa", M.t([], [sa])), ("za", M.t([], [UInt8(za)])), ("sb", M.t([], [sb])),
                               ("zb", M.t([], [UInt8(zb)])), ("sy", M.t([], [sy])), ("zy", M.t([], [UInt8(zy)]))])
            let y = try #require(try M.session(graph, isa: isa).run(["a": M.t(aShape, a), "b": M.t(bShape, b)])["y"])
            let shape = try Broadcasting.shape(aShape, bShape, op: "test")
            #expect(y.shape == shape)
            let sa2 = Broadcasting.strides(of: aShape, in: shape), sb2 = Broadcasting.strides(of: bShape, in: shape)
            let got = try y.scalars(as: UInt8.self)
            for i in 0..<got.count {
                var rest = i, ia = 0, ib = 0
                for axis in (0..<shape.count).reversed() {
                    let coordinate = rest % shape[axis]
                    rest /= shape[axis]
                    ia += coordinate * sa2[axis]
                    ib += coordinate * sb2[axis]
                }
                let da = Double(Int32(a[ia]) - za) * Double(sa), db = Double(Int32(b[ib]) - zb) * Double(sb)
                let v = (multiply ? da * db : da + db) / Double(sy)
                let want = min(max(v.rounded(.toNearestOrEven) + Double(zy), 0), 255)
                #expect(abs(Double(got[i]) - want) <= 1, "\(aShape) \(bShape) at \(i)")
            }
        }
    }

    /// Scales and zero points that do not fit what they quantize are refused when the session loads.
    @Test func malformedParametersAreRefusedAtLoad() throws {
        let c = Self.cases[0]
        var wrongScales = Self.conv(c)
        wrongScales.setInitializer("ws", M.t([c.filters + 1], [Float](repeating: 0.01, count: c.filters + 1)))
        #expect(throws: OnyxError.self) { try M.session(wrongScales, isa: .portable) }
        var wrongZeroType = Self.conv(c)
        wrongZeroType.setInitializer("wz", M.t([c.filters], [UInt8](repeating: 0, count: c.filters)))
        #expect(throws: OnyxError.self) { try M.session(wrongZeroType, isa: .portable) }
        var wrongOutputZero = Self.conv(c)
        wrongOutputZero.setInitializer("yz", M.t([2], [UInt8(1), UInt8(2)]))
        #expect(throws: OnyxError.self) { try M.session(wrongOutputZero, isa: .portable) }
        // A QDQ weight with per-axis scales of the wrong length: not fused, and DequantizeLinear refuses it.
        var qdq = Self.qdqBlock()
        qdq.setInitializer("w_s", M.t([5], [Float](repeating: 0.01, count: 5)))
        #expect(throws: OnyxError.self) { try M.session(qdq, isa: .portable) }
    }
}
