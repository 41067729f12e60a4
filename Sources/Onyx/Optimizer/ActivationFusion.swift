import OnyxCore
import OnyxIR
import OnyxKernels

/// Fuses the activation that follows a Conv, Gemm or MatMul (or the integer products of
/// ``IntegerMatMulFusion``) into the producer's epilogue.
///
/// Fused: Relu, Clip (constant bounds), Sigmoid, HardSigmoid, HardSwish, LeakyRelu, Gelu (opset
/// 20), and the forms exporters write out node by node:
/// - SiLU, `x · Sigmoid(x)`: the two nodes PyTorch exports for `nn.SiLU` (EfficientNet, YOLO);
/// - HardSwish, `x · HardSigmoid(x)` with alpha 1/6 and beta 1/2 (what ``HardSigmoidRecognition``
///   makes of Paddle's exports);
/// - GELU, `x · (1 + Erf(x / √2)) · 0.5` (either product order; `/ √2` may be `· 1/√2`), as the
///   legacy exporter writes transformers' `gelu`;
/// - the tanh GELU, `0.5x · (1 + Tanh(√(2/π) · (x + 0.044715 · x³)))` with `x³` a Pow, GPT-2's.
///
/// A Reshape, Flatten, Squeeze or Unsqueeze between the producer and the activation is looked
/// through (an elementwise activation commutes with it): the producer takes the activation and
/// the view yields the activation's output. The producer gets the internal attribute
/// `onyx.activation` ("SiLU", "HardSwish", "Gelu", "GeluTanh" for the written-out forms, else
/// the op type) with `onyx.activation_min` / `onyx.activation_max` for Clip and
/// `onyx.activation_alpha` / `onyx.activation_beta` for HardSigmoid and LeakyRelu; the kernels
/// apply it as they store results (see ``FusedActivation``). Every value the pattern reads from
/// the product on must be read by the pattern alone and not be a graph output.
struct ActivationFusion: GraphPass {
    static let producers: Set<String> = ["Conv", "Gemm", "MatMul"]
    static let views: Set<String> = ["Reshape", "Flatten", "Squeeze", "Unsqueeze"]

    /// An activation found reading a value: the producer's new attributes, the value it computes,
    /// and the nodes it replaces.
    struct Match {
        var attributes: [String: Attribute]
        var output: String
        var nodes: [Int]
    }

    func apply(to graph: inout Graph) {
        Self.fuse(into: Self.canFuse, &graph)
    }

    /// Fuses the activation reading each node that `isProducer` accepts (one output, no
    /// `onyx.activation` yet) into it; ``NchwcLayout`` calls it for its ScaleShifts.
    static func fuse(into isProducer: (Node) -> Bool, _ graph: inout Graph) {
        let uses = GraphUses(graph)
        var removed = Set<Int>()
        for index in graph.nodes.indices where isProducer(graph.nodes[index]) {
            let product = graph.nodes[index].outputs[0]
            var x = product, view: Int?
            if let readers = uses.consumers[product], readers.count == 1, !uses.graphOutputs.contains(product) {
                let reader = graph.nodes[readers[0]]
                if Self.views.contains(reader.opType), reader.domain.isEmpty, reader.inputs.first == product,
                   reader.outputs.count == 1 {
                    (x, view) = (reader.outputs[0], readers[0])
                }
            }
            // The matcher's copy of the graph ends with the call, before the graph changes.
            guard let match = Matcher(graph: graph, uses: uses).activation(reading: x),
                  !match.nodes.contains(where: removed.contains) else { continue }
            graph.nodes[index].attributes.merge(match.attributes) { _, new in new }
            if let view { graph.nodes[view].outputs = [match.output] } else { graph.nodes[index].outputs = [match.output] }
            removed.formUnion(match.nodes)
        }
        guard !removed.isEmpty else { return }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    private static func canFuse(into producer: Node) -> Bool {
        (producers.contains(producer.opType) && producer.domain.isEmpty
            || IntegerMatMulFusion.products.contains(producer.opType) && producer.domain == IntegerMatMulFusion.domain)
            && producer.attributes["onyx.activation"] == nil
            && producer.outputs.count == 1 && !producer.outputs[0].isEmpty
    }

    /// The fused activation `x · gate(x)` is, for a gate node: SiLU for Sigmoid, HardSwish for
    /// HardSigmoid(1/6, 1/2) (see ``HardSigmoidRecognition``).
    static func gatedActivation(_ gate: Node) -> String? {
        switch gate.opType {
        case "Sigmoid": return gate.attributes.isEmpty ? "SiLU" : nil
        case "HardSigmoid":
            guard Set(gate.attributes.keys).isSubset(of: ["alpha", "beta"]),
                  case .float(let alpha)? = gate.attributes["alpha"], abs(alpha - 1 / 6) < 1e-6,
                  case .float(let beta)? = gate.attributes["beta"], beta == 0.5 else { return nil }
            return "HardSwish"
        default: return nil
        }
    }
}

/// The activation patterns of ``ActivationFusion``, matched from the value they read.
private struct Matcher {
    let graph: Graph
    let uses: GraphUses

