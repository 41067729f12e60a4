import OnyxCore
import OnyxIR

/// Folds a per-channel affine map of a Conv's output into the Conv's weights and bias,
/// `y' = y · f + o` per output channel: `W' = W · f`, `B' = B · f + o`. The maps folded:
/// - an inference-mode BatchNormalization: `f = scale / sqrt(var + epsilon)`, `o = bias − mean · f`;
/// - a Mul, Add, Sub (`y − c`) or Div (`y / c`) by a float constant `c` of one element or one per
///   channel (`[M, 1, 1]`, `[1, M, 1, 1]`: broadcast along the output channels only), as Paddle
///   exports its BatchNormalization and learnable affine layers.
///
/// Applies only when the Conv output feeds nothing else, every parameter is a float32
/// initializer, and the folded node has a single output. Repeats, so `Conv → Mul → Add` folds whole.
struct ConvAffineFolding: GraphPass {
    func apply(to graph: inout Graph) {
        while foldAll(in: &graph) {}  // again for a map after a folded one
    }

    /// Folds every foldable pair; whether any was.
    private func foldAll(in graph: inout Graph) -> Bool {
        // One pass: a fold touches only its own Conv and the node it absorbs, so the consumer
        // counts and producers found up front stay right for the others.
        let uses = GraphUses(graph)
        let producers = graph.producerIndices
        var names = graph.usedNames
        var folded = Set<Int>()
        for (index, node) in graph.nodes.enumerated() where node.domain.isEmpty && node.outputs.filter({ !$0.isEmpty }).count == 1 {
            guard let (input, map) = affineMap(node, graph), uses.hasSingleConsumer(input),
                  let convIndex = producers[input], !folded.contains(convIndex),
                  graph.nodes[convIndex].opType == "Conv", graph.nodes[convIndex].domain.isEmpty,
                  graph.nodes[convIndex].outputs == [input],
                  let conv = fold(conv: graph.nodes[convIndex], map, output: node.outputs[0], uses: uses, names: &names,
                                  in: &graph)
            else { continue }
            graph.nodes[convIndex] = conv
            folded.insert(index)
        }
        guard !folded.isEmpty else { return false }
        graph.nodes = graph.nodes.enumerated().filter { !folded.contains($0.offset) }.map(\.element)
        return true
    }

    /// A per-channel `y · factor + offset`: `factor` and `offset` each one value, or one per channel.
    struct AffineMap {
        var factor: [Float]
        var offset: [Float]
        /// The shape of the constant operand, whose broadcast the fold checks against the Conv's
        /// output; `nil` for a BatchNormalization (one value per channel by definition).
        var operandShape: [Int]? = nil
    }

    /// The value `node` maps and the map, if it is one this pass folds.
    private func affineMap(_ node: Node, _ graph: Graph) -> (String, AffineMap)? {
        switch node.opType {
        case "BatchNormalization":
            return batchNormMap(node, graph).map { (node.inputs[0], $0) }
        case "Mul", "Add", "Sub", "Div":
            guard node.inputs.count == 2, node.attributes.isEmpty else { return nil }
            for position in 0..<2 {
                guard let constant = graph.initializer(named: node.inputs[1 - position]), constant.dataType == .float,
                      let values = try? constant.scalars(as: Float.self) else { continue }
                // c − y and c / y are not affine in y's weights.
                if position == 1 && (node.opType == "Sub" || node.opType == "Div") { return nil }
                let map: AffineMap
                switch node.opType {
                case "Mul": map = AffineMap(factor: values, offset: [0], operandShape: constant.shape)
                case "Add": map = AffineMap(factor: [1], offset: values, operandShape: constant.shape)
                case "Sub": map = AffineMap(factor: [1], offset: values.map { -$0 }, operandShape: constant.shape)
                default:
                    guard values.allSatisfy({ $0 != 0 }) else { return nil }
                    map = AffineMap(factor: values.map { 1 / $0 }, offset: [0], operandShape: constant.shape)
                }
                return (node.inputs[position], map)
            }
            return nil
        default:
            return nil
        }
    }

    /// Whether a constant of `shape` broadcasts against a Conv output of rank `rank` with `channels`
    /// along the channel axis only (one element; or `[M, 1, 1]`, `[1, M, 1, 1]` for a 2-D Conv),
    /// so the output keeps its shape.
    private static func broadcastsPerChannel(_ shape: [Int], rank: Int, channels: Int) -> Bool {
        guard shape.count <= rank else { return false }
        if shape.allSatisfy({ $0 == 1 }) { return true }
        let axis = shape.count - (rank - 1)  // the output's axis 1, aligned from the right
        return axis >= 0 && shape.enumerated().allSatisfy { $0.offset == axis ? $0.element == channels : $0.element == 1 }
    }

