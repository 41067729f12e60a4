import OnyxCore
import OnyxIR
import OnyxKernels

// TreeEnsembleClassifier and TreeEnsembleRegressor (ai.onnx.ml 1 and 3) and TreeEnsemble (ai.onnx.ml
// 5): each reads its attributes into a ``TreeGraph``, flattens it into a ``TreeForest`` and scores
// rows with ``TreeBatch``. How the leaf weights become outputs (base values, aggregation,
// post_transform, the two-class special cases) follows onnxruntime's tree aggregators.

// MARK: - Aggregation

/// `aggregate_function` of the regressors.
package enum TreeAggregate: Sendable {
    case average, sum, min, max

    var combine: LeafAccumulation.Combine {
        switch self {
        case .average, .sum: .sum
        case .min: .min
        case .max: .max
        }
    }
}

/// How a regressor's accumulated leaf weights become its outputs.
struct TreeRegression: Sendable {
    let targets: Int
    let aggregate: TreeAggregate
    /// Empty or one per target.
    let base: [Double]
    let transform: ScoreTransform
    let trees: Int

    /// One target: each tree adds its leaf's first weight, and of the transforms only PROBIT applies
    /// (onnxruntime's one-output path).
    var single: Bool { targets == 1 }

    /// Turns one row's scores (and, with several targets, the flags of the targets some leaf
    /// weighted) into its outputs, in place. A target no leaf weighted gives 0, base value or not.
    func finish(_ scores: UnsafeMutablePointer<Double>, _ seen: UnsafeMutablePointer<UInt8>) {
        if single {
            let origin = base.first ?? 0
            var v = scores[0]
            switch aggregate {
            case .sum: v += origin
            case .average: v = trees > 0 ? v / Double(trees) + origin : origin
            case .min, .max: v = trees > 0 ? v + origin : origin
            }
            scores[0] = transform.applySingle(v)
            return
        }
        for t in 0..<targets {
            var v = scores[t]
            if aggregate == .average { v /= Double(trees) }
            if !base.isEmpty { v += base[t] }
            scores[t] = seen[t] != 0 ? v : 0
        }
        transform.apply(scores, count: targets)
    }
}

/// How a classifier's accumulated class weights become its scores and label.
struct TreeClassification: Sendable {
    let classes: Int
    /// Empty or one per class; for two classes also a single value.
    let base: [Double]
    let transform: ScoreTransform
    /// Two classes with weights for only one of them: the one score decides the label.
    let binaryCase: Bool
    let weightsArePositive: Bool

    /// Turns one row's class scores and flags into its output scores, in place, and returns the
    /// index of its class.
    func finish(_ scores: UnsafeMutablePointer<Double>, _ seen: UnsafeMutablePointer<UInt8>) -> Int {
        if classes > 2 {
            if !base.isEmpty {
                for c in 0..<classes {
                    scores[c] = seen[c] != 0 ? scores[c] + base[c] : base[c]
                    seen[c] = 1
                }
            }
            // The label is the best class some leaf (or base value) scored.
            var best = -1
            for c in 0..<classes where seen[c] != 0 && (best < 0 || scores[c] > scores[best]) { best = c }
            for c in 0..<classes where seen[c] == 0 { scores[c] = 0 }
            transform.apply(scores, count: classes)
            return Swift.max(best, 0)
        }
        var (s0, s1) = (scores[0], scores[1])
        let seen0 = seen[0] != 0, seen1 = seen[1] != 0
        // Without a weight for class 1 (and no two base values) there is one score, for the positive class.
        var oneScore = false
        var expansion: BinaryScores?
        switch base.count {
        case 2:
            if seen1 {
                s1 = base[1] + s0
                s0 = -s1
            } else {
                s1 += base[1]
                s0 += base[0]
            }
        case 1:
            s0 += base[0]
            oneScore = !seen1
        default:
            expansion = .margin
            oneScore = !seen1
        }
        let positive = !oneScore && seen1 ? s1 : (seen0 ? s0 : 0)
        let label: Int
        if binaryCase {
            if weightsArePositive {
                label = positive > 0.5 ? 1 : 0
                expansion = .complement
            } else {
                label = positive > 0 ? 1 : 0
                expansion = .margin
            }
        } else {
            // onnxruntime writes the literal labels 1 and 0 here (not class labels unless they are
            // [0, 1]); Onyx writes the class labels at 1 and 0.
            label = positive > 0 ? 1 : 0
        }
        if oneScore {
            (scores[0], scores[1]) = (expansion ?? .firstOnly).columns(seen0 ? s0 : 0, transform)
        } else {
            scores[0] = seen0 ? s0 : 0
            scores[1] = seen1 ? s1 : 0
            transform.apply(scores, count: 2)
        }
        return label
    }
}

