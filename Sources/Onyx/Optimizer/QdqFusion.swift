import OnyxCore
import OnyxIR
import OnyxOperators

/// Turns the QuantizeLinear/DequantizeLinear (QDQ) groups onnxruntime.quantization.quantize_static
/// writes into the quantized operators they stand for, as onnxruntime's QDQ transformers do, so
/// both of its formats (QDQ and QOperator) run on the same integer kernels:
///
/// - `Q(Conv(DQ(x), DQ(w), DQ(b)))` → `QLinearConv(x, …, w, …, b)` (a Relu or Clip before the Q
///   folded into the requantization as `onyx.output_range`) and `Q(MatMul(DQ(a), DQ(b)))` →
///   `QLinearMatMul`, the weights a constant 8-bit tensor (per tensor, or per output channel: axis 0
///   of a Conv weight, axis 1 of a MatMul one), the bias a constant int32 tensor whose scale is
///   `x_scale · w_scale` (as the quantizer writes it);
/// - `Q(Add(DQ(a), DQ(b)))`, `Q(Mul(DQ(a), DQ(b)))`, `Q(GlobalAveragePool(DQ(x)))`,
///   `Q(Gemm(DQ(a), DQ(w), DQ(b)))` → com.microsoft QLinearAdd, QLinearMul, QLinearGlobalAveragePool, QGemm;
/// - `Q(Sigmoid(DQ(x)))`, `Q(LeakyRelu(DQ(x)))`, `Q(AveragePool(DQ(x)))`, `Q(Softmax(DQ(x)))` (axis -1)
///   and `Q(Concat(DQ(a), DQ(b), …))` → com.microsoft QLinearSigmoid, QLinearLeakyRelu,
///   QLinearAveragePool, QLinearSoftmax, QLinearConcat (onnxruntime's QDQ transformer makes the same);
/// - `Q(HardSigmoid(DQ(x)))`, `Q(HardSwish(DQ(x)))`, `Q(Tanh(DQ(x)))` → `onyx.quantized` QLinearUnary,
///   the function tabulated over the 256 inputs as QLinearSigmoid's is (onnxruntime runs these in
///   float between the DQ and the Q; the table gives the same bytes up to the function's last bit);
/// - `Q(op(DQ(x)))` for the operators that only move or select values (MaxPool, Flatten, Reshape,
///   Transpose, Squeeze, Unsqueeze), Q with DQ's own scale and zero point → `op(x)` on the 8-bit
///   values (exact: these commute with a monotonic per-tensor map), and a Split whose every output
///   has such a Q;
/// - then a DequantizeLinear of constants (a weight nothing above took, a float Gemm's) is folded
///   into a float initializer, and the QuantizeLinear/DequantizeLinear nodes left unread removed.
///
/// Every scale and zero point of a rewritten group is a constant, per tensor for activations;
/// anything else stays as it is, computed in float (correct, only slower).
struct QdqFusion: GraphPass {
    static let microsoft = "com.microsoft"

    func apply(to graph: inout Graph) {
        fuseGroups(&graph)
        moveSplits(&graph)
        // The fused groups' weight and bias DequantizeLinear nodes are unread now: dropped before
        // folding, or every weight of the model would be dequantized into a float copy for nothing.
        removeUnread(&graph)
        foldConstantDequantization(&graph)
    }

    /// A DequantizeLinear's operands, when `value` is its output and its scale and zero point are constants.
    private struct Dequantized {
        var data: String
        var scale: String
        var zero: String
        var axis: Int
        var scales: [Float]
        var zeros: [Int32]
        var type: DataType
    }

    private func dequantized(_ value: String, _ graph: Graph, _ producers: [String: Int]) -> Dequantized? {
        guard let index = producers[value], case let node = graph.nodes[index], node.opType == "DequantizeLinear",
              node.domain.isEmpty, node.inputs.count == 3, node.outputs.count == 1,
              let scale = graph.initializer(named: node.inputs[1]), scale.dataType == .float, scale.rank <= 1,
              // Per tensor, the quantizer may write a scale of shape [1] beside a scalar zero point.
              let zero = graph.initializer(named: node.inputs[2]),
              zero.shape == scale.shape || (zero.elementCount == 1 && scale.elementCount == 1),
              let scales = try? scale.scalars(as: Float.self), let zeros = Self.integers(zero)
        else { return nil }
        if case .int(let b)? = node.attributes["block_size"], b != 0 { return nil }
        var axis = 1
        if case .int(let a)? = node.attributes["axis"] { axis = a }
        let type = graph.initializer(named: node.inputs[0])?.dataType ?? zero.dataType
        return Dequantized(data: node.inputs[0], scale: node.inputs[1], zero: node.inputs[2], axis: axis, scales: scales,
                           zeros: zeros, type: type)
    }