    /// The activation reading `x`, if the nodes reading it form one.
    func activation(reading x: String) -> ActivationFusion.Match? {
        guard !uses.graphOutputs.contains(x), let readers = uses.consumers[x] else { return nil }
        switch readers.count {
        case 1:
            let node = graph.nodes[readers[0]]
            guard node.domain.isEmpty, node.outputs.count == 1, node.inputs.first == x,
                  let attributes = single(node) else { return nil }
            return .init(attributes: attributes, output: node.outputs[0], nodes: readers)
        case 2:
            return gated(x, readers) ?? gelu(x, readers)
        case 3:
            return geluTanh(x, readers)
        default:
            return nil
        }
    }

    // MARK: Patterns

    /// One activation node.
    private func single(_ node: Node) -> [String: Attribute]? {
        let a = node.attributes
        func float(_ name: String) -> Float?? {
            switch a[name] {
            case nil: return .some(nil)
            case .float(let value)?: return value
            default: return nil
            }
        }
        switch node.opType {
        case "Relu", "Sigmoid", "HardSwish":
            guard a.isEmpty, node.inputs.count == 1 else { return nil }
            return ["onyx.activation": .string(node.opType)]
        case "LeakyRelu":
            guard Set(a.keys).isSubset(of: ["alpha"]), let alpha = float("alpha") else { return nil }
            return ["onyx.activation": .string("LeakyRelu"), "onyx.activation_alpha": .float(alpha ?? 0.01)]
        case "HardSigmoid":
            guard Set(a.keys).isSubset(of: ["alpha", "beta"]), let alpha = float("alpha"), let beta = float("beta")
            else { return nil }
            return [
                "onyx.activation": .string("HardSigmoid"), "onyx.activation_alpha": .float(alpha ?? 0.2),
                "onyx.activation_beta": .float(beta ?? 0.5),
            ]
        case "Gelu":
            switch a["approximate"] {
            case nil, .string("none")?: return ["onyx.activation": .string("Gelu")]
            case .string("tanh")?: return ["onyx.activation": .string("GeluTanh")]
            default: return nil
            }
        case "Clip":
            return clip(node)
        default:
            return nil
        }
    }

    private func clip(_ node: Node) -> [String: Attribute]? {
        var low = -Float.greatestFiniteMagnitude
        var high = Float.greatestFiniteMagnitude
        if case .float(let v)? = node.attributes["min"] { low = v }
        if case .float(let v)? = node.attributes["max"] { high = v }
        for (position, name) in node.inputs.enumerated().dropFirst() where !name.isEmpty {
            guard let value = scalar(name) else { return nil }
            if position == 1 { low = value } else { high = value }
        }
        return [
            "onyx.activation": .string("Clip"),
            "onyx.activation_min": .float(low),
            "onyx.activation_max": .float(high),
        ]
    }

    /// `x · gate(x)`: the gate node and the Mul are x's readers, the Mul the gate's only reader.
    private func gated(_ x: String, _ readers: [Int]) -> ActivationFusion.Match? {
        for gateIndex in readers {
            let gate = graph.nodes[gateIndex]
            guard gate.domain.isEmpty, gate.inputs == [x], gate.outputs.count == 1,
                  let activation = ActivationFusion.gatedActivation(gate),
                  let (mulIndex, mul) = soleReader(gate.outputs[0]), readers.contains(mulIndex), mulIndex != gateIndex,
                  isBinary(mul, "Mul"), Set(mul.inputs) == [x, gate.outputs[0]]
            else { continue }
            return .init(attributes: ["onyx.activation": .string(activation)], output: mul.outputs[0], nodes: [gateIndex, mulIndex])
        }
        return nil
    }