    private func batchNormMap(_ bn: Node, _ graph: Graph) -> AffineMap? {
        if case .int(let training)? = bn.attributes["training_mode"], training != 0 { return nil }
        guard bn.inputs.count == 5,
              let scale = graph.initializer(named: bn.inputs[1]),
              let bias = graph.initializer(named: bn.inputs[2]),
              let mean = graph.initializer(named: bn.inputs[3]),
              let variance = graph.initializer(named: bn.inputs[4]),
              scale.dataType == .float, bias.dataType == .float, mean.dataType == .float, variance.dataType == .float,
              let s = try? scale.scalars(as: Float.self), let b = try? bias.scalars(as: Float.self),
              let m = try? mean.scalars(as: Float.self), let v = try? variance.scalars(as: Float.self),
              s.count == b.count, s.count == m.count, s.count == v.count
        else { return nil }
        var epsilon: Float = 1e-5
        if case .float(let e)? = bn.attributes["epsilon"] { epsilon = e }
        let factor = (0..<s.count).map { s[$0] / (v[$0] + epsilon).squareRoot() }
        return AffineMap(factor: factor, offset: (0..<s.count).map { b[$0] - m[$0] * factor[$0] })
    }

    private func fold(
        conv: Node, _ map: AffineMap, output: String, uses: GraphUses, names: inout Set<String>, in graph: inout Graph
    ) -> Node? {
        // The weight is looked at through the graph rather than bound to a local, so that when the
        // graph holds the only reference it can be scaled in place (no second copy of the weights).
        guard conv.inputs.count >= 2,
              let weightIndex = graph.initializers.firstIndex(where: { $0.name == conv.inputs[1] }),
              graph.initializers[weightIndex].tensor.dataType == .float,
              graph.initializers[weightIndex].tensor.rank >= 3
        else { return nil }
        let shape = graph.initializers[weightIndex].tensor.shape
        let channels = shape[0]
        let counts: [Int] = map.operandShape == nil ? [channels] : [1, channels]
        guard counts.contains(map.factor.count), counts.contains(map.offset.count),
              map.operandShape.map({ Self.broadcastsPerChannel($0, rank: shape.count, channels: channels) }) ?? true
        else { return nil }
        let factors = map.factor.count == channels ? map.factor : Array(repeating: map.factor[0], count: channels)

        var convBias = [Float](repeating: 0, count: channels)
        if conv.inputs.count > 2, !conv.inputs[2].isEmpty {
            guard let given = graph.initializer(named: conv.inputs[2]), given.dataType == .float,
                  let values = try? given.scalars(as: Float.self), values.count == channels else { return nil }
            convBias = values
        }
        let newBias = Tensor(uninitialized: .float, shape: [channels])
        let biasOut = newBias.baseAddress.assumingMemoryBound(to: Float.self)
        for c in 0..<channels { biasOut[c] = convBias[c] * factors[c] + map.offset[map.offset.count == 1 ? 0 : c] }

        // W' = W · f per output channel: in place when this Conv is the weight's only reader (the
        // tensor copies itself first if anything outside the graph still shares it), else a copy.
        let weightName: String
        var weight = graph.initializers[weightIndex].tensor
        if uses.hasSingleConsumer(conv.inputs[1]) {
            graph.initializers[weightIndex].tensor = Tensor(uninitialized: .float, shape: [0])
            weightName = conv.inputs[1]
        } else {
            weight = Tensor(dataType: .float, shape: shape, storage: TensorStorage(
                copying: UnsafeRawBufferPointer(start: weight.baseAddress, count: weight.byteCount)))
            weightName = Graph.freshName(conv.inputs[1] + "_folded", avoiding: &names)
        }
        let perChannel = weight.elementCount / max(channels, 1)
        weight.withUnsafeMutableBytes { bytes in
            let w = bytes.bindMemory(to: Float.self)
            for c in 0..<channels {
                for i in (c * perChannel)..<((c + 1) * perChannel) { w[i] *= factors[c] }
            }
        }
        graph.setInitializer(weightName, weight)
        let biasName = Graph.freshName(conv.name + "_folded_bias", avoiding: &names)
        graph.setInitializer(biasName, newBias)

        var folded = conv
        folded.inputs = [conv.inputs[0], weightName, biasName]
        folded.outputs = [output]
        return folded
    }
}
