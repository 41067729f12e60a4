import OnyxIR
import OnyxOperators

/// Lets a MatMul read a Transpose's input in place: the transformer exporters' head split
/// (`Transpose(Reshape(x), perm: [0, 2, 1, 3])`) and `Kᵀ` (`perm: [0, 2, 3, 1]`) become strides
/// the MatMul packs its operands with, instead of copies written and read again per run.
///
/// The MatMul takes the Transpose's input and the internal attribute `onyx.perm_a` or
/// `onyx.perm_b` (the Transpose's perm). Only perms that leave the input's last axis as one of the
/// last two are folded: then each matrix of the view has unit stride along its rows or its columns,
/// which packing reads directly. The Transpose must have an explicit perm and feed only the MatMul
/// and Shape nodes (kept for those, it no longer runs: the plan folds the Shapes and drops steps
/// nothing reads); one of a constant is left to be folded at load.
struct TransposeIntoMatMul: GraphPass {
    func apply(to graph: inout Graph) {
        let uses = GraphUses(graph)
        let producerOf = graph.producerIndices
        var removed = Set<Int>()
        for index in graph.nodes.indices {
            var node = graph.nodes[index]
            guard node.opType == "MatMul", node.domain.isEmpty, (2...3).contains(node.inputs.count) else { continue }
            // The factor so far (nil: an alpha this pass does not understand, left alone).
            var alpha: Float? = 1
            if let existing = node.attributes["onyx.alpha"] {
                if case .float(let value) = existing { alpha = value } else { alpha = nil }
            }
            for (slot, attribute) in [(0, "onyx.perm_a"), (1, "onyx.perm_b")] where node.attributes[attribute] == nil {
                // A Mul by a scalar constant between (the legacy exporters scale Q and Kᵀ each by
                // 1/⁴√d) joins the product's alpha.
                var through: Int?
                if let producer = producerOf[node.inputs[slot]], !removed.contains(producer), alpha != nil,
                   uses.soleReader(of: node.inputs[slot]) == index,
                   case let mul = graph.nodes[producer], mul.opType == "Mul", mul.domain.isEmpty, mul.inputs.count == 2,
                   let (operand, scalar) = Self.scaled(mul, graph) {
                    alpha! *= scalar
                    node.inputs[slot] = operand
                    removed.insert(producer)
                    through = producer
                }
                // Other readers may only ask for the shape (the plan folds those Shapes and drops the
                // Transpose they leave unread).
                let value = node.inputs[slot]
                let readers = (uses.consumers[value] ?? []).map { $0 == through ? index : $0 }
                guard !value.isEmpty, !uses.graphOutputs.contains(value), readers.filter({ $0 == index }).count == 1,
                      readers.allSatisfy({ $0 == index || (graph.nodes[$0].opType == "Shape" && graph.nodes[$0].domain.isEmpty) }),
                      let producer = producerOf[value], !removed.contains(producer)
                else { continue }
                let transpose = graph.nodes[producer]
                guard transpose.opType == "Transpose", transpose.domain.isEmpty, transpose.inputs.count == 1,
                      case .ints(let perm)? = transpose.attributes["perm"], MatMulKernel.readsInPlace(perm),
                      graph.initializer(named: transpose.inputs[0]) == nil
                else { continue }
                node.inputs[slot] = transpose.inputs[0]
                node.attributes[attribute] = .ints(perm)
                if readers.count == 1 { removed.insert(producer) }
            }
            if let alpha, alpha != 1 { node.attributes["onyx.alpha"] = .float(alpha) }
            graph.nodes[index] = node
        }
        guard !removed.isEmpty else { return }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// The other operand and the factor of a Mul by a float scalar constant.
    static func scaled(_ mul: Node, _ graph: Graph) -> (String, Float)? {
        if let scalar = graph.floatScalar(named: mul.inputs[1]), !mul.inputs[0].isEmpty { return (mul.inputs[0], scalar) }
        if let scalar = graph.floatScalar(named: mul.inputs[0]), !mul.inputs[1].isEmpty { return (mul.inputs[1], scalar) }
        return nil
    }
}
