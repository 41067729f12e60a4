#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// LinearClassifier, LinearRegressor, SVMClassifier and SVMRegressor (ai.onnx.ml 1).
@Suite struct TraditionalMLLinearTests {
    /// Labels and scores.
    static func classify(_ op: String, _ x: Tensor, _ attributes: [String: Attribute]) throws -> (labels: [Int64], scores: [Float]) {
        let outputs = try TraditionalMLTests.outputs(op, [x], attributes, outputs: 2)
        return (try outputs[0].scalars(as: Int64.self), try outputs[1].scalars(as: Float.self))
    }

    static func loadError(_ op: String, _ x: Tensor, _ attributes: [String: Attribute], outputs: Int = 2) -> OnyxError? {
        #expect(throws: OnyxError.self) { try TraditionalMLTests.outputs(op, [x], attributes, outputs: outputs) }
    }

    static func logistic(_ v: Float) -> Float { 1 / (1 + exp(-v)) }

    // MARK: - LinearClassifier

    /// Scores x0, x1 + 0.5 and −x0 − x1 for labels 10, 20, 30.
    static let threeClasses: [String: Attribute] = [
        "coefficients": .floats([1, 0, 0, 1, -1, -1]), "intercepts": .floats([0, 0.5, 0]), "classlabels_ints": .ints([10, 20, 30]),
    ]
    static let threeRows = try! Tensor(shape: [3, 2], scalars: [2, 1, 0, 0, -1, -1] as [Float])

    @Test func linearClassifierMulticlass() throws {
        let (labels, scores) = try Self.classify("LinearClassifier", Self.threeRows, Self.threeClasses)
        #expect(labels == [10, 20, 30])
        #expect(scores == [2, 1.5, -3, 0, 0.5, 0, -1, -0.5, 2])
        var softmax = Self.threeClasses
        softmax["post_transform"] = .string("SOFTMAX")
        let (_, probabilities) = try Self.classify("LinearClassifier", Self.threeRows, softmax)
        let e = [exp(Float(2)), exp(Float(1.5)), exp(Float(-3))]
        #expect(TraditionalMLTests.close(Array(probabilities[0..<3]), e.map { $0 / e.reduce(0, +) }))
        // Integer features compute the same.
        let ints = try Tensor(shape: [3, 2], scalars: [2, 1, 0, 0, -1, -1] as [Int64])
        #expect(try Self.classify("LinearClassifier", ints, Self.threeClasses).scores == scores)
    }

    @Test func linearClassifierOneScore() throws {
        // s = 2·x0 − x1 − 0.5: label 7 when s > 0; scores [1 − s, s], or [logistic(−s), logistic(s)].
        let attributes: [String: Attribute] = ["coefficients": .floats([2, -1]), "intercepts": .floats([-0.5]), "classlabels_ints": .ints([3, 7])]
        let x = try Tensor(shape: [2, 2], scalars: [1, 1, 0, 1] as [Float])
        let (labels, scores) = try Self.classify("LinearClassifier", x, attributes)
        #expect(labels == [7, 3])
        #expect(scores == [0.5, 0.5, 2.5, -1.5])
        let (_, logistic) = try Self.classify("LinearClassifier", x, attributes.merging(["post_transform": .string("LOGISTIC")]) { $1 })
        #expect(TraditionalMLTests.close(logistic, [Self.logistic(-0.5), Self.logistic(0.5), Self.logistic(1.5), Self.logistic(-1.5)]))
    }

