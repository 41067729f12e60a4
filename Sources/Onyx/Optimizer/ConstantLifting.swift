import OnyxCore
import OnyxIR

/// Turns `Constant` nodes into initializers, so later passes see their values as weights
/// (Clip bounds in legacy exports, BatchNormalization parameters, reshape targets).
struct ConstantLifting: GraphPass {
    func apply(to graph: inout Graph) {
        let outputs = graph.protectedValueNames
        var lifted: [(name: String, tensor: Tensor)] = []
        graph.nodes.removeAll { node in
            guard node.opType == "Constant", node.domain.isEmpty, node.outputs.count == 1,
                  !outputs.contains(node.outputs[0]), let value = Self.value(of: node)
            else { return false }
            lifted.append((node.outputs[0], value))
            return true
        }
        graph.initializers.append(contentsOf: lifted)
    }

    private static func value(of node: Node) -> Tensor? {
        switch (node.attributes["value"], node.attributes["value_float"], node.attributes["value_floats"],
                node.attributes["value_int"], node.attributes["value_ints"]) {
        case (.tensor(let t)?, _, _, _, _): return t
        case (_, .float(let v)?, _, _, _): return Tensor(scalar: v)
        case (_, _, .floats(let v)?, _, _): return try? Tensor(shape: [v.count], scalars: v)
        case (_, _, _, .int(let v)?, _): return Tensor(scalar: Int64(v))
        case (_, _, _, _, .ints(let v)?): return try? Tensor(shape: [v.count], scalars: v.map(Int64.init))
        default: return nil
        }
    }
}
