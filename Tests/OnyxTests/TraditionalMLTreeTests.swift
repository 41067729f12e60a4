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

/// TreeEnsembleRegressor and TreeEnsembleClassifier (ai.onnx.ml 1 and 3), and the flattened-forest
/// core they share with TreeEnsemble (opset 5).
@Suite struct TraditionalMLTreeTests {
    typealias Weight = (tree: Int, node: Int, target: Int, weight: Float)

    /// The two trees of these tests (ids are node ids within a tree):
    ///
    ///     tree 0: x0 ≤ 0.5 ? node 1 : node 2
    ///     tree 1: x1 < 2 ? node 1 : (x0 ≥ 1 ? node 3 : node 4)
    static func forest(_ prefix: String, _ weights: [Weight], _ extra: [String: Attribute] = [:]) -> [String: Attribute] {
        var attributes: [String: Attribute] = [
            "nodes_treeids": .ints([0, 0, 0, 1, 1, 1, 1, 1]), "nodes_nodeids": .ints([0, 1, 2, 0, 1, 2, 3, 4]),
            "nodes_featureids": .ints([0, 0, 0, 1, 0, 0, 0, 0]),
            "nodes_modes": .strings(["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LT", "LEAF", "BRANCH_GTE", "LEAF", "LEAF"]),
            "nodes_values": .floats([0.5, 0, 0, 2, 0, 1, 0, 0]),
            "nodes_truenodeids": .ints([1, 0, 0, 1, 0, 3, 0, 0]), "nodes_falsenodeids": .ints([2, 0, 0, 2, 0, 4, 0, 0]),
            "\(prefix)_treeids": .ints(weights.map(\.tree)), "\(prefix)_nodeids": .ints(weights.map(\.node)),
            "\(prefix)_ids": .ints(weights.map(\.target)), "\(prefix)_weights": .floats(weights.map(\.weight)),
        ]
        attributes.merge(extra) { $1 }
        return attributes
    }

    /// One target: tree 0 gives 1 or 2, tree 1 gives 10, 20 or 30.
    static let oneTarget: [Weight] = [(0, 1, 0, 1), (0, 2, 0, 2), (1, 1, 0, 10), (1, 3, 0, 20), (1, 4, 0, 30)]
    /// Rows reaching 1 + 10, 2 + 20 and 2 + 30.
    static let rows = try! Tensor(shape: [3, 2], scalars: [0, 0, 1, 3, 0.7, 5] as [Float])

    static func regress(_ x: Tensor, _ attributes: [String: Attribute], opset: Int = 1, threads: Int = 1) throws -> [Float] {
        try TraditionalMLTests.outputs("TreeEnsembleRegressor", opset: opset, [x], attributes, threads: threads)[0].scalars(as: Float.self)
    }

    /// Labels and scores.
    static func classify(_ x: Tensor, _ attributes: [String: Attribute], opset: Int = 1) throws -> (labels: [Int64], scores: [Float]) {
        let outputs = try TraditionalMLTests.outputs("TreeEnsembleClassifier", opset: opset, [x], attributes, outputs: 2)
        return (try outputs[0].scalars(as: Int64.self), try outputs[1].scalars(as: Float.self))
    }

    // MARK: - Regressor

    @Test func regressorAggregatesWithBase() throws {
        func run(_ aggregate: String) throws -> [Float] {
            try Self.regress(Self.rows, Self.forest("target", Self.oneTarget, [
                "n_targets": .int(1), "aggregate_function": .string(aggregate), "base_values": .floats([0.5]),
            ]))
        }
        #expect(try run("SUM") == [11.5, 22.5, 32.5])
        #expect(try run("AVERAGE") == [6, 11.5, 16.5])
        #expect(try run("MIN") == [1.5, 2.5, 2.5])
        #expect(try run("MAX") == [10.5, 20.5, 30.5])
        let y = try TraditionalMLTests.outputs("TreeEnsembleRegressor", [Self.rows], Self.forest("target", Self.oneTarget, ["n_targets": .int(1)]))[0]
        #expect(y.shape == [3, 1])
        #expect(y.dataType == .float)
    }

