/// Folds an inference-mode BatchNormalization into the Conv that feeds it:
/// `W' = W · s`, `B' = (B − mean) · s + bias`, with `s = scale / sqrt(var + epsilon)` per channel.
///
/// Applies only when the Conv output feeds nothing else, every parameter is a float32
/// initializer, and the BatchNormalization has a single output.
struct ConvBatchNormFolding: GraphPass {
    func apply(to graph: inout Graph) {
        var changed = true
        while changed {
            changed = false
            let uses = GraphUses(graph)
            for (bnIndex, bn) in graph.nodes.enumerated() where bn.opType == "BatchNormalization" && bn.domain.isEmpty {
                guard bn.inputs.count == 5, bn.outputs.filter({ !$0.isEmpty }).count == 1,
                      uses.hasSingleConsumer(bn.inputs[0]),
                      let convIndex = graph.nodes.firstIndex(where: { $0.outputs.first == bn.inputs[0] }),
                      graph.nodes[convIndex].opType == "Conv", graph.nodes[convIndex].domain.isEmpty,
                      let folded = fold(conv: graph.nodes[convIndex], batchNorm: bn, in: &graph)
                else { continue }
                graph.nodes[convIndex] = folded
                graph.nodes.remove(at: bnIndex)
                changed = true
                break
            }
        }
    }

    private func fold(conv: Node, batchNorm bn: Node, in graph: inout Graph) -> Node? {
        if case .int(let training)? = bn.attributes["training_mode"], training != 0 { return nil }
        guard conv.inputs.count >= 2,
              let weight = graph.initializer(named: conv.inputs[1]), weight.dataType == .float, weight.rank >= 3,
              let scale = graph.initializer(named: bn.inputs[1]),
              let bias = graph.initializer(named: bn.inputs[2]),
              let mean = graph.initializer(named: bn.inputs[3]),
              let variance = graph.initializer(named: bn.inputs[4]),
              let s = try? scale.scalars(as: Float.self), let b = try? bias.scalars(as: Float.self),
              let m = try? mean.scalars(as: Float.self), let v = try? variance.scalars(as: Float.self)
        else { return nil }
        let channels = weight.shape[0]
        guard s.count == channels, b.count == channels, m.count == channels, v.count == channels else { return nil }

        var convBias = [Float](repeating: 0, count: channels)
        if conv.inputs.count > 2, !conv.inputs[2].isEmpty {
            guard let given = graph.initializer(named: conv.inputs[2]),
                  let values = try? given.scalars(as: Float.self), values.count == channels else { return nil }
            convBias = values
        }
        var epsilon: Float = 1e-5
        if case .float(let e)? = bn.attributes["epsilon"] { epsilon = e }

        guard var w = try? weight.scalars(as: Float.self) else { return nil }
        let perChannel = w.count / channels
        var newBias = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            let factor = s[c] / (v[c] + epsilon).squareRoot()
            for i in (c * perChannel)..<((c + 1) * perChannel) { w[i] *= factor }
            newBias[c] = (convBias[c] - m[c]) * factor + b[c]
        }
        guard let newWeight = try? Tensor(shape: weight.shape, scalars: w),
              let newBiasTensor = try? Tensor(shape: [channels], scalars: newBias)
        else { return nil }

        let weightName = graph.freshName(conv.inputs[1] + "_bn_folded")
        graph.setInitializer(weightName, newWeight)
        let biasName = graph.freshName(conv.name + "_bn_folded_bias")
        graph.setInitializer(biasName, newBiasTensor)

        var folded = conv
        folded.inputs = [conv.inputs[0], weightName, biasName]
        folded.outputs = [bn.outputs[0]]
        return folded
    }
}