    /// The values of an 8-bit or int32 tensor.
    private static func integers(_ t: Tensor) -> [Int32]? {
        switch t.dataType {
        case .uint8: (try? t.scalars(as: UInt8.self))?.map(Int32.init)
        case .int8: (try? t.scalars(as: Int8.self))?.map(Int32.init)
        case .int32: try? t.scalars(as: Int32.self)
        default: nil
        }
    }

    /// A QuantizeLinear reading `value` alone, with a constant per-tensor scale and 8-bit zero point.
    private func quantizer(of value: String, _ graph: Graph, _ uses: GraphUses) -> (index: Int, node: Node, scale: Float, zero: Int32)? {
        guard let index = uses.soleReader(of: value), case let node = graph.nodes[index], node.opType == "QuantizeLinear",
              node.domain.isEmpty, node.inputs.count == 3, node.outputs.count == 1,
              let scale = graph.initializer(named: node.inputs[1]), scale.dataType == .float, scale.elementCount == 1,
              let zero = graph.initializer(named: node.inputs[2]), zero.elementCount == 1,
              [.uint8, .int8].contains(zero.dataType), node.attributes["output_dtype"] == nil,
              let s = try? scale.scalars(as: Float.self).first, let z = Self.integers(zero)?.first
        else { return nil }
        return (index, node, s, z)
    }

    private func isActivation(_ d: Dequantized, _ graph: Graph) -> Bool {
        d.scales.count == 1 && [.uint8, .int8].contains(d.type)
    }