// MARK: - Reading the attributes

extension TreeGraph {
    /// The graph TreeEnsembleClassifier/Regressor's attributes describe: nodes named by
    /// (`nodes_treeids`, `nodes_nodeids`), children by node id within their tree, weights attached
    /// to (tree, node) by the `<prefix>_treeids/nodeids/ids/weights` lists.
    ///
    /// - Parameters:
    ///   - prefix: `class` (classifier) or `target` (regressor).
    ///   - targets: The class or target count the weight ids index.
    init(legacy context: NodeContext, prefix: String, targets: Int) throws {
        func ints(_ name: String) throws -> [Int] {
            guard let values = try context.ints(name) else { throw context.attributeError("missing attribute '\(name)'") }
            return values
        }
        let tensors = context.opset >= 3
        let treeIds = try ints("nodes_treeids"), nodeIds = try ints("nodes_nodeids"), featureIds = try ints("nodes_featureids")
        let trueIds = try ints("nodes_truenodeids"), falseIds = try ints("nodes_falsenodeids")
        guard let modes = try attributeStrings(context, "nodes_modes") else { throw context.attributeError("missing attribute 'nodes_modes'") }
        let count = treeIds.count
        let thresholds = try realList(context, "nodes_values", tensor: tensors ? "nodes_values_as_tensor" : nil) ?? []
        let missing = try context.ints("nodes_missing_value_tracks_true") ?? []
        for (name, length) in [("nodes_nodeids", nodeIds.count), ("nodes_featureids", featureIds.count), ("nodes_modes", modes.count),
                               ("nodes_truenodeids", trueIds.count), ("nodes_falsenodeids", falseIds.count),
                               ("nodes_values", thresholds.count)] where length != count {
            throw context.attributeError("\(name) has \(length) entries; nodes_treeids has \(count)")
        }
        guard missing.isEmpty || missing.count == count else {
            throw context.attributeError("nodes_missing_value_tracks_true has \(missing.count) entries; nodes_treeids has \(count)")
        }

        struct NodeKey: Hashable { let tree: Int, node: Int }
        var positions: [NodeKey: Int] = [:]
        positions.reserveCapacity(count)
        var seenTrees: Set<Int> = []
        for i in 0..<count {
            let key = NodeKey(tree: treeIds[i], node: nodeIds[i])
            guard positions.updateValue(i, forKey: key) == nil else {
                throw context.attributeError("tree \(key.tree) has node \(key.node) twice")
            }
            // A tree's root is its first node.
            if seenTrees.insert(treeIds[i]).inserted { roots.append(i) }
        }

        rules.reserveCapacity(count)
        for i in 0..<count {
            let rule: TreeForest.Rule
            switch modes[i] {
            case "LEAF":
                rules.append(TreeGraph.leaf)
                features.append(0)
                trueChildren.append(0)
                falseChildren.append(0)
                continue
            case "BRANCH_LEQ": rule = .lessOrEqual
            case "BRANCH_LT": rule = .less
            case "BRANCH_GTE": rule = .greaterOrEqual
            case "BRANCH_GT": rule = .greater
            case "BRANCH_EQ": rule = .equal
            case "BRANCH_NEQ": rule = .notEqual
            default: throw context.attributeError("nodes_modes[\(i)] is '\(modes[i])', not LEAF or a BRANCH_ mode")
            }
            guard featureIds[i] >= 0 && featureIds[i] < 1 << 31 else {
                throw context.attributeError("nodes_featureids[\(i)] = \(featureIds[i]) is not a feature index")
            }
            var children: [Int] = []
            for child in [trueIds[i], falseIds[i]] {
                guard let position = positions[NodeKey(tree: treeIds[i], node: child)] else {
                    throw context.attributeError("node \(nodeIds[i]) of tree \(treeIds[i]) branches to node \(child), which does not exist")
                }
                children.append(position)
            }
            rules.append(rule.rawValue | (!missing.isEmpty && missing[i] != 0 ? TreeForest.tracksMissing : 0))
            features.append(featureIds[i])
            trueChildren.append(children[0])
            falseChildren.append(children[1])
        }
        values = thresholds

        let weightTrees = try ints("\(prefix)_treeids"), weightNodes = try ints("\(prefix)_nodeids"), weightIds = try ints("\(prefix)_ids")
        let weights = try realList(context, "\(prefix)_weights", tensor: tensors ? "\(prefix)_weights_as_tensor" : nil) ?? []
        guard weightNodes.count == weightTrees.count, weightIds.count == weightTrees.count, weights.count == weightTrees.count else {
            throw context.attributeError(
                "\(prefix)_treeids, \(prefix)_nodeids, \(prefix)_ids and \(prefix)_weights must have the same length, got \(weightTrees.count), \(weightNodes.count), \(weightIds.count) and \(weights.count)")
        }
        // Group the weights by leaf, keeping their order; weights on branches are ignored, as in onnxruntime.
        var owners = [Int](repeating: -1, count: weights.count)
        var perVertex = [Int](repeating: 0, count: count + 1)
        for k in 0..<weights.count {
            guard let owner = positions[NodeKey(tree: weightTrees[k], node: weightNodes[k])] else {
                throw context.attributeError("\(prefix) weight \(k) is for node \(weightNodes[k]) of tree \(weightTrees[k]), which does not exist")
            }
            guard weightIds[k] >= 0 && weightIds[k] < targets else {
                throw context.attributeError("\(prefix)_ids[\(k)] = \(weightIds[k]) is not in 0..<\(targets)")
            }
            guard rules[owner] == TreeGraph.leaf else { continue }
            owners[k] = owner
            perVertex[owner + 1] += 1
        }
        for v in 0..<count { perVertex[v + 1] += perVertex[v] }
        weightStarts = perVertex
        weightTargets = [Int32](repeating: 0, count: perVertex[count])
        weightValues = [Double](repeating: 0, count: perVertex[count])
        var cursor = Array(perVertex.dropLast())
        for k in 0..<weights.count where owners[k] >= 0 {
            weightTargets[cursor[owners[k]]] = Int32(weightIds[k])
            weightValues[cursor[owners[k]]] = weights[k]
            cursor[owners[k]] += 1
        }
    }
}

