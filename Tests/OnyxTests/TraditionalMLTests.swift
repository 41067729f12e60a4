import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// TfIdfVectorizer and the ai.onnx.ml Binarizer, ArrayFeatureExtractor and TreeEnsemble (opset 5).
/// The other ai.onnx.ml operators have their own suites: TraditionalMLTreeTests,
/// TraditionalMLLinearTests, TraditionalMLPreprocessingTests, TraditionalMLFixtureTests.
@Suite struct TraditionalMLTests {
    static func run(_ op: String, domain: String = "ai.onnx.ml", opset: Int = 1, _ inputs: [Tensor],
                    _ attributes: [String: Attribute] = [:]) throws -> Tensor {
        try outputs(op, domain: domain, opset: opset, inputs, attributes)[0]
    }

    /// Every output of a one-node model (`outputs` of them), run on `threads` threads.
    static func outputs(_ op: String, domain: String = "ai.onnx.ml", opset: Int = 1, _ inputs: [Tensor],
                        _ attributes: [String: Attribute] = [:], outputs: Int = 1, threads: Int = 1) throws -> [Tensor] {
        let node = Node(name: "n", opType: op, domain: domain, inputs: inputs.indices.map { "x\($0)" },
                        outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs, threads: threads)
    }

    /// Whether two lists agree within `tolerance` (relative to the larger magnitude, at least 1).
    static func close(_ a: [Float], _ b: [Float], tolerance: Float = 1e-5) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { x, y in
            (x.isNaN && y.isNaN) || abs(x - y) <= tolerance * max(1, abs(x), abs(y))
        }
    }

    // MARK: - TfIdfVectorizer

    static func tfidf(_ x: Tensor, pool: [Int], counts: [Int], min: Int, max: Int, skip: Int, mode: String = "TF",
                      weights: [Float]? = nil) throws -> Tensor {
        var attributes: [String: Attribute] = [
            "pool_int64s": .ints(pool), "ngram_counts": .ints(counts), "ngram_indexes": .ints([0, 1]),
            "min_gram_length": .int(min), "max_gram_length": .int(max), "max_skip_count": .int(skip), "mode": .string(mode),
        ]
        if let weights { attributes["weights"] = .floats(weights) }
        return try run("TfIdfVectorizer", domain: "", opset: 9, [x], attributes)
    }

    @Test func tfidfCountsUnigramsAndBigrams() throws {
        let tokens = try Tensor(shape: [4], scalars: [7, 8, 7, 9] as [Int32])
        #expect(try Self.tfidf(tokens, pool: [7, 8], counts: [0], min: 1, max: 1, skip: 0).scalars(as: Float.self) == [2, 1])
        #expect(try Self.tfidf(tokens, pool: [7, 8], counts: [0], min: 1, max: 1, skip: 0, mode: "IDF", weights: [0.5, 2])
            .scalars(as: Float.self) == [0.5, 2])
        #expect(try Self.tfidf(tokens, pool: [7, 8], counts: [0], min: 1, max: 1, skip: 0, mode: "TFIDF", weights: [0.5, 2])
            .scalars(as: Float.self) == [1, 2])
        // Bigrams (7, 8) and (8, 7) in rows of int64 tokens; skip 1 also pairs tokens two apart.
        let rows = try Tensor(shape: [2, 3], scalars: [7, 8, 7, 8, 9, 7] as [Int64])
        let bigrams = try Self.tfidf(rows, pool: [7, 8, 8, 7], counts: [0, 0], min: 2, max: 2, skip: 0)
        #expect(bigrams.shape == [2, 2])
        #expect(try bigrams.scalars(as: Float.self) == [1, 1, 0, 0])
        let skipped = try Self.tfidf(rows, pool: [7, 8, 8, 7], counts: [0, 0], min: 2, max: 2, skip: 1)
        #expect(try skipped.scalars(as: Float.self) == [1, 1, 0, 1])
    }

    @Test func tfidfErrors() throws {
        let strings = #expect(throws: OnyxError.self) {
            try Self.run("TfIdfVectorizer", domain: "", opset: 9, [try Tensor(shape: [1], scalars: [1] as [Int64])],
                         ["pool_strings": .strings(["a"]), "ngram_counts": .ints([0]), "ngram_indexes": .ints([0]), "mode": .string("TF"),
                          "min_gram_length": .int(1), "max_gram_length": .int(1), "max_skip_count": .int(0)])
        }
        #expect(strings?.code == .unsupportedDataType)
        let floats = #expect(throws: OnyxError.self) {
            try Self.tfidf(try Tensor(shape: [1], scalars: [1] as [Float]), pool: [1, 2], counts: [0], min: 1, max: 1, skip: 0)
        }
        #expect(floats?.message == "TfIdfVectorizer: X must be int32 or int64 with pool_int64s, found float")
        let mode = #expect(throws: OnyxError.self) {
            try Self.tfidf(try Tensor(shape: [1], scalars: [1] as [Int64]), pool: [1, 2], counts: [0], min: 1, max: 1, skip: 0, mode: "BM25")
        }
        #expect(mode?.message == "TfIdfVectorizer node 'n': mode 'BM25' is not TF, IDF or TFIDF")
    }

    // MARK: - Binarizer

    @Test func binarizer() throws {
        let y = try Self.run("Binarizer", [try Tensor(shape: [3], scalars: [0.5, 1, 1.5] as [Float])], ["threshold": .float(1)])
        #expect(try y.scalars(as: Float.self) == [0, 0, 1])
        let yi = try Self.run("Binarizer", [try Tensor(shape: [3], scalars: [-3, 0, 4] as [Int32])])
        #expect(try yi.scalars(as: Int32.self) == [0, 0, 1])
        let error = #expect(throws: OnyxError.self) { try Self.run("Binarizer", [try Tensor(shape: [1], scalars: [1] as [UInt8])]) }
        #expect(error?.message == "Binarizer supports float, double, int64 and int32, found uint8")
    }

    // MARK: - ArrayFeatureExtractor

    @Test func arrayFeatureExtractor() throws {
        let x = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float])
        let picks = try Tensor(shape: [2], scalars: [2, 0] as [Int64])
        let y = try Self.run("ArrayFeatureExtractor", [x, picks])
        #expect(y.shape == [2, 2])
        #expect(try y.scalars(as: Float.self) == [3, 1, 6, 4])
        let vector = try Self.run("ArrayFeatureExtractor", [try Tensor(shape: [3], scalars: [10, 20, 30] as [Int64]), picks])
        #expect(vector.shape == [1, 2])
        #expect(try vector.scalars(as: Int64.self) == [30, 10])
        let error = #expect(throws: OnyxError.self) {
            try Self.run("ArrayFeatureExtractor", [x, try Tensor(shape: [1], scalars: [3] as [Int64])])
        }
        #expect(error?.code == .invalidInput)
        #expect(error?.message == "ArrayFeatureExtractor: index 3 is out of range for the last axis of extent 3")
    }

    // MARK: - TreeEnsemble

    static func stump(_ extra: [String: Attribute] = [:]) -> [String: Attribute] {
        // One branch on feature 0: x ≤ 0.5 → leaf 0 (weight 1, target 0), else leaf 1 (weight 2, target 1).
        var attributes: [String: Attribute] = [
            "nodes_featureids": .ints([0]), "nodes_modes": .tensor(try! Tensor(shape: [1], scalars: [0] as [UInt8])),
            "nodes_splits": .tensor(try! Tensor(shape: [1], scalars: [0.5] as [Float])),
            "nodes_truenodeids": .ints([0]), "nodes_falsenodeids": .ints([1]), "nodes_trueleafs": .ints([1]),
            "nodes_falseleafs": .ints([1]), "leaf_targetids": .ints([0, 1]),
            "leaf_weights": .tensor(try! Tensor(shape: [2], scalars: [1, 2] as [Float])), "tree_roots": .ints([0]),
            "n_targets": .int(2),
        ]
        attributes.merge(extra) { $1 }
        return attributes
    }

    @Test func treeEnsembleStump() throws {
        let x = try Tensor(shape: [3, 1], scalars: [0, 1, Float.nan] as [Float])
        let y = try Self.run("TreeEnsemble", opset: 5, [x], Self.stump())
        #expect(y.shape == [3, 2])
        #expect(try y.scalars(as: Float.self) == [1, 0, 0, 2, 0, 2])
        // NaN follows the true branch when asked to; a set-membership node tests {1, 3}.
        let missing = try Self.run("TreeEnsemble", opset: 5, [x], Self.stump(["nodes_missing_value_tracks_true": .ints([1])]))
        #expect(try missing.scalars(as: Float.self) == [1, 0, 0, 2, 1, 0])
        let member = try Self.run("TreeEnsemble", opset: 5, [try Tensor(shape: [3, 1], scalars: [1, 2, 3] as [Double])], Self.stump([
            "nodes_modes": .tensor(try Tensor(shape: [1], scalars: [6] as [UInt8])),
            "membership_values": .tensor(try Tensor(shape: [3], scalars: [1, 3, .nan] as [Float])),
        ]))
        #expect(try member.scalars(as: Double.self) == [1, 0, 0, 2, 1, 0])
        let logistic = try Self.run("TreeEnsemble", opset: 5, [x], Self.stump(["post_transform": .int(2)]))
        #expect(abs(try logistic.scalars(as: Float.self)[0] - 0.7310586) < 1e-6)
    }

    @Test func treeEnsembleErrors() throws {
        let x = try Tensor(shape: [1, 1], scalars: [0] as [Float])
        let target = #expect(throws: OnyxError.self) {
            try Self.run("TreeEnsemble", opset: 5, [x], Self.stump(["leaf_targetids": .ints([0, 2])]))
        }
        #expect(target?.code == .invalidAttribute)
        #expect(target?.message == "TreeEnsemble node 'n': leaf_targetids must lie in 0..<2")
        let feature = #expect(throws: OnyxError.self) {
            try Self.run("TreeEnsemble", opset: 5, [x], Self.stump(["nodes_featureids": .ints([4])]))
        }
        #expect(feature?.message == "TreeEnsemble: a node reads feature 4 but X has 1 features")
        let branch = #expect(throws: OnyxError.self) {
            try Self.run("TreeEnsemble", opset: 5, [x], Self.stump(["nodes_falsenodeids": .ints([5])]))
        }
        #expect(branch?.message == "TreeEnsemble node 'n': node 0 branches to leaf 5, which does not exist")
    }
}
