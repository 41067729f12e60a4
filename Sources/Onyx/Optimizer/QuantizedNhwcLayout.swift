import OnyxCore
import OnyxIR
import OnyxOperators

/// Runs chains of quantized convolutions with uint8 activations in NHWC (as onnxruntime's NHWC
/// transformer does for its int8 kernels), where an im2col row is a run of whole pixels, a 1×1
/// convolution reads its input as the GEMM's rows in place, and the GEMM's output rows are the
/// output pixels.
///
/// Converted: QLinearConv with constant 4-D weights, constant scales and zero points (uint8 input
/// and output, per-tensor or per-filter weights), group 1 or depthwise, which always converts;
/// and, when their data inputs are NHWC values of the chain, MaxPool (2-D, ceil_mode 0, one
/// output), com.microsoft QLinearAdd and QLinearMul (both operands NHWC, which keeps NumPy
/// broadcasting as it was: both are permuted alike), and QLinearGlobalAveragePool (then
/// `channels_last`, its output `[N, 1, 1, C]`). Element-wise operators whose every input is a
/// chain value or a one-element constant join the chain too, as they do not care about the
/// layout: com.microsoft QLinearSigmoid and QLinearLeakyRelu, `onyx.quantized` QLinearUnary, per-tensor QuantizeLinear and
/// DequantizeLinear, and float activations and arithmetic between them (a MobileNetV3's
/// `DequantizeLinear → HardSigmoid → QuantizeLinear`, an EfficientNet's SiLU as QLinearSigmoid and
/// QLinearMul), so squeeze-excitation blocks do not cut the chain; and Split and com.microsoft QLinearConcat
/// along any axis (renumbered for NHWC), so YOLOv8's C2f blocks do not either. Values enter through a
/// Transpose to NHWC, one per value, and every chain value read outside the chain, or a graph
/// output, gets a Transpose back producing it under its own name.
struct QuantizedNhwcLayout: GraphPass {
    func apply(to graph: inout Graph) {
        guard let nodes = try? graph.topologicallySortedNodes() else { return }
        var inChain = Set<String>()
        var converted = Set<Int>()
        for (index, node) in nodes.enumerated() {
            let ok: Bool
            switch (node.domain, node.opType) {
            case ("", "QLinearConv"): ok = isConvertibleConv(node, graph)
            case ("", "MaxPool"): ok = inChain.contains(node.inputs[0]) && isConvertibleMaxPool(node)
            case (QdqFusion.microsoft, "QLinearAdd"), (QdqFusion.microsoft, "QLinearMul"):
                ok = node.inputs.count >= 7 && inChain.contains(node.inputs[0]) && inChain.contains(node.inputs[3])
            case (QdqFusion.microsoft, "QLinearGlobalAveragePool"):
                var last = 0
                if case .int(let v)? = node.attributes["channels_last"] { last = v }
                ok = last == 0 && !node.inputs.isEmpty && inChain.contains(node.inputs[0])
            case (QdqFusion.microsoft, "QLinearSigmoid"), (QdqFusion.microsoft, "QLinearLeakyRelu"),
                 (QuantizedLookupTable.domain, "QLinearUnary"),
                 ("", "QuantizeLinear"), ("", "DequantizeLinear"):
                ok = !node.inputs.isEmpty && inChain.contains(node.inputs[0])
                    && node.inputs.dropFirst().allSatisfy { $0.isEmpty || isOneElementConstant($0, graph) }
            case ("", "Split"):
                ok = !node.inputs.isEmpty && inChain.contains(node.inputs[0]) && Self.nhwcAxis(node) != nil
                    && node.inputs.dropFirst().allSatisfy { $0.isEmpty || graph.initializer(named: $0) != nil }
            case (QdqFusion.microsoft, "QLinearConcat"):
                ok = node.inputs.count >= 5 && (node.inputs.count - 2) % 3 == 0 && Self.nhwcAxis(node) != nil
                    && Self.concatData(node).contains { inChain.contains(node.inputs[$0]) }
            case ("", let op) where Self.elementwise.contains(op):
                ok = node.inputs.contains(where: inChain.contains)
                    && node.inputs.allSatisfy { $0.isEmpty || inChain.contains($0) || isOneElementConstant($0, graph) }
            default: ok = false
            }
            guard ok, node.outputs.count == 1 || (node.opType == "Split" && !node.outputs.isEmpty) else { continue }
            converted.insert(index)
            inChain.formUnion(node.outputs.filter { !$0.isEmpty })
        }
        guard !converted.isEmpty else { return }

        let protected = graph.protectedValueNames
        var leaving = Set(inChain.filter(protected.contains))
        for (index, node) in nodes.enumerated() where !converted.contains(index) {
            leaving.formUnion((node.inputs + node.implicitInputs).filter(inChain.contains))
        }
        var used = graph.usedNames
        var renamed: [String: String] = [:]
        for name in leaving.sorted() { renamed[name] = Graph.freshName(name + "_nhwc", avoiding: &used) }
        graph.valueInfo.removeAll { inChain.contains($0.name) && !leaving.contains($0.name) }

        var entered: [String: String] = [:]
        var rewritten: [Node] = []
        for (index, original) in nodes.enumerated() {
            guard converted.contains(index) else {
                rewritten.append(original)
                continue
            }
            var node = original
            // The data inputs: those that enter the chain through a Transpose when they are not in
            // it yet, and for the element-wise operators (only chain values and constants) theirs.
            let entering = switch node.opType {
            case "QLinearAdd", "QLinearMul": [0, 3]
            case "QLinearConv", "MaxPool", "QLinearGlobalAveragePool": [0]
            case "QLinearConcat": Self.concatData(node)
            default: [Int]()
            }
            for position in node.inputs.indices where entering.contains(position) || inChain.contains(node.inputs[position]) {
                let value = original.inputs[position]
                if inChain.contains(value) {
                    node.inputs[position] = renamed[value] ?? value
                } else if let nhwc = entered[value] {
                    node.inputs[position] = nhwc
                } else {
                    let nhwc = Graph.freshName(value + "_nhwc", avoiding: &used)
                    rewritten.append(Node(name: nhwc + "_transpose", opType: "Transpose", domain: "", inputs: [value],
                                          outputs: [nhwc], attributes: ["perm": .ints(QuantizedNhwc.toNhwc)]))
                    entered[value] = nhwc
                    node.inputs[position] = nhwc
                }
            }
            switch node.opType {
            case "QLinearConv", "MaxPool": node.domain = QuantizedNhwc.domain
            case "QLinearGlobalAveragePool": node.attributes["channels_last"] = .int(1)
            case "Split", "QLinearConcat": node.attributes["axis"] = .int(Self.nhwcAxis(original)!)
            default: break
            }
            var exits: [Node] = []
            for (k, output) in original.outputs.enumerated() {
                guard let inside = renamed[output] else { continue }
                node.outputs[k] = inside
                exits.append(Node(name: output + "_transpose", opType: "Transpose", domain: "", inputs: [inside],
                                  outputs: [output], attributes: ["perm": .ints(QuantizedNhwc.toNchw)]))
            }
            rewritten.append(node)
            rewritten.append(contentsOf: exits)
        }
        graph.nodes = rewritten
    }

