import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// BatchNormalization and Softmax across their opset variants, against naive references.
@Suite struct NormalizationTests {
    // MARK: - Helpers

    static func run(
        _ op: String, opset: Int, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], outputs: Int = 1, threads: Int = 1
    ) throws -> [Tensor] {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs, threads: threads)
    }

    static func f(_ shape: [Int], _ values: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: values) }
    static func floats(_ t: Tensor) throws -> [Float] { try t.scalars(as: Float.self) }

    static func expectClose(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-5, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.count == b.count, sourceLocation: sourceLocation)
        guard a.count == b.count else { return }
        for (x, y) in zip(a, b) where !(abs(x - y) <= tolerance * (1 + abs(y))) {
            Issue.record("\(a.prefix(16)) vs \(b.prefix(16))", sourceLocation: sourceLocation)
            return
        }
    }

    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float((($0 + seed) * 7919) % 41) / 8 - 2.5 }
    }

    // MARK: - BatchNormalization

    /// `[N, C, H, W] = [2, 3, 2, 2]` with per-channel parameters.
    static let x = f([2, 3, 2, 2], values(24, seed: 1))
    static let scale = f([3], [1, 2, -0.5]), bias = f([3], [0, 1, 2]), mean = f([3], [0.5, -1, 2]), variance = f([3], [4, 0.25, 1])

    /// `scale · (x − mean) / √(var + ε) + B` per channel of `[N, C, area]`.
    static func batchNormReference(
        _ x: [Float], channels: Int, area: Int, scale: [Float], bias: [Float], mean: [Float], variance: [Float], epsilon: Float
    ) -> [Float] {
        x.enumerated().map { i, v in
            let c = (i / area) % channels
            return scale[c] * (v - mean[c]) / (variance[c] + epsilon).squareRoot() + bias[c]
        }
    }

    /// The batch's own mean and population variance per channel.
    static func batchStatistics(_ x: [Float], channels: Int, area: Int) -> (mean: [Float], variance: [Float]) {
        var mean = [Float](repeating: 0, count: channels), variance = mean
        for c in 0..<channels {
            let members = x.enumerated().filter { ($0.offset / area) % channels == c }.map { Double($0.element) }
            let m = members.reduce(0, +) / Double(members.count)
            mean[c] = Float(m)
            variance[c] = Float(members.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(members.count))
        }
        return (mean, variance)
    }

    @Test(arguments: [7, 9, 14, 15])
    func batchNormalizationInference(opset: Int) throws {
        let y = try Self.run("BatchNormalization", opset: opset, [Self.x, Self.scale, Self.bias, Self.mean, Self.variance], ["epsilon": .float(1e-3)])[0]
        #expect(y.shape == [2, 3, 2, 2])
        Self.expectClose(try Self.floats(y), Self.batchNormReference(
            try Self.floats(Self.x), channels: 3, area: 4, scale: [1, 2, -0.5], bias: [0, 1, 2], mean: [0.5, -1, 2],
            variance: [4, 0.25, 1], epsilon: 1e-3))
        // The default epsilon is 1e-5.
        let byDefault = try Self.run("BatchNormalization", opset: opset, [Self.x, Self.scale, Self.bias, Self.mean, Self.variance])[0]
        Self.expectClose(try Self.floats(byDefault), Self.batchNormReference(
            try Self.floats(Self.x), channels: 3, area: 4, scale: [1, 2, -0.5], bias: [0, 1, 2], mean: [0.5, -1, 2],
            variance: [4, 0.25, 1], epsilon: 1e-5))
    }

    @Test func batchNormalizationHandComputed() throws {
        let x = Self.f([1, 2, 1, 2], [1, 2, 3, 4])
        let y = try Self.run("BatchNormalization", opset: 15, [x, Self.f([2], [1, 2]), Self.f([2], [0, 1]), Self.f([2], [1, 2]), Self.f([2], [4, 1])],
                             ["epsilon": .float(0)])[0]
        #expect(try Self.floats(y) == [0, 0.5, 3, 5])
        // [N, C] and [N, C, L] inputs.
        let rank2 = try Self.run("BatchNormalization", opset: 15, [Self.f([2, 2], [1, 3, 5, 7]), Self.f([2], [1, 1]), Self.f([2], [0, 0]),
                                                                Self.f([2], [1, 3]), Self.f([2], [1, 4])], ["epsilon": .float(0)])[0]
        #expect(try Self.floats(rank2) == [0, 0, 4, 2])
        let rank3 = try Self.run("BatchNormalization", opset: 9, [Self.f([1, 1, 3], [2, 4, 6]), Self.f([1], [0.5]), Self.f([1], [1]),
                                                               Self.f([1], [4]), Self.f([1], [1])], ["epsilon": .float(0)])[0]
        #expect(try Self.floats(rank3) == [0, 1, 2])
    }

    @Test func batchNormalizationOpset6IsTest() throws {
        let inputs = [Self.x, Self.scale, Self.bias, Self.mean, Self.variance]
        let inference = try Self.run("BatchNormalization", opset: 6, inputs, ["is_test": .int(1), "epsilon": .float(1e-3)])[0]
        Self.expectClose(try Self.floats(inference), Self.batchNormReference(
            try Self.floats(Self.x), channels: 3, area: 4, scale: [1, 2, -0.5], bias: [0, 1, 2], mean: [0.5, -1, 2],
            variance: [4, 0.25, 1], epsilon: 1e-3))
        // is_test defaults to 0: training, so Y uses the batch's statistics.
        let statistics = Self.batchStatistics(try Self.floats(Self.x), channels: 3, area: 4)
        let training = try Self.run("BatchNormalization", opset: 6, inputs, ["epsilon": .float(1e-3)])[0]
        Self.expectClose(try Self.floats(training), Self.batchNormReference(
            try Self.floats(Self.x), channels: 3, area: 4, scale: [1, 2, -0.5], bias: [0, 1, 2], mean: statistics.mean,
            variance: statistics.variance, epsilon: 1e-3), 1e-4)
    }

    @Test func batchNormalizationSpatialZero() throws {
        // Before opset 9, spatial = 0 gives each of C×H×W its own parameters.
        let x = Self.f([2, 2, 1, 2], [1, 2, 3, 4, 5, 6, 7, 8])
        let ones = Self.f([2, 1, 2], [1, 1, 1, 1]), zeros = Self.f([2, 1, 2], [0, 0, 0, 0])
        let mean = Self.f([2, 1, 2], [1, 2, 3, 4]), variance = Self.f([2, 1, 2], [1, 4, 1, 4])
        let y = try Self.run("BatchNormalization", opset: 7, [x, ones, zeros, mean, variance], ["spatial": .int(0), "epsilon": .float(0)])[0]
        #expect(try Self.floats(y) == [0, 0, 0, 0, 4, 2, 4, 2])
        // spatial = 1 with such parameters is a shape error.
        let error = #expect(throws: OnyxError.self) {
            try Self.run("BatchNormalization", opset: 7, [x, ones, zeros, mean, variance], ["epsilon": .float(0)])
        }
        #expect(error?.code == .shapeMismatch)
    }

    @Test func batchNormalizationTrainingMode() throws {
        let inputs = [Self.x, Self.scale, Self.bias, Self.mean, Self.variance]
        let statistics = Self.batchStatistics(try Self.floats(Self.x), channels: 3, area: 4)
        let expected = Self.batchNormReference(
            try Self.floats(Self.x), channels: 3, area: 4, scale: [1, 2, -0.5], bias: [0, 1, 2], mean: statistics.mean,
            variance: statistics.variance, epsilon: 1e-2)
        // Only Y: the batch's statistics.
        let y = try Self.run("BatchNormalization", opset: 15, inputs, ["training_mode": .int(1), "epsilon": .float(1e-2)])
        #expect(y.count == 1)
        Self.expectClose(try Self.floats(y[0]), expected, 1e-4)
        // With the running statistics (momentum 0.8).
        let all = try Self.run("BatchNormalization", opset: 14, inputs, ["training_mode": .int(1), "epsilon": .float(1e-2), "momentum": .float(0.8)],
                               outputs: 3)
        #expect(all.count == 3)
        Self.expectClose(try Self.floats(all[0]), expected, 1e-4)
        #expect(all[1].shape == [3])
        Self.expectClose(try Self.floats(all[1]), zip([0.5, -1, 2], statistics.mean).map { $0 * 0.8 + $1 * 0.2 }, 1e-5)
        Self.expectClose(try Self.floats(all[2]), zip([4, 0.25, 1], statistics.variance).map { $0 * 0.8 + $1 * 0.2 }, 1e-5)
    }

    @Test func batchNormalizationErrors() throws {
        let inputs = [Self.x, Self.scale, Self.bias, Self.mean, Self.variance]
        // Training outputs before opset 14 are refused.
        let training = #expect(throws: OnyxError.self) { try Self.run("BatchNormalization", opset: 9, inputs, outputs: 5) }
        #expect(training?.code == .invalidAttribute)
        #expect(training?.message.contains("eval mode") == true)
        // Running statistics without training_mode.
        let running = #expect(throws: OnyxError.self) { try Self.run("BatchNormalization", opset: 15, inputs, outputs: 3) }
        #expect(running?.code == .invalidAttribute)
        let shape = #expect(throws: OnyxError.self) {
            try Self.run("BatchNormalization", opset: 15, [Self.x, Self.f([2], [1, 1]), Self.bias, Self.mean, Self.variance])
        }
        #expect(shape?.code == .shapeMismatch)
        #expect(shape?.message.contains("scale must be float[3]") == true)
        let missing = #expect(throws: OnyxError.self) { try Self.run("BatchNormalization", opset: 15, [Self.x, Self.scale, Self.bias, Self.mean]) }
        #expect(missing?.code == .invalidModel)
        let integers = try Tensor(shape: [1, 3], scalars: [1, 2, 3] as [Int64])
        let type = #expect(throws: OnyxError.self) { try Self.run("BatchNormalization", opset: 15, [integers, Self.scale, Self.bias, Self.mean, Self.variance]) }
        #expect(type?.code == .unsupportedDataType)
        let epsilon = #expect(throws: OnyxError.self) { try Self.run("BatchNormalization", opset: 15, inputs, ["epsilon": .float(-1)]) }
        #expect(epsilon?.code == .invalidAttribute)
    }

    @Test func batchNormalizationLargeAndInPlace() throws {
        let x = Self.f([2, 8, 128, 130], Self.values(2 * 8 * 128 * 130, seed: 3))
        let parameters = (0..<4).map { k in Self.f([8], (0..<8).map { Float($0 + k) * 0.25 + 0.5 }) }
        let inputs = [x] + parameters
        let expected = Self.batchNormReference(
            try Self.floats(x), channels: 8, area: 128 * 130, scale: try Self.floats(parameters[0]), bias: try Self.floats(parameters[1]),
            mean: try Self.floats(parameters[2]), variance: try Self.floats(parameters[3]), epsilon: 1e-5)
        // 16 planes of 16 640 elements: enough work for two threads.
        Self.expectClose(try Self.floats(Self.run("BatchNormalization", opset: 15, inputs, threads: 2)[0]), expected)
        let inPlace = try ElementwiseTests.runInPlace("BatchNormalization", opset: 15, inputs)
        Self.expectClose(try Self.floats(inPlace), expected)
    }

    // MARK: - Softmax

    /// Softmax along `axis` in Double, or over the flattened trailing axes with `coerce`.
    static func softmaxReference(_ x: [Float], shape: [Int], axis: Int, coerce: Bool) -> [Float] {
        let a = axis < 0 ? axis + shape.count : axis
        let outer = shape[..<a].reduce(1, *)
        let extent = coerce ? shape[a...].reduce(1, *) : shape[a]
        let inner = coerce ? 1 : shape[(a + 1)...].reduce(1, *)
        var y = [Float](repeating: 0, count: x.count)
        for o in 0..<outer {
            for i in 0..<inner {
                let indices = (0..<extent).map { (o * extent + $0) * inner + i }
                let peak = indices.map { Double(x[$0]) }.max()!
                let exps = indices.map { exp(Double(x[$0]) - peak) }
                let sum = exps.reduce(0, +)
                for (k, index) in indices.enumerated() { y[index] = Float(exps[k] / sum) }
            }
        }
        return y
    }

    @Test func softmaxOpset11CoercesTo2D() throws {
        let shape = [2, 3, 4]
        let values = Self.values(24, seed: 5)
        let x = Self.f(shape, values)
        // Default axis 1: each image's 12 values form one distribution.
        let y = try Self.run("Softmax", opset: 11, [x])[0]
        Self.expectClose(try Self.floats(y), Self.softmaxReference(values, shape: shape, axis: 1, coerce: true))
        let first = try Self.floats(y)[0..<12].reduce(0, +)
        #expect(abs(first - 1) < 1e-5)
        for axis in [0, 2, -1, -3] {
            let z = try Self.run("Softmax", opset: 1, [x], ["axis": .int(axis)])[0]
            Self.expectClose(try Self.floats(z), Self.softmaxReference(values, shape: shape, axis: axis, coerce: true))
        }
    }

    @Test func softmaxOpset13PerAxis() throws {
        let shape = [2, 3, 4]
        let values = Self.values(24, seed: 6)
        let x = Self.f(shape, values)
        // Default axis −1.
        Self.expectClose(try Self.floats(Self.run("Softmax", opset: 13, [x])[0]), Self.softmaxReference(values, shape: shape, axis: -1, coerce: false))
        for axis in [0, 1, 2, -2] {
            let y = try Self.run("Softmax", opset: 13, [x], ["axis": .int(axis)])[0]
            Self.expectClose(try Self.floats(y), Self.softmaxReference(values, shape: shape, axis: axis, coerce: false))
        }
        // The two opsets differ for the same attribute.
        let old = try Self.floats(Self.run("Softmax", opset: 12, [x], ["axis": .int(1)])[0])
        let new = try Self.floats(Self.run("Softmax", opset: 13, [x], ["axis": .int(1)])[0])
        #expect(old != new)
    }

    @Test func softmaxHandComputedAndStable() throws {
        let y = try Self.run("Softmax", opset: 13, [Self.f([2, 2], [0, 0, 0, log(3)])])[0]
        Self.expectClose(try Self.floats(y), [0.5, 0.5, 0.25, 0.75])
        // Large logits do not overflow.
        let big = try Self.run("Softmax", opset: 13, [Self.f([3], [1000, 1001, 1002])])[0]
        Self.expectClose(try Self.floats(big), Self.softmaxReference([0, 1, 2], shape: [3], axis: 0, coerce: false))
        let single = try Self.run("Softmax", opset: 13, [Self.f([1], [-7])])[0]
        #expect(try Self.floats(single) == [1])
        // −∞ (a masked position) gets exactly 0; the others share the mass.
        let masked = try Self.run("Softmax", opset: 13, [Self.f([2, 3], [-.infinity, 0, 0, 2, -.infinity, 2])])[0]
        #expect(try Self.floats(masked) == [0, 0.5, 0.5, 0.5, 0, 0.5])
    }

    @Test func vectorisableExpMatchesLibm() {
        var worst: Double = 0
        for i in 0...200_000 {
            let x = Float(-90 + Double(i) * 0.0005)
            let expected = exp(Double(x))
            guard expected > 1e-37 else { continue }
            worst = max(worst, abs(Double(NormalizationLoops.exp(x)) - expected) / expected)
        }
        #expect(worst < 3e-7, "worst relative error \(worst)")
        #expect(NormalizationLoops.exp(0) == 1)
        #expect(NormalizationLoops.exp(-.infinity) == 0)
        #expect(NormalizationLoops.exp(-100) == 0)
        #expect(NormalizationLoops.exp(.nan).isNaN)
        #expect(abs(NormalizationLoops.exp(10) / Float(exp(10.0)) - 1) < 3e-7)
    }

    /// Middle-axis softmax with more lines than one block of the kernel, and big row-wise work on two threads.
    @Test(arguments: [([3, 5, 300], 1), ([2, 7, 3, 257], 1), ([2, 4, 3, 5], -3), ([64, 1031], -1), ([4, 70, 300], 1), ([1030, 3, 2], 0)])
    func softmaxAwkwardShapes(_ shape: [Int], _ axis: Int) throws {
        let values = Self.values(shape.reduce(1, *), seed: 7)
        let expected = Self.softmaxReference(values, shape: shape, axis: axis, coerce: false)
        Self.expectClose(try Self.floats(Self.run("Softmax", opset: 13, [Self.f(shape, values)], ["axis": .int(axis)], threads: 2)[0]), expected)
        let inPlace = try ElementwiseTests.runInPlace("Softmax", opset: 13, [Self.f(shape, values)], ["axis": .int(axis)])
        Self.expectClose(try Self.floats(inPlace), expected)
    }

    @Test func softmaxErrors() throws {
        let x = Self.f([2, 3], [1, 2, 3, 4, 5, 6])
        let axis = #expect(throws: OnyxError.self) { try Self.run("Softmax", opset: 13, [x], ["axis": .int(2)]) }
        #expect(axis?.code == .invalidAttribute)
        #expect(axis?.message.contains("axis 2 is out of range for rank 2") == true)
        #expect(throws: OnyxError.self) { try Self.run("Softmax", opset: 11, [x], ["axis": .int(-3)]) }
        let scalar = #expect(throws: OnyxError.self) { try Self.run("Softmax", opset: 13, [Tensor(scalar: Float(1))]) }
        #expect(scalar?.code == .shapeMismatch)
        let type = #expect(throws: OnyxError.self) { try Self.run("Softmax", opset: 13, [try Tensor(shape: [2], scalars: [1, 2] as [Int64])]) }
        #expect(type?.code == .unsupportedDataType)
    }

    @Test func batchNormalizationInDoubleAndHalf() throws {
        let values = Self.values(24, seed: 1)
        let expected = Self.batchNormReference(
            values, channels: 3, area: 4, scale: [1, 2, -0.5], bias: [0, 1, 2], mean: [0.5, -1, 2], variance: [4, 0.25, 1], epsilon: 1e-5)
        func d(_ v: [Float]) -> Tensor { try! Tensor(shape: [v.count], scalars: v.map(Double.init)) }
        let x = try Tensor(shape: [2, 3, 2, 2], scalars: values.map(Double.init))
        let y = try Self.run("BatchNormalization", opset: 15, [x, d([1, 2, -0.5]), d([0, 1, 2]), d([0.5, -1, 2]), d([4, 0.25, 1])])[0]
        Self.expectClose(try y.scalars(as: Double.self).map(Float.init), expected)
        // float16 X with float parameters (opset 15 lets them differ).
        let half = try Tensor(shape: [2, 3, 2, 2], scalars: values.map { Float16($0) })
        let z = try Self.run("BatchNormalization", opset: 15, [half, Self.scale, Self.bias, Self.mean, Self.variance])[0]
        Self.expectClose(try z.scalars(as: Float16.self).map(Float.init), expected, 2e-3)
    }

    // MARK: - LogSoftmax, Hardmax

    @Test func logSoftmaxMatchesLogOfSoftmax() throws {
        let shape = [2, 3, 4]
        let values = Self.values(24, seed: 8)
        for (opset, axis, coerce) in [(13, -1, false), (13, 1, false), (11, 1, true), (11, 0, true)] {
            let y = try Self.run("LogSoftmax", opset: opset, [Self.f(shape, values)], ["axis": .int(axis)])[0]
            let expected = Self.softmaxReference(values, shape: shape, axis: axis, coerce: coerce).map { log($0) }
            Self.expectClose(try Self.floats(y), expected)
        }
        // Stable for large logits; double computes too.
        let big = try Self.run("LogSoftmax", opset: 13, [Self.f([2], [1000, 1000])])[0]
        Self.expectClose(try Self.floats(big), [-log(2), -log(2)])
        let double = try Self.run("LogSoftmax", opset: 13, [try Tensor(shape: [2], scalars: [0, log(3)] as [Double])])[0]
        let d = try double.scalars(as: Double.self)
        #expect(abs(d[0] - log(0.25)) < 1e-12 && abs(d[1] - log(0.75)) < 1e-12)
    }

    @Test func hardmaxPicksTheFirstLargest() throws {
        let x = Self.f([2, 2, 3], [1, 3, 3, 0, 2, 1, 5, 4, 4, 6, 6, 0])
        // Opset 13: along the last axis; ties go to the first.
        #expect(try Self.floats(Self.run("Hardmax", opset: 13, [x])[0]) == [0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0])
        // Opset 11, axis 1: each image's 6 values form one line.
        #expect(try Self.floats(Self.run("Hardmax", opset: 11, [x])[0]) == [0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0])
        let half = try Self.run("Hardmax", opset: 13, [try Tensor(shape: [3], scalars: [1, 7, 2] as [Float16])], ["axis": .int(0)])[0]
        #expect(try half.scalars(as: Float16.self) == [0, 1, 0])
        let axis = #expect(throws: OnyxError.self) { try Self.run("Hardmax", opset: 13, [x], ["axis": .int(3)]) }
        #expect(axis?.message.contains("Hardmax: axis 3 is out of range") == true)
    }

    // MARK: - Instance, group, RMS and layer normalization

    @Test func instanceNormalizationPerPlane() throws {
        let x = Self.f([1, 2, 2, 2], [1, 2, 3, 4, 10, 10, 10, 14])
        let y = try Self.run("InstanceNormalization", opset: 6, [x, Self.f([2], [2, 1]), Self.f([2], [0, 5])], ["epsilon": .float(0)])[0]
        // Plane 0: mean 2.5, variance 1.25; plane 1: mean 11, variance 3.
        let a = 1 / Float(1.25).squareRoot(), b = 1 / Float(3).squareRoot()
        let first: [Float] = [-3 * a, -a, a, 3 * a]
        let second: [Float] = [5 - b, 5 - b, 5 - b, 5 + 3 * b]
        Self.expectClose(try Self.floats(y), first + second)
        let shape = #expect(throws: OnyxError.self) {
            try Self.run("InstanceNormalization", opset: 6, [x, Self.f([3], [1, 1, 1]), Self.f([2], [0, 0])])
        }
        #expect(shape?.message.contains("scale must be float[2]") == true)
    }

    @Test func groupNormalizationOpsets() throws {
        // Two groups of two channels; each group's four values are 0, 2, 4, 6 → ±1.342, ±0.447.
        let x = Self.f([1, 4, 2], [0, 2, 4, 6, 0, 2, 4, 6])
        let root5: Float = Float(5).squareRoot()
        let unit: [Float] = [-3 / root5, -1 / root5, 1 / root5, 3 / root5]
        let perGroup = try Self.run("GroupNormalization", opset: 18, [x, Self.f([2], [1, 2]), Self.f([2], [0, 1])],
                                    ["num_groups": .int(2), "epsilon": .float(0)])[0]
        let doubled: [Float] = unit.map { $0 * 2 + 1 }
        Self.expectClose(try Self.floats(perGroup), unit + doubled)
        let perChannel = try Self.run("GroupNormalization", opset: 21, [x, Self.f([4], [1, 2, 3, 4]), Self.f([4], [0, 0, 1, 1])],
                                      ["num_groups": .int(2), "epsilon": .float(0)])[0]
        let channels01: [Float] = [unit[0], unit[1], unit[2] * 2, unit[3] * 2]
        let channels23: [Float] = [unit[0] * 3 + 1, unit[1] * 3 + 1, unit[2] * 4 + 1, unit[3] * 4 + 1]
        Self.expectClose(try Self.floats(perChannel), channels01 + channels23)
        let groups = #expect(throws: OnyxError.self) {
            try Self.run("GroupNormalization", opset: 21, [x, Self.f([4], [1, 1, 1, 1]), Self.f([4], [0, 0, 0, 0])], ["num_groups": .int(3)])
        }
        #expect(groups?.message.contains("num_groups 3 does not divide the 4 channels") == true)
    }

    @Test func rmsNormalization() throws {
        let x = Self.f([2, 2], [3, 4, 1, 1])
        let y = try Self.run("RMSNormalization", opset: 23, [x, Self.f([2], [1, 2])], ["epsilon": .float(0)])[0]
        let r = Float(12.5).squareRoot()
        Self.expectClose(try Self.floats(y), [3 / r, 8 / r, 1, 2])
        // The output takes scale's type.
        let half = try Self.run("RMSNormalization", opset: 23, [x, try Tensor(shape: [2], scalars: [1, 2] as [Float16])],
                                ["epsilon": .float(0)])[0]
        #expect(half.dataType == .float16)
        #expect(try half.scalars(as: Float16.self).map(Float.init)[2...] == [1, 2])
        let shape = #expect(throws: OnyxError.self) { try Self.run("RMSNormalization", opset: 23, [x, Self.f([3], [1, 1, 1])]) }
        #expect(shape?.code == .shapeMismatch)
    }

    @Test func layerNormalizationInDouble() throws {
        let x = try Tensor(shape: [2, 2], scalars: [1, 3, 4, 6] as [Double])
        let outputs = try Self.run("LayerNormalization", opset: 17, [x, try Tensor(shape: [2], scalars: [1, 2] as [Double])],
                                   ["epsilon": .float(0)], outputs: 3)
        #expect(try outputs[0].scalars(as: Double.self) == [-1, 2, -1, 2])
        #expect(try Self.floats(outputs[1]) == [2, 5])
        let mixed = #expect(throws: OnyxError.self) { try Self.run("LayerNormalization", opset: 17, [x, Self.f([2], [1, 1])]) }
        #expect(mixed?.code == .unsupportedDataType)
    }

    // MARK: - LRN, LpNormalization, MeanVarianceNormalization

    @Test func localResponseNormalization() throws {
        let x = Self.f([1, 3, 1, 1], [1, 2, 3])
        let y = try Self.run("LRN", opset: 13, [x], ["size": .int(3), "alpha": .float(3), "beta": .float(1), "bias": .float(1)])[0]
        // Squares summed over neighbouring channels: 5, 14, 13; divisor 1 + Σ.
        Self.expectClose(try Self.floats(y), [1 / 6, 2 / 15, 3 / 14])
        let size = #expect(throws: OnyxError.self) { try Self.run("LRN", opset: 13, [x]) }
        #expect(size?.message.contains("missing 'size'") == true)
    }

    @Test func lpNormalization() throws {
        let x = Self.f([2, 2], [3, -4, 0, 0])
        #expect(try Self.floats(Self.run("LpNormalization", opset: 1, [x])[0]) == [0.6, -0.8, 0, 0])
        Self.expectClose(try Self.floats(Self.run("LpNormalization", opset: 1, [x], ["p": .int(1), "axis": .int(0)])[0]), [1, -1, 0, 0])
        let p = #expect(throws: OnyxError.self) { try Self.run("LpNormalization", opset: 1, [x], ["p": .int(3)]) }
        #expect(p?.message.contains("p must be 1 or 2") == true)
    }

    @Test func meanVarianceNormalization() throws {
        let x = Self.f([1, 2, 1, 2], [1, 3, 10, 20])
        // Default axes [0, 2, 3]: per channel.
        Self.expectClose(try Self.floats(Self.run("MeanVarianceNormalization", opset: 13, [x])[0]), [-1, 1, -1, 1])
        // Over every axis: mean 8.5, standard deviation √(55.25).
        let all = try Self.run("MeanVarianceNormalization", opset: 13, [x], ["axes": .ints([0, 1, 2, 3])])[0]
        let sd = Float(55.25).squareRoot()
        let centered: [Float] = [-7.5, -5.5, 1.5, 11.5]
        Self.expectClose(try Self.floats(all), centered.map { $0 / sd })
        let axis = #expect(throws: OnyxError.self) { try Self.run("MeanVarianceNormalization", opset: 13, [x], ["axes": .ints([4])]) }
        #expect(axis?.code == .invalidAttribute)
    }
}
