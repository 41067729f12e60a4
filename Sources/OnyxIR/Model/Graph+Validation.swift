import OnyxCore

extension Graph {
    /// Checks that the graph is well formed, naming the node or value at fault.
    ///
    /// Every value read is produced exactly once (by a graph input, an initializer or a node);
    /// every graph output is produced; every node's domain has an opset import; there is no cycle.
    ///
    /// - Parameter opsetImports: The model's opset imports by domain (`""` is ai.onnx).
    /// - Throws: ``OnyxError`` `.invalidModel`.
    package func validate(opsetImports: [String: Int]) throws {
        var producers: [String: String] = [:]
        func define(_ name: String, by what: String) throws {
            if let existing = producers[name] {
                throw OnyxError.invalidModel("value '\(name)' is produced twice: by \(existing) and by \(what)")
            }
            producers[name] = what
        }
        for value in inputs {
            guard !value.name.isEmpty else { throw OnyxError.invalidModel("a graph input has no name") }
            try define(value.name, by: "graph input '\(value.name)'")
        }
        for (name, _) in initializers {
            // An initializer may share a name with a graph input: it is then the input's default.
            if producers[name] != nil, inputs.contains(where: { $0.name == name }) { continue }
            try define(name, by: "initializer '\(name)'")
        }
        for node in nodes {
            guard !node.outputs.isEmpty, node.outputs.contains(where: { !$0.isEmpty }) else {
                throw OnyxError.invalidModel("node '\(node.name)' (\(node.opType)) has no outputs")
            }
            for output in node.outputs where !output.isEmpty {
                try define(output, by: "node '\(node.name)'")
            }
            let domain = Model.canonicalDomain(node.domain)
            if opsetImports[domain] == nil && !(domain.isEmpty && opsetImports["ai.onnx"] != nil) {
                throw OnyxError.invalidModel(
                    "missing opset import for domain '\(domain.isEmpty ? "ai.onnx" : domain)' used by node '\(node.name)'")
            }
        }
        for node in nodes {
            for input in node.inputs where !input.isEmpty && producers[input] == nil {
                throw OnyxError.invalidModel("value '\(input)' used by node '\(node.name)' (\(node.opType)) is never produced")
            }
            for input in node.implicitInputs where producers[input] == nil {
                throw OnyxError.invalidModel(
                    "value '\(input)' read by a subgraph of node '\(node.name)' (\(node.opType)) is never produced")
            }
        }
        for output in outputs where producers[output.name] == nil {
            throw OnyxError.invalidModel("graph output '\(output.name)' is never produced")
        }
        _ = try topologicallySortedNodes()
    }
}
