import OnyxIR
import OnyxKernels

/// Fuses `Add(MatMul(A, W), bias)` into the MatMul when W is a constant 2-D float matrix and the
/// bias a constant that broadcasts along the last axis only (shape `[N]`, `[1, …, 1, N]` or one
/// element): what exporters emit for a linear layer on inputs of rank 3 and more.
///
/// The MatMul gets the bias as a third input and the internal attribute `onyx.bias`; its kernel
/// adds it per column as it stores results and gives the output the shape the Add would have
/// (a bias of higher rank prepends axes of extent 1). The MatMul output must feed only the Add.
struct MatMulAddFusion: GraphPass {
    func apply(to graph: inout Graph) {
        graph.fuseAdds { matMul, _, bias, output, graph in fuse(matMul, bias: bias, output: output, graph) }
    }

    private func fuse(_ matMul: Node, bias: String, output: String, _ graph: Graph) -> Node? {
        guard matMul.opType == "MatMul", matMul.domain.isEmpty, matMul.inputs.count == 2, matMul.outputs.count == 1,
              matMul.attributes["onyx.bias"] == nil, matMul.attributes["onyx.activation"] == nil,
              let weight = graph.initializer(named: matMul.inputs[1]), weight.dataType == .float, weight.rank == 2,
              let biasTensor = graph.initializer(named: bias), biasTensor.dataType == .float,
              Broadcasting.broadcastsAlongColumns(biasTensor.shape, columns: weight.shape[1])
        else { return nil }
        var fused = matMul
        fused.inputs.append(bias)
        fused.outputs = [output]
        fused.attributes["onyx.bias"] = .int(1)
        return fused
    }
}
