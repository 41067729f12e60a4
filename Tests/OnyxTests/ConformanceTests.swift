import Foundation
import OnyxConformance
import Onyx
import Testing

/// ONNX's backend node suite (written by `tools/gen-node-tests.py` into Generated/node; `.ci/run`
/// generates it): every case in Tests/Conformance/expected-pass.txt must pass. The list only grows.
@Suite struct ConformanceTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let suiteFolder = packageRoot.appendingPathComponent("Generated/node")
    static let listFile = packageRoot.appendingPathComponent("Tests/Conformance/expected-pass.txt")
    static let tolerancesFile = packageRoot.appendingPathComponent("Tests/Conformance/tolerances.txt")

    static func expectedPasses() throws -> [String] {
        let text = try String(contentsOf: listFile, encoding: .utf8)
        return text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    /// Every micro-kernel variant this CPU runs, each with two threads.
    static let variants = KernelISA.supported

    @Test(arguments: variants)
    func listedCasesPass(isa: KernelISA) throws {
        let expected = try Self.expectedPasses()
        #expect(expected.count >= 1859, "expected-pass.txt only grows")
        guard FileManager.default.fileExists(atPath: Self.suiteFolder.path) else {
            Issue.record("the node suite is missing: run `python3 tools/gen-node-tests.py` (needs onnx==1.23.2)")
            return
        }
        var suite = ConformanceSuite(sessionOptions: SessionOptions(threadCount: 2, isa: isa))
        if FileManager.default.fileExists(atPath: Self.tolerancesFile.path) {
            suite.overrides = try ConformanceSuite.readOverrides(Self.tolerancesFile.path)
        }
        var failures: [String] = []
        for name in expected {
            let folder = Self.suiteFolder.appendingPathComponent(name).path
            guard FileManager.default.fileExists(atPath: folder) else {
                failures.append("\(name): no such case in \(Self.suiteFolder.path)")
                continue
            }
            let outcome = suite.run(caseAt: folder)
            if outcome.status == .failed { failures.append("\(name): \(outcome.reason ?? "")") }
        }
        #expect(failures.isEmpty, "\(isa.rawValue): \(failures.count) of \(expected.count) expected cases failed:\n\(failures.joined(separator: "\n"))")
    }

    @Test func comparisonHonoursTolerances() throws {
        let expected = try Onyx.Tensor(shape: [3], scalars: [Float(1), .nan, .infinity])
        let close = try Onyx.Tensor(shape: [3], scalars: [Float(1.0005), .nan, .infinity])
        let far = try Onyx.Tensor(shape: [3], scalars: [Float(1.01), .nan, .infinity])
        let wrongInfinity = try Onyx.Tensor(shape: [3], scalars: [Float(1), .nan, 3e38])
        let tolerance = ConformanceSuite.Tolerance()
        #expect(ConformanceSuite.compare(expected: expected, actual: close, tolerance: tolerance) == nil)
        #expect(ConformanceSuite.compare(expected: expected, actual: far, tolerance: tolerance)?.contains("at [0]") == true)
        #expect(ConformanceSuite.compare(expected: expected, actual: wrongInfinity, tolerance: tolerance) != nil)
        let ints = try Onyx.Tensor(shape: [2], scalars: [Int64.max, 1])
        let intsOff = try Onyx.Tensor(shape: [2], scalars: [Int64.max - 1, 1])
        #expect(ConformanceSuite.compare(expected: ints, actual: intsOff, tolerance: tolerance) != nil)
        #expect(ConformanceSuite.compare(expected: ints, actual: ints, tolerance: tolerance) == nil)
        let shaped = try Onyx.Tensor(shape: [1, 2], scalars: [Int64.max, 1])
        #expect(ConformanceSuite.compare(expected: ints, actual: shaped, tolerance: tolerance)?.contains("shape") == true)
    }
}
