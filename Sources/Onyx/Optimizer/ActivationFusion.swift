import OnyxIR
import OnyxKernels

/// Fuses a Relu or Clip that follows Conv, Gemm or MatMul into the producer's epilogue.
///
/// The producer gets the internal attributes `onyx.activation` ("Relu" or "Clip") and, for Clip,
/// `onyx.activation_min` / `onyx.activation_max`; the kernels apply them as they store results.
struct ActivationFusion: GraphPass {
    static let producers: Set<String> = ["Conv", "Gemm", "MatMul"]

    func apply(to graph: inout Graph) {
        var uses = GraphUses(graph)
        var removed = Set<Int>()
        for (index, node) in graph.nodes.enumerated()
        where (node.opType == "Relu" || node.opType == "Clip") && node.domain.isEmpty {
            guard let input = node.inputs.first, uses.hasSingleConsumer(input),
                  let producerIndex = graph.nodes.firstIndex(where: { $0.outputs.first == input }),
                  !removed.contains(producerIndex),
                  Self.producers.contains(graph.nodes[producerIndex].opType),
                  graph.nodes[producerIndex].domain.isEmpty,
                  graph.nodes[producerIndex].attributes["onyx.activation"] == nil,
                  graph.nodes[producerIndex].outputs.count == 1,
                  let attributes = activationAttributes(node, graph)
            else { continue }
            var producer = graph.nodes[producerIndex]
            producer.attributes.merge(attributes) { _, new in new }
            producer.outputs = [node.outputs[0]]
            graph.nodes[producerIndex] = producer
            removed.insert(index)
        }
        guard !removed.isEmpty else { return }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        uses = GraphUses(graph)
        _ = uses
    }

    private func activationAttributes(_ node: Node, _ graph: Graph) -> [String: Attribute]? {
        if node.opType == "Relu" { return ["onyx.activation": .string("Relu")] }
        var low = -Float.greatestFiniteMagnitude
        var high = Float.greatestFiniteMagnitude
        if case .float(let v)? = node.attributes["min"] { low = v }
        if case .float(let v)? = node.attributes["max"] { high = v }
        for (position, name) in node.inputs.enumerated().dropFirst() where !name.isEmpty {
            guard let tensor = graph.initializer(named: name), tensor.dataType == .float,
                  tensor.elementCount == 1, let value = try? tensor.scalars(as: Float.self)[0]
            else { return nil }
            if position == 1 { low = value } else { high = value }
        }
        return [
            "onyx.activation": .string("Clip"),
            "onyx.activation_min": .float(low),
            "onyx.activation_max": .float(high),
        ]
    }
}
