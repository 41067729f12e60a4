import OnyxCore
import OnyxIR
import OnyxKernels
import OnyxOperators

/// Runs chains of convolutions in the blocked channel layout NCHWc (as onnxruntime's NCHWc
/// transformer does): an image `[C][H][W]` becomes `[⌈C/16⌉][H][W][16]`, so convolutions,
/// depthwise convolutions and pools run as direct kernels on one vector per pixel, and tensors
/// are converted back only where the chain ends.
///
/// Converted: 2-D Conv with a constant float weight and 16 filters at least, group 1 or depthwise,
/// with any fused activation (see ``ActivationFusion``; the lanes past C take act(0), which no
/// real channel reads) and a fused residual (see ``ConvAddFusion``) that is itself NCHWc; MaxPool
/// (one output, no dilations), AveragePool (count_include_pad only without ceil_mode) and
/// GlobalAveragePool of NCHWc values, and ReduceMean over the two spatial axes with keepdims (the
/// same global average, as the dynamo exporter writes it); and the lane-wise operators that run
/// unchanged on the rank-5 tensors: unary activations (Relu, Sigmoid, Tanh, HardSigmoid,
/// HardSwish, LeakyRelu, Clip), two-input Add and Mul of NCHWc values of equal channel counts (a
/// squeeze-excitation gate `[N, C, 1, 1]` broadcasts as `[N, ⌈C/16⌉, 1, 1, 16]`), Add, Sub, Mul
/// and Div of an NCHWc value by a finite float scalar constant (dividing it, not by it), and
/// Concat on axis 1 (every input but the last a whole number of blocks); Split on axis 1 into
/// whole blocks but the last part (its sizes rewritten in blocks); and a nearest Resize by whole
/// factors that picks pixel (y / sy, x / sx), as an NCHWc Upsample. A connected set of these is
/// converted when it holds two convolutions at least (a lone one would only pay two reorders).
/// An inference-mode BatchNormalization that no convolution absorbed (DenseNet's, after each
/// Concat) runs as an NCHWc ScaleShift, which takes the activation reading it (as
/// ``ActivationFusion`` gives one to a Conv).
///
/// A convolution reading a value from outside its chain reads it as NCHW when it has fewer than
/// 16 channels (`onyx.input_layout`), else through one `ReorderInput` per value. Every chain value
/// read outside the chain, or a graph output, gets one `ReorderOutput` producing it under its own
/// name; inside the chain it takes a fresh one. Only with the AVX2 and AVX-512 kernels (``isUsed(with:)``).
struct NchwcLayout: GraphPass {
    /// The kernel variant the session runs.
    let isa: KernelISA

    /// Whether the layout pays with `isa`: AVX2 and AVX-512 have vector NCHWc kernels (a 16-lane
    /// block is two vectors or one); the portable loops are slower than its GEMM convolutions.
    static func isUsed(with isa: KernelISA) -> Bool { isa == .avx512 || isa == .avx2 }

