import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// The ai.onnx.ml operators and TfIdfVectorizer.
    package static let traditionalMLOperators: [OperatorRegistration] = [
        OperatorRegistration("TfIdfVectorizer", versions: 9...Int.max) { context in try TfIdfVectorizerKernel(context) },
        ml("Binarizer") { context in BinarizerKernel(threshold: Double(try context.float("threshold", default: 0))) },
        ml("ArrayFeatureExtractor") { _ in ArrayFeatureExtractorKernel() },
        // Feature transforms (TraditionalML+Preprocessing.swift).
        ml("Normalizer") { context in try NormalizerKernel(context) },
        ml("Scaler") { context in try ScalerKernel(context) },
        ml("Imputer") { context in try ImputerKernel(context) },
        ml("OneHotEncoder") { context in try OneHotEncoderKernel(context) },
        ml("FeatureVectorizer") { context in try FeatureVectorizerKernel(context) },
        ml("LabelEncoder", 1...1) { context in try LabelEncoderKernel(context) },
        ml("LabelEncoder", 2...3) { context in try LabelEncoderKernel(context) },
        ml("LabelEncoder", 4...Int.max) { context in try LabelEncoderKernel(context) },
        ml("CategoryMapper") { context in try CategoryMapperKernel(context) },
        // Linear models and support vector machines (TraditionalML+Linear.swift, TraditionalML+SVM.swift).
        ml("LinearClassifier") { context in try LinearClassifierKernel(context) },
        ml("LinearRegressor") { context in try LinearRegressorKernel(context) },
        ml("SVMClassifier") { context in try SVMClassifierKernel(context) },
        ml("SVMRegressor") { context in try SVMRegressorKernel(context) },
        // Tree ensembles (TraditionalML+TreeEnsemble.swift); opset 3 adds the *_as_tensor attributes.
        ml("TreeEnsembleClassifier", 1...2) { context in try TreeEnsembleClassifierKernel(context) },
        ml("TreeEnsembleClassifier", 3...4) { context in try TreeEnsembleClassifierKernel(context) },
        ml("TreeEnsembleRegressor", 1...2) { context in try TreeEnsembleRegressorKernel(context) },
        ml("TreeEnsembleRegressor", 3...4) { context in try TreeEnsembleRegressorKernel(context) },
        ml("TreeEnsemble", 5...Int.max) { context in try TreeEnsembleKernel(context) },
    ]

    /// An ai.onnx.ml operator over the opsets `versions` (from 1 on by default).
    private static func ml(
        _ opType: String, _ versions: ClosedRange<Int> = 1...Int.max, make: @escaping @Sendable (NodeContext) throws -> any Kernel
    ) -> OperatorRegistration {
        OperatorRegistration(opType, domain: "ai.onnx.ml", versions: versions, make: make)
    }
}

// MARK: - TfIdfVectorizer

/// TfIdfVectorizer: counts the pool's n-grams (with up to `max_skip_count` skipped tokens between
/// items) in each row and weighs the counts (TF, IDF, TFIDF). Tokens are integers (`pool_int64s`)
/// or strings (`pool_strings`, each distinct string numbered once).
package struct TfIdfVectorizerKernel: Kernel {
    package enum Weighting { case tf, idf, tfidf }

    /// The pool as a trie: node 0 is the root; `ids[node]` is the 1-based n-gram id ending there (0: none).
    let trie: NgramTrie
    let ids: [Int]
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
        self.trie = NgramTrie(children)
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
        // String tokens become their pool numbers (−1 for strings outside the pool), each distinct
        // token looked up once: equal strings share a handle in the run's table.
        let numbered: [Int64] = try stringTokens.map { numbers in
            let table = try context.stringTable()
            var byHandle: [Int64: Int64] = [:]
            return try UnsafeBufferPointer(start: x.pointer(as: Int64.self), count: x.elementCount).map { handle in
                if let number = byHandle[handle] { return number }
                let number = numbers[try table.string(handle)] ?? -1
                byHandle[handle] = number
                return number
            }
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
                while trie.hasChildren[node] && size <= maxGramLength && item < length {
                    guard let child = trie.child(of: node, token: token(item)) else { break }
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

/// The edges of TfIdfVectorizer's pool trie in one open-addressed table keyed by (node, token):
/// one multiply and a probe or two per step, where a dictionary per node hashed every token
/// with SipHash.
struct NgramTrie: Sendable {
    /// Whether a node has any child (the walk stops at one that has none).
    let hasChildren: [Bool]
    private let nodes: [Int32]
    private let tokens: [Int64]
    /// The child each slot leads to; −1 marks an empty slot.
    private let targets: [Int32]
    private let mask: Int

    /// - Parameter children: per node, its children by token.
    init(_ children: [[Int64: Int]]) {
        let edges = children.reduce(0) { $0 + $1.count }
        var capacity = 16
        while capacity < 2 * edges { capacity *= 2 }
        var nodes = [Int32](repeating: 0, count: capacity)
        var tokens = [Int64](repeating: 0, count: capacity)
        var targets = [Int32](repeating: -1, count: capacity)
        mask = capacity - 1
        for (node, edges) in children.enumerated() {
            for (token, child) in edges {
                var slot = Self.slot(node: node, token: token, mask: mask)
                while targets[slot] >= 0 { slot = (slot + 1) & mask }
                nodes[slot] = Int32(node)
                tokens[slot] = token
                targets[slot] = Int32(child)
            }
        }
        self.hasChildren = children.map { !$0.isEmpty }
        self.nodes = nodes
        self.tokens = tokens
        self.targets = targets
    }

    @inline(__always)
    private static func slot(node: Int, token: Int64, mask: Int) -> Int {
        let mixed = (UInt64(bitPattern: token) &+ UInt64(node) &* 0x9E37_79B9) &* 0xD6E8_FEB8_6659_FD93
        return Int(truncatingIfNeeded: mixed >> 32) & mask
    }

    /// The child of `node` along `token`, if the pool has that edge.
    @inline(__always)
    func child(of node: Int, token: Int64) -> Int? {
        var slot = Self.slot(node: node, token: token, mask: mask)
        while true {
            let target = targets[slot]
            if target < 0 { return nil }
            if nodes[slot] == node && tokens[slot] == token { return Int(target) }
            slot = (slot + 1) & mask
        }
    }
}
