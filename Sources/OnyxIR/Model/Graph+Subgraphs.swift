/// Subgraphs (the bodies of If, Loop and Scan) read values of the graphs around them by name.
extension Graph {
    /// Names this graph reads that it does not define itself (as an input, initializer or node
    /// output), including those its own subgraphs read from outside; in order of first use.
    public var outerScopeReferences: [String] {
        var defined = Set(inputs.map(\.name))
        defined.formUnion(initializers.map(\.name))
        for node in nodes { defined.formUnion(node.outputs) }
        var seen = Set<String>()
        var references: [String] = []
        for node in nodes {
            for name in node.inputs + node.implicitInputs
            where !name.isEmpty && !defined.contains(name) && seen.insert(name).inserted {
                references.append(name)
            }
        }
        return references
    }

    /// Whether any node carries a subgraph.
    var hasSubgraphs: Bool { nodes.contains { !$0.subgraphs.isEmpty } }

    /// Values the optimizer must keep under their names: the graph outputs and every value a
    /// subgraph reads from this graph.
    package var protectedValueNames: Set<String> {
        var names = Set(outputs.map(\.name))
        for node in nodes { names.formUnion(node.implicitInputs) }
        return names
    }
}

extension Node {
    /// The graphs among the node's attributes (If's branches, Loop's and Scan's body).
    var subgraphs: [Graph] {
        attributes.keys.sorted().flatMap { key -> [Graph] in
            switch attributes[key]! {
            case .graph(let graph): [graph]
            case .graphs(let graphs): graphs
            default: []
            }
        }
    }

    /// Values of the enclosing graph that the node's subgraphs read: inputs of the node in all
    /// but name. The executor passes them after the node's own inputs.
    public var implicitInputs: [String] {
        let graphs = subgraphs
        if graphs.isEmpty { return [] }
        var seen = Set<String>()
        return graphs.flatMap(\.outerScopeReferences).filter { seen.insert($0).inserted }
    }
}
