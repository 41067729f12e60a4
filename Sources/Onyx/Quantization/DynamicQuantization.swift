import OnyxCore
import OnyxIR
import OnyxOperators

/// What ``Model/quantizedDynamically(options:)`` quantizes.
public struct DynamicQuantizationOptions: Sendable {
    /// The operator types it can quantize: `MatMul` and `Gemm`.
    public static let supportedOperatorTypes: Set<String> = ["MatMul", "Gemm"]

    /// One scale per output column of each weight (the default), or one per weight.
    public var perChannel: Bool
    /// The operator types to quantize, among ``supportedOperatorTypes``.
    public var operatorTypes: Set<String>
    /// Weights with fewer elements stay in float: a tiny product gains nothing from int8.
    public var minimumWeightElements: Int
    /// Names of nodes to leave in float.
    public var excludedNodes: Set<String>

    /// Creates quantization options.
    ///
    /// - Parameters:
    ///   - perChannel: One scale per output column of each weight (`true`), or one per weight.
    ///   - operatorTypes: The operator types to quantize, among ``supportedOperatorTypes``.
    ///   - minimumWeightElements: Weights with fewer elements stay in float.
    ///   - excludedNodes: Names of nodes to leave in float.
    public init(
        perChannel: Bool = true, operatorTypes: Set<String> = supportedOperatorTypes,
        minimumWeightElements: Int = 0, excludedNodes: Set<String> = []
    ) {
        self.perChannel = perChannel
        self.operatorTypes = operatorTypes
        self.minimumWeightElements = minimumWeightElements
        self.excludedNodes = excludedNodes
    }
}

/// A model with int8 weights, made by ``Model/quantizedDynamically(options:)``, and what was done.
public struct QuantizedModel: Sendable {
    /// A node whose weight is now int8.
    public struct QuantizedNode: Sendable, Equatable {
        /// The node's name in the float model.
        public let name: String
        /// `MatMul` or `Gemm`.
        public let opType: String
        /// The float weight's initializer name.
        public let weight: String
        /// The weight as the integer product reads it: K × N.
        public let shape: [Int]
        /// Whether each output column has its own scale.
        public let perChannel: Bool
    }

    /// A node of a quantizable type left in float, and why.
    public struct SkippedNode: Sendable, Equatable {
        /// The node's name.
        public let name: String
        /// `MatMul` or `Gemm`.
        public let opType: String
        /// Why it stays in float.
        public let reason: String
    }

    /// The quantized model: the input model itself when nothing was quantized.
    public var model: Model
    /// The nodes quantized, in graph order.
    public var quantizedNodes: [QuantizedNode]
    /// The nodes of the chosen types left in float.
    public var skippedNodes: [SkippedNode]
    /// Other changes, such as a raised opset import.
    public var notes: [String]
    /// Bytes of the float weights replaced.
    public var floatWeightBytes: Int
    /// Bytes of the int8 weights, scales and zero points that replace them.
    public var quantizedWeightBytes: Int
}

