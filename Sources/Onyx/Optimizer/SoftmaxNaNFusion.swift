import OnyxCore
import OnyxIR

/// Fuses `Where(IsNaN(s), 0, s)` with `s = Softmax(x)` into the Softmax: what PyTorch's exporters
/// write after an attention softmax, so a fully masked row (all −∞, NaN by the definition) gives
/// zeros instead.
///
/// The Softmax gets the internal attribute `onyx.nan_to_zero` and the Where's output; its kernel
/// writes 0 for every NaN it would produce (the float kernels zero a row whose sum is NaN, which
/// is exactly the rows holding a NaN). The zero must be a float initializer of one element and
/// rank at most 1 (so it broadcasts to the Softmax's shape without changing it), with the bits of
/// +0; the Softmax output must feed only the IsNaN and the Where, and the IsNaN only the Where.
struct SoftmaxNaNFusion: GraphPass {
    func apply(to graph: inout Graph) {
        let uses = GraphUses(graph)
        let producerOf = graph.producerIndices
        var removed = Set<Int>()
        for (whereIndex, node) in graph.nodes.enumerated()
        where node.opType == "Where" && node.domain.isEmpty && node.inputs.count == 3 && node.outputs.count == 1 {
            let (condition, zero, softmaxOutput) = (node.inputs[0], node.inputs[1], node.inputs[2])
            guard let isNaNIndex = producerOf[condition], let softmaxIndex = producerOf[softmaxOutput],
                  !removed.contains(isNaNIndex), !removed.contains(softmaxIndex),
                  case let isNaN = graph.nodes[isNaNIndex], isNaN.opType == "IsNaN", isNaN.domain.isEmpty,
                  isNaN.inputs == [softmaxOutput], isNaN.outputs == [condition],
                  case var softmax = graph.nodes[softmaxIndex], softmax.opType == "Softmax", softmax.domain.isEmpty,
                  softmax.outputs == [softmaxOutput], softmax.attributes["onyx.nan_to_zero"] == nil,
                  uses.soleReader(of: condition) == whereIndex,
                  !uses.graphOutputs.contains(softmaxOutput),
                  (uses.consumers[softmaxOutput] ?? []).sorted() == [isNaNIndex, whereIndex].sorted(),
                  let zeroTensor = graph.initializer(named: zero), zeroTensor.dataType == .float, zeroTensor.rank <= 1,
                  zeroTensor.elementCount == 1, (try? zeroTensor.scalars(as: Float.self))?.first?.bitPattern == 0
            else { continue }
            softmax.outputs = node.outputs
            softmax.attributes["onyx.nan_to_zero"] = .int(1)
            graph.nodes[softmaxIndex] = softmax
            removed.formUnion([isNaNIndex, whereIndex])
        }
        guard !removed.isEmpty else { return }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }
}
