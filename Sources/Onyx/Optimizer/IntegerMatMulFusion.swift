import OnyxCore
import OnyxIR

/// Fuses the node chain onnxruntime.quantization.quantize_dynamic writes for each MatMul into
/// com.microsoft's float-output integer products, as onnxruntime's own optimizer does:
///
///     DynamicQuantizeLinear(X) → Xq, Xs, Xz
///     Mul(Xs, W_scale) → S
///     MatMulInteger(Xq, W, Xz, W_zero) → P;  Cast(P, to: float) → F;  Mul(F, S) → Y
///     [Add(bias, Y) → Z]
///
/// becomes `MatMulIntegerToFloat(Xq, W, Xs, W_scale, Xz, W_zero, bias)`; the Mul computing S goes
/// when nothing else reads S, and ``ActivationFusion`` then fuses a following activation (Relu,
/// GELU …) into the product. A DynamicQuantizeLinear
/// whose outputs feed one such node alone then joins it: `DynamicQuantizeMatMul(X, W, W_scale,
/// W_zero, bias)`. One read by several products (a transformer's Q, K and V projections) stays, so
/// X is quantized once for all of them.
///
/// The fused kernels round as the chain does (see ``FloatIntegerMatMulKernel``), so outputs do not
/// change. Fused only when W is a constant 2-D 8-bit matrix, W_scale a constant float of one or N
/// values, the bias a constant float of N, Xs a DynamicQuantizeLinear's scale or a constant float
/// of one value, and every value inside the chain is read by the chain alone and is no graph output.
struct IntegerMatMulFusion: GraphPass {
    static let domain = "com.microsoft"
    /// The products it makes, which ``ActivationFusion`` fuses activations into.
    static let products: Set<String> = ["MatMulIntegerToFloat", "DynamicQuantizeMatMul"]

    func apply(to graph: inout Graph) {
        fuseProducts(&graph)
        fuseQuantization(&graph)
    }

    private func fuseProducts(_ graph: inout Graph) {
        let uses = GraphUses(graph)
        let producers = graph.producerIndices
        var removed = Set<Int>()
        for index in graph.nodes.indices {
            let node = graph.nodes[index]
            guard node.opType == "MatMulInteger", node.domain.isEmpty, (2...4).contains(node.inputs.count),
                  node.outputs.count == 1,
                  let weight = graph.initializer(named: node.inputs[1]), weight.rank == 2,
                  [.int8, .uint8].contains(weight.dataType)
            else { continue }
            let n = weight.shape[1]
            // MatMulInteger → Cast(float) → Mul(·, S).
            guard let castIndex = uses.soleReader(of: node.outputs[0]), !removed.contains(castIndex),
                  case let cast = graph.nodes[castIndex], cast.opType == "Cast", cast.domain.isEmpty,
                  cast.outputs.count == 1, case .int(1)? = cast.attributes["to"],
                  let mulIndex = uses.soleReader(of: cast.outputs[0]), !removed.contains(mulIndex),
                  case let mul = graph.nodes[mulIndex], mul.opType == "Mul", mul.domain.isEmpty, mul.inputs.count == 2,
                  mul.outputs.count == 1, mul.inputs[0] != mul.inputs[1]
            else { continue }
            let scaleProduct = mul.inputs[0] == cast.outputs[0] ? mul.inputs[1] : mul.inputs[0]
            // S = Mul(a_scale, b_scale).
            guard let scaleIndex = producers[scaleProduct], !removed.contains(scaleIndex),
                  case let scales = graph.nodes[scaleIndex], scales.opType == "Mul", scales.domain.isEmpty,
                  scales.inputs.count == 2, scales.outputs.count == 1,
                  let (aScale, bScale) = splitScales(scales.inputs, n: n, graph, producers)
            else { continue }
            var output = mul.outputs[0], chain = [castIndex, mulIndex]
            var bias = ""
            if let addIndex = uses.soleReader(of: output), !removed.contains(addIndex),
               case let add = graph.nodes[addIndex], add.opType == "Add", add.domain.isEmpty, add.attributes.isEmpty,
               add.inputs.count == 2, add.outputs.count == 1 {
                let addend = add.inputs[0] == output ? add.inputs[1] : add.inputs[0]
                if let tensor = graph.initializer(named: addend), tensor.dataType == .float, tensor.shape == [n] {
                    (bias, output) = (addend, add.outputs[0])
                    chain.append(addIndex)
                }
            }
            let input = { (i: Int) in i < node.inputs.count ? node.inputs[i] : "" }
            graph.nodes[index] = Node(
                name: node.name, opType: "MatMulIntegerToFloat", domain: Self.domain,
                inputs: [input(0), input(1), aScale, bScale, input(2), input(3), bias], outputs: [output])
            removed.formUnion(chain)
            if uses.consumers[scaleProduct]?.count == 1 && !uses.graphOutputs.contains(scaleProduct) {
                removed.insert(scaleIndex)
            }
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Which of the scale Mul's operands is A's scale (a DynamicQuantizeLinear's scale, or a
    /// constant float of one value) and which is B's (a constant float of one or `n` values).
    private func splitScales(_ operands: [String], n: Int, _ graph: Graph, _ producers: [String: Int])
        -> (a: String, b: String)?
    {
        func isBScale(_ name: String) -> Bool {
            guard let tensor = graph.initializer(named: name) else { return false }
            return tensor.dataType == .float && (tensor.elementCount == 1 || tensor.shape == [n])
        }
        func isAScale(_ name: String) -> Bool {
            if let tensor = graph.initializer(named: name) { return tensor.dataType == .float && tensor.elementCount == 1 }
            guard let index = producers[name] else { return false }
            let node = graph.nodes[index]
            return node.opType == "DynamicQuantizeLinear" && node.domain.isEmpty && node.outputs.count > 1
                && node.outputs[1] == name
        }
        if isAScale(operands[0]) && isBScale(operands[1]) { return (operands[0], operands[1]) }
        if isAScale(operands[1]) && isBScale(operands[0]) { return (operands[1], operands[0]) }
        return nil
    }

    /// DynamicQuantizeLinear feeding one MatMulIntegerToFloat alone (its quantized values as A,
    /// its scale and zero point as A's) → DynamicQuantizeMatMul.
    private func fuseQuantization(_ graph: inout Graph) {
        let uses = GraphUses(graph)
        var removed = Set<Int>()
        for index in graph.nodes.indices {
            let node = graph.nodes[index]
            guard node.opType == "DynamicQuantizeLinear", node.domain.isEmpty, node.inputs.count == 1,
                  node.outputs.count == 3, node.outputs.allSatisfy({ !$0.isEmpty }),
                  let productIndex = uses.soleReader(of: node.outputs[0]),
                  uses.soleReader(of: node.outputs[1]) == productIndex, uses.soleReader(of: node.outputs[2]) == productIndex,
                  case let product = graph.nodes[productIndex], product.opType == "MatMulIntegerToFloat",
                  product.domain == Self.domain, product.inputs.count == 7,
                  product.inputs[0] == node.outputs[0], product.inputs[2] == node.outputs[1],
                  product.inputs[4] == node.outputs[2]
            else { continue }
            graph.nodes[productIndex] = Node(
                name: product.name, opType: "DynamicQuantizeMatMul", domain: Self.domain,
                inputs: [node.inputs[0], product.inputs[1], product.inputs[3], product.inputs[5], product.inputs[6]],
                outputs: product.outputs, attributes: product.attributes)
            removed.insert(index)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }
}