extension Model {
    /// The model with int8 weights for its matrix products, its activations quantized as it runs,
    /// as onnxruntime's `quantize_dynamic` writes them: a standard ONNX model onnxruntime also runs.
    ///
    /// Each `MatMul` with a constant 2-D float weight B (K × N), and each `Gemm` with a constant B
    /// (transposed when `transB` is set; `alpha` folded into it, `beta` into C), becomes
    ///
    ///     DynamicQuantizeLinear(A) → Aq (uint8), As, Az
    ///     MatMulInteger(Aq, Bq, Az, Bz) → int32;  Cast(to: float);  Mul(·, As × Bs)  [Add(·, C)]
    ///
    /// with Bq = round(B / Bs) in int8, symmetric (Bz = 0), Bs = max|B| / 127 per output column
    /// (per weight without ``DynamicQuantizationOptions/perChannel``). One DynamicQuantizeLinear
    /// serves every product reading the same A. ``InferenceSession`` runs each such chain as one
    /// fused integer product.
    ///
    /// The `ai.onnx` opset import is raised to 11 (DynamicQuantizeLinear's) when lower, but only if
    /// no other node's operator changes meaning between the two versions.
    ///
    /// - Parameter options: Which nodes to quantize, and how.
    /// - Returns: The new model and the nodes quantized and skipped (with why). When nothing can be
    ///   quantized the model is returned unchanged and ``QuantizedModel/skippedNodes`` says why.
    /// - Throws: ``OnyxError`` `.invalidArgument` for options naming an operator type it cannot
    ///   quantize or a negative minimum, `.invalidModel` for a malformed graph, `.unsupportedOperator`
    ///   when the opset cannot be raised safely.
    public func quantizedDynamically(options: DynamicQuantizationOptions = DynamicQuantizationOptions()) throws -> QuantizedModel {
        let unknown = options.operatorTypes.subtracting(DynamicQuantizationOptions.supportedOperatorTypes)
        guard unknown.isEmpty else {
            throw OnyxError(.invalidArgument,
                            "cannot quantize operator type \(unknown.sorted().joined(separator: ", ")) dynamically; only MatMul and Gemm")
        }
        guard options.minimumWeightElements >= 0 else {
            throw OnyxError(.invalidArgument, "the minimum weight size must not be negative, not \(options.minimumWeightElements)")
        }
        try graph.validate(opsetImports: opsetImports)
        var quantizer = DynamicQuantizer(graph: graph, options: options)
        let (plans, skipped) = quantizer.plan()
        guard !plans.isEmpty else {
            return QuantizedModel(model: self, quantizedNodes: [], skippedNodes: skipped,
                                  notes: ["no MatMul or Gemm could be quantized: the model is unchanged"],
                                  floatWeightBytes: 0, quantizedWeightBytes: 0)
        }
        var model = self
        var notes: [String] = []
        let opset = opsetVersion(for: "") ?? 1
        if opset < DynamicQuantizer.requiredOpset {
            try DynamicQuantizer.checkOpsetRaise(graph, replaced: Set(plans.map(\.index)), from: opset)
            model.opsetImports["ai.onnx"] = nil
            model.opsetImports[""] = DynamicQuantizer.requiredOpset
            notes.append("raised the ai.onnx opset import from \(opset) to \(DynamicQuantizer.requiredOpset) (DynamicQuantizeLinear's)")
        }
        if model.irVersion < DynamicQuantizer.requiredIRVersion {
            notes.append("raised the IR version from \(model.irVersion) to \(DynamicQuantizer.requiredIRVersion) (opset 11's)")
            model.irVersion = DynamicQuantizer.requiredIRVersion
        }
        model.graph = quantizer.rewrite(plans)
        return QuantizedModel(
            model: model,
            quantizedNodes: plans.map {
                QuantizedModel.QuantizedNode(name: $0.node.name, opType: $0.node.opType, weight: $0.weight,
                                             shape: [$0.k, $0.n], perChannel: options.perChannel)
            },
            skippedNodes: skipped, notes: notes,
            floatWeightBytes: quantizer.floatWeightBytes, quantizedWeightBytes: quantizer.quantizedWeightBytes)
    }
}

/// The rewrite behind ``Model/quantizedDynamically(options:)``.
struct DynamicQuantizer {
    static let requiredOpset = 11
    static let requiredIRVersion = 6

    /// One node to quantize.
    struct Plan {
        let index: Int
        let node: Node
        /// The float weight's initializer name.
        let weight: String
        let k: Int, n: Int
        /// Gemm's `transB`: B is stored N × K.
        let transposed: Bool
        /// Gemm's `alpha`, folded into the weight.
        let alpha: Float
        /// What to add to the product: a bias initializer (already scaled by `beta`) or a value.
        let addend: Addend?
    }

    enum Addend {
        case constant(Tensor)
        case value(String)
    }

    private(set) var graph: Graph
    let options: DynamicQuantizationOptions
    private var usedNames: Set<String>
    private(set) var floatWeightBytes = 0
    private(set) var quantizedWeightBytes = 0

    init(graph: Graph, options: DynamicQuantizationOptions) {
        self.graph = graph
        self.options = options
        self.usedNames = graph.usedNames
    }

    /// The nodes to quantize, and the candidates left alone with why.
    func plan() -> ([Plan], [QuantizedModel.SkippedNode]) {
        let graphInputs = Set(graph.inputs.map(\.name))
        var initializers: [String: Tensor] = [:]
        for (name, tensor) in graph.initializers where !graphInputs.contains(name) { initializers[name] = tensor }
        var plans: [Plan] = []
        var skipped: [QuantizedModel.SkippedNode] = []
        for (index, node) in graph.nodes.enumerated()
        where node.domain.isEmpty && options.operatorTypes.contains(node.opType) {
            switch plan(node, index: index, initializers) {
            case .success(let plan): plans.append(plan)
            case .failure(let skip): skipped.append(QuantizedModel.SkippedNode(name: node.name, opType: node.opType, reason: skip.reason))
            }
        }
        return (plans, skipped)
    }