    func apply(to graph: inout Graph) {
        guard Self.isUsed(with: isa), let nodes = try? graph.topologicallySortedNodes() else { return }
        var chains = ChainFinder(graph)
        for index in nodes.indices { chains.consider(index, nodes[index]) }
        let converted = chains.convertedNodes
        guard !converted.isEmpty else { return }

        // Chain values read outside the chain, or graph outputs, get a ReorderOutput.
        let channels = chains.channels.filter { converted.contains(chains.producer[$0.key] ?? -1) }
        let protected = graph.protectedValueNames
        var leaving = Set(channels.keys.filter(protected.contains))
        for (index, node) in nodes.enumerated() where !converted.contains(index) {
            leaving.formUnion((node.inputs + node.implicitInputs).filter { channels[$0] != nil })
        }
        var used = graph.usedNames
        var renamed: [String: String] = [:]
        for name in leaving.sorted() { renamed[name] = Graph.freshName(name + "_nchwc", avoiding: &used) }
        graph.valueInfo.removeAll { channels[$0.name] != nil && !leaving.contains($0.name) }

        var reordered: [String: String] = [:]
        var rewritten: [Node] = []
        for (index, original) in nodes.enumerated() {
            guard converted.contains(index) else {
                rewritten.append(original)
                continue
            }
            var node = original
            node.inputs = node.inputs.map { renamed[$0] ?? $0 }
            if node.opType == "Conv", channels[original.inputs[0]] == nil {
                // The chain's entry: few channels are read in place, more through one reorder per value.
                let x = original.inputs[0]
                if chains.plainInputConvs.contains(index) {
                    node.attributes["onyx.input_layout"] = .string("NCHW")
                } else if let blocked = reordered[x] {
                    node.inputs[0] = blocked
                } else {
                    let blocked = Graph.freshName(x + "_nchwc", avoiding: &used)
                    rewritten.append(Node(name: blocked + "_reorder", opType: "ReorderInput", domain: NchwcFormat.domain,
                                          inputs: [x], outputs: [blocked]))
                    reordered[x] = blocked
                    node.inputs[0] = blocked
                }
            }
            switch node.opType {
            case "Conv", "MaxPool", "AveragePool", "GlobalAveragePool": node.domain = NchwcFormat.domain
            case "ReduceMean":
                node = Node(name: node.name, opType: "GlobalAveragePool", domain: NchwcFormat.domain,
                            inputs: [node.inputs[0]], outputs: node.outputs)
            case "Resize":
                node = Node(name: node.name, opType: "Upsample", domain: NchwcFormat.domain, inputs: [node.inputs[0]],
                            outputs: node.outputs, attributes: ["scales": .ints(chains.upsamplingScales(original) ?? [])])
            case "BatchNormalization":
                // Per-lane `x · scale + shift`, the parameters laid out as the blocks are.
                guard let c = channels[original.inputs[0]], let (scale, shift) = chains.batchNormalization(original, channels: c)
                else { break }
                let scaleName = Graph.freshName(original.name + "_scale", avoiding: &used)
                let shiftName = Graph.freshName(original.name + "_shift", avoiding: &used)
                graph.initializers += [(scaleName, scale), (shiftName, shift)]
                node = Node(name: node.name, opType: "ScaleShift", domain: NchwcFormat.domain,
                            inputs: [node.inputs[0], scaleName, shiftName], outputs: node.outputs)
            case "Split":
                // Whole blocks per part (the last may hold the lanes past C), on the blocks' axis.
                let sizes = original.outputs.compactMap { channels[$0] }
                // A shape of n holds n scalars: this cannot throw.
                let blocks = try! Tensor(shape: [sizes.count], scalars: sizes.map { Int64(NchwcFormat.blocks($0)) })
                let name = Graph.freshName(original.name + "_blocks", avoiding: &used)
                graph.initializers.append((name, blocks))
                node.inputs = [node.inputs[0], name]
                node.attributes = ["axis": .int(1)]
            case "Concat": node.attributes["axis"] = .int(1)
            case "Mul" where original.inputs.allSatisfy({ channels[$0] != nil }):
                node.domain = NchwcFormat.domain  // a gate's product per block (NchwcMulKernel)
            default: break
            }
            let outputs = original.outputs.filter { !$0.isEmpty }
            node.outputs = outputs.map { renamed[$0] ?? $0 }
            rewritten.append(node)
            for output in outputs {
                guard let blocked = renamed[output], let count = channels[output] else { continue }
                rewritten.append(Node(name: blocked + "_reorder", opType: "ReorderOutput", domain: NchwcFormat.domain,
                                      inputs: [blocked], outputs: [output], attributes: ["channels": .int(count)]))
            }
        }
        graph.nodes = rewritten
        // DenseNet's BatchNormalization → Relu after each Concat: one pass over the tensor, not two.
        ActivationFusion.fuse(into: { node in
            node.opType == "ScaleShift" && node.domain == NchwcFormat.domain && node.attributes["onyx.activation"] == nil
                && node.outputs.count == 1
        }, &graph)
    }
}

