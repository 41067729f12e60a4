import OnyxCore
import OnyxIR
import OnyxKernels
import OnyxOperators

/// The graph as the executor sees it: values numbered, nodes in topological order with their
/// kernels prepared, and everything computable from constants already computed.
///
/// Built once per session; shared by every plan and run.
struct ExecutableGraph: Sendable {
    /// One prepared node.
    struct Step: Sendable {
        let name: String
        let opType: String
        /// The operator's domain, canonical ("" for ai.onnx).
        let domain: String
        let kernel: any Kernel
        /// Value id per node input; `nil` for an omitted optional input.
        let inputs: [Int?]
        /// Value id per node output; `nil` for an omitted optional output.
        let outputs: [Int?]
    }

    /// Value names by id.
    let valueNames: [String]
    /// Constant values by id: initializers, Constant nodes and everything folded from them.
    let constants: [Tensor?]
    /// The table every string constant's handles index; each run's table extends it.
    let strings: StringTable
    /// Ids of the graph inputs the caller supplies, in declaration order.
    let inputIds: [Int]
    /// Ids of the graph outputs, in declaration order.
    let outputIds: [Int]
    /// The nodes left to run, in topological order.
    let steps: [Step]

    var valueCount: Int { valueNames.count }

    /// The values steps `start...` read, and the graph outputs: what must outlive the steps
    /// before `start`. Ascending ids.
    func valuesRead(from start: Int) -> [Int] {
        var read = Set(outputIds)
        for step in steps[start...] { for case let id? in step.inputs { read.insert(id) } }
        return read.sorted()
    }

    /// Prepares `graph` for execution.
    ///
    /// - Parameters:
    ///   - graph: A validated graph.
    ///   - opsetImports: The model's opset imports.
    ///   - isa: The micro-kernel variant kernels are prepared for.
    init(graph: Graph, opsetImports: [String: Int], isa: KernelISA) throws {
        var ids: [String: Int] = [:]
        var names: [String] = []
        func id(_ name: String) -> Int {
            if let existing = ids[name] { return existing }
            ids[name] = names.count
            names.append(name)
            return names.count - 1
        }

        let strings = StringTable()
        var constants: [Int: Tensor] = [:]
        for (name, tensor) in graph.initializers { constants[id(name)] = try tensor.rebased(into: strings) }
        let inputIds = graph.inputs.map { id($0.name) }
        for node in graph.nodes {
            for name in node.inputs + node.implicitInputs where !name.isEmpty { _ = id(name) }
            for name in node.outputs where !name.isEmpty { _ = id(name) }
        }
        let outputIds = graph.outputs.map { id($0.name) }

        let pool = ComputePool(threadCount: 1)
        var steps: [Step] = []
        for node in try graph.topologicallySortedNodes() {
            let opset = try Self.opset(of: node, in: opsetImports)
            guard let registration = OperatorRegistry.registration(
                domain: node.domain, opType: node.opType, opset: opset)
            else {
                throw OnyxError.unsupportedOperator(node: node, opset: opset)
            }
            // Only the recurrent ops may leave out their first output (ONNX marks no other optional).
            if node.outputs.first?.isEmpty == true && !Self.optionalFirstOutput.contains(node.opType) {
                throw OnyxError.invalidModel("node '\(node.name)' (\(node.opType)) leaves out its first output, which is required")
            }
            // A subgraph's reads from this graph follow the node's own inputs.
            let inputs: [Int?] = (node.inputs + node.implicitInputs).map { $0.isEmpty ? nil : ids[$0] }
            let outputs: [Int?] = node.outputs.map { $0.isEmpty ? nil : ids[$0] }
            let constantInputs = inputs.map { $0.flatMap { constants[$0] } }
            // Kernels read constant inputs (packing weights) as they are made.
            try OperatorRegistry.checkElementTypes(
                domain: node.domain, opType: node.opType, nodeName: node.name, constantInputs.map { $0?.dataType })
            let kernel = try Self.annotating(node) {
                try registration.make(NodeContext(
                    node: node, opset: opset, constantInputs: constantInputs, isa: isa, opsetImports: opsetImports,
                    subgraphs: SessionSubgraphCompiler()))
            }

            var foldable = zip(inputs, constantInputs).allSatisfy { id, value in id == nil || value != nil }
                && !Self.nondeterministicOps.contains(node.opType)
            if foldable {
                // Sequences, maps and optionals live in a run's value store: made in each run.
                let planned = constantInputs.map { $0.map { PlannedInput(descriptor: TensorDescriptor($0.dataType, $0.shape), constant: $0) } }
                foldable = try !Self.annotating(node) { try kernel.outputDescriptors(for: planned) }.contains { $0.container != nil }
            }
            if foldable {
                let values = try Self.annotating(node) { try kernel.evaluate(inputs: constantInputs, pool: pool, strings: strings) }
                try OperatorRegistry.checkElementTypes(
                    domain: node.domain, opType: node.opType, nodeName: node.name, values.map(\.dataType))
                for (output, value) in zip(outputs, values) {
                    if let output { constants[output] = value }
                }
                continue
            }
            steps.append(Step(name: node.name, opType: node.opType, domain: Model.canonicalDomain(node.domain), kernel: kernel,
                              inputs: inputs, outputs: outputs))
        }

        self.valueNames = names
        self.strings = strings
        self.constants = names.indices.map { constants[$0] }
        self.inputIds = inputIds
        self.outputIds = outputIds
        self.steps = steps
    }

    /// Ops whose output 0 is optional in every opset.
    static let optionalFirstOutput: Set<String> = ["LSTM", "GRU", "RNN"]

    /// Ops whose result must not be computed ahead of a run.
    static let nondeterministicOps: Set<String> = [
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
    ]

    static func opset(of node: Node, in imports: [String: Int]) throws -> Int {
        let domain = Model.canonicalDomain(node.domain)
        if let version = imports[domain] ?? (domain.isEmpty ? imports["ai.onnx"] : nil) { return version }
        // The optimizer's own operators need no import.
        if [NchwcFormat.domain, QuantizedNhwc.domain, QuantizedLookupTable.domain].contains(domain) { return 1 }
        // com.microsoft products the optimizer makes of quantize_dynamic's chains (IntegerMatMulFusion):
        // a model's own com.microsoft nodes were checked against its imports before optimizing.
        // and of QDQ groups (QdqFusion).
        if domain == "com.microsoft"
            && ["MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool", "QGemm",
                "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool", "QLinearSoftmax", "QLinearConcat"]
                .contains(node.opType) { return 1 }
        throw OnyxError.invalidModel(
            "missing opset import for domain '\(domain.isEmpty ? "ai.onnx" : domain)' used by node '\(node.name)'")
    }

    /// Runs `body`, prefixing any Onyx error with the node it concerns.
    static func annotating<T>(_ node: Node, _ body: () throws -> T) throws -> T {
        try annotating(name: node.name, opType: node.opType, body)
    }

    static func annotating<T>(_ step: Step, _ body: () throws -> T) throws -> T {
        try annotating(name: step.name, opType: step.opType, body)
    }

    private static func annotating<T>(name: String, opType: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as OnyxError {
            throw error.annotated(nodeName: name, opType: opType)
        }
    }
}

extension OnyxError {
    /// The same error with "at node 'n' (Op): " in front, unless the message already names the node.
    func annotated(nodeName: String, opType: String) -> OnyxError {
        if message.contains("node '\(nodeName)'") { return self }
        return OnyxError(code, "at node '\(nodeName)' (\(opType)): \(message)")
    }
}
