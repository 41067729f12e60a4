import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Every model under Fixtures/ run end to end: the PyTorch exports against PyTorch's outputs, the
/// scikit-learn request screener (string input) against onnxruntime's.
@Suite struct FixtureTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static var fixtures: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: root.appendingPathComponent($0).appendingPathComponent("model.onnx").path) }
            .sorted()
    }

    @Test func fixturesArePresent() {
        #expect(Self.fixtures.count >= 9, "expected the fixtures of tools/make_fixtures.py under \(Self.root.path)")
    }

    @Test(arguments: fixtures, OptimizationLevel.allCases)
    func matchesPyTorch(fixture: String, level: OptimizationLevel) throws {
        let folder = Self.root.appendingPathComponent(fixture)
        let session = try InferenceSession(
            contentsOf: folder.appendingPathComponent("model.onnx").path,
            options: SessionOptions(optimizationLevel: level))
        let sets = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasPrefix("test_data_set_") }.sorted()
        #expect(!sets.isEmpty)
        for set in sets {
            let data = folder.appendingPathComponent(set)
            var inputs: [String: Tensor] = [:]
            for (k, value) in session.inputs.enumerated() {
                inputs[value.name] = try Self.load(data.appendingPathComponent("input_\(k).pb")).tensor
            }
            let outputs = try session.run(inputs)
            for (k, value) in session.outputs.enumerated() {
                let expected = try Self.load(data.appendingPathComponent("output_\(k).pb")).tensor
                let actual = try #require(outputs[value.name])
                #expect(actual.shape == expected.shape, "\(fixture)/\(set) output \(k)")
                #expect(actual.dataType == expected.dataType, "\(fixture)/\(set) output \(k)")
                guard expected.dataType == .float else {
                    // Labels: exactly equal.
                    #expect(actual.withUnsafeBytes { Array($0) } == expected.withUnsafeBytes { Array($0) }, "\(fixture)/\(set) output \(k)")
                    continue
                }
                let e = try expected.scalars(as: Float.self)
                let a = try actual.scalars(as: Float.self)
                var worst: Float = 0
                for (x, y) in zip(a, e) {
                    let excess = abs(x - y) - (1e-5 + 1e-4 * abs(y))
                    worst = max(worst, excess)
                }
                #expect(worst <= 0, "\(fixture)/\(set) output \(k) exceeds rtol 1e-4, atol 1e-5 by \(worst)")
            }
        }
    }

    static func load(_ url: URL) throws -> (name: String, tensor: Tensor) {
        let data = try Data(contentsOf: url)
        return try Tensor.decodeTensorProto([UInt8](data))
    }
}