/// Finds the nodes the NCHWc layout can take, in topological order, and the chains they form.
private struct ChainFinder {
    let initializers: [String: Tensor]
    /// Channels of each value a candidate node produces.
    private(set) var channels: [String: Int] = [:]
    /// The candidate node producing each such value.
    private(set) var producer: [String: Int] = [:]
    /// Union-find over candidate nodes: the chains.
    private var parent: [Int: Int] = [:]
    private var isConv: Set<Int> = []
    /// Convolutions reading an input from outside the chain as NCHW (fewer than 16 channels).
    private(set) var plainInputConvs: Set<Int> = []

    init(_ graph: Graph) {
        var initializers: [String: Tensor] = [:]
        for (name, tensor) in graph.initializers { initializers[name] = tensor }
        self.initializers = initializers
    }

    /// Records `node` (at `index` in topological order) if the layout can run it.
    mutating func consider(_ index: Int, _ node: Node) {
        // One output (optional ones left empty), or Split's several.
        let outputs = node.opType == "Split" ? node.outputs : Array(node.outputs.prefix(1))
        guard Model.canonicalDomain(node.domain).isEmpty, !outputs.isEmpty, outputs.allSatisfy({ !$0.isEmpty }),
              node.outputs.dropFirst(outputs.count).allSatisfy(\.isEmpty), let (counts, links) = layout(of: node, at: index),
              counts.count == outputs.count
        else { return }
        parent[index] = index
        for link in links { if let source = producer[link] { union(source, index) } }
        if node.opType == "Conv" { isConv.insert(index) }
        for (output, count) in zip(outputs, counts) {
            channels[output] = count
            producer[output] = index
        }
    }

    /// Indices of the nodes in chains with two convolutions at least.
    var convertedNodes: Set<Int> {
        var convs: [Int: Int] = [:]
        for index in isConv { convs[root(index), default: 0] += 1 }
        return Set(parent.keys.filter { convs[root($0), default: 0] >= 2 })
    }

    private func root(_ index: Int) -> Int {
        var i = index
        while let p = parent[i], p != i { i = p }
        return i
    }

    private mutating func union(_ a: Int, _ b: Int) { parent[root(a)] = root(b) }

    /// The channels of each of the node's outputs and the chain values it reads, or `nil` if it
    /// cannot run in NCHWc.
    private mutating func layout(of node: Node, at index: Int) -> ([Int], [String])? {
        guard let (counts, links) = singleLayout(of: node, at: index) else {
            guard node.opType == "Split", let c = channels[node.inputs[0]], let sizes = splitSizes(node, channels: c)
            else { return nil }
            return (sizes, [node.inputs[0]])
        }
        return ([counts], links)
    }

    /// `layout(of:at:)` for the one-output operators.
    private mutating func singleLayout(of node: Node, at index: Int) -> (Int, [String])? {
        let inputs = node.inputs
        switch node.opType {
        case "Conv":
            return convolution(node, at: index)
        case "Resize":
            guard let c = channels[inputs[0]], upsamplingScales(node) != nil else { return nil }
            return (c, [inputs[0]])
        case "MaxPool", "AveragePool":
            guard inputs.count == 1, let c = channels[inputs[0]], poolIsExpressible(node) else { return nil }
            return (c, inputs)
        case "GlobalAveragePool":
            guard inputs.count == 1, node.attributes.isEmpty, let c = channels[inputs[0]] else { return nil }
            return (c, inputs)
        case "ReduceMean":
            guard let c = channels[inputs[0]], reducesSpatialAxes(node) else { return nil }
            return (c, [inputs[0]])
        case "Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu":
            guard inputs.count == 1, let c = channels[inputs[0]] else { return nil }
            return (c, inputs)
        case "BatchNormalization":
            guard let c = channels[inputs[0]], batchNormalization(node, channels: c) != nil else { return nil }
            return (c, [inputs[0]])
        case "Clip":
            // The bounds are scalars, whatever their layout.
            guard !inputs.isEmpty, let c = channels[inputs[0]], inputs.dropFirst().allSatisfy({ channels[$0] == nil }) else { return nil }
            return (c, [inputs[0]])
        case "Add", "Mul", "Sub", "Div":
            guard inputs.count == 2, node.attributes.isEmpty else { return nil }
            if let a = channels[inputs[0]], a == channels[inputs[1]] { return (a, inputs) }
            // A chain value and a finite scalar constant (a divisor nonzero, and second): the
            // lanes past C stay finite.
            guard let position = inputs.firstIndex(where: { channels[$0] != nil }), let c = channels[inputs[position]],
                  let constant = initializers[inputs[1 - position]], constant.dataType == .float, constant.elementCount == 1,
                  let value = try? constant.scalars(as: Float.self)[0], value.isFinite,
                  node.opType != "Div" || (position == 0 && value != 0)
            else { return nil }
            return (c, [inputs[position]])
        case "Concat":
            guard !inputs.isEmpty, node.attributes.count == 1, case .int(let axis)? = node.attributes["axis"], axis == 1 || axis == -3
            else { return nil }
            let counts = inputs.compactMap { channels[$0] }
            guard counts.count == inputs.count, counts.dropLast().allSatisfy({ $0 % NchwcFormat.block == 0 }) else { return nil }
            return (counts.reduce(0, +), inputs)
        default:
            return nil
        }
    }