    private func fuseGroups(_ graph: inout Graph) {
        let uses = GraphUses(graph)
        let producers = graph.producerIndices
        var removed = Set<Int>()
        for index in graph.nodes.indices where !removed.contains(index) {
            let node = graph.nodes[index]
            guard node.domain.isEmpty, node.outputs.count == 1, !node.inputs.isEmpty, node.inputs.allSatisfy({ !$0.isEmpty })
            else { continue }
            // A Relu or Clip between a Conv and its Q narrows the requantized range instead.
            var activation: (index: Int, range: ClosedRange<Int32>)?
            if node.opType == "Conv", let (index, clamp) = clampingReader(of: node.outputs[0], graph, uses),
               !removed.contains(index), let q = quantizer(of: graph.nodes[index].outputs[0], graph, uses) {
                activation = (index, clamp(q.scale, q.zero, graph.initializer(named: q.node.inputs[2])!.dataType))
            }
            guard let q = quantizer(of: activation.map { graph.nodes[$0.index].outputs[0] } ?? node.outputs[0], graph, uses),
                  !removed.contains(q.index)
            else { continue }
            let inputs = node.inputs.map { dequantized($0, graph, producers) }
            var fused: Node?
            switch node.opType {
            case "Conv", "MatMul":
                fused = product(node, inputs, q.node, graph)
                if let activation, fused != nil {
                    fused!.attributes[Self.outputRange] = .ints([Int(activation.range.lowerBound), Int(activation.range.upperBound)])
                    removed.insert(activation.index)
                }
            case "Gemm":
                fused = gemm(node, inputs, q.node, graph)
            case "Add", "Mul":
                guard inputs.count == 2, let a = inputs[0], let b = inputs[1], isActivation(a, graph), isActivation(b, graph),
                      a.type == b.type, a.type == graph.initializer(named: q.node.inputs[2])?.dataType
                else { continue }
                fused = Node(name: node.name, opType: node.opType == "Add" ? "QLinearAdd" : "QLinearMul", domain: Self.microsoft,
                             inputs: [a.data, a.scale, a.zero, b.data, b.scale, b.zero, q.node.inputs[1], q.node.inputs[2]],
                             outputs: q.node.outputs)
            case "GlobalAveragePool":
                guard let x = inputs[0], isActivation(x, graph), x.type == graph.initializer(named: q.node.inputs[2])?.dataType
                else { continue }
                fused = Node(name: node.name, opType: "QLinearGlobalAveragePool", domain: Self.microsoft,
                             inputs: [x.data, x.scale, x.zero, q.node.inputs[1], q.node.inputs[2]], outputs: q.node.outputs,
                             attributes: ["channels_last": .int(0)])
            case "Sigmoid", "LeakyRelu", "AveragePool", "Softmax", "HardSigmoid", "HardSwish", "Tanh":
                guard let x = inputs[0], isActivation(x, graph), x.type == graph.initializer(named: q.node.inputs[2])?.dataType,
                      let (opType, attributes) = Self.quantizedUnary(node)
                else { continue }
                fused = Node(name: node.name, opType: opType, domain: opType == "QLinearUnary" ? QuantizedLookupTable.domain : Self.microsoft,
                             inputs: [x.data, x.scale, x.zero, q.node.inputs[1], q.node.inputs[2]], outputs: q.node.outputs,
                             attributes: attributes)
            case "Concat":
                let type = graph.initializer(named: q.node.inputs[2])?.dataType
                let parts = inputs.compactMap { $0 }.filter { isActivation($0, graph) && $0.type == type }
                guard parts.count == inputs.count, case .int? = node.attributes["axis"] else { continue }
                fused = Node(name: node.name, opType: "QLinearConcat", domain: Self.microsoft,
                             inputs: [q.node.inputs[1], q.node.inputs[2]] + parts.flatMap { [$0.data, $0.scale, $0.zero] },
                             outputs: q.node.outputs, attributes: ["axis": node.attributes["axis"]!])
            case "MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze":
                // The data input dequantized with Q's own parameters; the others (shapes, axes) constants.
                guard let x = inputs[0], isActivation(x, graph), x.scales == [q.scale], x.zeros == [q.zero],
                      x.type == graph.initializer(named: q.node.inputs[2])?.dataType,
                      node.inputs.dropFirst().allSatisfy({ graph.initializer(named: $0) != nil })
                else { continue }
                var moved = node
                moved.inputs[0] = x.data
                moved.outputs = q.node.outputs
                fused = moved
            default:
                continue
            }
            guard let fused else { continue }
            graph.nodes[index] = fused
            removed.insert(q.index)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// `Split(DQ(x))` whose every output is read by its own Q with DQ's scale and zero point → the
    /// Split on the 8-bit values, as for the other operators that only move values (YOLOv8's C2f
    /// blocks split each convolution's output in two).
    private func moveSplits(_ graph: inout Graph) {
        let uses = GraphUses(graph)
        let producers = graph.producerIndices
        var removed = Set<Int>()
        for index in graph.nodes.indices {
            let node = graph.nodes[index]
            guard node.opType == "Split", node.domain.isEmpty, !node.inputs.isEmpty, !node.outputs.isEmpty,
                  let x = dequantized(node.inputs[0], graph, producers), isActivation(x, graph),
                  node.inputs.dropFirst().allSatisfy({ $0.isEmpty || graph.initializer(named: $0) != nil })
            else { continue }
            let quantizers = node.outputs.compactMap { quantizer(of: $0, graph, uses) }
            guard quantizers.count == node.outputs.count, quantizers.allSatisfy({ q in
                q.scale == x.scales[0] && q.zero == x.zeros[0] && !removed.contains(q.index)
                    && graph.initializer(named: q.node.inputs[2])?.dataType == x.type
            }) else { continue }
            var moved = node
            moved.inputs[0] = x.data
            moved.outputs = quantizers.map { $0.node.outputs[0] }
            graph.nodes[index] = moved
            removed.formUnion(quantizers.map(\.index))
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// The quantized operator and attributes standing for a one-input float operator between a
    /// DQ and a Q, or nil: Sigmoid, LeakyRelu, AveragePool without dilations, Softmax over the
    /// last axis, and the tabulated HardSigmoid, HardSwish and Tanh (`axis` -1 means the same at every opset; the pass does not know the model's).
    private static func quantizedUnary(_ node: Node) -> (String, [String: Attribute])? {
        switch node.opType {
        case "Sigmoid": return ("QLinearSigmoid", [:])
        case "LeakyRelu": return ("QLinearLeakyRelu", node.attributes.filter { $0.key == "alpha" })
        case "AveragePool":
            if case .ints(let d)? = node.attributes["dilations"], d.contains(where: { $0 != 1 }) { return nil }
            var attributes = node.attributes.filter { $0.key != "dilations" }
            attributes["channels_last"] = .int(0)
            return ("QLinearAveragePool", attributes)
        case "Softmax":
            guard case .int(-1)? = node.attributes["axis"] else { return nil }
            return ("QLinearSoftmax", ["axis": .int(-1), "opset": .int(13)])
        case "HardSigmoid", "HardSwish", "Tanh":
            var attributes = node.attributes.filter { ["alpha", "beta"].contains($0.key) }
            attributes["function"] = .string(node.opType)
            return ("QLinearUnary", attributes)
        default: return nil
        }
    }

    /// The attribute of a fused QLinearConv narrowing its output to `[low, high]` (a Relu or Clip
    /// it absorbed), which both QLinearConv kernels honor.
    static let outputRange = "onyx.output_range"

    /// The Relu, or Clip with constant bounds, reading `value` alone, and the quantized range it
    /// leaves for a Q of scale s and zero point z into type t: Q is monotonic, so
    /// `Q(clip(v, a, b)) = clip(Q(v), Q(a), Q(b))`.
    private func clampingReader(of value: String, _ graph: Graph, _ uses: GraphUses)
        -> (Int, (Float, Int32, DataType) -> ClosedRange<Int32>)?
    {
        guard let index = uses.soleReader(of: value), case let node = graph.nodes[index], node.domain.isEmpty,
              node.outputs.count == 1
        else { return nil }
        func quantized(_ v: Float, _ s: Float, _ z: Int32, _ t: DataType) -> Int32 {
            let (low, high): (Float, Float) = t == .int8 ? (-128, 127) : (0, 255)
            let q = (v / s).rounded(.toNearestOrEven) + Float(z)
            return Int32(q.isNaN ? Float(z) : min(max(q, low), high))
        }
        func typeRange(_ t: DataType) -> (Int32, Int32) { t == .int8 ? (-128, 127) : (0, 255) }
        switch node.opType {
        case "Relu" where node.inputs.count == 1:
            return (index, { s, z, t in max(typeRange(t).0, z)...typeRange(t).1 })
        case "Clip":
            var low: Float = -.infinity, high: Float = .infinity
            if case .float(let v)? = node.attributes["min"] { low = v }
            if case .float(let v)? = node.attributes["max"] { high = v }
            for (position, name) in node.inputs.enumerated().dropFirst() where !name.isEmpty {
                guard let bound = graph.floatScalar(named: name) else { return nil }
                if position == 1 { low = bound } else { high = bound }
            }
            guard low <= high else { return nil }
            return (index, { s, z, t in
                let (lo, hi) = typeRange(t)
                let a = low.isInfinite ? lo : quantized(low, s, z, t), b = high.isInfinite ? hi : quantized(high, s, z, t)
                return a...b
            })
        default:
            return nil
        }
    }

    /// QLinearConv or QLinearMatMul of a Conv or MatMul group, or nil.
    private func product(_ node: Node, _ inputs: [Dequantized?], _ q: Node, _ graph: Graph) -> Node? {
        let conv = node.opType == "Conv"
        guard (conv ? 2...3 : 2...2).contains(inputs.count), let x = inputs[0], isActivation(x, graph), let w = inputs[1],
              let weight = graph.initializer(named: w.data), [.int8, .uint8].contains(weight.dataType),
              weight.rank == (conv ? 4 : 2), w.type == weight.dataType
        else { return nil }
        let channels = conv ? weight.shape[0] : weight.shape[1]
        let axis = w.axis < 0 ? w.axis + weight.rank : w.axis
        guard w.scales.count == 1 || (w.scales.count == channels && axis == (conv ? 0 : 1)) else { return nil }
        var bias: [String] = []
        if conv && inputs.count == 3 {
            guard let b = inputs[2], let values = graph.initializer(named: b.data), values.dataType == .int32,
                  values.shape == [channels], b.zeros.allSatisfy({ $0 == 0 }), b.scales.count == 1 || b.scales.count == channels
            else { return nil }
            // The bias must be in the accumulator's scale, x_scale · w_scale.
            for f in 0..<channels {
                let expected = x.scales[0] * w.scales[w.scales.count == 1 ? 0 : f]
                let actual = b.scales[b.scales.count == 1 ? 0 : f]
                guard abs(actual - expected) <= 1e-6 * abs(expected) else { return nil }
            }
            bias = [b.data]
        }
        return Node(name: node.name, opType: conv ? "QLinearConv" : "QLinearMatMul", domain: "",
                    inputs: [x.data, x.scale, x.zero, w.data, w.scale, w.zero, q.inputs[1], q.inputs[2]] + bias,
                    outputs: q.outputs, attributes: conv ? node.attributes : [:])
    }

    /// com.microsoft QGemm of `Q(Gemm(DQ(a), DQ(w), DQ(b)))`: transA 0, alpha and beta 1, w a constant
    /// 8-bit matrix per tensor or per output column, the bias int32 in the scale `a_scale · w_scale`.
    private func gemm(_ node: Node, _ inputs: [Dequantized?], _ q: Node, _ graph: Graph) -> Node? {
        func attribute(_ name: String) -> Attribute? { node.attributes[name] }
        if case .int(let t)? = attribute("transA"), t != 0 { return nil }
        if case .float(let v)? = attribute("alpha"), v != 1 { return nil }
        if case .float(let v)? = attribute("beta"), v != 1 { return nil }
        var transB = 0
        if case .int(let t)? = attribute("transB") { transB = t }
        guard (2...3).contains(inputs.count), let a = inputs[0], isActivation(a, graph), let w = inputs[1],
              let weight = graph.initializer(named: w.data), weight.rank == 2, [.int8, .uint8].contains(weight.dataType)
        else { return nil }
        let n = transB != 0 ? weight.shape[0] : weight.shape[1]
        let axis = w.axis < 0 ? w.axis + 2 : w.axis
        guard w.scales.count == 1 || (w.scales.count == n && axis == (transB != 0 ? 0 : 1)) else { return nil }
        var bias = ""
        if inputs.count == 3 {
            guard let b = inputs[2], let values = graph.initializer(named: b.data), values.dataType == .int32,
                  values.elementCount == n, b.zeros.allSatisfy({ $0 == 0 }), [1, n].contains(b.scales.count)
            else { return nil }
            for j in 0..<n {
                let expected = a.scales[0] * w.scales[w.scales.count == 1 ? 0 : j]
                guard abs(b.scales[b.scales.count == 1 ? 0 : j] - expected) <= 1e-6 * abs(expected) else { return nil }
            }
            bias = b.data
        }
        return Node(name: node.name, opType: "QGemm", domain: Self.microsoft,
                    inputs: [a.data, a.scale, a.zero, w.data, w.scale, w.zero, bias, q.inputs[1], q.inputs[2]],
                    outputs: q.outputs, attributes: ["transB": .int(transB), "alpha": .float(1)])
    }

    /// DequantizeLinear of initializers alone → a float initializer (per tensor or per axis).
    private func foldConstantDequantization(_ graph: inout Graph) {
        let protected = graph.protectedValueNames
        var removed = Set<Int>()
        for (index, node) in graph.nodes.enumerated()
        where node.opType == "DequantizeLinear" && node.domain.isEmpty && node.outputs.count == 1
            && (2...3).contains(node.inputs.count) && !protected.contains(node.outputs[0]) {
            guard let x = graph.initializer(named: node.inputs[0]), let values = Self.integers(x),
                  let scale = graph.initializer(named: node.inputs[1]), scale.dataType == .float, scale.rank <= 1,
                  let scales = try? scale.scalars(as: Float.self)
            else { continue }
            var zeros: [Int32] = [0]
            if node.inputs.count == 3 {
                guard let zero = graph.initializer(named: node.inputs[2]), zero.dataType == x.dataType,
                      zero.shape == scale.shape, let z = Self.integers(zero) else { continue }
                zeros = z
            }
            if case .int(let b)? = node.attributes["block_size"], b != 0 { continue }
            var axis = 1
            if case .int(let a)? = node.attributes["axis"] { axis = a }
            if axis < 0 { axis += x.rank }
            // Per tensor, or one parameter per index of `axis`.
            var inner = 1, extent = 1
            if scales.count != 1 {
                guard (0..<x.rank).contains(axis), x.shape[axis] == scales.count, zeros.count == scales.count else { continue }
                extent = x.shape[axis]
                inner = x.shape[(axis + 1)...].reduce(1, *)
            }
            let result = values.enumerated().map { i, v in
                let p = scales.count == 1 ? 0 : (i / inner) % extent
                return Float(v - zeros[zeros.count == 1 ? 0 : p]) * scales[p]
            }
            guard let tensor = try? Tensor(shape: x.shape, scalars: result) else { continue }
            graph.setInitializer(node.outputs[0], tensor)
            removed.insert(index)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// QuantizeLinear and DequantizeLinear nodes whose output nothing reads (the fused groups' leftovers).
    private func removeUnread(_ graph: inout Graph) {
        while true {
            let uses = GraphUses(graph)
            let before = graph.nodes.count
            graph.nodes.removeAll { node in
                ["QuantizeLinear", "DequantizeLinear"].contains(node.opType) && node.domain.isEmpty
                    && node.outputs.allSatisfy { uses.consumers[$0] == nil && !uses.graphOutputs.contains($0) }
            }
            if graph.nodes.count == before { return }
        }
    }
}