    private struct Skip: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private func plan(_ node: Node, index: Int, _ initializers: [String: Tensor]) -> Result<Plan, Skip> {
        if options.excludedNodes.contains(node.name) { return .failure(Skip("excluded by name")) }
        let isGemm = node.opType == "Gemm"
        guard node.inputs.count == 2 || isGemm && node.inputs.count == 3, node.outputs.count == 1,
              !node.inputs[0].isEmpty, !node.inputs[1].isEmpty
        else { return .failure(Skip("has \(node.inputs.count) inputs and \(node.outputs.count) outputs")) }
        let weightName = node.inputs[1]
        guard let weight = initializers[weightName] else {
            return .failure(Skip("its weight '\(weightName)' is not a constant initializer"))
        }
        guard weight.dataType == .float else { return .failure(Skip("its weight '\(weightName)' is \(weight.dataType), not float")) }
        guard weight.rank == 2 else {
            return .failure(Skip("its weight '\(weightName)' has shape \(shapeText(weight.shape)); only 2-D weights are quantized"))
        }
        guard weight.elementCount > 0 else { return .failure(Skip("its weight '\(weightName)' is empty")) }
        guard weight.elementCount >= options.minimumWeightElements else {
            return .failure(Skip("its weight has \(weight.elementCount) elements, fewer than the minimum of \(options.minimumWeightElements)"))
        }
        let finite = weight.withUnsafeBytes { raw in raw.bindMemory(to: Float.self).allSatisfy(\.isFinite) }
        guard finite else { return .failure(Skip("its weight '\(weightName)' holds an infinity or NaN")) }
        guard isGemm else {
            return .success(Plan(index: index, node: node, weight: weightName, k: weight.shape[0], n: weight.shape[1],
                                 transposed: false, alpha: 1, addend: nil))
        }
        func int(_ name: String) -> Int? {
            switch node.attributes[name] {
            case nil: 0
            case .int(let v)?: v
            default: nil
            }
        }
        func float(_ name: String) -> Float? {
            switch node.attributes[name] {
            case nil: 1
            case .float(let v)?: v
            case .int(let v)?: Float(v)
            default: nil
            }
        }
        guard let transA = int("transA"), let transB = int("transB"), let alpha = float("alpha"), let beta = float("beta"),
              node.attributes.keys.allSatisfy(["transA", "transB", "alpha", "beta"].contains)
        else { return .failure(Skip("has attributes other than transA, transB, alpha and beta, or of the wrong kind")) }
        guard transA == 0 else { return .failure(Skip("transA = \(transA): A is transposed")) }
        let (k, n) = transB != 0 ? (weight.shape[1], weight.shape[0]) : (weight.shape[0], weight.shape[1])
        var addend: Addend?
        if node.inputs.count == 3, !node.inputs[2].isEmpty, beta != 0 {
            let c = node.inputs[2]
            if let bias = initializers[c] {
                guard bias.dataType == .float else { return .failure(Skip("its C '\(c)' is \(bias.dataType), not float")) }
                if beta == 1 && bias.shape == [n] {
                    addend = .value(c)
                } else {
                guard let scaled = Self.bias(bias, beta: beta, n: n) else {
                    return .failure(Skip("its C '\(c)' of shape \(shapeText(bias.shape)) does not broadcast to [M, \(n)]"))
                }
                addend = .constant(scaled)
                }
            } else {
                guard beta == 1 else { return .failure(Skip("its C '\(c)' is not constant and beta = \(beta)")) }
                addend = .value(c)
            }
        }
        return .success(Plan(index: index, node: node, weight: weightName, k: k, n: n, transposed: transB != 0,
                             alpha: alpha, addend: addend))
    }