    /// `x · (1 + Erf(x/√2)) · 0.5`, or `(x · 0.5) · (1 + Erf(x/√2))`.
    private func gelu(_ x: String, _ readers: [Int]) -> ActivationFusion.Match? {
        for scaleIndex in readers {
            let scaleNode = graph.nodes[scaleIndex]
            guard isScaling(scaleNode, of: x, divisor: Float(2).squareRoot()),
                  let (erfIndex, erf) = soleReader(scaleNode.outputs[0]), erf.opType == "Erf", erf.domain.isEmpty,
                  let (addIndex, add) = soleReader(erf.outputs[0]), isBinary(add, "Add"), constant(of: add, besides: erf.outputs[0]) == 1,
                  let otherIndex = readers.first(where: { $0 != scaleIndex }), isBinary(graph.nodes[otherIndex], "Mul")
            else { continue }
            let other = graph.nodes[otherIndex], onePlusErf = add.outputs[0]
            if Set(other.inputs) == [x, onePlusErf], soleReader(onePlusErf)?.0 == otherIndex,
               let (halfIndex, half) = soleReader(other.outputs[0]), isBinary(half, "Mul"),
               constant(of: half, besides: other.outputs[0]) == 0.5 {
                return .init(attributes: ["onyx.activation": .string("Gelu")], output: half.outputs[0],
                             nodes: [scaleIndex, erfIndex, addIndex, otherIndex, halfIndex])
            }
            if constant(of: other, besides: x) == 0.5, let (finalIndex, final) = soleReader(other.outputs[0]),
               isBinary(final, "Mul"), Set(final.inputs) == [other.outputs[0], onePlusErf], soleReader(onePlusErf)?.0 == finalIndex {
                return .init(attributes: ["onyx.activation": .string("Gelu")], output: final.outputs[0],
                             nodes: [scaleIndex, erfIndex, addIndex, otherIndex, finalIndex])
            }
        }
        return nil
    }

    /// `0.5x · (1 + Tanh(√(2/π) · (x + 0.044715 · Pow(x, 3))))`: x's readers are the Mul by 0.5,
    /// the Pow and the Add.
    private func geluTanh(_ x: String, _ readers: [Int]) -> ActivationFusion.Match? {
        let nodes = readers.map { graph.nodes[$0] }
        guard let h = nodes.firstIndex(where: { isBinary($0, "Mul") && constant(of: $0, besides: x) == 0.5 }),
              let p = nodes.firstIndex(where: { $0.opType == "Pow" && $0.domain.isEmpty && $0.inputs.count == 2
                  && $0.inputs[0] == x && scalar($0.inputs[1]) == 3 }),
              let (cubeScaleIndex, cubeScale) = soleReader(nodes[p].outputs[0]), isBinary(cubeScale, "Mul"),
              close(constant(of: cubeScale, besides: nodes[p].outputs[0]), 0.044715),
              let (sumIndex, sum) = soleReader(cubeScale.outputs[0]), readers.contains(sumIndex), isBinary(sum, "Add"),
              Set(sum.inputs) == [x, cubeScale.outputs[0]],
              let (innerIndex, inner) = soleReader(sum.outputs[0]), isBinary(inner, "Mul"),
              close(constant(of: inner, besides: sum.outputs[0]), (2 / Float.pi).squareRoot()),
              let (tanhIndex, tanh) = soleReader(inner.outputs[0]), tanh.opType == "Tanh", tanh.domain.isEmpty,
              let (addIndex, add) = soleReader(tanh.outputs[0]), isBinary(add, "Add"), constant(of: add, besides: tanh.outputs[0]) == 1,
              let (finalIndex, final) = soleReader(add.outputs[0]), isBinary(final, "Mul"),
              Set(final.inputs) == [nodes[h].outputs[0], add.outputs[0]], soleReader(nodes[h].outputs[0])?.0 == finalIndex
        else { return nil }
        return .init(attributes: ["onyx.activation": .string("GeluTanh")], output: final.outputs[0],
                     nodes: [readers[h], readers[p], cubeScaleIndex, sumIndex, innerIndex, tanhIndex, addIndex, finalIndex])
    }

    // MARK: Pieces

    /// The one node reading `value`, if exactly one does and `value` is not a graph output.
    private func soleReader(_ value: String) -> (Int, Node)? {
        uses.soleReader(of: value).map { ($0, graph.nodes[$0]) }
    }

    private func isBinary(_ node: Node, _ opType: String) -> Bool {
        node.opType == opType && node.domain.isEmpty && node.attributes.isEmpty && node.inputs.count == 2 && node.outputs.count == 1
    }

    /// The float scalar constant a binary node combines `value` with, if its other input is one.
    private func constant(of node: Node, besides value: String) -> Float? {
        guard node.inputs.count == 2, let position = node.inputs.firstIndex(of: value) else { return nil }
        return scalar(node.inputs[1 - position])
    }

    /// `value / divisor` or `value · (1/divisor)`.
    private func isScaling(_ node: Node, of value: String, divisor: Float) -> Bool {
        if isBinary(node, "Div") { return node.inputs[0] == value && close(scalar(node.inputs[1]), divisor) }
        return isBinary(node, "Mul") && close(constant(of: node, besides: value), 1 / divisor)
    }

    private func close(_ value: Float?, _ expected: Float) -> Bool {
        guard let value else { return false }
        return abs(value - expected) <= 1e-6 * abs(expected)
    }

    private func scalar(_ name: String) -> Float? { graph.floatScalar(named: name) }
}
