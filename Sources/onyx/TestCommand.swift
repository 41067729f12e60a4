import ArgumentParser
import Foundation
import Onyx
import OnyxConformance

/// `onyx test DIR...`: runs ONNX backend-style test cases and reports every failure.
struct TestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run ONNX backend test cases (model.onnx + test_data_set_N folders) and compare outputs.",
        discussion: """
            Each folder holding a model.onnx is a case; folders are searched recursively. Float outputs \
            pass when |expected - actual| <= atol + rtol * |expected|; integer and bool outputs must be \
            equal. Generate ONNX's node suite with: python3 tools/gen-node-tests.py Generated/node
            """)

    @Argument(help: "Case folders, or folders holding them.")
    var directories: [String]

    @Option(help: "Relative tolerance.")
    var rtol: Double = 1e-3

    @Option(help: "Absolute tolerance.")
    var atol: Double = 1e-5

    @Option(help: "Per-case tolerances: lines of 'case_name rtol atol'.")
    var tolerances: String?

    @Option(help: "Run only cases whose name contains this text.")
    var filter: String?

    @Option(help: "Write the names of the passing cases to this file, one per line.")
    var passList: String?

    @Flag(help: "Print one JSON object with every case's outcome instead of text.")
    var json = false

    @Option(help: "Threads per run.")
    var threads: Int = 1

    func run() throws {
        try reportingErrors {
            var suite = ConformanceSuite(
                defaultTolerance: .init(rtol: rtol, atol: atol),
                sessionOptions: SessionOptions(threadCount: threads))
            if let tolerances { suite.overrides = try ConformanceSuite.readOverrides(tolerances) }
            var folders = try directories.flatMap { try ConformanceSuite.caseFolders(under: $0) }
            if let filter { folders = folders.filter { ($0 as NSString).lastPathComponent.contains(filter) } }

            let progress = ProgressLine(total: folders.count)
            var outcomes: [ConformanceSuite.Outcome] = []
            for folder in folders {
                progress.update(done: outcomes.count, current: (folder as NSString).lastPathComponent)
                let outcome = suite.run(caseAt: folder)
                outcomes.append(outcome)
                if !json, outcome.status == .failed {
                    progress.clear()
                    print("FAIL \(outcome.name): \(outcome.reason ?? "")")
                }
            }
            progress.clear()

            let passed = outcomes.filter { $0.status == .passed }
            if let passList {
                let text = passed.map(\.name).joined(separator: "\n") + "\n"
                try text.write(toFile: passList, atomically: true, encoding: .utf8)
            }
            if json {
                let object: [String: Any] = [
                    "passed": passed.count,
                    "failed": outcomes.count - passed.count,
                    "cases": outcomes.map { outcome -> [String: Any] in
                        var entry: [String: Any] = ["name": outcome.name, "status": outcome.status.rawValue,
                                                    "operators": outcome.operators,
                                                    "operator_input_types": outcome.operatorInputTypes]
                        if let reason = outcome.reason { entry["reason"] = reason }
                        return entry
                    },
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("\(passed.count) passed, \(outcomes.count - passed.count) failed")
            }
            if passed.count != outcomes.count { throw ExitCode(1) }
        }
    }
}

/// A `[k/n] name` line on standard error, redrawn in place on a terminal and printed every
/// 100 cases otherwise.
struct ProgressLine {
    let total: Int
    private let isTerminal = isatty(STDERR_FILENO) != 0

    init(total: Int) { self.total = total }

    func update(done: Int, current: String) {
        if isTerminal {
            FileHandle.standardError.write(Data("\r\u{1B}[K[\(done)/\(total)] \(current)".utf8))
        } else if done % 100 == 0 {
            FileHandle.standardError.write(Data("[\(done)/\(total)] \(current)\n".utf8))
        }
    }

    func clear() {
        if isTerminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
