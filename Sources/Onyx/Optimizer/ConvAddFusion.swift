import OnyxIR

/// Fuses `Add(Conv(x, W, b), r)` (either operand order) into the Conv: the residual connection
/// that ends a ResNet block, so the shortcut is added as the convolution stores its output rather
/// than in a separate pass over the tensor.
///
/// The Conv gets `r` as a fourth input (input 2 stays the bias, `""` when there is none) and the
/// internal attribute `onyx.residual`; its kernel adds `r` before any activation that
/// ``ActivationFusion`` fuses afterwards, so a following Relu still joins the same epilogue.
///
/// Fused only when the Conv's output feeds nothing but the Add and is not a graph output, the
/// weight is a constant float tensor of a non-depthwise convolution, `r` is not a constant (a
/// constant addend is a bias), and the Add has no attributes (opset < 7 `broadcast`/`axis`). When
/// the graph declares both shapes they must be the same; when it does not (legacy exports carry
/// no intermediate shapes), the kernel checks at each plan and adds a residual of another shape
/// with broadcasting, as the Add would have.
struct ConvAddFusion: GraphPass {
    func apply(to graph: inout Graph) {
        var declared: [String: TensorType] = [:]
        for value in graph.inputs + graph.outputs + graph.valueInfo {
            if let type = value.type { declared[value.name] = type }
        }
        graph.fuseAdds { conv, convolved, residual, output, graph in
            guard graph.initializer(named: residual) == nil,
                  Self.mayHaveTheSameShape(declared[convolved], declared[residual])
            else { return nil }
            return fuse(conv, residual: residual, output: output, graph)
        }
    }

    private func fuse(_ conv: Node, residual: String, output: String, _ graph: Graph) -> Node? {
        guard conv.opType == "Conv", conv.domain.isEmpty, (2...3).contains(conv.inputs.count), conv.outputs.count == 1,
              conv.attributes["onyx.activation"] == nil, conv.attributes["onyx.residual"] == nil,
              let weight = graph.initializer(named: conv.inputs[1]), weight.dataType == .float, weight.rank >= 3
        else { return nil }
        // Depthwise convolutions run a direct kernel that cannot add to what it stores.
        let group: Int
        switch conv.attributes["group"] {
        case nil: group = 1
        case .int(let value)?: group = value
        default: return nil
        }
        guard group == 1 || weight.shape[0] != group || weight.shape[1] != 1 else { return nil }
        var fused = conv
        if fused.inputs.count == 2 { fused.inputs.append("") }
        fused.inputs.append(residual)
        fused.outputs = [output]
        fused.attributes["onyx.residual"] = .int(1)
        return fused
    }

    /// False when declared types show the two values differ in element type or shape; true when
    /// they agree or either is undeclared.
    static func mayHaveTheSameShape(_ a: TensorType?, _ b: TensorType?) -> Bool {
        if let a, a.dataType != .float { return false }
        if let b, b.dataType != .float { return false }
        guard let a = a?.shape, let b = b?.shape else { return true }
        guard a.rank == b.rank else { return false }
        return zip(a.dimensions, b.dimensions).allSatisfy { x, y in
            switch (x, y) {
            case (.unknown, _), (_, .unknown): true
            default: x == y
            }
        }
    }
}
