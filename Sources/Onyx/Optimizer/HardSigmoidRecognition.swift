import OnyxCore
import OnyxIR

/// Recognises the hard sigmoid and hard swish that exporters write out by hand (Paddle's
/// PP-LCNet and PP-OCR models, older PyTorch `relu6(x + 3) / 6`):
/// - `Clip(x + 3, 0, 6) / 6` becomes `HardSigmoid(x)` with alpha 1/6 and beta 1/2;
/// - `x · Clip(x + 3, 0, 6) / 6` (either operand order) becomes that HardSigmoid and a Mul by `x`,
///   which ``ActivationFusion`` then fuses into the producer of `x` as HardSwish.
///
/// `/ 6` may also be a Mul by 1/6. Every intermediate value must have a single reader and not be
/// a graph output; the constants must be float scalars.
struct HardSigmoidRecognition: GraphPass {
    func apply(to graph: inout Graph) {
        let uses = GraphUses(graph)
        var names = graph.usedNames
        var removed = Set<Int>()
        var replaced: [Int: [Node]] = [:]
        for (addIndex, add) in graph.nodes.enumerated() where add.opType == "Add" && add.domain.isEmpty && add.attributes.isEmpty {
            guard add.inputs.count == 2, add.outputs.count == 1,
                  let x = add.inputs.first(where: { scalar($0, graph) != 3 }), add.inputs.contains(where: { scalar($0, graph) == 3 }),
                  let clipIndex = uses.soleReader(of: add.outputs[0]), isClip06(graph.nodes[clipIndex], graph),
                  let nextIndex = uses.soleReader(of: graph.nodes[clipIndex].outputs[0]),
                  ![addIndex, clipIndex, nextIndex].contains(where: removed.contains)
            else { continue }
            let clip = graph.nodes[clipIndex].outputs[0], next = graph.nodes[nextIndex]
            let hard = { (output: String) in
                Node(name: add.name + "_hard_sigmoid", opType: "HardSigmoid", inputs: [x], outputs: [output],
                     attributes: ["alpha": .float(1 / 6), "beta": .float(0.5)])
            }
            if isSixth(next, of: clip, graph) {
                // Clip(x + 3, 0, 6) / 6
                removed.formUnion([addIndex, clipIndex])
                replaced[nextIndex] = [hard(next.outputs[0])]
            } else if next.opType == "Mul", next.domain.isEmpty, next.attributes.isEmpty, next.inputs.count == 2,
                      Set(next.inputs) == [x, clip], let divIndex = uses.soleReader(of: next.outputs[0]),
                      !removed.contains(divIndex), isSixth(graph.nodes[divIndex], of: next.outputs[0], graph) {
                // x · Clip(x + 3, 0, 6) / 6
                let gate = Graph.freshName(add.name + "_gate", avoiding: &names)
                removed.formUnion([addIndex, clipIndex, nextIndex])
                replaced[divIndex] = [
                    hard(gate),
                    Node(name: next.name, opType: "Mul", inputs: [x, gate], outputs: graph.nodes[divIndex].outputs),
                ]
            }
        }
        guard !replaced.isEmpty else { return }
        var nodes: [Node] = []
        for (index, node) in graph.nodes.enumerated() where !removed.contains(index) {
            nodes += replaced[index] ?? [node]
        }
        graph.nodes = nodes
    }

    private func scalar(_ name: String, _ graph: Graph) -> Float? { graph.floatScalar(named: name) }

    /// Clip to [0, 6], bounds as inputs (opset 11 and later) or attributes (earlier).
    private func isClip06(_ node: Node, _ graph: Graph) -> Bool {
        guard node.opType == "Clip", node.domain.isEmpty, node.outputs.count == 1 else { return false }
        if node.inputs.count == 3 && node.attributes.isEmpty {
            return scalar(node.inputs[1], graph) == 0 && scalar(node.inputs[2], graph) == 6
        }
        guard node.inputs.count == 1, case .float(let low)? = node.attributes["min"], case .float(let high)? = node.attributes["max"]
        else { return false }
        return low == 0 && high == 6
    }

    /// `value / 6` or `value · (1/6)`.
    private func isSixth(_ node: Node, of value: String, _ graph: Graph) -> Bool {
        guard node.domain.isEmpty, node.attributes.isEmpty, node.inputs.count == 2, node.outputs.count == 1 else { return false }
        switch node.opType {
        case "Div": return node.inputs[0] == value && scalar(node.inputs[1], graph) == 6
        case "Mul":
            guard let other = node.inputs.first(where: { $0 != value }), node.inputs.contains(value),
                  let sixth = scalar(other, graph) else { return false }
            return abs(sixth - 1 / 6) < 1e-7
        default: return false
        }
    }
}
