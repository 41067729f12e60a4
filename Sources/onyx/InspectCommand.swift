import ArgumentParser
import Foundation
import Onyx

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model without running it: producer, opsets, inputs, outputs, operators.")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Flag(help: "Also prepare a session and list the operators it runs, each with the file's nodes it fused.")
    var prepared = false

    @Flag(help: "With --prepared: list every node the session runs, not only the totals per fused pattern.")
    var steps = false

    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
        try reportingErrors {
            let decoded = try Model(contentsOf: model)
            print(Self.report(decoded, path: model))
            let unsupported = decoded.unsupportedNodes
            if !unsupported.isEmpty { throw ExitCode(2) }
            if prepared || steps {
                let options = try modelOptions.sessionOptions()
                let session = try InferenceSession(model: decoded, options: options)
                print(Self.preparedReport(session, listingSteps: steps))
            }
        }
    }

    static func report(_ model: Model, path: String) -> String {
        var lines: [String] = []
        let producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        lines.append("model:     \(path)")
        lines.append("producer:  \(producer.isEmpty ? "(none)" : producer)")
        lines.append("ir:        \(model.irVersion)")
        let opsets = model.opsetImports.sorted { $0.key < $1.key }
            .map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }.joined(separator: ", ")
        lines.append("opsets:    \(opsets)")
        if !model.docString.isEmpty { lines.append("doc:       \(model.docString)") }
        for (key, value) in model.metadata.sorted(by: { $0.key < $1.key }) {
            lines.append("metadata:  \(key) = \(value)")
        }
        lines.append("inputs:")
        for value in model.graph.inputs { lines.append("  \(value.name): \(value.type?.description ?? "?")") }
        lines.append("outputs:")
        for value in model.graph.outputs { lines.append("  \(value.name): \(value.type?.description ?? "?")") }

        let parameters = model.parameterCount
        lines.append("parameters: \(parameters.elements) (\(parameters.bytes) bytes)")
        var histogram: [String: Int] = [:]
        for node in model.graph.nodes {
            let key = node.domain.isEmpty || node.domain == "ai.onnx" ? node.opType : "\(node.domain).\(node.opType)"
            histogram[key, default: 0] += 1
        }
        lines.append("operators: \(model.graph.nodes.count) nodes")
        for (op, count) in histogram.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }) {
            lines.append("  \(op) × \(count)")
        }
        lines += quantizationReport(model)
        let unsupported = model.unsupportedNodes
        if unsupported.isEmpty {
            lines.append("unsupported: none")
        } else {
            lines.append("unsupported: \(unsupported.count)")
            for entry in unsupported { lines.append("  \(entry)") }
        }
        return lines.joined(separator: "\n")
    }

    /// Where each quantized operator keeps its constant integer weight and the scale (or zero
    /// point) that says per tensor or per channel.
    static let quantizedWeightInputs: [String: (weight: Int, scale: Int)] = [
        "MatMulInteger": (1, 3), "ConvInteger": (1, 3), "QLinearMatMul": (3, 4), "QLinearConv": (3, 4),
        "DequantizeLinear": (0, 1), "MatMulIntegerToFloat": (1, 3), "DynamicQuantizeMatMul": (1, 2), "QGemm": (3, 4),
    ]

    /// Operators that take or make quantized values.
    static func isQuantized(opType: String) -> Bool {
        quantizedWeightInputs[opType] != nil || opType.hasPrefix("QLinear") || opType.hasPrefix("Dynamic")
            || ["QuantizeLinear", "QGemm"].contains(opType)
    }

    /// The quantized nodes of the file: how many of each operator, and each integer weight with
    /// its type, shape and granularity. Empty for a float model.
    static func quantizationReport(_ model: Model) -> [String] {
        let nodes = model.graph.nodes.filter { isQuantized(opType: $0.opType) }
        guard !nodes.isEmpty else { return [] }
        var initializers: [String: Tensor] = [:]
        for (name, tensor) in model.graph.initializers { initializers[name] = tensor }
        let counts = Dictionary(grouping: nodes, by: \.opType).sorted { $0.key < $1.key }
            .map { "\($0.key) × \($0.value.count)" }.joined(separator: ", ")
        var lines = ["quantized: \(nodes.count) nodes (\(counts))"]
        for node in nodes {
            guard let positions = quantizedWeightInputs[node.opType], positions.weight < node.inputs.count,
                  let weight = initializers[node.inputs[positions.weight]], [.int8, .uint8, .int4, .uint4].contains(weight.dataType)
            else { continue }
            let scale = positions.scale < node.inputs.count ? initializers[node.inputs[positions.scale]] : nil
            let granularity = scale.map { $0.elementCount > 1 ? "per channel (\($0.elementCount))" : "per tensor" } ?? "scale computed"
            lines.append("  \(node.name): \(node.opType) weight \(node.inputs[positions.weight]) \(weight.dataType)\(shapeText(weight.shape)), \(granularity)")
        }
        return lines
    }

    /// The operators the session runs after optimization, grouped by the file's nodes each fused
    /// (every step with `listingSteps`).
    static func preparedReport(_ session: InferenceSession, listingSteps: Bool) -> String {
        let prepared = session.preparedNodes
        func label(_ opType: String, _ domain: String) -> String { domain.isEmpty ? opType : "\(opType) (\(domain))" }
        func fused(_ node: InferenceSession.PreparedNode) -> String {
            let own = node.absorbed.count == 1 && node.absorbed[0].opType == node.opType && node.absorbed[0].domain == node.domain
            if own { return "" }
            if node.absorbed.isEmpty { return "  (added by the optimizer)" }
            return "  ← " + node.absorbed.map(\.opType).joined(separator: " + ")
        }
        let absorbedCount = prepared.reduce(0) { $0 + $1.absorbed.count }
        let fileNodes = session.model.graph.nodes.count
        var lines = ["prepared (optimization \(session.options.optimizationLevel.rawValue), isa \(session.options.isa.rawValue)): "
                     + "\(fileNodes) nodes → \(prepared.count) run"
                     + (absorbedCount < fileNodes ? ", \(fileNodes - absorbedCount) removed or folded at load" : "")]
        var groups: [String: Int] = [:], order: [String] = []
        for node in prepared {
            let key = label(node.opType, node.domain) + fused(node)
            if groups[key] == nil { order.append(key) }
            groups[key, default: 0] += 1
        }
        for key in order.sorted(by: { (groups[$1]!, $0) < (groups[$0]!, $1) }) { lines.append("  \(groups[key]!) × \(key)") }
        if listingSteps {
            lines.append("steps:")
            for node in prepared {
                var line = "  \(node.name): \(label(node.opType, node.domain))"
                if !fused(node).isEmpty && !node.absorbed.isEmpty {
                    line += " ← " + node.absorbed.map { "\($0.name) (\($0.opType))" }.joined(separator: ", ")
                }
                lines.append(line)
            }
        }
        return lines.joined(separator: "\n")
    }
}
