import OnyxCore
import OnyxIR
import OnyxKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension OperatorRegistry {
    /// The ai.onnx.ml operators and TfIdfVectorizer.
    package static let traditionalMLOperators: [OperatorRegistration] = [
        OperatorRegistration("TfIdfVectorizer", versions: 9...Int.max) { context in try TfIdfVectorizerKernel(context) },
        OperatorRegistration("Binarizer", domain: "ai.onnx.ml", versions: 1...Int.max) { context in
            BinarizerKernel(threshold: Double(try context.float("threshold", default: 0)))
        },
        OperatorRegistration("ArrayFeatureExtractor", domain: "ai.onnx.ml", versions: 1...Int.max) { _ in
            ArrayFeatureExtractorKernel()
        },
        OperatorRegistration("TreeEnsemble", domain: "ai.onnx.ml", versions: 5...Int.max) { context in
            try TreeEnsembleKernel(context)
        },
    ]
}

// MARK: - TfIdfVectorizer

/// TfIdfVectorizer: counts the pool's n-grams (with up to `max_skip_count` skipped tokens between
/// items) in each row and weighs the counts (TF, IDF, TFIDF). Tokens are integers (`pool_int64s`)
/// or strings (`pool_strings`, each distinct string numbered once).
package struct TfIdfVectorizerKernel: Kernel {
    package enum Weighting { case tf, idf, tfidf }

    /// The pool as a trie: node 0 is the root; `ids[node]` is the 1-based n-gram id ending there (0: none).
    package let children: [[Int64: Int]]
    package let ids: [Int]
    package let ngramIndexes: [Int]
    package let weights: [Double]
    package let weighting: Weighting
    package let minGramLength: Int
    package let maxGramLength: Int
    package let maxSkipCount: Int
    package let outputSize: Int
    /// For a string pool: each pool string's number, the token the trie is keyed by.
    package let stringTokens: [String: Int64]?

    package init(_ context: NodeContext) throws {
        func required(_ name: String) throws -> Int {
            guard let value = try context.int(name) else { throw context.attributeError("missing attribute '\(name)'") }
            return value
        }
        minGramLength = try required("min_gram_length")
        maxGramLength = try required("max_gram_length")
        maxSkipCount = try required("max_skip_count")
        guard minGramLength >= 1, maxGramLength >= minGramLength, maxSkipCount >= 0 else {
            throw context.attributeError(
                "need 1 ≤ min_gram_length (\(minGramLength)) ≤ max_gram_length (\(maxGramLength)) and max_skip_count (\(maxSkipCount)) ≥ 0")
        }
        guard let mode = try context.string("mode") else { throw context.attributeError("missing attribute 'mode'") }
        switch mode {
        case "TF": weighting = .tf
        case "IDF": weighting = .idf
        case "TFIDF": weighting = .tfidf
        default: throw context.attributeError("mode '\(mode)' is not TF, IDF or TFIDF")
        }
        let pool: [Int]
        switch (try context.ints("pool_int64s"), try context.strings("pool_strings")) {
        case (let ints?, nil):
            pool = ints
            stringTokens = nil
        case (nil, let strings?):
            var numbers: [String: Int64] = [:]
            for string in strings where numbers[string] == nil { numbers[string] = Int64(numbers.count) }
            pool = strings.map { Int(numbers[$0]!) }
            stringTokens = numbers
        default:
            throw context.attributeError("exactly one of 'pool_int64s' and 'pool_strings' must be given")
        }
        guard let counts = try context.ints("ngram_counts") else { throw context.attributeError("missing attribute 'ngram_counts'") }
        guard let indexes = try context.ints("ngram_indexes"), !indexes.isEmpty else {
            throw context.attributeError("missing attribute 'ngram_indexes'")
        }
        guard indexes.allSatisfy({ $0 >= 0 && $0 < 1 << 32 }) else {
            throw context.attributeError("ngram_indexes must be ≥ 0, got \(shapeText(indexes))")
        }
        ngramIndexes = indexes
        outputSize = (indexes.max() ?? 0) + 1
        weights = (try context.floats("weights") ?? []).map(Double.init)
        guard weights.isEmpty || weights.count >= outputSize else {
            throw context.attributeError("weights has \(weights.count) values; the output has \(outputSize) columns")
        }

        var children: [[Int64: Int]] = [[:]]
        var ids = [0]
        var nextId = 1
        for (level, start) in counts.enumerated() {
            let end = level + 1 < counts.count ? counts[level + 1] : pool.count
            guard start >= 0, start <= end, end <= pool.count else {
                throw context.attributeError("ngram_counts \(shapeText(counts)) do not index the \(pool.count) pool items in order")
            }
            let size = level + 1, grams = (end - start) / size
            guard (minGramLength...maxGramLength).contains(size) else {
                nextId += grams
                continue
            }
            for gram in 0..<grams {
                var node = 0
                for item in pool[(start + gram * size)..<(start + gram * size + size)] {
                    let key = Int64(item)
                    if let child = children[node][key] {
                        node = child
                    } else {
                        children.append([:])
                        ids.append(0)
                        children[node][key] = children.count - 1
                        node = children.count - 1
                    }
                }
                ids[node] = nextId
                nextId += 1
            }
        }
        guard nextId - 1 <= indexes.count else {
            throw context.attributeError("the pool holds \(nextId - 1) n-grams but ngram_indexes has only \(indexes.count) entries")
        }
        self.children = children
        self.ids = ids
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("TfIdfVectorizer: missing input 0 (X)") }
        if stringTokens != nil {
            guard x.dataType == .string else {
                throw OnyxError.unsupportedDataType("TfIdfVectorizer: X must be string with pool_strings, found \(x.dataType)")
            }
        } else {
            guard x.dataType == .int32 || x.dataType == .int64 else {
                throw OnyxError.unsupportedDataType("TfIdfVectorizer: X must be int32 or int64 with pool_int64s, found \(x.dataType)")
            }
        }
        switch x.shape.count {
        case 0, 1: return [TensorDescriptor(.float, [outputSize])]
        case 2: return [TensorDescriptor(.float, [x.shape[0], outputSize])]
        default: throw OnyxError.shapeMismatch("TfIdfVectorizer: X must be [C] or [N, C], got \(shapeText(x.shape))")
        }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0).pointer(as: Float.self)
        let rows = x.rank == 2 ? x.shape[0] : 1
        let length = x.rank == 0 ? 1 : x.shape[x.rank - 1]
        var counts = [Int](repeating: 0, count: outputSize)
        // String tokens become their pool numbers (−1 for strings outside the pool).
        let numbered: [Int64] = try stringTokens.map { numbers in
            try context.strings(ofInput: 0).map { numbers[$0] ?? -1 }
        } ?? []
        for row in 0..<rows {
            for i in 0..<outputSize { counts[i] = 0 }
            let token: (Int) -> Int64 = switch x.dataType {
            case .int32: { [p = x.pointer(as: Int32.self)] in Int64(p[row * length + $0]) }
            case .string: { [numbered] in numbered[row * length + $0] }
            default: { [p = x.pointer(as: Int64.self)] in p[row * length + $0] }
            }
            count(length, token, &counts)
            let out = y + row * outputSize
            for i in 0..<outputSize {
                switch weighting {
                case .tf: out[i] = Float(counts[i])
                case .idf: out[i] = counts[i] > 0 ? (weights.isEmpty ? 1 : Float(weights[i])) : 0
                case .tfidf: out[i] = weights.isEmpty ? Float(counts[i]) : Float(weights[i] * Double(counts[i]))
                }
            }
        }
    }

    /// Adds one to `counts[ngram_indexes[id - 1]]` for every pool n-gram found in a row.
    private func count(_ length: Int, _ token: (Int) -> Int64, _ counts: inout [Int]) {
        var startSize = minGramLength
        // Beyond the row length, skips only reach past its end.
        for skip in 1...(min(maxSkipCount, length) + 1) {
            for start in 0..<length {
                let (reach, overflow) = skip.multipliedReportingOverflow(by: startSize - 1)
                if overflow || reach >= length - start { break }
                var node = 0, size = 1, item = start
                while !children[node].isEmpty && size <= maxGramLength && item < length {
                    guard let child = children[node][token(item)] else { break }
                    let id = ids[child]
                    if size >= startSize && id != 0 { counts[ngramIndexes[id - 1]] += 1 }
                    node = child
                    size += 1
                    item += skip
                }
            }
            // Unigrams do not depend on the skip: count them in the first pass only.
            if startSize == 1 {
                startSize = 2
                if startSize > maxGramLength { break }
            }
        }
    }
}