    @Test func regressorSingleTargetTransforms() throws {
        // onnxruntime applies only PROBIT to one target; LOGISTIC leaves the sums alone.
        let logistic = try Self.regress(Self.rows, Self.forest("target", Self.oneTarget, ["n_targets": .int(1), "post_transform": .string("LOGISTIC")]))
        #expect(logistic == [11, 22, 32])
        let stump: [Weight] = [(0, 1, 0, 0.3), (0, 2, 0, 0.8)]
        let probit = try Self.regress(Self.rows, Self.forest("target", stump, ["n_targets": .int(1), "post_transform": .string("PROBIT")]))
        // √2·erf⁻¹(2p − 1) by Winitzki's approximation, as onnxruntime computes it (exactly: −0.5244005, 0.8416212).
        #expect(TraditionalMLTests.close(probit, [-0.5244459, 0.8417562, 0.8417562]))
    }

    @Test func regressorTargetsWithoutWeightsGiveZero() throws {
        // Tree 1's first leaf weighs target 1; nothing weighs target 1 for rows 1 and 2, so they
        // get 0 there, base value or not (onnxruntime's rule).
        let weights: [Weight] = [(0, 1, 0, 1), (0, 2, 0, 2), (1, 1, 1, 10), (1, 3, 0, 20), (1, 4, 0, 30)]
        let sum = try Self.regress(Self.rows, Self.forest("target", weights, ["n_targets": .int(2), "base_values": .floats([0.5, 0.25])]))
        #expect(sum == [1.5, 10.25, 22.5, 0, 32.5, 0])
        let softmax = try Self.regress(Self.rows, Self.forest("target", weights, ["n_targets": .int(2), "post_transform": .string("SOFTMAX")]))
        let e = exp(Float(9))
        #expect(TraditionalMLTests.close(Array(softmax[0..<2]), [1 / (1 + e), e / (1 + e)]))
        let max = try Self.regress(Self.rows, Self.forest("target", weights, ["n_targets": .int(2), "aggregate_function": .string("MAX")]))
        #expect(max == [1, 10, 20, 0, 30, 0])
    }

    @Test func regressorMissingValues() throws {
        let x = try Tensor(shape: [2, 2], scalars: [.nan, 0, 0, .nan] as [Float])
        // NaN fails every comparison and goes the false way, unless the node tracks missing values to true.
        let plain = try Self.regress(x, Self.forest("target", Self.oneTarget, ["n_targets": .int(1)]))
        #expect(plain == [12, 31])
        let tracked = try Self.regress(x, Self.forest("target", Self.oneTarget, [
            "n_targets": .int(1), "nodes_missing_value_tracks_true": .ints([1, 0, 0, 1, 0, 0, 0, 0]),
        ]))
        #expect(tracked == [11, 11])
    }

    @Test func regressorOpset3TensorsTakePrecedence() throws {
        // Tree 0's threshold 0.8 instead of 0.5 sends row 2 (x0 = 0.7) to node 1.
        let tensors: [String: Attribute] = [
            "n_targets": .int(1),
            "nodes_values_as_tensor": .tensor(try Tensor(shape: [8], scalars: [0.8, 0, 0, 2, 0, 1, 0, 0] as [Double])),
            "target_weights_as_tensor": .tensor(try Tensor(shape: [5], scalars: [1, 2, 10, 20, 30.25] as [Double])),
            "base_values_as_tensor": .tensor(try Tensor(shape: [1], scalars: [100] as [Double])),
            "base_values": .floats([7]),
        ]
        #expect(try Self.regress(Self.rows, Self.forest("target", Self.oneTarget, tensors), opset: 3) == [111, 122, 131.25])
        // Opset 1 has no *_as_tensor attributes.
        #expect(try Self.regress(Self.rows, Self.forest("target", Self.oneTarget, tensors), opset: 1) == [18, 29, 39])
    }

