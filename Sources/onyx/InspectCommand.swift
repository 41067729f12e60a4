import ArgumentParser
import Foundation
import Onyx

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model without running it: producer, opsets, inputs, outputs, operators.")

    @Argument(help: "The ONNX model file.")
    var model: String

    func run() throws {
        try reportingErrors {
            let decoded = try Model(contentsOf: model)
            print(Self.report(decoded, path: model))
            let unsupported = decoded.unsupportedNodes
            if !unsupported.isEmpty { throw ExitCode(2) }
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
        let unsupported = model.unsupportedNodes
        if unsupported.isEmpty {
            lines.append("unsupported: none")
        } else {
            lines.append("unsupported: \(unsupported.count)")
            for entry in unsupported { lines.append("  \(entry)") }
        }
        return lines.joined(separator: "\n")
    }
}
