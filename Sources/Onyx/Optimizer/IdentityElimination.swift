import OnyxIR

/// Removes Identity nodes and inference-mode Dropout nodes, reading their input directly.
///
/// A node whose output is a graph output stays (the output name must survive), as does a Dropout
/// whose mask output is used or whose `training_mode` input is given.
struct IdentityElimination: GraphPass {
    func apply(to graph: inout Graph) {
        let outputs = graph.protectedValueNames
        var usedValues = Set<String>()
        for node in graph.nodes { usedValues.formUnion(node.inputs) }

        var renames: [String: String] = [:]
        graph.nodes.removeAll { node in
            guard node.domain.isEmpty || node.domain == "ai.onnx",
                  node.inputs.count >= 1, !node.inputs[0].isEmpty,
                  let output = node.outputs.first, !output.isEmpty, !outputs.contains(output)
            else { return false }
            switch node.opType {
            case "Identity":
                break
            case "Dropout":
                let maskUsed = node.outputs.count > 1 && !node.outputs[1].isEmpty && usedValues.contains(node.outputs[1])
                let trainingGiven = node.inputs.count > 2 && !node.inputs[2].isEmpty
                if maskUsed || trainingGiven { return false }
            default:
                return false
            }
            renames[output] = node.inputs[0]
            return true
        }
        guard !renames.isEmpty else { return }

        func resolve(_ name: String) -> String {
            var name = name
            while let next = renames[name] { name = next }
            return name
        }
        for i in graph.nodes.indices {
            graph.nodes[i].inputs = graph.nodes[i].inputs.map { $0.isEmpty ? $0 : resolve($0) }
        }
    }
}
