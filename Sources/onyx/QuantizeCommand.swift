import ArgumentParser
import Foundation
import Onyx

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a copy of a model with int8 weights for its MatMul and Gemm nodes.",
        discussion: """
            --dynamic (the only mode): weights become int8 (symmetric, one scale per output column \
            unless --per-tensor), activations are quantized to uint8 as the model runs \
            (DynamicQuantizeLinear → MatMulInteger → Cast → Mul), as onnxruntime.quantization.quantize_dynamic \
            writes them: the file is standard ONNX that onnxruntime also runs, and Onyx runs each chain \
            as one integer product. Prints what was quantized and what was left in float, and why. \
            Exits 1 without writing when nothing can be quantized.
            """)

    @Flag(help: "Quantize weights ahead and activations at run time (required: static quantization is not supported).")
    var dynamic = false

    @Argument(help: "The float ONNX model.")
    var input: String

    @Argument(help: "Where to write the quantized model (may be the input itself).")
    var output: String

    @Flag(help: "One scale per weight instead of one per output column.")
    var perTensor = false

    @Option(name: .customLong("op-types"), help: "Operator types to quantize, comma-separated: MatMul, Gemm.")
    var operatorTypes = "MatMul,Gemm"

    @Option(name: .customLong("min-weight-elements"), help: "Leave weights with fewer elements in float.")
    var minimumWeightElements = 0

    @Option(name: .customLong("exclude"), help: "A node name to leave in float (repeatable).")
    var excludedNodes: [String] = []

    func run() throws {
        try reportingErrors {
            guard dynamic else {
                throw CommandLineInputError("give --dynamic: only dynamic quantization is supported (static needs calibration data)")
            }
            let options = DynamicQuantizationOptions(
                perChannel: !perTensor,
                operatorTypes: Set(operatorTypes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }),
                minimumWeightElements: minimumWeightElements,
                excludedNodes: Set(excludedNodes))
            let result = try Model(contentsOf: input).quantizedDynamically(options: options)
            print(Self.report(result))
            guard !result.quantizedNodes.isEmpty else {
                throw CommandLineInputError("nothing to quantize in '\(input)': no file written")
            }
            try result.model.write(to: output)
            print("wrote \(output)")
        }
    }

    static func report(_ result: QuantizedModel) -> String {
        var lines: [String] = []
        let byType = Dictionary(grouping: result.quantizedNodes, by: \.opType).sorted { $0.key < $1.key }
            .map { "\($0.key) × \($0.value.count)" }.joined(separator: ", ")
        lines.append("quantized: \(result.quantizedNodes.count) nodes\(byType.isEmpty ? "" : " (\(byType))")")
        if !result.quantizedNodes.isEmpty {
            func megabytes(_ bytes: Int) -> String { String(format: "%.2f MB", Double(bytes) / 1e6) }
            lines.append("weights:   \(megabytes(result.floatWeightBytes)) float → \(megabytes(result.quantizedWeightBytes)) int8 with scales")
        }
        for node in result.quantizedNodes {
            lines.append("  \(node.name) (\(node.opType)): \(node.weight) \(node.shape[0])×\(node.shape[1]) int8, "
                         + (node.perChannel ? "per column" : "per tensor"))
        }
        if !result.skippedNodes.isEmpty {
            lines.append("left in float: \(result.skippedNodes.count)")
            for node in result.skippedNodes { lines.append("  \(node.name) (\(node.opType)): \(node.reason)") }
        }
        for note in result.notes { lines.append("note: \(note)") }
        return lines.joined(separator: "\n")
    }
}