/// `base_values`, or `base_values_as_tensor` (opset 3), which takes precedence.
private func baseValues(_ context: NodeContext) throws -> [Double] {
    try realList(context, "base_values", tensor: context.opset >= 3 ? "base_values_as_tensor" : nil) ?? []
}

/// The rows of a tree model's input, checked against the largest feature its branches read.
private func treeInput(_ inputs: [PlannedInput?], op: String, forest: TreeForest) throws -> (PlannedInput, FeatureRows) {
    let (x, shape) = try numericFeatures(inputs, op: op)
    guard forest.maxFeature < shape.features else {
        throw OnyxError.shapeMismatch("\(op): a node reads feature \(forest.maxFeature) but X has \(shape.features) features")
    }
    return (x, shape)
}

// MARK: - TreeEnsembleRegressor

/// TreeEnsembleRegressor (ai.onnx.ml 1 and 3): per target, the sum (or average, minimum, maximum)
/// of the weights of the leaves each row reaches, plus `base_values`, then `post_transform` (of
/// which one target takes only PROBIT, as in onnxruntime). The output is float whatever X's type.
package struct TreeEnsembleRegressorKernel: Kernel {
    let forest: TreeForest
    let regression: TreeRegression
    let batch: TreeBatch

    package init(_ context: NodeContext) throws {
        guard let targets = try context.int("n_targets"), targets >= 1 else { throw context.attributeError("n_targets must be given and ≥ 1") }
        let name = try context.string("aggregate_function", default: "SUM")
        let aggregate: TreeAggregate
        switch name {
        case "SUM": aggregate = .sum
        case "AVERAGE": aggregate = .average
        case "MIN": aggregate = .min
        case "MAX": aggregate = .max
        default: throw context.attributeError("aggregate_function '\(name)' is not SUM, AVERAGE, MIN or MAX")
        }
        let base = try baseValues(context)
        guard base.isEmpty || base.count == targets else {
            throw context.attributeError("base_values has \(base.count) values for \(targets) targets")
        }
        forest = try TreeForest(TreeGraph(legacy: context, prefix: "target", targets: targets), context)
        regression = TreeRegression(targets: targets, aggregate: aggregate, base: base, transform: try ScoreTransform(context),
                                    trees: forest.treeCount)
        batch = TreeBatch(forest: forest, accumulation: LeafAccumulation(combine: aggregate.combine, single: regression.single, targets: targets))
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let (_, x) = try treeInput(inputs, op: "TreeEnsembleRegressor", forest: forest)
        return [TensorDescriptor(.float, [x.rows, regression.targets])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        let x = inputs[0]!
        return batch.workspace(rows: outputs[0].shape[0], features: x.shape.last ?? 0, converting: x.dataType != .float && x.dataType != .double).0.byteCount
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0).pointer(as: Float.self)
        let rows = x.rank == 1 ? 1 : x.shape[0], targets = regression.targets
        batch.run(x, rows: rows, features: x.shape[x.rank - 1], pool: context.pool, workspace: context.workspace) { row, scores, seen in
            regression.finish(scores, seen)
            for t in 0..<targets { y[row * targets + t] = Float(scores[t]) }
        }
    }
}