    @Test func regressorInputTypes() throws {
        let attributes = Self.forest("target", Self.oneTarget, ["n_targets": .int(1)])
        #expect(try Self.regress(try Tensor(shape: [2, 2], scalars: [0, 0, 1, 3] as [Int64]), attributes) == [11, 22])
        #expect(try Self.regress(try Tensor(shape: [2, 2], scalars: [0, 0, 1, 3] as [Int32]), attributes) == [11, 22])
        #expect(try Self.regress(try Tensor(shape: [2, 2], scalars: [0, 0, 1, 3] as [Double]), attributes) == [11, 22])
        // Doubles compare in double: 0.5 + 1e-12 is above tree 0's threshold (as a float it would not be).
        let above = try Tensor(shape: [4, 2], scalars: [0.5 + 1e-12, 0, 0.5, 0, 0.5 + 1e-12, 0, 0.5, 0] as [Double])
        #expect(try Self.regress(above, attributes) == [12, 11, 12, 11])
                // On a threshold: BRANCH_LEQ goes true, BRANCH_LT false.
        #expect(try Self.regress(try Tensor(shape: [1, 2], scalars: [0.5, 2] as [Float]), attributes) == [31])
        // A single row as a vector.
        let vector = try TraditionalMLTests.outputs("TreeEnsembleRegressor", [try Tensor(shape: [2], scalars: [1, 3] as [Float])], attributes)[0]
        #expect(vector.shape == [1, 1])
        #expect(try vector.scalars(as: Float.self) == [22])
    }

