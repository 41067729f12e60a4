// Screens requests offline: reads a CSV of feature rows (64 floats each, the input of
// Fixtures/mlp_legacy/model.onnx), scores them all in one run, prints allow/block per row.
//
//     swift run --package-path Examples screen-requests [CSV] [MODEL] [--threshold 0.5]
//
// Lines starting with `#` and blank lines are skipped. The model returns two logits per row
// (allow, block); the score is the softmax probability of "block".

import Foundation
import Onyx

/// The repository's root, found from this file's location, for the default paths.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

struct Arguments {
    var csvPath = repositoryRoot.appendingPathComponent("Examples/requests.csv").path
    var modelPath = repositoryRoot.appendingPathComponent("Fixtures/mlp_legacy/model.onnx").path
    var threshold = 0.5

    init(_ arguments: [String]) throws {
        var positional: [String] = []
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            if argument == "--threshold" {
                guard let text = rest.popFirst(), let value = Double(text), (0...1).contains(value) else {
                    throw UsageError("--threshold needs a number between 0 and 1")
                }
                threshold = value
            } else {
                positional.append(argument)
            }
        }
        guard positional.count <= 2 else { throw UsageError("usage: screen-requests [CSV] [MODEL] [--threshold T]") }
        if positional.count > 0 { csvPath = positional[0] }
        if positional.count > 1 { modelPath = positional[1] }
    }
}

struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Reads the CSV's rows, checking each has `width` finite numbers.
func readRows(_ path: String, width: Int) throws -> (lines: [Int], values: [Float]) {
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
        throw UsageError("cannot read \(path)")
    }
    var lines: [Int] = []
    var values: [Float] = []
    for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
        let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false)
        guard fields.count == width else {
            throw UsageError("\(path):\(index + 1): \(fields.count) fields, the model takes \(width)")
        }
        for field in fields {
            guard let value = Float(field.trimmingCharacters(in: .whitespaces)), value.isFinite else {
                throw UsageError("\(path):\(index + 1): '\(field)' is not a number")
            }
            values.append(value)
        }
        lines.append(index + 1)
    }
    return (lines, values)
}

do {
    let arguments = try Arguments(Array(CommandLine.arguments.dropFirst()))
    let session = try InferenceSession(contentsOf: arguments.modelPath, options: SessionOptions(threadCount: 1))

    // The model's metadata says how wide a row is: input [batch, 64] → output [batch, 2].
    guard session.inputs.count == 1, let shape = session.inputs[0].type?.shape, shape.rank == 2,
          case .fixed(let width) = shape.dimensions[1] else {
        throw UsageError("\(arguments.modelPath): expected one [batch, N] input")
    }
    let input = session.inputs[0], output = session.outputs[0]
    print("model: \(input.name) \(input.type.map { "\($0)" } ?? "?") → \(output.name) \(output.type.map { "\($0)" } ?? "?")")

    let (lines, values) = try readRows(arguments.csvPath, width: width)
    guard !lines.isEmpty else { throw UsageError("\(arguments.csvPath) has no rows") }

    // All rows in one run: the batch axis is symbolic, so any row count is accepted.
    let features = try Tensor(shape: [lines.count, width], scalars: values)
    let outputs = try session.run([input.name: features])
    guard let logits = try outputs[output.name]?.scalars(as: Float.self), logits.count == 2 * lines.count else {
        throw UsageError("the model did not return two logits per row")
    }

    var blocked = 0
    for (row, line) in lines.enumerated() {
        let allow = Double(logits[2 * row]), block = Double(logits[2 * row + 1])
        let score = 1 / (1 + exp(allow - block))
        let decision = score >= arguments.threshold ? "block" : "allow"
        if decision == "block" { blocked += 1 }
        print("line \(line): \(decision)  score \(String(format: "%.4f", score))")
    }
    print("\(lines.count) requests, \(blocked) blocked (threshold \(arguments.threshold))")
} catch let error as OnyxError {
    FileHandle.standardError.write(Data("screen-requests: \(error.code): \(error.message)\n".utf8))
    exit(1)
} catch {
    FileHandle.standardError.write(Data("screen-requests: \(error)\n".utf8))
    exit(1)
}