// MARK: - TreeEnsembleClassifier

/// TreeEnsembleClassifier (ai.onnx.ml 1 and 3): per class, the sum of the weights of the leaves each
/// row reaches plus `base_values`, then `post_transform`; the label is the best class, with
/// onnxruntime's rules for two classes weighted through one score.
package struct TreeEnsembleClassifierKernel: Kernel {
    let forest: TreeForest
    let classification: TreeClassification
    let labels: ClassLabels
    let batch: TreeBatch

    package init(_ context: NodeContext) throws {
        guard let labels = try ClassLabels.read(context, ints: "classlabels_int64s", strings: "classlabels_strings"), labels.count >= 2 else {
            throw context.attributeError("needs two or more class labels (classlabels_int64s)")
        }
        self.labels = labels
        let classes = labels.count
        let base = try baseValues(context)
        guard base.isEmpty || base.count == classes || (classes == 2 && base.count == 1) else {
            throw context.attributeError("base_values has \(base.count) values for \(classes) classes")
        }
        let graph = try TreeGraph(legacy: context, prefix: "class", targets: classes)
        forest = try TreeForest(graph, context)
        let weighted = Set(try context.ints("class_ids") ?? [])
        let weights = try realList(context, "class_weights", tensor: context.opset >= 3 ? "class_weights_as_tensor" : nil) ?? []
        classification = TreeClassification(
            classes: classes, base: base, transform: try ScoreTransform(context),
            binaryCase: classes == 2 && weighted.count == 1, weightsArePositive: weights.allSatisfy { $0 >= 0 })
        batch = TreeBatch(forest: forest, accumulation: LeafAccumulation(combine: .sum, single: false, targets: classes))
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let (_, x) = try treeInput(inputs, op: "TreeEnsembleClassifier", forest: forest)
        return [TensorDescriptor(labels.dataType, [x.rows]), TensorDescriptor(.float, [x.rows, classification.classes])]
    }

    private func carving(rows: Int, features: Int, converting: Bool) -> (bytes: Int, chosen: Int) {
        var carving = batch.workspace(rows: rows, features: features, converting: converting).0
        let chosen = carving.reserve(Int32.self, rows)
        return (carving.byteCount, chosen)
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        let x = inputs[0]!
        return carving(rows: outputs[0].shape[0], features: x.shape.last ?? 0, converting: x.dataType != .float && x.dataType != .double).bytes
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!
        let rows = x.rank == 1 ? 1 : x.shape[0], features = x.shape[x.rank - 1], classes = classification.classes
        if rows == 0 { return }
        let chosen = (context.workspace! + carving(rows: rows, features: features, converting: x.dataType != .float && x.dataType != .double).chosen)
            .assumingMemoryBound(to: Int32.self)
        let z = context.optionalOutput(1)?.pointer(as: Float.self)
        batch.run(x, rows: rows, features: features, pool: context.pool, workspace: context.workspace) { row, scores, seen in
            chosen[row] = Int32(classification.finish(scores, seen))
            if let z { for c in 0..<classes { z[row * classes + c] = Float(scores[c]) } }
        }
        if let y = context.optionalOutput(0) { try labels.write(chosen, to: y, context) }
    }
}