    /// Gemm's C times `beta`, as a bias of N values where it broadcasts along rows (the form
    /// Onyx fuses into the product), else in its own shape; `nil` if it cannot broadcast to M × N.
    static func bias(_ c: Tensor, beta: Float, n: Int) -> Tensor? {
        let values = (try? c.scalars(as: Float.self)) ?? []
        let shape = c.shape
        guard shape.count <= 2, shape.last.map({ $0 == 1 || $0 == n }) ?? true else { return nil }
        if shape.count == 2 && shape[0] != 1 {
            return try? Tensor(shape: shape, scalars: values.map { $0 * beta })
        }
        let row = c.elementCount == 1 ? [Float](repeating: values[0], count: n) : values
        return try? Tensor(shape: [n], scalars: row.map { $0 * beta })
    }

    // MARK: Rewriting

    private mutating func fresh(_ base: String) -> String { Graph.freshName(base, avoiding: &usedNames) }

    /// Unused names for the quantized form of `base`, its scale and its zero point, as onnxruntime names them.
    private mutating func quantizedNames(_ base: String) -> (q: String, scale: String, zeroPoint: String) {
        (fresh("\(base)_quantized"), fresh("\(base)_scale"), fresh("\(base)_zero_point"))
    }

    /// The graph with every planned node replaced by its integer chain.
    mutating func rewrite(_ plans: [Plan]) -> Graph {
        var replacements: [Int: [Node]] = [:]
        var quantizedActivations: [String: (q: String, scale: String, zeroPoint: String)] = [:]
        var quantizedWeights: [String: (q: String, scale: String, zeroPoint: String)] = [:]
        for plan in plans {
            var nodes: [Node] = []
            let a = plan.node.inputs[0]
            let activation: (q: String, scale: String, zeroPoint: String)
            if let existing = quantizedActivations[a] {
                activation = existing
            } else {
                activation = quantizedNames(a)
                quantizedActivations[a] = activation
                nodes.append(Node(name: fresh("\(a)_QuantizeLinear"), opType: "DynamicQuantizeLinear", inputs: [a],
                                  outputs: [activation.q, activation.scale, activation.zeroPoint]))
            }
            // The same float weight read the same way is quantized once.
            let weightKey = "\(plan.weight)\u{0}\(plan.transposed)\u{0}\(plan.alpha)"
            let weight: (q: String, scale: String, zeroPoint: String)
            if let existing = quantizedWeights[weightKey] {
                weight = existing
            } else {
                // onnxruntime's names: it turns such a Gemm into a MatMul reading "<B>_Transposed".
                let base = plan.transposed ? "\(plan.weight)_Transposed" : plan.weight
                weight = quantizedNames(base)
                quantizedWeights[weightKey] = weight
                let tensors = quantizeWeight(plan)
                graph.initializers += [(weight.q, tensors.q), (weight.scale, tensors.scale), (weight.zeroPoint, tensors.zeroPoint)]
                quantizedWeightBytes += tensors.q.byteCount + tensors.scale.byteCount + tensors.zeroPoint.byteCount
            }
            let name = plan.node.name, output = plan.node.outputs[0]
            let scales = fresh("\(name)_quant_scales_mul:0")
            let product = fresh("\(output)_output_quantized"), cast = fresh("\(output)_output_quantized_cast_output")
            let scaled = plan.addend == nil ? output : fresh("\(output)_unbiased")
            nodes += [
                Node(name: fresh("\(name)_quant_scales_mul"), opType: "Mul", inputs: [activation.scale, weight.scale], outputs: [scales]),
                Node(name: fresh("\(name)_quant"), opType: "MatMulInteger",
                     inputs: [activation.q, weight.q, activation.zeroPoint, weight.zeroPoint], outputs: [product]),
                Node(name: fresh("\(output)_output_quantized_cast"), opType: "Cast", inputs: [product], outputs: [cast],
                     attributes: ["to": .int(Int(DataType.float.rawValue))]),
                Node(name: fresh("\(name)_quant_output_scale_mul"), opType: "Mul", inputs: [cast, scales], outputs: [scaled]),
            ]
            switch plan.addend {
            case nil: break
            case .constant(let bias):
                let biasName = fresh("\(name)_bias")
                graph.initializers.append((biasName, bias))
                nodes.append(Node(name: fresh("\(name)_bias_add"), opType: "Add", inputs: [scaled, biasName], outputs: [output]))
            case .value(let c):
                nodes.append(Node(name: fresh("\(name)_bias_add"), opType: "Add", inputs: [scaled, c], outputs: [output]))
            }
            replacements[plan.index] = nodes
        }
        graph.nodes = graph.nodes.enumerated().flatMap { index, node in replacements[index] ?? [node] }
        // The float weights and biases nothing reads any more; other initializers stay as they were.
        let uses = GraphUses(graph)
        let replaced = Set(plans.flatMap { $0.node.inputs.dropFirst() })
        let unread = replaced.filter { uses.consumers[$0] == nil && !uses.graphOutputs.contains($0) }
        floatWeightBytes = graph.initializers.filter { unread.contains($0.name) && Set(plans.map(\.weight)).contains($0.name) }
            .reduce(0) { $0 + $1.tensor.byteCount }
        graph.initializers.removeAll { unread.contains($0.name) }
        return graph
    }

