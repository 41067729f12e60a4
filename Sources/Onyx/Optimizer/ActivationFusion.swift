import OnyxIR
import OnyxKernels

/// Fuses the activation that follows a Conv, Gemm or MatMul into the producer's epilogue.
///
/// Fused: Relu, Clip (constant bounds), Sigmoid, HardSigmoid, HardSwish, LeakyRelu, and the
/// gated forms `x · gate(x)`: SiLU — a Sigmoid of the product and a Mul of the product by it, the
/// two nodes PyTorch exports for `nn.SiLU` (EfficientNet, YOLO) — and HardSwish as a
/// HardSigmoid(1/6, 1/2) and a Mul (what ``HardSigmoidRecognition`` makes of Paddle's exports). The producer gets the internal attribute `onyx.activation`
/// (the op type, "SiLU" for the pair) with `onyx.activation_min` / `onyx.activation_max` for
/// Clip and `onyx.activation_alpha` / `onyx.activation_beta` for HardSigmoid and LeakyRelu; the
/// kernels apply it as they store results (see ``FusedActivation``). The product must be read by
/// the activation alone (by the gate and the Mul alone, for the gated forms) and not be a graph output.
struct ActivationFusion: GraphPass {
    static let producers: Set<String> = ["Conv", "Gemm", "MatMul"]
    static let activations: Set<String> = ["Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu"]

    func apply(to graph: inout Graph) {
        let uses = GraphUses(graph)
        let producerOf = graph.producerIndices
        var removed = Set<Int>()
        for (index, node) in graph.nodes.enumerated()
        where Self.activations.contains(node.opType) && node.domain.isEmpty && node.outputs.count == 1 {
            guard let input = node.inputs.first, !removed.contains(index),
                  let producerIndex = producerOf[input], canFuse(into: graph.nodes[producerIndex], removed, producerIndex)
            else { continue }
            var fused: (attributes: [String: Attribute], output: String, nodes: [Int])?
            if uses.hasSingleConsumer(input) {
                if let attributes = activationAttributes(node, graph) { fused = (attributes, node.outputs[0], [index]) }
            } else if let gated = Self.gatedActivation(node), let mul = gateMul(product: input, gate: index, graph, uses) {
                fused = (["onyx.activation": .string(gated)], graph.nodes[mul].outputs[0], [index, mul])
            }
            guard let fused, fused.nodes.allSatisfy({ !removed.contains($0) }) else { continue }
            var producer = graph.nodes[producerIndex]
            producer.attributes.merge(fused.attributes) { _, new in new }
            producer.outputs = [fused.output]
            graph.nodes[producerIndex] = producer
            removed.formUnion(fused.nodes)
        }
        guard !removed.isEmpty else { return }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    private func canFuse(into producer: Node, _ removed: Set<Int>, _ producerIndex: Int) -> Bool {
        !removed.contains(producerIndex) && Self.producers.contains(producer.opType) && producer.domain.isEmpty
            && producer.attributes["onyx.activation"] == nil && producer.outputs.count == 1
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

    /// The Mul completing `product · gate(product)`, when the gate node at `gate` and that Mul
    /// are the only readers of `product` and the Mul the only reader of the gate's output.
    private func gateMul(product: String, gate gateIndex: Int, _ graph: Graph, _ uses: GraphUses) -> Int? {
        let gate = graph.nodes[gateIndex].outputs[0]
        guard !uses.graphOutputs.contains(product), uses.hasSingleConsumer(gate),
              let readers = uses.consumers[product], readers.count == 2, readers.contains(gateIndex),
              let mul = readers.first(where: { $0 != gateIndex }), let gateReader = uses.consumers[gate]?.first, gateReader == mul
        else { return nil }
        let node = graph.nodes[mul]
        guard node.opType == "Mul", node.domain.isEmpty, node.attributes.isEmpty, node.outputs.count == 1,
              Set(node.inputs) == [product, gate], node.inputs.count == 2
        else { return nil }
        return mul
    }

    private func activationAttributes(_ node: Node, _ graph: Graph) -> [String: Attribute]? {
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
            guard a.isEmpty else { return nil }
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
        default:
            return clipAttributes(node, graph)
        }
    }

    private func clipAttributes(_ node: Node, _ graph: Graph) -> [String: Attribute]? {
        var low = -Float.greatestFiniteMagnitude
        var high = Float.greatestFiniteMagnitude
        if case .float(let v)? = node.attributes["min"] { low = v }
        if case .float(let v)? = node.attributes["max"] { high = v }
        for (position, name) in node.inputs.enumerated().dropFirst() where !name.isEmpty {
            guard let tensor = graph.initializer(named: name), tensor.dataType == .float,
                  tensor.elementCount == 1, let value = try? tensor.scalars(as: Float.self)[0]
            else { return nil }
            if position == 1 { low = value } else { high = value }
        }
        return [
            "onyx.activation": .string("Clip"),
            "onyx.activation_min": .float(low),
            "onyx.activation_max": .float(high),
        ]
    }
}