// MARK: - TreeEnsemble (opset 5)

/// TreeEnsemble (ai.onnx.ml opset 5): branches and leaves in separate lists, trees by their
/// roots, set membership (BRANCH_MEMBER); per target the sum (or average, minimum, maximum) of the
/// leaf weights each row reaches, then `post_transform` (1 SOFTMAX, 2 LOGISTIC as the spec numbers
/// them; one target takes only PROBIT), in X's type. The aggregation is TreeEnsembleRegressor's.
package struct TreeEnsembleKernel: Kernel {
    let forest: TreeForest
    let regression: TreeRegression
    let batch: TreeBatch

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
        let leafTargets = try ints("leaf_targetids")
        let roots = try ints("tree_roots")
        guard let leafWeights = try reals("leaf_weights") else { throw context.attributeError("missing attribute 'leaf_weights'") }
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
        let aggregate: TreeAggregate
        switch try context.int("aggregate_function", default: 1) {
        case 0: aggregate = .average
        case 1: aggregate = .sum
        case 2: aggregate = .min
        case 3: aggregate = .max
        default: throw context.attributeError("aggregate_function must be 0 (AVERAGE), 1 (SUM), 2 (MIN) or 3 (MAX)")
        }
        let code = try context.int("post_transform", default: 0)
        guard let transform = ScoreTransform(code: code) else {
            throw context.attributeError("post_transform \(code) is not 0 (NONE), 1 (SOFTMAX), 2 (LOGISTIC), 3 (SOFTMAX_ZERO) or 4 (PROBIT)")
        }
        guard leafTargets.allSatisfy({ $0 >= 0 && $0 < targets }) else {
            throw context.attributeError("leaf_targetids must lie in 0..<\(targets)")
        }
        guard roots.allSatisfy({ $0 >= 0 && $0 < count }) else { throw context.attributeError("tree_roots must index the \(count) nodes") }

        // Branches are vertices 0..<count, leaves count..<count + leaves, each with its one weight.
        var graph = TreeGraph()
        let membership = try reals("membership_values") ?? []
        var cursor = 0
        for i in 0..<count {
            guard (0...6).contains(modes[i]) else { throw context.attributeError("nodes_modes[\(i)] = \(modes[i]) is not 0…6") }
            guard features[i] >= 0 && features[i] < 1 << 31 else {
                throw context.attributeError("nodes_featureids[\(i)] = \(features[i]) is not a feature index")
            }
            var children: [Int] = []
            for (target, isLeaf) in [(trueIds[i], trueLeafs[i] != 0), (falseIds[i], falseLeafs[i] != 0)] {
                guard target >= 0 && target < (isLeaf ? leafWeights.count : count) else {
                    throw context.attributeError("node \(i) branches to \(isLeaf ? "leaf" : "node") \(target), which does not exist")
                }
                children.append(isLeaf ? count + target : target)
            }
            var value = splits[i]
            if modes[i] == TreeForest.Rule.member.rawValue {
                // This node's members run up to the next NaN.
                let first = graph.members.count
                while cursor < membership.count, !membership[cursor].isNaN {
                    graph.members.append(membership[cursor])
                    cursor += 1
                }
                guard cursor < membership.count || graph.members.count > first else {
                    throw context.attributeError("membership_values has no set for BRANCH_MEMBER node \(i)")
                }
                cursor += 1
                value = Double(graph.memberBounds.count - 1)
                graph.memberBounds.append(Int32(graph.members.count))
            }
            graph.rules.append(UInt8(modes[i]) | (missing[i] != 0 ? TreeForest.tracksMissing : 0))
            graph.features.append(features[i])
            graph.values.append(value)
            graph.trueChildren.append(children[0])
            graph.falseChildren.append(children[1])
            graph.weightStarts.append(0)
        }
        for (weight, target) in zip(leafWeights, leafTargets) {
            graph.rules.append(TreeGraph.leaf)
            graph.features.append(0)
            graph.values.append(weight)
            graph.trueChildren.append(0)
            graph.falseChildren.append(0)
            graph.weightTargets.append(Int32(target))
            graph.weightValues.append(weight)
            graph.weightStarts.append(graph.weightValues.count)
        }
        graph.roots = roots
        forest = try TreeForest(graph, context)
        regression = TreeRegression(targets: targets, aggregate: aggregate, base: [], transform: transform, trees: forest.treeCount)
        batch = TreeBatch(forest: forest, accumulation: LeafAccumulation(combine: aggregate.combine, single: regression.single, targets: targets))
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("TreeEnsemble: missing input 0 (X)") }
        guard [.float, .double, .float16].contains(x.dataType) else {
            throw OnyxError.unsupportedDataType("TreeEnsemble: X must be float, double or float16, found \(x.dataType)")
        }
        guard x.shape.count == 2 else { throw OnyxError.shapeMismatch("TreeEnsemble: X must be [N, F], got \(shapeText(x.shape))") }
        guard forest.maxFeature < x.shape[1] else {
            throw OnyxError.shapeMismatch("TreeEnsemble: a node reads feature \(forest.maxFeature) but X has \(x.shape[1]) features")
        }
        return [TensorDescriptor(x.dataType, [x.shape[0], regression.targets])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        let x = inputs[0]!
        return batch.workspace(rows: x.shape[0], features: x.shape[1], converting: x.dataType == .float16).0.byteCount
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let targets = regression.targets
        func store<T: VisionElement>(_: T.Type) {
            let out = y.pointer(as: T.self)
            batch.run(x, rows: x.shape[0], features: x.shape[1], pool: context.pool, workspace: context.workspace) { row, scores, seen in
                regression.finish(scores, seen)
                for t in 0..<targets { out[row * targets + t] = T.converting(scores[t]) }
            }
        }
        switch x.dataType {
        case .double: store(Double.self)
        case .float16: store(Float16.self)
        default: store(Float.self)
        }
    }
}