    /// A QLinearConv the NHWC kernel runs: constant parameters, uint8 activations, group 1 or depthwise.
    private func isConvertibleConv(_ node: Node, _ graph: Graph) -> Bool {
        guard (8...9).contains(node.inputs.count), node.outputs.count == 1,
              let w = graph.initializer(named: node.inputs[3]), w.rank == 4, [.int8, .uint8].contains(w.dataType),
              let xZero = graph.initializer(named: node.inputs[2]), xZero.dataType == .uint8, xZero.elementCount == 1,
              let yZero = graph.initializer(named: node.inputs[7]), yZero.dataType == .uint8, yZero.elementCount == 1,
              let wZero = graph.initializer(named: node.inputs[5]), wZero.dataType == w.dataType,
              [1, w.shape[0]].contains(wZero.elementCount)
        else { return false }
        for index in [1, 6] {
            guard let s = graph.initializer(named: node.inputs[index]), s.dataType == .float, s.elementCount == 1 else { return false }
        }
        guard let ws = graph.initializer(named: node.inputs[4]), ws.dataType == .float, [1, w.shape[0]].contains(ws.elementCount)
        else { return false }
        if node.inputs.count == 9 && !node.inputs[8].isEmpty {
            guard let b = graph.initializer(named: node.inputs[8]), b.dataType == .int32, b.shape == [w.shape[0]] else { return false }
        }
        var group = 1
        if case .int(let g)? = node.attributes["group"] { group = g }
        return group == 1 || (group == w.shape[0] && w.shape[1] == 1)
    }

    /// The NHWC axis of a Split's or Concat's NCHW `axis` (Split's default 0), or nil if out of range.
    static func nhwcAxis(_ node: Node) -> Int? {
        var axis = node.opType == "Split" ? 0 : -5
        if case .int(let a)? = node.attributes["axis"] { axis = a }
        guard (-4..<4).contains(axis) else { return nil }
        return [0, 3, 1, 2][(axis + 4) % 4]
    }

    /// QLinearConcat's data inputs (after Y's scale and zero point, each with its own).
    static func concatData(_ node: Node) -> [Int] { Array(stride(from: 2, to: node.inputs.count, by: 3)) }

    /// Float element-wise operators that may sit between the chain's quantized ones.
    static let elementwise: Set<String> = [
        "Relu", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Clip", "Tanh", "Add", "Sub", "Mul", "Div",
    ]

    /// A constant of one element and rank at most 4, which broadcasts against an NHWC value as it
    /// did against the NCHW one.
    private func isOneElementConstant(_ name: String, _ graph: Graph) -> Bool {
        guard let t = graph.initializer(named: name) else { return false }
        return t.elementCount == 1 && t.rank <= 4
    }

    private func isConvertibleMaxPool(_ node: Node) -> Bool {
        guard node.outputs.count == 1, case .ints(let kernel)? = node.attributes["kernel_shape"], kernel.count == 2 else {
            return false
        }
        if case .int(let c)? = node.attributes["ceil_mode"], c != 0 { return false }
        if case .int(let s)? = node.attributes["storage_order"], s != 0 { return false }
        return true
    }
}