    private static let convAttributes: Set<String> = [
        "kernel_shape", "strides", "pads", "dilations", "group", "auto_pad", "onyx.activation", "onyx.activation_min",
        "onyx.activation_max", "onyx.activation_alpha", "onyx.activation_beta", "onyx.residual",
    ]

    private mutating func convolution(_ node: Node, at index: Int) -> (Int, [String])? {
        let inputs = node.inputs, a = node.attributes
        guard (2...4).contains(inputs.count), !inputs[0].isEmpty, Set(a.keys).isSubset(of: Self.convAttributes),
              let w = initializers[inputs[1]], w.dataType == .float, w.rank == 4, w.shape.allSatisfy({ $0 >= 1 }),
              Self.hasWindowAttributes(a, kernel: Array(w.shape[2...]))
        else { return nil }
        let m = w.shape[0]
        // Fewer than 16 filters leave most of each output vector empty (LeNet's 6): the GEMM
        // convolution is faster there.
        guard m >= NchwcFormat.block else { return nil }
        if inputs.count > 2, !inputs[2].isEmpty {
            guard let bias = initializers[inputs[2]], bias.dataType == .float, bias.shape == [m] else { return nil }
        }
        let group: Int
        switch a["group"] {
        case nil: group = 1
        case .int(let value)?: group = value
        default: return nil
        }
        let depthwise = group != 1
        guard group == 1 || (group == m && w.shape[1] == 1),
              NchwcConvKernel.packedFilterFloats(weight: w.shape, depthwise: depthwise) != nil else { return nil }
        let c = depthwise ? m : w.shape[1]
        var links: [String] = []
        switch a["onyx.residual"] {
        case nil: guard inputs.count <= 3 else { return nil }
        case .int(1)?:
            guard !depthwise, inputs.count == 4, channels[inputs[3]] == m else { return nil }
            links.append(inputs[3])
        default: return nil
        }
        if let inChain = channels[inputs[0]] {
            guard inChain == c else { return nil }
            links.append(inputs[0])
        } else if !depthwise && c < NchwcFormat.block {
            plainInputConvs.insert(index)
        }
        return (m, links)
    }

    /// Whether kernel_shape (matching `kernel` when given), strides, dilations, pads and auto_pad
    /// are absent or well-formed for two spatial axes.
    private static func hasWindowAttributes(_ a: [String: Attribute], kernel: [Int]) -> Bool {
        func isValid(_ name: String, count: Int, minimum: Int) -> Bool {
            guard let attribute = a[name] else { return true }
            guard case .ints(let values) = attribute else { return false }
            return values.count == count && values.allSatisfy { minimum...NchwcWindow.bound ~= $0 }
        }
        if let declared = a["kernel_shape"], case .ints(let values) = declared, values != kernel { return false }
        guard isValid("kernel_shape", count: 2, minimum: 1), isValid("strides", count: 2, minimum: 1),
              isValid("dilations", count: 2, minimum: 1), isValid("pads", count: 4, minimum: 0)
        else { return false }
        switch a["auto_pad"] {
        case nil: return true
        case .string(let mode)?: return ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"].contains(mode)
        default: return false
        }
    }

