import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR

/// The scikit-learn exports under Fixtures/sklearn/ (written by `tools/check_sklearn.py
/// --write-fixtures`), run end to end against onnxruntime's outputs.
@Suite struct TraditionalMLFixtureTests {
    static let root = FixtureTests.root.appendingPathComponent("sklearn")

    static var fixtures: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: root.appendingPathComponent($0).appendingPathComponent("model.onnx").path) }
            .sorted()
    }

    @Test func fixturesArePresent() {
        #expect(Self.fixtures == ["forest_regressor", "gbc_binary", "logreg_multiclass", "svc_probability"])
    }

    @Test(arguments: fixtures, [1, 2])
    func matchesOnnxRuntime(fixture: String, threads: Int) throws {
        let folder = Self.root.appendingPathComponent(fixture)
        let session = try InferenceSession(contentsOf: folder.appendingPathComponent("model.onnx").path,
                                           options: SessionOptions(threadCount: threads))
        let data = folder.appendingPathComponent("test_data_set_0")
        var inputs: [String: Tensor] = [:]
        for (k, value) in session.inputs.enumerated() {
            inputs[value.name] = try FixtureTests.load(data.appendingPathComponent("input_\(k).pb")).tensor
        }
        let outputs = try session.run(inputs)
        for (k, value) in session.outputs.enumerated() {
            let expected = try FixtureTests.load(data.appendingPathComponent("output_\(k).pb")).tensor
            let actual = try #require(outputs[value.name])
            #expect(actual.shape == expected.shape, "\(fixture) output \(k)")
            #expect(actual.dataType == expected.dataType, "\(fixture) output \(k)")
            if expected.dataType == .int64 {
                #expect(try actual.scalars(as: Int64.self) == expected.scalars(as: Int64.self), "\(fixture) labels")
                continue
            }
            let e = try expected.scalars(as: Float.self), a = try actual.scalars(as: Float.self)
            let worst = zip(a, e).map { abs($0 - $1) - (1e-4 + 1e-3 * abs($1)) }.max() ?? 0
            #expect(worst <= 0, "\(fixture) output \(k) exceeds rtol 1e-3, atol 1e-4 by \(worst)")
        }
    }
}