// MARK: - Binarizer

/// Binarizer (ai.onnx.ml): 1 where x > threshold, else 0, in the input's type.
package struct BinarizerKernel: Kernel {
    package let threshold: Double

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Binarizer: missing input 0 (X)") }
        guard [.float, .double, .int64, .int32].contains(x.dataType) else {
            throw OnyxError.unsupportedDataType("Binarizer supports float, double, int64 and int32, found \(x.dataType)")
        }
        return [x.descriptor]
    }

    package var aliasing: KernelAliasing { .inPlace(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        func binarize<T: VisionElement>(_: T.Type) {
            let source = x.pointer(as: T.self), target = y.pointer(as: T.self)
            for i in 0..<x.elementCount { target[i] = T.converting(source[i].real(Double.self) > threshold ? 1.0 : 0.0) }
        }
        switch x.dataType {
        case .float: binarize(Float.self)
        case .double: binarize(Double.self)
        case .int64: binarize(Int64.self)
        case .int32: binarize(Int32.self)
        default: throw OnyxError.unsupportedDataType("Binarizer does not support \(x.dataType)")
        }
    }
}

// MARK: - ArrayFeatureExtractor

/// ArrayFeatureExtractor (ai.onnx.ml): picks the given entries of X's last axis. A 1-D X gives
/// a [1, k] output, as onnxruntime does.
package struct ArrayFeatureExtractorKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 2, let x = inputs[0], let indices = inputs[1] else {
            throw OnyxError.invalidModel("ArrayFeatureExtractor takes inputs X and Y (indices)")
        }
        guard [.float, .double, .int64, .int32].contains(x.dataType) else {
            throw OnyxError.unsupportedDataType("ArrayFeatureExtractor supports float, double, int64 and int32, found \(x.dataType)")
        }
        guard indices.dataType == .int64 else {
            throw OnyxError.unsupportedDataType("ArrayFeatureExtractor: indices must be int64, found \(indices.dataType)")
        }
        guard x.shape.count >= 1 else { throw OnyxError.shapeMismatch("ArrayFeatureExtractor: X must have rank 1 or more") }
        if let constant = indices.constant {
            try Self.check(constant.baseAddress.assumingMemoryBound(to: Int64.self), constant.elementCount, x.shape[x.shape.count - 1])
        }
        let k = indices.descriptor.elementCount
        return [TensorDescriptor(x.dataType, x.shape.count == 1 ? [1, k] : Array(x.shape.dropLast()) + [k])]
    }

    private static func check(_ indices: UnsafePointer<Int64>, _ count: Int, _ extent: Int) throws {
        for i in 0..<count where indices[i] < 0 || indices[i] >= Int64(extent) {
            throw OnyxError.invalidInput("ArrayFeatureExtractor: index \(indices[i]) is out of range for the last axis of extent \(extent)")
        }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, indices = context.input(1)!, y = context.output(0)
        let extent = x.shape[x.rank - 1], k = indices.elementCount
        let index = UnsafePointer(indices.pointer(as: Int64.self))
        try Self.check(index, k, extent)
        let rows = extent == 0 ? 0 : x.elementCount / extent
        let width = x.dataType.byteWidth
        for row in 0..<rows {
            for j in 0..<k {
                (y.data + (row * k + j) * width).copyMemory(from: x.data + (row * extent + Int(index[j])) * width, byteCount: width)
            }
        }
    }
}