    /// An inference-mode BatchNormalization's per-channel `x · scale + shift`, each padded with
    /// zeros to whole blocks, or `nil` (training mode, parameters not float constants of C values).
    func batchNormalization(_ node: Node, channels c: Int) -> (scale: Tensor, shift: Tensor)? {
        let a = node.attributes
        guard node.inputs.count == 5, Set(a.keys).isSubset(of: ["epsilon", "momentum", "training_mode", "spatial"]) else { return nil }
        if let mode = a["training_mode"] { guard case .int(0) = mode else { return nil } }
        if let spatial = a["spatial"] { guard case .int(1) = spatial else { return nil } }
        var epsilon: Float = 1e-5
        if let value = a["epsilon"] {
            guard case .float(let e) = value else { return nil }
            epsilon = e
        }
        let parameters = node.inputs[1...].compactMap { initializers[$0] }
        guard parameters.count == 4, parameters.allSatisfy({ $0.dataType == .float && $0.elementCount == c }) else { return nil }
        guard let values = try? parameters.map({ try $0.scalars(as: Float.self) }) else { return nil }
        let (gamma, beta, mean, variance) = (values[0], values[1], values[2], values[3])
        let padded = NchwcFormat.blocks(c) * NchwcFormat.block
        var scale = [Float](repeating: 0, count: padded), shift = [Float](repeating: 0, count: padded)
        for i in 0..<c {
            scale[i] = gamma[i] / (variance[i] + epsilon).squareRoot()
            shift[i] = beta[i] - mean[i] * scale[i]
        }
        guard let scaleTensor = try? Tensor(shape: [padded], scalars: scale),
              let shiftTensor = try? Tensor(shape: [padded], scalars: shift) else { return nil }
        return (scaleTensor, shiftTensor)
    }

    /// Split on the channel axis into parts of whole blocks (all but the last), or `nil`: the
    /// `split` input or attribute, or an equal split.
    func splitSizes(_ node: Node, channels c: Int) -> [Int]? {
        let a = node.attributes, outputs = node.outputs.count
        guard outputs >= 1, Set(a.keys).isSubset(of: ["axis", "split", "num_outputs"]) else { return nil }
        switch a["axis"] {
        case .int(1)?, .int(-3)?: break
        default: return nil
        }
        var sizes: [Int]
        if node.inputs.count > 1, !node.inputs[1].isEmpty {
            guard let tensor = initializers[node.inputs[1]], tensor.dataType == .int64,
                  let values = try? tensor.scalars(as: Int64.self) else { return nil }
            sizes = values.map(Int.init)
        } else if case .ints(let values)? = a["split"] {
            sizes = values
        } else {
            guard c % outputs == 0 else { return nil }
            sizes = Array(repeating: c / outputs, count: outputs)
        }
        guard sizes.count == outputs, sizes.allSatisfy({ $0 >= 1 }), sizes.reduce(0, +) == c,
              sizes.dropLast().allSatisfy({ $0 % NchwcFormat.block == 0 }) else { return nil }
        return sizes
    }