    @Test func sharedSubtreeAndEveryRule() throws {
        // Node 2 is the false child of both node 0 and node 1: laid out once (after node 0), node 1
        // reaches it through a jump. The branches use GT, EQ and NEQ.
        let attributes: [String: Attribute] = [
            "nodes_treeids": .ints([0, 0, 0, 0, 0, 0]), "nodes_nodeids": .ints([0, 1, 2, 3, 4, 5]),
            "nodes_featureids": .ints([0, 1, 1, 0, 0, 0]),
            "nodes_modes": .strings(["BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "LEAF", "LEAF", "LEAF"]),
            "nodes_values": .floats([0.5, 0, 2, 0, 0, 0]),
            "nodes_truenodeids": .ints([1, 3, 4, 0, 0, 0]), "nodes_falsenodeids": .ints([2, 2, 5, 0, 0, 0]),
            "target_treeids": .ints([0, 0, 0]), "target_nodeids": .ints([3, 4, 5]), "target_ids": .ints([0, 0, 0]),
            "target_weights": .floats([100, 200, 300]), "n_targets": .int(1),
        ]
        // x0 > 0.5 → (x1 == 0 → 100, else node 2); node 2: x1 != 2 → 200, else 300.
        let x = try Tensor(shape: [5, 2], scalars: [1, 0, 1, 1, 0, 2, 1, 2, 0, 0] as [Float])
        #expect(try Self.regress(x, attributes) == [100, 200, 300, 300, 200])
    }

    // MARK: - Classifier

    /// Tree 0 alone, its leaves weighing class `classID`.
    static func stump(_ weights: (Float, Float), classID: Int = 0, labels: [Int] = [3, 7], _ extra: [String: Attribute] = [:]) -> [String: Attribute] {
        var attributes = forest("class", [(0, 1, classID, weights.0), (0, 2, classID, weights.1)], extra)
        for name in ["nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values", "nodes_truenodeids", "nodes_falsenodeids"] {
            switch attributes[name]! {
            case .ints(let v): attributes[name] = .ints(Array(v.prefix(3)))
            case .floats(let v): attributes[name] = .floats(Array(v.prefix(3)))
            case .strings(let v): attributes[name] = .strings(Array(v.prefix(3)))
            default: break
            }
        }
        attributes["classlabels_int64s"] = .ints(labels)
        return attributes
    }

    static let column = try! Tensor(shape: [2, 1], scalars: [0, 1] as [Float])

    @Test func binaryClassifierWithOneProbability() throws {
        // A random forest's export: class 0's weights are the positive class's probability.
        let (labels, scores) = try Self.classify(Self.column, Self.stump((0.3, 0.8)))
        #expect(labels == [3, 7])
        #expect(TraditionalMLTests.close(scores, [0.7, 0.3, 0.2, 0.8]))
        // Under LOGISTIC the two columns are logistic(∓s).
        let (_, logistic) = try Self.classify(Self.column, Self.stump((0.3, 0.8), ["post_transform": .string("LOGISTIC")]))
        #expect(TraditionalMLTests.close(logistic, [0.4255575, 0.5744425, 0.3100255, 0.6899745]))
    }

    @Test func binaryClassifierWithOneMargin() throws {
        // A gradient-boosting export: mixed weights, one base value, LOGISTIC; positive margin → labels[1].
        let (labels, scores) = try Self.classify(Self.column, Self.stump((0.3, -0.8), [
            "base_values": .floats([0.1]), "post_transform": .string("LOGISTIC"),
        ]))
        #expect(labels == [7, 3])
        #expect(TraditionalMLTests.close(scores, [0.4013123, 0.5986877, 0.6681878, 0.3318122]))
        let (_, raw) = try Self.classify(Self.column, Self.stump((0.3, -0.8)))
        #expect(TraditionalMLTests.close(raw, [-0.3, 0.3, 0.8, -0.8]))
    }

    @Test func binaryClassifierWithBothClasses() throws {
        // Both classes weighted: the label is class 1 once its score is positive; two base values
        // make class 1's score base[1] + class 0's, and class 0's its negation.
        let weights: [Weight] = [(0, 1, 0, 0.9), (0, 1, 1, 0.1), (0, 2, 0, 0.2), (0, 2, 1, -0.3)]
        var attributes = Self.stump((0, 0))
        for (name, value) in Self.forest("class", weights) where name.hasPrefix("class_") { attributes[name] = value }
        let (labels, scores) = try Self.classify(Self.column, attributes)
        #expect(labels == [7, 3])
        #expect(TraditionalMLTests.close(scores, [0.9, 0.1, 0.2, -0.3]))
        attributes["base_values"] = .floats([5, 0.25])
        let (based, basedScores) = try Self.classify(Self.column, attributes)
        #expect(based == [7, 7])
        #expect(TraditionalMLTests.close(basedScores, [-1.15, 1.15, -0.45, 0.45]))
    }

    @Test func multiclassClassifier() throws {
        // Node 1 weighs classes 0 and 1, node 2 class 2; base values and SOFTMAX.
        let weights: [Weight] = [(0, 1, 0, 1), (0, 1, 1, 0.5), (0, 2, 2, 2)]
        var attributes = Self.stump((0, 0), labels: [10, 20, 30], ["base_values": .floats([0.1, 0.2, 0.3]), "post_transform": .string("SOFTMAX")])
        for (name, value) in Self.forest("class", weights) where name.hasPrefix("class_") { attributes[name] = value }
        let (labels, scores) = try Self.classify(Self.column, attributes)
        #expect(labels == [10, 30])
        func softmax(_ v: [Float]) -> [Float] {
            let e = v.map { exp($0 - v.max()!) }
            return e.map { $0 / e.reduce(0, +) }
        }
        #expect(TraditionalMLTests.close(scores, softmax([1.1, 0.7, 0.3]) + softmax([0.1, 0.2, 2.3])))
        // Without base values a class no leaf weighs is not a candidate, even when the others are negative.
        var sparse = Self.stump((0, 0), labels: [10, 20, 30])
        for (name, value) in Self.forest("class", [(0, 1, 1, -0.5), (0, 2, 2, 2)]) where name.hasPrefix("class_") { sparse[name] = value }
        let (sparseLabels, sparseScores) = try Self.classify(Self.column, sparse)
        #expect(sparseLabels == [20, 30])
        #expect(sparseScores == [0, -0.5, 0, 0, 0, 2])
    }

    @Test func classifierInputTypes() throws {
        for x in [try Tensor(shape: [2, 1], scalars: [0, 1] as [Int64]), try Tensor(shape: [2, 1], scalars: [0, 1] as [Int32]),
                  try Tensor(shape: [2, 1], scalars: [0, 1] as [Double])] {
            let (labels, scores) = try Self.classify(x, Self.stump((0.3, 0.8)))
            #expect(labels == [3, 7])
            #expect(TraditionalMLTests.close(scores, [0.7, 0.3, 0.2, 0.8]))
        }
    }

    // MARK: - Errors

    static func attributeError(_ op: String = "TreeEnsembleRegressor", _ attributes: [String: Attribute], opset: Int = 1) -> OnyxError? {
        #expect(throws: OnyxError.self) {
            try TraditionalMLTests.outputs(op, opset: opset, [Self.rows], attributes, outputs: op == "TreeEnsembleRegressor" ? 1 : 2)
        }
    }

    @Test func malformedForestsFailAtLoad() throws {
        let base = Self.forest("target", Self.oneTarget, ["n_targets": .int(1)])
        func message(_ change: [String: Attribute]) -> String? {
            Self.attributeError("TreeEnsembleRegressor", base.merging(change) { $1 })?.message
        }
        #expect(message(["nodes_featureids": .ints([0, 0])])
            == "TreeEnsembleRegressor node 'n': nodes_featureids has 2 entries; nodes_treeids has 8")
        #expect(message(["nodes_truenodeids": .ints([1, 0, 0, 7, 0, 3, 0, 0])])
            == "TreeEnsembleRegressor node 'n': node 0 of tree 1 branches to node 7, which does not exist")
        #expect(message(["nodes_truenodeids": .ints([1, 0, 0, 1, 0, 0, 0, 0])])?.contains("has a cycle") == true)
        #expect(message(["nodes_nodeids": .ints([0, 1, 1, 0, 1, 2, 3, 4])]) == "TreeEnsembleRegressor node 'n': tree 0 has node 1 twice")
        #expect(message(["nodes_modes": .strings(["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LTE", "LEAF", "BRANCH_GTE", "LEAF", "LEAF"])])
            == "TreeEnsembleRegressor node 'n': nodes_modes[3] is 'BRANCH_LTE', not LEAF or a BRANCH_ mode")
        #expect(message(["nodes_featureids": .ints([-1, 0, 0, 1, 0, 0, 0, 0])])
            == "TreeEnsembleRegressor node 'n': nodes_featureids[0] = -1 is not a feature index")
        #expect(message(["target_ids": .ints([0, 0, 1, 0, 0])]) == "TreeEnsembleRegressor node 'n': target_ids[2] = 1 is not in 0..<1")
        #expect(message(["target_nodeids": .ints([1, 2, 1, 3, 9])])
            == "TreeEnsembleRegressor node 'n': target weight 4 is for node 9 of tree 1, which does not exist")
        #expect(message(["target_weights": .floats([1])])?.contains("must have the same length") == true)
        #expect(message(["post_transform": .string("SIGMOID")])
            == "TreeEnsembleRegressor node 'n': post_transform 'SIGMOID' is not NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO or PROBIT")
        #expect(message(["aggregate_function": .string("MEDIAN")])
            == "TreeEnsembleRegressor node 'n': aggregate_function 'MEDIAN' is not SUM, AVERAGE, MIN or MAX")
        #expect(message(["base_values": .floats([1, 2])]) == "TreeEnsembleRegressor node 'n': base_values has 2 values for 1 targets")
        #expect(message(["n_targets": .int(0)]) == "TreeEnsembleRegressor node 'n': n_targets must be given and ≥ 1")
        #expect(message(["nodes_missing_value_tracks_true": .ints([1])])
            == "TreeEnsembleRegressor node 'n': nodes_missing_value_tracks_true has 1 entries; nodes_treeids has 8")
    }

    @Test func malformedClassifiersFailAtLoad() throws {
        let base = Self.stump((0.3, 0.8))
        func error(_ change: [String: Attribute]) -> OnyxError? {
            Self.attributeError("TreeEnsembleClassifier", base.merging(change) { $1 })
        }
        #expect(error(["classlabels_int64s": .ints([3])])?.message
            == "TreeEnsembleClassifier node 'n': needs two or more class labels (classlabels_int64s)")
        #expect(error(["class_ids": .ints([0, 2])])?.message == "TreeEnsembleClassifier node 'n': class_ids[1] = 2 is not in 0..<2")
        #expect(error(["base_values": .floats([1, 2, 3])])?.message == "TreeEnsembleClassifier node 'n': base_values has 3 values for 2 classes")
        let both = error(["classlabels_strings": .strings(["a", "b"])])
        #expect(both?.message == "TreeEnsembleClassifier node 'n': give classlabels_int64s or classlabels_strings, not both")
    }

    @Test func featuresBeyondTheInputFailAtPlanning() throws {
        let error = #expect(throws: OnyxError.self) {
            try Self.regress(try Tensor(shape: [1, 1], scalars: [0] as [Float]), Self.forest("target", Self.oneTarget, ["n_targets": .int(1)]))
        }
        #expect(error?.code == .shapeMismatch)
        #expect(error?.message == "TreeEnsembleRegressor: a node reads feature 1 but X has 1 features")
    }

    @Test func treeEnsembleOpset5CycleAndTransforms() throws {
        let x = try Tensor(shape: [1, 1], scalars: [0] as [Float])
        let cycle = #expect(throws: OnyxError.self) {
            try TraditionalMLTests.run("TreeEnsemble", opset: 5, [x], TraditionalMLTests.stump(["nodes_truenodeids": .ints([0]), "nodes_trueleafs": .ints([0])]))
        }
        #expect(cycle?.message == "TreeEnsemble node 'n': the tree at root 0 has a cycle through node 0")
        // post_transform 1 is SOFTMAX and 2 LOGISTIC (onnxruntime reads them the other way round);
        // target 1, which no leaf reached, counts as 0.
        let softmax = try TraditionalMLTests.run("TreeEnsemble", opset: 5, [x], TraditionalMLTests.stump(["post_transform": .int(1)]))
        #expect(TraditionalMLTests.close(try softmax.scalars(as: Float.self), [0.7310586, 0.2689414]))
        let logistic = try TraditionalMLTests.run("TreeEnsemble", opset: 5, [x], TraditionalMLTests.stump(["post_transform": .int(2)]))
        #expect(TraditionalMLTests.close(try logistic.scalars(as: Float.self), [0.7310586, 0.5]))
        let probit = try TraditionalMLTests.run("TreeEnsemble", opset: 5, [x], TraditionalMLTests.stump([
            "post_transform": .int(4), "leaf_weights": .tensor(try Tensor(shape: [2], scalars: [0.3, 0.8] as [Float])),
        ])).scalars(as: Float.self)
        #expect(abs(probit[0] + 0.5244459) < 1e-6)
        #expect(probit[1] == -.infinity)
    }

    // MARK: - Against a naive reference

    /// A random ensemble in the opset-1 layout, and the same trees as dictionaries.
    struct RandomForest {
        struct Node { var feature = 0, mode = "LEAF", value: Float = 0, yes = 0, no = 0, missing = false, weights: [(Int, Float)] = [] }
        var trees: [[Node]] = []
        let targets = 3, features = 6
        let base: [Float] = [0.5, -0.25, 2]

        /// `modes`: the branch modes to draw from (with one, the uniform fast path runs);
        /// `missing`: whether branches may track missing values to true.
        init(trees count: Int, seed: UInt64, modes: [String], missing: Bool, depth maxDepth: Int = 6) {
            var random = SplitMix(state: seed)
            for _ in 0..<count {
                var nodes: [Node] = []
                func grow(_ depth: Int) -> Int {
                    let id = nodes.count
                    nodes.append(Node())
                    if depth == maxDepth || (depth > 1 && random.next() % 4 == 0) {
                        for target in 0..<targets where random.next() % 2 == 0 {
                            nodes[id].weights.append((target, Float(Int(random.next() % 200)) / 50 - 2))
                        }
                        return id
                    }
                    nodes[id].mode = modes[Int(random.next() % UInt64(modes.count))]
                    nodes[id].feature = Int(random.next() % UInt64(features))
                    nodes[id].value = Float(Int(random.next() % 9)) / 2 - 2
                    nodes[id].missing = missing && random.next() % 4 == 0
                    nodes[id].yes = grow(depth + 1)
                    nodes[id].no = grow(depth + 1)
                    return id
                }
                _ = grow(0)
                trees.append(nodes)
            }
        }

        var attributes: [String: Attribute] {
            var a: [String: [Int]] = [:], modes: [String] = [], values: [Float] = [], weights: [Float] = []
            for (t, nodes) in trees.enumerated() {
                for (id, node) in nodes.enumerated() {
                    a["nodes_treeids", default: []].append(t)
                    a["nodes_nodeids", default: []].append(id)
                    a["nodes_featureids", default: []].append(node.feature)
                    a["nodes_truenodeids", default: []].append(node.yes)
                    a["nodes_falsenodeids", default: []].append(node.no)
                    a["nodes_missing_value_tracks_true", default: []].append(node.missing ? 1 : 0)
                    modes.append(node.mode)
                    values.append(node.value)
                    for (target, weight) in node.weights {
                        a["target_treeids", default: []].append(t)
                        a["target_nodeids", default: []].append(id)
                        a["target_ids", default: []].append(target)
                        weights.append(weight)
                    }
                }
            }
            var result = a.mapValues { Attribute.ints($0) }
            result["nodes_modes"] = .strings(modes)
            result["nodes_values"] = .floats(values)
            result["target_weights"] = .floats(weights)
            result["n_targets"] = .int(targets)
            result["base_values"] = .floats(base)
            return result
        }

        /// Sums each target over the leaves a row reaches; a target no leaf weighs gives 0.
        func predict(_ row: ArraySlice<Float>) -> [Float] {
            var sums = [Float](repeating: 0, count: targets), seen = [Bool](repeating: false, count: targets)
            for nodes in trees {
                var node = nodes[0]
                while node.mode != "LEAF" {
                    let x = row[row.startIndex + node.feature]
                    let yes: Bool
                    switch node.mode {
                    case "BRANCH_LEQ": yes = x <= node.value
                    case "BRANCH_LT": yes = x < node.value
                    case "BRANCH_GTE": yes = x >= node.value
                    case "BRANCH_GT": yes = x > node.value
                    case "BRANCH_EQ": yes = x == node.value
                    default: yes = x != node.value
                    }
                    node = nodes[yes || (node.missing && x.isNaN) ? node.yes : node.no]
                }
                for (target, weight) in node.weights {
                    sums[target] += weight
                    seen[target] = true
                }
            }
            return (0..<targets).map { seen[$0] ? sums[$0] + base[$0] : 0 }
        }
    }

    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Forty trees each: every mode with missing-value tracking (the per-node path), and only
    /// BRANCH_LEQ or only BRANCH_LT (the uniform paths).
    static let forests = [
        RandomForest(trees: 40, seed: 42, modes: ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"], missing: true),
        RandomForest(trees: 40, seed: 43, modes: ["BRANCH_LEQ"], missing: false),
        RandomForest(trees: 40, seed: 44, modes: ["BRANCH_LT"], missing: false),
    ]

    @Test(arguments: [1, 3, 7, 17, 63, 257], [1, 2])
    func matchesNaiveReference(rows: Int, threads: Int) throws {
        for forest in Self.forests {
            try Self.check(forest, rows: rows, threads: threads)
        }
    }

    /// Enough deep trees that two threads split a row's trees between them.
    static let bigForest = RandomForest(trees: 600, seed: 45, modes: ["BRANCH_LEQ"], missing: false, depth: 9)

    @Test(arguments: [1, 3], [1, 2])
    func splitTreesMatchNaiveReference(rows: Int, threads: Int) throws {
        let node = Node(name: "n", opType: "TreeEnsembleRegressor", domain: "ai.onnx.ml", inputs: ["x"], outputs: ["y"],
                        attributes: Self.bigForest.attributes)
        let kernel = try TreeEnsembleRegressorKernel(NodeContext(node: node, opset: 1, constantInputs: [nil], isa: .preferred))
        #expect(kernel.forest.descentSteps >= 2 * TreeBatch.stepsPerSlice)
        try Self.check(Self.bigForest, rows: rows, threads: threads)
    }

    static func check(_ forest: RandomForest, rows: Int, threads: Int) throws {
        var random = SplitMix(state: UInt64(rows))
        // Values on the thresholds' half-steps (so EQ/NEQ branches both ways), and some NaN.
        let values: [Float] = (0..<(rows * forest.features)).map { _ in
            random.next() % 10 == 0 ? .nan : Float(Int(random.next() % 11)) / 2 - 2.5
        }
        let expected = (0..<rows).flatMap { forest.predict(values[($0 * forest.features)..<(($0 + 1) * forest.features)]) }
        let x = try Tensor(shape: [rows, forest.features], scalars: values)
        #expect(TraditionalMLTests.close(try regress(x, forest.attributes, threads: threads), expected, tolerance: 1e-5))
        let double = try Tensor(shape: [rows, forest.features], scalars: values.map(Double.init))
        #expect(TraditionalMLTests.close(try regress(double, forest.attributes, threads: threads), expected, tolerance: 1e-5))
    }
}
