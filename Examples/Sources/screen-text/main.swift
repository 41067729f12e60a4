// Screens raw request lines with the text screener (Fixtures/screener/model.onnx: TF-IDF over
// words and character n-grams, then logistic regression, exported from scikit-learn). Reads one
// request line per line of a file (or standard input with `-`), scores them all in one run, and
// prints the malicious probability and allow/block per line.
//
//     swift run --package-path Examples screen-text [FILE|-] [MODEL] [--threshold 0.5]

import Foundation
import Onyx

let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

var positional: [String] = []
var threshold = 0.5
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    if argument == "--threshold" {
        guard let text = arguments.popFirst(), let value = Double(text), (0...1).contains(value) else {
            FileHandle.standardError.write(Data("screen-text: --threshold needs a number between 0 and 1\n".utf8))
            exit(2)
        }
        threshold = value
    } else {
        positional.append(argument)
    }
}
let linesPath = positional.first ?? repositoryRoot.appendingPathComponent("Examples/requests.txt").path
let modelPath = positional.count > 1 ? positional[1] : repositoryRoot.appendingPathComponent("Fixtures/screener/model.onnx").path

do {
    let data = linesPath == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: linesPath)
    guard let data, let text = String(data: data, encoding: .utf8) else { throw UsageError("cannot read \(linesPath) as UTF-8 text") }
    let lines = text.split(separator: "\n").map(String.init).filter { !$0.isEmpty && !$0.hasPrefix("#") }
    guard !lines.isEmpty else { throw UsageError("\(linesPath) holds no request lines") }

    let session = try InferenceSession(contentsOf: modelPath)
    // The screener takes a [N, 1] string tensor and returns labels and [N, 2] probabilities.
    let requests = try Tensor(strings: lines, shape: [lines.count, 1])
    let outputs = try session.run(["request": requests])
    guard let probabilities = try outputs["probabilities"]?.scalars(as: Float.self) else {
        throw UsageError("the model has no 'probabilities' output")
    }
    var blocked = 0
    for (row, line) in lines.enumerated() {
        let malicious = Double(probabilities[row * 2 + 1])
        let verdict = malicious >= threshold ? "block" : "allow"
        if malicious >= threshold { blocked += 1 }
        print("\(verdict)  \(String(format: "%.3f", malicious))  \(line)")
    }
    print("\(blocked) of \(lines.count) blocked at threshold \(threshold)")
} catch {
    FileHandle.standardError.write(Data("screen-text: \(error)\n".utf8))
    exit(1)
}
