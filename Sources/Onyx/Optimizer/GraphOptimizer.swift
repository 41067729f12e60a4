import OnyxCore
import OnyxIR
import OnyxKernels

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

    /// - Parameters:
    ///   - level: Which passes run.
    ///   - isa: The kernel variant the session runs; the NCHWc layout pass runs only for the
    ///     vector variants (`.portable`, the default, leaves layouts alone).
    init(level: OptimizationLevel, isa: KernelISA = .portable) {
        switch level {
        case .none: passes = []
        case .basic: passes = [ConstantLifting(), IdentityElimination(), ConvAffineFolding()]
        case .all:
            passes = [
                ConstantLifting(), IdentityElimination(), CommonSubexpressionElimination(), QdqFusion(),
                HardSigmoidRecognition(), ConvAffineFolding(), SoftmaxNaNFusion(),
                MatMulAddFusion(), ConvAddFusion(), IntegerMatMulFusion(), UnsignedActivations(), QuantizedNhwcLayout(),
                // After the activation patterns, whose scalar Muls (GELU's ½) it would otherwise take.
                ActivationFusion(), TransposeIntoMatMul(), NchwcLayout(isa: isa),
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

    /// The index of the one node reading `value`, if exactly one does and `value` is not a graph output.
    func soleReader(of value: String) -> Int? {
        hasSingleConsumer(value) ? consumers[value]?.first : nil
    }
}

extension Graph {
    /// Folds Adds into the node computing one of their operands (a bias or a residual joining the
    /// producer's epilogue).
    ///
    /// For each two-input Add without attributes (opset < 7 `broadcast`/`axis` left alone) and
    /// each of its operands `product` that nothing else reads, `fuse` gets the node producing
    /// `product`, the other operand and the Add's output; it returns that node rewritten to compute
    /// the Add's output, or `nil` to leave the pair alone. Fused Adds are removed.
    mutating func fuseAdds(
        _ fuse: (_ producer: Node, _ product: String, _ addend: String, _ output: String, _ graph: Graph) -> Node?
    ) {
        let uses = GraphUses(self)
        let producerOf = producerIndices
        var removed = Set<Int>()
        for (addIndex, add) in nodes.enumerated()
        where add.opType == "Add" && add.domain.isEmpty && add.attributes.isEmpty && add.inputs.count == 2
            && add.outputs.count == 1 {
            for (position, product) in add.inputs.enumerated() {
                let addend = add.inputs[1 - position]
                guard !product.isEmpty, !addend.isEmpty, product != addend, uses.hasSingleConsumer(product),
                      let producerIndex = producerOf[product], !removed.contains(producerIndex),
                      let fused = fuse(nodes[producerIndex], product, addend, add.outputs[0], self)
                else { continue }
                nodes[producerIndex] = fused
                removed.insert(addIndex)
                break
            }
        }
        guard !removed.isEmpty else { return }
        nodes = nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// The index of the node producing each value.
    var producerIndices: [String: Int] {
        var producers: [String: Int] = [:]
        for (index, node) in nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producers[output] = index }
        }
        return producers
    }

    /// The initializer named `name`, if any.
    func initializer(named name: String) -> Tensor? {
        initializers.first { $0.name == name }?.tensor
    }

    /// The value of a float initializer of one element (a constant a pattern compares against).
    func floatScalar(named name: String) -> Float? {
        guard !name.isEmpty, let tensor = initializer(named: name), tensor.dataType == .float, tensor.elementCount == 1
        else { return nil }
        return try? tensor.scalars(as: Float.self)[0]
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