    /// The whole factors `[sy, sx]` of a nearest-neighbour Resize whose output pixel (y, x) is
    /// input pixel (y / sy, x / sx), or `nil`: constant scales `[1, 1, sy, sx]`, no sizes, and a
    /// coordinate mode and rounding that pick that pixel (half_pixel rounding either way: the
    /// source coordinate is never a tie; asymmetric flooring, or rounding down at factor 2).
    func upsamplingScales(_ node: Node) -> [Int]? {
        let a = node.attributes
        let known: Set<String> = ["mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside",
                                  "extrapolation_value", "antialias"]
        guard Set(a.keys).isSubset(of: known) else { return nil }
        func string(_ name: String, _ fallback: String) -> String? {
            switch a[name] {
            case nil: return fallback
            case .string(let value)?: return value
            default: return nil
            }
        }
        guard string("mode", "nearest") == "nearest", let coordinates = string("coordinate_transformation_mode", "half_pixel"),
              let rounding = string("nearest_mode", "round_prefer_floor") else { return nil }
        // Opset 10: (X, scales); 11 and later: (X, roi, scales, sizes).
        let inputs = node.inputs
        let position = inputs.count == 2 ? 1 : 2
        guard inputs.count >= 2, inputs.count <= 4, inputs.count < 4 || inputs[3].isEmpty, !inputs[position].isEmpty,
              let tensor = initializers[inputs[position]], tensor.dataType == .float, tensor.elementCount == 4,
              let scales = try? tensor.scalars(as: Float.self), scales[0] == 1, scales[1] == 1 else { return nil }
        let factors = scales[2...].map { Int(exactly: $0) }
        guard let sy = factors[0], let sx = factors[1], (1...64).contains(sy), (1...64).contains(sx) else { return nil }
        let largest = max(sy, sx)
        switch (coordinates, rounding) {
        case ("half_pixel", "round_prefer_floor"), ("half_pixel", "round_prefer_ceil"),
             ("pytorch_half_pixel", "round_prefer_floor"), ("pytorch_half_pixel", "round_prefer_ceil"),
             ("asymmetric", "floor"):
            return [sy, sx]
        case ("asymmetric", "round_prefer_floor") where largest <= 2:
            return [sy, sx]
        default:
            return largest == 1 ? [sy, sx] : nil
        }
    }

    /// ReduceMean over axes {2, 3} (or {-2, -1}) of an image, keeping them: a global average pool.
    private func reducesSpatialAxes(_ node: Node) -> Bool {
        let a = node.attributes
        guard Set(a.keys).isSubset(of: ["axes", "keepdims", "noop_with_empty_axes"]) else { return false }
        if let keep = a["keepdims"] { guard case .int(1) = keep else { return false } }
        let axes: [Int]
        if node.inputs.count > 1, !node.inputs[1].isEmpty {
            guard node.inputs.count == 2, a["axes"] == nil, let tensor = initializers[node.inputs[1]], tensor.dataType == .int64,
                  let values = try? tensor.scalars(as: Int64.self) else { return false }
            axes = values.map(Int.init)
        } else {
            guard node.inputs.count == 1, case .ints(let values)? = a["axes"] else { return false }
            axes = values
        }
        return Set(axes.map { $0 < 0 ? $0 + 4 : $0 }) == [2, 3] && axes.count == 2
    }

    private static let poolAttributes: Set<String> = [
        "kernel_shape", "strides", "pads", "dilations", "auto_pad", "ceil_mode", "count_include_pad", "storage_order",
    ]

    /// MaxPool and AveragePool the NCHWc kernel computes exactly: 2-D; MaxPool with no
    /// storage_order, no dilations and pads narrower than the window (so no window is all padding);
    /// AveragePool with count_include_pad only without ceil_mode (so no window reaches past the padding).
    private func poolIsExpressible(_ node: Node) -> Bool {
        let a = node.attributes
        guard Set(a.keys).isSubset(of: Self.poolAttributes), case .ints(let kernel)? = a["kernel_shape"], kernel.count == 2,
              Self.hasWindowAttributes(a, kernel: kernel)
        else { return false }
        func flag(_ name: String) -> Int? {
            switch a[name] {
            case nil: return 0
            case .int(let value)?: return value
            default: return nil
            }
        }
        guard let ceilMode = flag("ceil_mode"), let includePad = flag("count_include_pad"), let order = flag("storage_order")
        else { return false }
        if node.opType == "AveragePool" { return order == 0 && !(includePad != 0 && ceilMode != 0) }
        guard includePad == 0, order == 0 else { return false }
        if case .ints(let dilations)? = a["dilations"], dilations != [1, 1] { return false }
        if case .ints(let pads)? = a["pads"], pads[0] >= kernel[0] || pads[2] >= kernel[0] || pads[1] >= kernel[1]
            || pads[3] >= kernel[1] { return false }
        return true
    }
}
