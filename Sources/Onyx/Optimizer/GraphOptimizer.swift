/// A rewrite of the graph that keeps its outputs (within float tolerance).
///
/// A pass leaves alone anything it does not fully understand: an unusual attribute, a value
/// that is also a graph output, a non-constant weight.
protocol GraphPass {
    func apply(to graph: inout Graph)
}

/// Runs the passes of an ``OptimizationLevel`` in order.
struct GraphOptimizer {
    let passes: [any GraphPass]

    init(level: OptimizationLevel) {
        switch level {
        case .none: passes = []
        case .basic: passes = [ConstantLifting(), IdentityElimination(), ConvBatchNormFolding()]
        case .all:
            passes = [
                ConstantLifting(), IdentityElimination(), ConvBatchNormFolding(), MatMulAddFusion(), ActivationFusion(),
            ]
        }
    }

    func optimize(_ graph: consuming Graph) -> Graph {
        guard !passes.isEmpty else { return graph }
        var graph = consume graph
        for pass in passes { pass.apply(to: &graph) }
        graph.removeUnreadInitializers()
        return graph
    }
}

/// Who reads each value, for the passes.
struct GraphUses {
    /// Node indices reading each value (a node reading a value twice appears twice).
    private(set) var consumers: [String: [Int]] = [:]
    let graphOutputs: Set<String>

    init(_ graph: Graph) {
        graphOutputs = graph.protectedValueNames
        for (index, node) in graph.nodes.enumerated() {
            for name in node.inputs + node.implicitInputs where !name.isEmpty { consumers[name, default: []].append(index) }
        }
    }

    /// Whether `value` is read by exactly one node input and is not a graph output.
    func hasSingleConsumer(_ value: String) -> Bool {
        consumers[value]?.count == 1 && !graphOutputs.contains(value)
    }
}

extension Graph {
    /// The initializer named `name`, if any.
    func initializer(named name: String) -> Tensor? {
        initializers.first { $0.name == name }?.tensor
    }

    /// Replaces or adds an initializer.
    mutating func setInitializer(_ name: String, _ tensor: Tensor) {
        if let index = initializers.firstIndex(where: { $0.name == name }) {
            initializers[index].tensor = tensor
        } else {
            initializers.append((name, tensor))
        }
    }

    /// Drops initializers no node reads (weights a pass replaced, BatchNormalization parameters
    /// folded away) and that are not graph outputs, so their memory is released.
    mutating func removeUnreadInitializers() {
        let uses = GraphUses(self)
        initializers.removeAll { uses.consumers[$0.name] == nil && !uses.graphOutputs.contains($0.name) }
    }

    /// Every value name the graph uses: initializers, graph inputs, node inputs and outputs.
    var usedNames: Set<String> {
        var used = Set(initializers.map(\.name))
        for node in nodes { used.formUnion(node.outputs); used.formUnion(node.inputs) }
        used.formUnion(inputs.map(\.name))
        return used
    }

    /// A value name not used anywhere in the graph, starting with `base`.
    func freshName(_ base: String) -> String {
        var used = usedNames
        return Self.freshName(base, avoiding: &used)
    }

    /// A name not in `used`, starting with `base`, added to `used`.
    static func freshName(_ base: String, avoiding used: inout Set<String>) -> String {
        var name = base
        var n = 0
        while used.contains(name) {
            n += 1
            name = "\(base)_\(n)"
        }
        used.insert(name)
        return name
    }
}
