import OnyxCore
import OnyxIR

/// Folds an inference-mode BatchNormalization into the Conv that feeds it:
/// `W' = W · s`, `B' = (B − mean) · s + bias`, with `s = scale / sqrt(var + epsilon)` per channel.
///
/// Applies only when the Conv output feeds nothing else, every parameter is a float32
/// initializer, and the BatchNormalization has a single output.
struct ConvBatchNormFolding: GraphPass {
    func apply(to graph: inout Graph) {
        while foldAll(in: &graph) {}  // again only for a BatchNormalization after a folded one
    }

    /// Folds every foldable pair; whether any was.
    private func foldAll(in graph: inout Graph) -> Bool {
        // One pass: a fold touches only its own Conv and BatchNormalization, so the consumer counts
        // and producers found up front stay right for the others.
        let uses = GraphUses(graph)
        let producers = graph.producerIndices
        var names = graph.usedNames
        var folded = Set<Int>()
        for (bnIndex, bn) in graph.nodes.enumerated() where bn.opType == "BatchNormalization" && bn.domain.isEmpty {
            guard bn.inputs.count == 5, bn.outputs.filter({ !$0.isEmpty }).count == 1,
                  uses.hasSingleConsumer(bn.inputs[0]),
                  let convIndex = producers[bn.inputs[0]],
                  graph.nodes[convIndex].opType == "Conv", graph.nodes[convIndex].domain.isEmpty,
                  let conv = fold(conv: graph.nodes[convIndex], batchNorm: bn, uses: uses, names: &names, in: &graph)
            else { continue }
            graph.nodes[convIndex] = conv
            folded.insert(bnIndex)
        }
        guard !folded.isEmpty else { return false }
        graph.nodes = graph.nodes.enumerated().filter { !folded.contains($0.offset) }.map(\.element)
        return true
    }

    private func fold(
        conv: Node, batchNorm bn: Node, uses: GraphUses, names: inout Set<String>, in graph: inout Graph
    ) -> Node? {
        if case .int(let training)? = bn.attributes["training_mode"], training != 0 { return nil }
        // The weight is looked at through the graph rather than bound to a local, so that when the
        // graph holds the only reference it can be scaled in place (no second copy of the weights).
        guard conv.inputs.count >= 2,
              let weightIndex = graph.initializers.firstIndex(where: { $0.name == conv.inputs[1] }),
              graph.initializers[weightIndex].tensor.dataType == .float,
              graph.initializers[weightIndex].tensor.rank >= 3,
              let scale = graph.initializer(named: bn.inputs[1]),
              let bias = graph.initializer(named: bn.inputs[2]),
              let mean = graph.initializer(named: bn.inputs[3]),
              let variance = graph.initializer(named: bn.inputs[4]),
              let s = try? scale.scalars(as: Float.self), let b = try? bias.scalars(as: Float.self),
              let m = try? mean.scalars(as: Float.self), let v = try? variance.scalars(as: Float.self)
        else { return nil }
        let shape = graph.initializers[weightIndex].tensor.shape
        let channels = shape[0]
        guard s.count == channels, b.count == channels, m.count == channels, v.count == channels else { return nil }

        var convBias = [Float](repeating: 0, count: channels)
        if conv.inputs.count > 2, !conv.inputs[2].isEmpty {
            guard let given = graph.initializer(named: conv.inputs[2]),
                  let values = try? given.scalars(as: Float.self), values.count == channels else { return nil }
            convBias = values
        }
        var epsilon: Float = 1e-5
        if case .float(let e)? = bn.attributes["epsilon"] { epsilon = e }

        let factors = (0..<channels).map { s[$0] / (v[$0] + epsilon).squareRoot() }
        let newBias = Tensor(uninitialized: .float, shape: [channels])
        let biasOut = newBias.baseAddress.assumingMemoryBound(to: Float.self)
        for c in 0..<channels { biasOut[c] = (convBias[c] - m[c]) * factors[c] + b[c] }

        // W' = W · s per output channel: in place when this Conv is the weight's only reader (the
        // tensor copies itself first if anything outside the graph still shares it), else a copy.
        let weightName: String
        var weight = graph.initializers[weightIndex].tensor
        if uses.hasSingleConsumer(conv.inputs[1]) {
            graph.initializers[weightIndex].tensor = Tensor(uninitialized: .float, shape: [0])
            weightName = conv.inputs[1]
        } else {
            weight = Tensor(dataType: .float, shape: shape, storage: TensorStorage(
                copying: UnsafeRawBufferPointer(start: weight.baseAddress, count: weight.byteCount)))
            weightName = Graph.freshName(conv.inputs[1] + "_bn_folded", avoiding: &names)
        }
        let perChannel = weight.elementCount / max(channels, 1)
        weight.withUnsafeMutableBytes { bytes in
            let w = bytes.bindMemory(to: Float.self)
            for c in 0..<channels {
                for i in (c * perChannel)..<((c + 1) * perChannel) { w[i] *= factors[c] }
            }
        }
        graph.setInitializer(weightName, weight)
        let biasName = Graph.freshName(conv.name + "_bn_folded_bias", avoiding: &names)
        graph.setInitializer(biasName, newBias)

        var folded = conv
        folded.inputs = [conv.inputs[0], weightName, biasName]
        folded.outputs = [bn.outputs[0]]
        return folded
    }
}
