import ArgumentParser
import Foundation
import Onyx

/// `onyx operators`: the operator table, optionally with node-suite results (docs/operators.md).
struct OperatorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operators",
        abstract: "List the implemented operators as a Markdown table.",
        discussion: """
            With --results (the output of `onyx test DIR --json`), adds per operator the node-suite \
            cases that use it, how many pass, and the input element types those passing cases exercise. \
            tools/gen-operators-doc.sh writes docs/operators.md this way.
            """)

    @Option(help: "A results file written by `onyx test DIR --json`.")
    var results: String?

    /// A case Onyx fails knowingly: its name starts with `prefix` and contains `mentioning`.
    struct KnownFailure {
        var prefix: String
        var mentioning = ""
        var why: String

        func matches(_ caseName: String) -> Bool {
            caseName.hasPrefix(prefix) && (mentioning.isEmpty || caseName.contains(mentioning))
        }
    }

    static let knownFailures: [KnownFailure] = [
        KnownFailure(prefix: "test_bernoulli", why: "random draws: the expected outputs come from NumPy's generator, which the spec leaves unspecified"),
        KnownFailure(prefix: "test_training_dropout", why: "random draws: the expected mask comes from NumPy's generator, which the spec leaves unspecified"),
        KnownFailure(prefix: "test_image_decoder", why: "ImageDecoder: decoding JPEG, PNG, BMP, TIFF, WebP and JPEG 2000 needs image codecs Onyx does not bundle"),
        KnownFailure(prefix: "test_cast", mentioning: "FLOAT4E2M1", why: "NaN cast to float4e2m1: ONNX's float4 note and onnxruntime's conversion give +6, the test data (ml_dtypes) −0; Onyx follows the note"),
    ]

    /// A failure reason without the case-specific parts: the unsupported type or operator, or
    /// the kind of mismatch; for a case failed knowingly, why.
    static func category(of reason: String, caseName: String = "") -> String {
        if let known = knownFailures.first(where: { $0.matches(caseName) }) {
            return known.why
        }
        if let range = reason.range(of: #"has data type [^,]+, which Onyx does not support"#, options: .regularExpression) {
            return "element type not supported: " + reason[range]
                .replacingOccurrences(of: "has data type ", with: "")
                .replacingOccurrences(of: ", which Onyx does not support", with: "")
        }
        if let range = reason.range(of: #"unsupported operator \w+ \([^,]+"#, options: .regularExpression) {
            return String(reason[range]) + ")"
        }
        if reason.contains("is not a tensor Onyx reads") { return "sequence, map or optional values (not supported)" }
        if reason.contains("max error") { return "values differ beyond tolerance" }
        return String(reason.prefix(120))
    }

    func run() throws {
        try reportingErrors {
            var used: [String: (passed: Int, total: Int, types: Set<String>)] = [:]
            var direct: [String: (passed: Int, total: Int)] = [:]
            var summary = ""
            var failures: [String: [String]] = [:]
            if let results {
                guard let data = FileManager.default.contents(atPath: results),
                      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let cases = object["cases"] as? [[String: Any]]
                else { throw CommandLineInputError("'\(results)' is not the output of `onyx test --json`") }
                for entry in cases {
                    let passed = entry["status"] as? String == "passed"
                    if !passed, let name = entry["name"] as? String {
                        failures[Self.category(of: entry["reason"] as? String ?? "", caseName: name), default: []].append(name)
                    }
                    let types = entry["operator_input_types"] as? [String: [String]] ?? [:]
                    let operators = entry["operators"] as? [String] ?? []
                    if operators.count == 1, let name = entry["name"] as? String, !name.hasSuffix("_expanded") {
                        var row = direct[operators[0]] ?? (0, 0)
                        row.total += 1
                        if passed { row.passed += 1 }
                        direct[operators[0]] = row
                    }
                    for op in operators {
                        var row = used[op] ?? (0, 0, [])
                        row.total += 1
                        if passed {
                            row.passed += 1
                            row.types.formUnion(types[op] ?? [])
                        }
                        used[op] = row
                    }
                }
                summary = "ONNX node suite: \(object["passed"] ?? 0) of \(cases.count) cases pass.\n\n"
            }
            let entries = OperatorCatalog.entries
            print("# Operators\n")
            print("Generated by `tools/gen-operators-doc.sh` from the operator registry (`onyx operators`) and a run of")
            print("ONNX's backend node suite (`onyx test Generated/node --json`). \"Own cases\" are the cases whose model")
            print("uses this operator alone; \"all cases\" every case whose model uses it (including `_expanded` cases,")
            print("which spell another operator with primitive ones);")
            print("\"types\" lists the input element types of the passing cases.\n")
            print(summary + "\(entries.count) operators.\n")
            print("| operator | domain | opsets | own cases passed | all cases passed | types exercised |")
            print("|---|---|---|---|---|---|")
            for entry in entries {
                let opsets = entry.versions.map { $0.upperBound == Int.max ? "\($0.lowerBound)+" :
                    $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)–\($0.upperBound)" }
                    .joined(separator: ", ")
                let row = used[entry.opType]
                let cases = row.map { "\($0.passed) / \($0.total)" } ?? "–"
                let own = direct[entry.opType].map { "\($0.passed) / \($0.total)" } ?? "–"
                let types = row.map { $0.types.sorted().joined(separator: ", ") } ?? ""
                print("| \(entry.opType) | \(entry.domain.isEmpty ? "ai.onnx" : entry.domain) | \(opsets) | \(own) | \(cases) | \(types) |")
            }
            guard !failures.isEmpty else { return }
            print("\n## Node-suite cases that fail, by reason\n")
            for (reason, names) in failures.sorted(by: { ($0.value.count, $1.key) > ($1.value.count, $0.key) }) {
                print("- **\(reason)** (\(names.count)): " + names.sorted().joined(separator: ", "))
            }
        }
    }
}