    /// B (K × N after `transB`, times `alpha`) as int8 with its scales and (zero) zero points, as
    /// onnxruntime's quantizer computes them: scale = max|B| / 127 over each column (or all of B)
    /// in double, stored as float; q = round-half-to-even(B / scale) in float, clamped to int8.
    func quantizeWeight(_ plan: Plan) -> (q: Tensor, scale: Tensor, zeroPoint: Tensor) {
        let (k, n) = (plan.k, plan.n)
        let weight = graph.initializers.first { $0.name == plan.weight }!.tensor
        var q = Tensor(uninitialized: .int8, shape: [k, n])
        let groups = options.perChannel ? n : 1
        var scales = [Float](repeating: 1, count: groups)
        weight.withUnsafeBytes { raw in
            let b = raw.bindMemory(to: Float.self)
            // Element (row, column) of the K × N matrix the product reads.
            let stride = plan.transposed ? (row: 1, column: k) : (row: n, column: 1)
            let alpha = plan.alpha
            var absMax = [Float](repeating: 0, count: groups)
            for row in 0..<k {
                for column in 0..<n {
                    let magnitude = abs(b[row * stride.row + column * stride.column] * alpha)
                    let group = groups == 1 ? 0 : column
                    absMax[group] = max(absMax[group], magnitude)
                }
            }
            for group in 0..<groups {
                let scale = Double(absMax[group]) / 127
                // As onnxruntime: a range too small for a normal float scale gets scale 1.
                scales[group] = scale < Double(Float.leastNormalMagnitude) ? 1 : Float(scale)
            }
            q.withUnsafeMutableBytes { out in
                let values = out.bindMemory(to: Int8.self)
                for row in 0..<k {
                    for column in 0..<n {
                        let x = b[row * stride.row + column * stride.column] * alpha
                        let rounded = (x / scales[groups == 1 ? 0 : column]).rounded(.toNearestOrEven)
                        values[row * n + column] = Int8(min(max(rounded, -128), 127))
                    }
                }
            }
        }
        let shape = options.perChannel ? [n] : []
        return (q, try! Tensor(shape: shape, scalars: scales), try! Tensor(shape: shape, scalars: [Int8](repeating: 0, count: groups)))
    }

    /// Refuses to raise the `ai.onnx` opset from `opset` to 11 if some remaining node's operator
    /// changes between the two versions (Clip's bounds became inputs at 11, for one).
    static func checkOpsetRaise(_ graph: Graph, replaced: Set<Int>, from opset: Int) throws {
        func check(_ nodes: [Node]) throws {
            for node in nodes where node.domain.isEmpty {
                let before = OperatorRegistry.registration(domain: "", opType: node.opType, opset: opset)
                let after = OperatorRegistry.registration(domain: "", opType: node.opType, opset: requiredOpset)
                guard let before, let after, before.versions == after.versions else {
                    throw OnyxError(.unsupportedOperator,
                        "the model imports ai.onnx opset \(opset); int8 products need opset \(requiredOpset), and raising it "
                            + "changes or cannot check node '\(node.name)' (\(node.opType)): convert the model to opset "
                            + "\(requiredOpset) or later first (onnx.version_converter, or export at a newer opset)")
                }
                for attribute in node.attributes.values {
                    switch attribute {
                    case .graph(let subgraph): try check(subgraph.nodes)
                    case .graphs(let subgraphs): for subgraph in subgraphs { try check(subgraph.nodes) }
                    default: break
                    }
                }
            }
        }
        try check(graph.nodes.enumerated().filter { !replaced.contains($0.offset) }.map(\.element))
    }
}
