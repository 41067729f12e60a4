import OnyxIR

extension InferenceSession {
    /// A node as the session runs it (after optimization), with the nodes of the file it stands for.
    package struct PreparedNode: Sendable {
        /// The step's name: the name of the file's node it grew from, or a new one for a node the
        /// optimizer added (a layout reorder).
        package let name: String
        package let opType: String
        /// The domain, `""` for ai.onnx.
        package let domain: String
        /// The nodes of the file this one computes, in file order: itself when nothing was fused,
        /// several when the optimizer fused a chain (a product, its scales, bias and activation).
        package let absorbed: [Node]
    }

    /// The nodes the session runs, in order, each with the file's nodes it stands for. The file's
    /// nodes no step stands for were removed (Identity, Dropout) or folded into constants at load;
    /// an Identity between a value and a step is counted as removed, not fused.
    ///
    /// Found from names alone: a step stands for the file's nodes that compute its outputs from
    /// values the prepared graph no longer has, back to values it still reads.
    package var preparedNodes: [PreparedNode] {
        var present = Set(inputs.map(\.name))
        for step in graph.steps {
            for id in step.inputs + step.outputs { if let id { present.insert(graph.valueNames[id]) } }
        }
        let original = model.graph.nodes
        var producer: [String: Int] = [:]
        for (index, node) in original.enumerated() {
            for output in node.outputs where !output.isEmpty { producer[output] = index }
        }
        var claimed = Set<Int>()
        return graph.steps.map { step in
            let outputs = Set(step.outputs.compactMap { $0.map { graph.valueNames[$0] } })
            var pending = Array(outputs), absorbed: [Int] = []
            while let value = pending.popLast() {
                guard let index = producer[value], !claimed.contains(index) else { continue }
                let node = original[index]
                // Removed, not fused: the step reads what the Identity passed on.
                if node.opType == "Identity" && node.domain.isEmpty && node.opType != step.opType { continue }
                guard node.outputs.allSatisfy({ $0.isEmpty || outputs.contains($0) || !present.contains($0) }) else { continue }
                claimed.insert(index)
                absorbed.append(index)
                pending += node.inputs.filter { !$0.isEmpty && !present.contains($0) }
            }
            return PreparedNode(name: step.name, opType: step.opType, domain: step.domain,
                                absorbed: absorbed.sorted().map { original[$0] })
        }
    }
}