// MARK: - TreeEnsemble

/// TreeEnsemble (ai.onnx.ml opset 5): sums (or averages, or takes the min/max of) the leaf
/// weights each row reaches in every tree, per target, then applies `post_transform`.
package struct TreeEnsembleKernel: Kernel {
    package struct Branch: Sendable {
        package var mode: Int
        package var feature: Int
        package var split: Double
        package var members: Range<Int>
        package var trueTarget: Int
        package var falseTarget: Int
        package var trueIsLeaf: Bool
        package var falseIsLeaf: Bool
        package var missingTracksTrue: Bool
    }

    package enum Aggregate: Int { case average = 0, sum, min, max }
    package enum PostTransform: Int { case none = 0, softmax, logistic, softmaxZero }

    package let branches: [Branch]
    package let members: [Double]
    package let leafWeights: [Double]
    package let leafTargets: [Int]
    package let roots: [Int]
    package let targets: Int
    package let aggregate: Aggregate
    package let postTransform: PostTransform
    /// The largest feature index a branch reads.
    package let maxFeature: Int

    package init(_ context: NodeContext) throws {
        func ints(_ name: String) throws -> [Int] {
            guard let values = try context.ints(name) else { throw context.attributeError("missing attribute '\(name)'") }
            return values
        }
        func reals(_ name: String) throws -> [Double]? {
            guard let tensor = try context.tensor(name) else { return nil }
            guard let values = visionRealValues(tensor) else {
                throw context.attributeError("attribute '\(name)' must be a float or double tensor, found \(tensor.dataType)")
            }
            return values
        }
        let features = try ints("nodes_featureids"), trueIds = try ints("nodes_truenodeids"), falseIds = try ints("nodes_falsenodeids")
        let trueLeafs = try ints("nodes_trueleafs"), falseLeafs = try ints("nodes_falseleafs")
        leafTargets = try ints("leaf_targetids")
        roots = try ints("tree_roots")
        guard let leafWeights = try reals("leaf_weights") else { throw context.attributeError("missing attribute 'leaf_weights'") }
        self.leafWeights = leafWeights
        guard let modesTensor = try context.tensor("nodes_modes") else { throw context.attributeError("missing attribute 'nodes_modes'") }
        let modes: [Int]
        switch modesTensor.dataType {
        case .uint8: modes = try modesTensor.scalars(as: UInt8.self).map(Int.init)
        case .int32: modes = try modesTensor.scalars(as: Int32.self).map(Int.init)
        case .int64: modes = try modesTensor.scalars(as: Int64.self).map(Int.init)
        default: throw context.attributeError("nodes_modes must be a uint8 tensor, found \(modesTensor.dataType)")
        }
        let count = features.count
        let splits = try reals("nodes_splits") ?? Array(repeating: 0, count: count)
        let missing = try context.ints("nodes_missing_value_tracks_true") ?? Array(repeating: 0, count: count)
        guard [trueIds.count, falseIds.count, trueLeafs.count, falseLeafs.count, modes.count, splits.count, missing.count]
            .allSatisfy({ $0 == count }) else {
            throw context.attributeError("the nodes_* attributes must all have \(count) entries (one per branch node)")
        }
        guard leafTargets.count == leafWeights.count else {
            throw context.attributeError("leaf_targetids has \(leafTargets.count) entries but leaf_weights \(leafWeights.count)")
        }
        guard let targets = try context.int("n_targets"), targets >= 1 else { throw context.attributeError("n_targets must be given and ≥ 1") }
        self.targets = targets
        guard let aggregate = Aggregate(rawValue: try context.int("aggregate_function", default: 1)) else {
            throw context.attributeError("aggregate_function must be 0 (AVERAGE), 1 (SUM), 2 (MIN) or 3 (MAX)")
        }
        self.aggregate = aggregate
        let transform = try context.int("post_transform", default: 0)
        guard let postTransform = PostTransform(rawValue: transform) else {
            throw context.attributeError("post_transform \(transform) is not supported (NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO)")
        }
        self.postTransform = postTransform
        guard leafTargets.allSatisfy({ $0 >= 0 && $0 < targets }) else {
            throw context.attributeError("leaf_targetids must lie in 0..<\(targets)")
        }
        guard roots.allSatisfy({ $0 >= 0 && $0 < count }) else { throw context.attributeError("tree_roots must index the \(count) nodes") }

        let membership = try reals("membership_values") ?? []
        var members: [Double] = []
        var cursor = 0
        var branches: [Branch] = []
        for i in 0..<count {
            guard (0...6).contains(modes[i]) else { throw context.attributeError("nodes_modes[\(i)] = \(modes[i]) is not 0…6") }
            guard features[i] >= 0 else { throw context.attributeError("nodes_featureids[\(i)] = \(features[i]) is negative") }
            for (target, isLeaf) in [(trueIds[i], trueLeafs[i] != 0), (falseIds[i], falseLeafs[i] != 0)] {
                guard target >= 0 && target < (isLeaf ? leafWeights.count : count) else {
                    throw context.attributeError("node \(i) branches to \(isLeaf ? "leaf" : "node") \(target), which does not exist")
                }
            }
            var set = members.count..<members.count
            if modes[i] == 6 {
                // This node's members run up to the next NaN.
                let first = members.count
                while cursor < membership.count, !membership[cursor].isNaN {
                    members.append(membership[cursor])
                    cursor += 1
                }
                guard cursor < membership.count || members.count > first else {
                    throw context.attributeError("membership_values has no set for BRANCH_MEMBER node \(i)")
                }
                cursor += 1
                set = first..<members.count
            }
            branches.append(Branch(mode: modes[i], feature: features[i], split: splits[i], members: set,
                                   trueTarget: trueIds[i], falseTarget: falseIds[i], trueIsLeaf: trueLeafs[i] != 0,
                                   falseIsLeaf: falseLeafs[i] != 0, missingTracksTrue: missing[i] != 0))
        }
        self.branches = branches
        self.members = members
        maxFeature = features.max() ?? -1
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("TreeEnsemble: missing input 0 (X)") }
        guard [.float, .double, .float16].contains(x.dataType) else {
            throw OnyxError.unsupportedDataType("TreeEnsemble: X must be float, double or float16, found \(x.dataType)")
        }
        guard x.shape.count == 2 else { throw OnyxError.shapeMismatch("TreeEnsemble: X must be [N, F], got \(shapeText(x.shape))") }
        guard maxFeature < x.shape[1] else {
            throw OnyxError.shapeMismatch("TreeEnsemble: a node reads feature \(maxFeature) but X has \(x.shape[1]) features")
        }
        return [TensorDescriptor(x.dataType, [x.shape[0], targets])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        try x.dataType.visitFloating(Prediction(kernel: self, x: x, y: y), operation: "TreeEnsemble")
    }

    private struct Prediction: FloatingElementVisitor {
        let kernel: TreeEnsembleKernel
        let x: TensorView, y: TensorView

        func visit<T: FloatingElement>(_: T.Type) throws {
            try kernel.predict(T.self, x, y, bound: Double(T.greatestFiniteMagnitude))
        }
    }

    private func predict<T: VisionElement>(_: T.Type, _ xv: TensorView, _ yv: TensorView, bound: Double) throws {
        let x = xv.pointer(as: T.self), y = yv.pointer(as: T.self)
        let features = xv.shape[1]
        var scores = [Double](repeating: 0, count: targets)
        for row in 0..<xv.shape[0] {
            let initial: Double = aggregate == .min ? bound : aggregate == .max ? -bound : 0
            for t in 0..<targets { scores[t] = initial }
            for root in roots {
                let leaf = try self.leaf(root) { x[row * features + $0].real(Double.self) }
                let weight = leafWeights[leaf], target = leafTargets[leaf]
                switch aggregate {
                case .sum: scores[target] += weight
                case .average: scores[target] += weight / Double(roots.count)
                case .min: scores[target] = Swift.min(scores[target], weight)
                case .max: scores[target] = Swift.max(scores[target], weight)
                }
            }
            transform(&scores)
            for t in 0..<targets { y[row * targets + t] = T.converting(scores[t]) }
        }
    }

    /// The leaf a row reaches from `root`.
    private func leaf(_ root: Int, _ feature: (Int) -> Double) throws -> Int {
        var node = root
        for _ in 0...branches.count {
            let b = branches[node]
            let v = feature(b.feature)
            let goesTrue: Bool
            if v.isNaN && b.missingTracksTrue {
                goesTrue = true
            } else {
                switch b.mode {
                case 0: goesTrue = v <= b.split
                case 1: goesTrue = v < b.split
                case 2: goesTrue = v >= b.split
                case 3: goesTrue = v > b.split
                case 4: goesTrue = v == b.split
                case 5: goesTrue = v != b.split
                default: goesTrue = members[b.members].contains(v)
                }
            }
            if goesTrue ? b.trueIsLeaf : b.falseIsLeaf { return goesTrue ? b.trueTarget : b.falseTarget }
            node = goesTrue ? b.trueTarget : b.falseTarget
        }
        throw OnyxError.invalidModel("TreeEnsemble: the tree at root \(root) has a cycle")
    }

    private func transform(_ scores: inout [Double]) {
        switch postTransform {
        case .none: break
        case .logistic:
            for t in scores.indices { scores[t] = 1 / (1 + exp(-scores[t])) }
        case .softmax, .softmaxZero:
            // SOFTMAX_ZERO leaves zero scores at zero.
            let included = scores.map { postTransform == .softmax || $0 != 0 }
            let top = scores.indices.filter { included[$0] }.map { scores[$0] }.max() ?? 0
            var total = 0.0
            for t in scores.indices where included[t] {
                scores[t] = exp(scores[t] - top)
                total += scores[t]
            }
            if total > 0 {
                for t in scores.indices where included[t] { scores[t] /= total }
            }
        }
    }
}