    @Test func linearClassifierErrors() throws {
        let x = Self.threeRows
        #expect(Self.loadError("LinearClassifier", x, Self.threeClasses.merging(["coefficients": .floats([1, 2, 3, 4, 5])]) { $1 })?.message
            == "LinearClassifier node 'n': coefficients has 5 values, not a multiple of the 3 classes")
        #expect(Self.loadError("LinearClassifier", x, Self.threeClasses.merging(["classlabels_ints": .ints([1, 2])]) { $1 })?.message
            == "LinearClassifier node 'n': has 3 classes (intercepts) but 2 class labels")
        #expect(Self.loadError("LinearClassifier", x, ["coefficients": .floats([1, 2]), "intercepts": .floats([0]), "classlabels_ints": .ints([1])])?.message
            == "LinearClassifier node 'n': one score (one intercept) needs two class labels, got 1")
        #expect(Self.loadError("LinearClassifier", x, Self.threeClasses.merging(["post_transform": .string("softmax")]) { $1 })?.code
            == .invalidAttribute)
        let both = Self.loadError("LinearClassifier", x, Self.threeClasses.merging(["classlabels_strings": .strings(["a", "b", "c"])]) { $1 })
        #expect(both?.message == "LinearClassifier node 'n': give classlabels_ints or classlabels_strings, not both")
        // String labels: the label output is a string tensor.
        var named = Self.threeClasses
        named["classlabels_ints"] = nil
        named["classlabels_strings"] = .strings(["low", "mid", "high"])
        let labels = try OperatorRegistry.evaluate(
            Node(name: "n", opType: "LinearClassifier", domain: "ai.onnx.ml", inputs: ["x"], outputs: ["label", "scores"], attributes: named),
            opset: 1, inputs: [x])[0]
        #expect(labels.dataType == .string)
        #expect(try labels.strings().allSatisfy { ["low", "mid", "high"].contains($0) })
        let wide = Self.loadError("LinearClassifier", try Tensor(shape: [1, 3], scalars: [1, 2, 3] as [Float]), Self.threeClasses)
        #expect(wide?.code == .shapeMismatch)
        #expect(wide?.message == "LinearClassifier: X has 3 features; the coefficients expect 2")
        let bytes = Self.loadError("LinearClassifier", try Tensor(shape: [1, 2], scalars: [1, 2] as [UInt8]), Self.threeClasses)
        #expect(bytes?.message == "LinearClassifier: X must be float, double, int64 or int32, found uint8")
    }

    // MARK: - LinearRegressor

    @Test func linearRegressor() throws {
        let two: [String: Attribute] = ["coefficients": .floats([1, 2, 0.5, -1]), "intercepts": .floats([1, 0]), "targets": .int(2)]
        let x = try Tensor(shape: [2, 2], scalars: [1, 1, 2, 0] as [Float])
        #expect(try TraditionalMLTests.run("LinearRegressor", [x], two).scalars(as: Float.self) == [4, -0.5, 3, 1])
        let logistic = try TraditionalMLTests.run("LinearRegressor", [x], two.merging(["post_transform": .string("LOGISTIC")]) { $1 })
        #expect(TraditionalMLTests.close(try logistic.scalars(as: Float.self), [4, -0.5, 3, 1].map(Self.logistic)))
        // One target: onnxruntime applies PROBIT only.
        let one: [String: Attribute] = ["coefficients": .floats([0.1, 0.2])]
        let single = try Tensor(shape: [1, 2], scalars: [1, 1] as [Double])
        #expect(TraditionalMLTests.close(try TraditionalMLTests.run("LinearRegressor", [single], one).scalars(as: Float.self), [0.3]))
        let probit = try TraditionalMLTests.run("LinearRegressor", [single], one.merging(["post_transform": .string("PROBIT")]) { $1 })
        #expect(TraditionalMLTests.close(try probit.scalars(as: Float.self), [-0.5244459]))
        let ignored = try TraditionalMLTests.run("LinearRegressor", [single], one.merging(["post_transform": .string("LOGISTIC")]) { $1 })
        #expect(TraditionalMLTests.close(try ignored.scalars(as: Float.self), [0.3]))
    }

    @Test func linearRegressorErrors() throws {
        let x = try Tensor(shape: [1, 2], scalars: [1, 1] as [Float])
        #expect(Self.loadError("LinearRegressor", x, ["coefficients": .floats([1, 2, 3]), "targets": .int(2)], outputs: 1)?.message
            == "LinearRegressor node 'n': coefficients has 3 values, not a multiple of targets (2)")
        #expect(Self.loadError("LinearRegressor", x, ["coefficients": .floats([1, 2]), "intercepts": .floats([1, 2])], outputs: 1)?.message
            == "LinearRegressor node 'n': intercepts has 2 values; targets is 1")
        #expect(Self.loadError("LinearRegressor", x, [:], outputs: 1)?.message == "LinearRegressor node 'n': missing attribute 'coefficients'")
        #expect(Self.loadError("LinearRegressor", x, ["coefficients": .floats([1, 2, 3])], outputs: 1)?.message
            == "LinearRegressor: X has 2 features; the coefficients expect 3")
    }

    // MARK: - SVMClassifier

    /// One support vector per class, [1, 0] and [0, 1], linear kernel: s = x0 − x1 + 0.2.
    static let twoClassSVC: [String: Attribute] = [
        "classlabels_ints": .ints([10, 11]), "coefficients": .floats([1, -1]), "rho": .floats([0.2]),
        "support_vectors": .floats([1, 0, 0, 1]), "vectors_per_class": .ints([1, 1]), "kernel_type": .string("LINEAR"),
    ]
    static let twoRows = try! Tensor(shape: [2, 2], scalars: [0.5, 0.1, 0, 1] as [Float])

    @Test func svmClassifierTwoClasses() throws {
        // A positive margin votes for class 0; the scores are [−s, s] without a transform.
        let (labels, scores) = try Self.classify("SVMClassifier", Self.twoRows, Self.twoClassSVC)
        #expect(labels == [10, 11])
        #expect(TraditionalMLTests.close(scores, [-0.6, 0.6, 0.8, -0.8]))
        let (_, logistic) = try Self.classify("SVMClassifier", Self.twoRows, Self.twoClassSVC.merging(["post_transform": .string("LOGISTIC")]) { $1 })
        #expect(TraditionalMLTests.close(logistic, [Self.logistic(-0.6), Self.logistic(0.6), Self.logistic(0.8), Self.logistic(-0.8)]))
        // Platt scaling: P(class 0) = 1 − logistic(s·A + B), coupled (values from onnxruntime).
        let (probabilityLabels, probabilities) = try Self.classify("SVMClassifier", Self.twoRows, Self.twoClassSVC.merging([
            "prob_a": .floats([-2]), "prob_b": .floats([0.1]),
        ]) { $1 })
        #expect(probabilityLabels == [10, 11])
        #expect(TraditionalMLTests.close(probabilities, [0.75026, 0.24974, 0.1543577, 0.8456423], tolerance: 2e-4))
    }

    /// Three classes, one support vector each ([1, 0], [0, 1], [−1, −1]); pair scores
    /// (0,1) = k0 + k1, (0,2) = k0 − k2 + 0.1, (1,2) = −k1 − k2 − 0.1.
    static let threeClassSVC: [String: Attribute] = [
        "classlabels_ints": .ints([1, 2, 3]), "coefficients": .floats([1, 1, -1, 1, -1, -1]), "rho": .floats([0, 0.1, -0.1]),
        "support_vectors": .floats([1, 0, 0, 1, -1, -1]), "vectors_per_class": .ints([1, 1, 1]), "kernel_type": .string("LINEAR"),
    ]

    @Test func svmClassifierVotes() throws {
        let x = try Tensor(shape: [3, 2], scalars: [2, 0.5, 0, 3, -2, -2] as [Float])
        let (labels, scores) = try Self.classify("SVMClassifier", x, Self.threeClassSVC)
        #expect(labels == [1, 1, 3])
        #expect(TraditionalMLTests.close(scores, [2.5, 4.6, 1.9, 3, 3.1, -0.1, -4, -5.9, -2.1]))
        let (_, probabilities) = try Self.classify("SVMClassifier", x, Self.threeClassSVC.merging([
            "prob_a": .floats([-1, -2, -3]), "prob_b": .floats([0, 0.1, 0.2]),
        ]) { $1 })
        // onnxruntime's values (its iteration stops at 0.005 / classes).
        #expect(TraditionalMLTests.close(probabilities, [0.9239514, 0.0758423, 0.0002062, 0.9549912, 0.0353357, 0.0096730, 2.8e-6, 3.4e-6, 0.9999939], tolerance: 2e-4))
    }

    @Test func svmClassifierWithoutSupportVectors() throws {
        // liblinear: one score per class, x · coefficients[c] + rho; with all weights positive the
        // second label wins once the top score reaches 0.5 (onnxruntime's rule).
        let attributes: [String: Attribute] = ["classlabels_ints": .ints([10, 11]), "coefficients": .floats([1, 0, 0, 1]), "rho": .floats([0])]
        let x = try Tensor(shape: [2, 2], scalars: [0.6, 0.2, 0.3, 0.1] as [Float])
        let (labels, scores) = try Self.classify("SVMClassifier", x, attributes)
        #expect(labels == [11, 10])
        #expect(TraditionalMLTests.close(scores, [0.6, 0.2, 0.3, 0.1]))
    }

    @Test func svmClassifierErrors() throws {
        let x = Self.twoRows
        func message(_ change: [String: Attribute]) -> String? {
            Self.loadError("SVMClassifier", x, Self.twoClassSVC.merging(change) { $1 })?.message
        }
        #expect(message(["coefficients": .floats([1, -1, 2])])
            == "SVMClassifier node 'n': coefficients has 3 values; 2 classes and 2 support vectors need 2")
        #expect(message(["rho": .floats([0.2, 0.3])]) == "SVMClassifier node 'n': rho has 2 values for 1 class pairs")
        #expect(message(["prob_a": .floats([1])])
            == "SVMClassifier node 'n': prob_a (1 values) and prob_b (0) must both be empty or have one value per class pair (1)")
        #expect(message(["vectors_per_class": .ints([1, 1, 1])]) == "SVMClassifier node 'n': vectors_per_class has 3 entries for 2 classes")
        #expect(message(["support_vectors": .floats([1, 0, 0])])
            == "SVMClassifier node 'n': support_vectors has 3 values, not a positive multiple of the 2 support vectors")
        #expect(message(["kernel_params": .floats([1, 2])]) == "SVMClassifier node 'n': kernel_params must hold gamma, coef0 and degree, got 2 values")
        #expect(message(["kernel_type": .string("CUBIC")]) == "SVMClassifier node 'n': kernel_type 'CUBIC' is not LINEAR, POLY, RBF or SIGMOID")
        #expect(message(["classlabels_ints": .ints([1])]) == "SVMClassifier node 'n': needs two or more class labels (classlabels_ints)")
        let wide = Self.loadError("SVMClassifier", try Tensor(shape: [1, 3], scalars: [1, 2, 3] as [Float]), Self.twoClassSVC)
        #expect(wide?.message == "SVMClassifier: X has 3 features; the model expects 2")
    }

    // MARK: - SVMRegressor

    /// Support vectors [0, 0] and [1, 1] with coefficients 2 and −1, rho 0.5.
    static func regressor(_ kernel: String, _ parameters: [Float], _ extra: [String: Attribute] = [:]) -> [String: Attribute] {
        [
            "n_supports": .int(2), "support_vectors": .floats([0, 0, 1, 1]), "coefficients": .floats([2, -1]), "rho": .floats([0.5]),
            "kernel_type": .string(kernel), "kernel_params": .floats(parameters),
        ].merging(extra) { $1 }
    }

    @Test func svmRegressorKernels() throws {
        func run(_ attributes: [String: Attribute], _ values: [Float]) throws -> [Float] {
            try TraditionalMLTests.run("SVMRegressor", [try Tensor(shape: [1, 2], scalars: values)], attributes).scalars(as: Float.self)
        }
        // RBF, γ = 0.5, x = [1, 0]: both kernel values e^−0.5.
        #expect(TraditionalMLTests.close(try run(Self.regressor("RBF", [0.5, 0, 0]), [1, 0]), [exp(Float(-0.5)) + 0.5]))
        // POLY (γ x·v + c₀)^d with γ = 1, c₀ = 1, d = 2, x = [1, 2]: 2·1 − 16 + 0.5.
        #expect(try run(Self.regressor("POLY", [1, 1, 2]), [1, 2]) == [-13.5])
        #expect(try run(Self.regressor("POLY", [1, 1, 2], ["one_class": .int(1)]), [1, 2]) == [-1])
        // SIGMOID tanh(γ x·v + c₀), γ = 0.5, c₀ = 0: 2·tanh(0) − tanh(1.5) + 0.5.
        #expect(TraditionalMLTests.close(try run(Self.regressor("SIGMOID", [0.5, 0, 0]), [1, 2]), [0.5 - tanh(Float(1.5))]))
        #expect(try run(Self.regressor("LINEAR", [0, 0, 0]), [1, 2]) == [-2.5])
        // No support vectors: a linear model.
        #expect(try run(["coefficients": .floats([1, 2]), "rho": .floats([0.5])], [1, 2]) == [5.5])
        let shape = try TraditionalMLTests.run("SVMRegressor", [try Tensor(shape: [3, 2], scalars: [Float](repeating: 0, count: 6))], Self.regressor("RBF", [1, 0, 0])).shape
        #expect(shape == [3, 1])
    }

    @Test func svmRegressorErrors() throws {
        let x = try Tensor(shape: [1, 2], scalars: [1, 2] as [Float])
        #expect(Self.loadError("SVMRegressor", x, Self.regressor("RBF", [1, 0, 0], ["coefficients": .floats([1])]), outputs: 1)?.message
            == "SVMRegressor node 'n': coefficients has 1 values for 2 support vectors")
        #expect(Self.loadError("SVMRegressor", x, Self.regressor("RBF", [1, 0, 0], ["rho": .floats([])]), outputs: 1)?.message
            == "SVMRegressor node 'n': missing attribute 'rho'")
        #expect(Self.loadError("SVMRegressor", x, Self.regressor("RBF", [1, 0, 0], ["n_supports": .int(-1)]), outputs: 1)?.message
            == "SVMRegressor node 'n': n_supports must not be negative, got -1")
        #expect(Self.loadError("SVMRegressor", try Tensor(shape: [1, 3], scalars: [1, 2, 3] as [Float]), Self.regressor("RBF", [1, 0, 0]), outputs: 1)?.message
            == "SVMRegressor: X has 3 features; the model expects 2")
    }
}
