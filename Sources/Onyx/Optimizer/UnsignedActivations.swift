import OnyxCore
import OnyxIR
import OnyxOperators

/// Runs int8 activations as uint8 ones, so that models quantized with quantize_static's defaults
/// (int8 activations) reach the uint8 kernels (the NHWC convolutions, ``QuantizedNhwcLayout``).
///
/// An int8 value `x` with zero point `z` stands for the same numbers as the uint8 value `x + 128`
/// with zero point `z + 128`; the bit patterns differ only in the top bit, and every quantized
/// kernel computes with `x − z`, so results are the same bytes shifted. The pass finds the groups
/// of int8 activations linked through the operators it knows, each entered from float by a
/// QuantizeLinear and left by a DequantizeLinear, and gives every zero point of the group a uint8
/// copy shifted by 128 (a fused Relu's `onyx.output_range` moves with it). A group is left as it is
/// when any of its values is a graph input or output, is read by a subgraph or by an operator not
/// listed here, or meets a constant int8 operand that would have to match its type (QLinearAdd's,
/// QLinearMul's, QLinearConcat's).
struct UnsignedActivations: GraphPass {
    /// Where an operator's 8-bit activations are: (data input, its zero point input) pairs, and
    /// the input holding its output's zero point.
    private struct Signature {
        var inputs: [(data: Int, zero: Int)]
        var outputZero: Int?
        /// Whether every data input must have the output's type (no constant int8 operand may stay).
        var sameType = false
    }

    private static func signature(_ node: Node) -> Signature? {
        let microsoft = QdqFusion.microsoft
        switch (node.domain, node.opType) {
        case ("", "QuantizeLinear"):
            return node.attributes["output_dtype"] == nil ? Signature(inputs: [], outputZero: 2) : nil
        case ("", "DequantizeLinear"): return Signature(inputs: [(0, 2)], outputZero: nil)
        case ("", "QLinearConv"), (QuantizedNhwc.domain, "QLinearConv"): return Signature(inputs: [(0, 2)], outputZero: 7)
        case ("", "QLinearMatMul"): return Signature(inputs: [(0, 2), (3, 5)], outputZero: 7)
        case (microsoft, "QLinearAdd"), (microsoft, "QLinearMul"):
            return Signature(inputs: [(0, 2), (3, 5)], outputZero: 7, sameType: true)
        case (microsoft, "QLinearGlobalAveragePool"), (microsoft, "QLinearSigmoid"), (microsoft, "QLinearLeakyRelu"),
             (microsoft, "QLinearAveragePool"), (QuantizedLookupTable.domain, "QLinearUnary"):
            return Signature(inputs: [(0, 2)], outputZero: 4)
        case (microsoft, "QLinearConcat"):
            return Signature(inputs: stride(from: 2, to: node.inputs.count, by: 3).map { ($0, $0 + 2) }, outputZero: 1, sameType: true)
        case (microsoft, "QGemm"):
            return Signature(inputs: [(0, 2), (3, 5)], outputZero: node.inputs.count > 8 ? 8 : nil)
        default: return nil
        }
    }

    /// Operators that only move or select values: their data input and outputs are one group.
    private static let movement: Set<String> = ["MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Split", "Identity"]

    func apply(to graph: inout Graph) {
        guard let nodes = try? graph.topologicallySortedNodes() else { return }
        func isInt8Zero(_ name: String) -> Bool {
            guard let t = graph.initializer(named: name) else { return false }
            return t.dataType == .int8 && t.elementCount == 1
        }
        func input(_ node: Node, _ index: Int) -> String { index < node.inputs.count ? node.inputs[index] : "" }

        // The int8 activations: outputs of the operators above whose output zero point is an int8
        // constant, and what the movement operators make of them.
        var int8 = Set<String>()
        for node in nodes {
            if let s = Self.signature(node), let zero = s.outputZero, isInt8Zero(input(node, zero)), !node.outputs.isEmpty {
                int8.insert(node.outputs[0])
            } else if node.domain.isEmpty, Self.movement.contains(node.opType), int8.contains(input(node, 0)) {
                int8.formUnion(node.outputs.filter { !$0.isEmpty })
            }
        }
        guard !int8.isEmpty else { return }

        // Groups: values linked through a node, joined in a union-find over value names.
        var parent: [String: String] = [:]
        func root(_ v: String) -> String {
            var v = v
            while let p = parent[v], p != v { v = p }
            return v
        }
        func join(_ values: [String]) {
            let members = values.filter(int8.contains)
            guard let first = members.first else { return }
            for v in members { parent[root(v)] = root(first) }
        }
        for v in int8 { parent[v] = v }
        var pinned = Set<String>()  // roots found at the end
        var pinnedValues = Set(int8.filter(graph.protectedValueNames.contains))
        for node in nodes {
            let touched = (node.inputs + node.outputs).filter(int8.contains)
            pinnedValues.formUnion(node.implicitInputs.filter(int8.contains))
            guard !touched.isEmpty else { continue }
            if let s = Self.signature(node) {
                let data = Set(s.inputs.map(\.data))
                // An int8 value in a position the signature does not name (a scale, a weight) pins it.
                for (k, name) in node.inputs.enumerated() where int8.contains(name) && !data.contains(k) { pinnedValues.insert(name) }
                let constantInt8 = s.inputs.contains { graph.initializer(named: input(node, $0.data))?.dataType == .int8 }
                if s.sameType && constantInt8 { pinnedValues.formUnion(touched) }
                for pair in s.inputs where int8.contains(input(node, pair.data)) && !isInt8Zero(input(node, pair.zero)) {
                    pinnedValues.insert(input(node, pair.data))
                }
            } else if node.domain.isEmpty, Self.movement.contains(node.opType), int8.contains(input(node, 0)) {
                pinnedValues.formUnion(node.inputs.dropFirst().filter(int8.contains))
            } else {
                pinnedValues.formUnion(touched)
            }
            join(touched)
        }
        for v in pinnedValues { pinned.insert(root(v)) }
        let flipped = int8.filter { !pinned.contains(root($0)) }
        guard !flipped.isEmpty else { return }

        // Each int8 zero point read for a flipped value gets a uint8 copy, shifted.
        var used = graph.usedNames
        var copies: [String: String] = [:]
        func unsigned(_ zero: String) -> String {
            if let name = copies[zero] { return name }
            let z = graph.initializer(named: zero).flatMap { try? $0.scalars(as: Int8.self).first } ?? 0
            let name = Graph.freshName(zero + "_u8", avoiding: &used)
            graph.setInitializer(name, Tensor(scalar: UInt8(Int(z) + 128)))
            copies[zero] = name
            return name
        }
        for index in graph.nodes.indices {
            var node = graph.nodes[index]
            guard let s = Self.signature(node) else { continue }
            var changed = false
            for pair in s.inputs where flipped.contains(input(node, pair.data)) {
                node.inputs[pair.zero] = unsigned(node.inputs[pair.zero])
                changed = true
            }
            if let zero = s.outputZero, let output = node.outputs.first, flipped.contains(output) {
                node.inputs[zero] = unsigned(node.inputs[zero])
                if case .ints(let range)? = node.attributes[QdqFusion.outputRange] {
                    node.attributes[QdqFusion.outputRange] = .ints(range.map { $0 + 128 })
                }
                changed = true
            }
            if changed { graph.nodes[index] = node }
        }
        graph.valueInfo.removeAll { flipped.contains($0.name) }
    }
}
