import OnyxCore
import OnyxIR
import OnyxKernels

// The evaluation core shared by TreeEnsembleClassifier, TreeEnsembleRegressor (ai.onnx.ml 1 and 3)
// and TreeEnsemble (ai.onnx.ml 5): the trees as one contiguous node array, a tight descent loop,
// and the row-block / tree-block threading.

// MARK: - The graph the attributes describe

/// An ensemble as its attributes describe it: vertices (branches and leaves) linked by index,
/// before flattening. Each layout of attributes (opset 1/3 and opset 5) builds one.
struct TreeGraph {
    /// Per vertex: a ``TreeForest/Rule`` raw value, `| TreeForest.tracksMissing` when NaN goes
    /// the true way; ``TreeGraph/leaf`` for a leaf.
    var rules: [UInt8] = []
    var features: [Int] = []
    /// A branch's threshold (its member set's index for BRANCH_MEMBER); a leaf's own value, which
    /// stands in for its weight in a one-target ensemble when it has none.
    var values: [Double] = []
    var trueChildren: [Int] = []
    var falseChildren: [Int] = []
    /// The weights of vertex v are `weightTargets/weightValues[weightStarts[v]..<weightStarts[v + 1]]`.
    var weightStarts: [Int] = [0]
    var weightTargets: [Int32] = []
    var weightValues: [Double] = []
    /// Member set s is `members[memberBounds[s]..<memberBounds[s + 1]]`.
    var memberBounds: [Int32] = [0]
    var members: [Double] = []
    var roots: [Int] = []

    static let leaf: UInt8 = 0xFF

    var count: Int { rules.count }
}

// MARK: - The flattened forest

/// A node of a flattened forest, 16 bytes.
package struct TreeNode: Sendable {
    /// A branch's threshold (the index of its member set for BRANCH_MEMBER); a leaf's first
    /// weight (or its own value when it has none).
    package var value: Double
    /// A branch's feature (≥ 0); −1 − its weight count for a leaf.
    package var feature: Int32
    /// A branch's true child (its false child is the next node); a leaf's first weight.
    package var child: Int32

    var isLeaf: Bool { feature < 0 }
    var weightCount: Int { Int(-1 - feature) }
}

/// A node of the branch-free descent: both children, a leaf its own child on both sides (so a
/// step leaves it in place) and feature 0 (so a step reads something harmless).
struct SplitNode<Value: BinaryFloatingPoint & Sendable>: Sendable {
    var value: Value
    var feature: Int32
    var falseChild: Int32
    var trueChild: Int32

    init(_ node: TreeNode, at index: Int) {
        value = node.isLeaf ? 0 : Value(node.value)
        feature = node.isLeaf ? 0 : node.feature
        (falseChild, trueChild) = node.isLeaf ? (Int32(index), Int32(index)) : (Int32(index + 1), node.child)
    }
}

/// Every tree of an ensemble flattened into one array of nodes in depth-first order, each
/// branch's false child right after it, so a descent reads mostly forward through memory.
package struct TreeForest: Sendable {
    package typealias Node = TreeNode

    /// The comparison of a branch, in the order of the ONNX modes (BRANCH_LEQ = 0 … BRANCH_MEMBER = 6).
    package enum Rule: UInt8, Sendable {
        case lessOrEqual = 0, less, greaterOrEqual, greater, equal, notEqual, member
    }

    /// Added to a rule when NaN takes the true branch (`nodes_missing_value_tracks_true`).
    static let tracksMissing: UInt8 = 8

    package let nodes: [Node]
    /// With a uniform rule, the nodes of the branch-free descent of several rows at once, with
    /// double thresholds, and with float ones when every threshold is a float (float rows then
    /// compare in float, as onnxruntime does, with no conversion on the descent's path).
    let floatSplits: [SplitNode<Float>]?
    let doubleSplits: [SplitNode<Double>]?
    /// Per node, its rule (with ``tracksMissing``); read only off the uniform path.
    let rules: [UInt8]
    package let roots: [Int32]
    let weightTargets: [Int32]
    let weightValues: [Double]
    let memberBounds: [Int32]
    let members: [Double]
    /// The rule of every branch when they all share it and none tracks missing values: the
    /// descent then needs no per-node rule.
    package let uniformRule: Rule?
    /// The largest feature a branch reads (−1 without branches).
    package let maxFeature: Int
    /// The branches one row passes through every tree, estimated by each tree's mean leaf depth:
    /// the work that decides whether a row's trees are worth splitting between threads.
    package let descentSteps: Double

    /// Flattens `graph`: each tree is laid out depth-first from its root. A vertex reached twice
    /// (trees that share a subtree) is laid out once; a false child laid out elsewhere is reached
    /// through a one-node jump (a branch that always goes true).
    ///
    /// - Throws: An attribute error (from `context`) when a tree has a cycle.
    init(_ graph: TreeGraph, _ context: NodeContext) throws {
        let count = graph.count
        guard count < 1 << 29, graph.weightTargets.count < Int(Int32.max) else {
            throw context.attributeError("\(count) nodes is more than a tree ensemble may have (2^29)")
        }
        var nodes: [Node] = []
        nodes.reserveCapacity(count)
        var rules: [UInt8] = []
        rules.reserveCapacity(count)
        var roots: [Int32] = []
        var placed = [Int32](repeating: -1, count: count)
        // 0: not reached, 1: on the current path, 2: laid out with everything below it.
        var state = [UInt8](repeating: 0, count: count)
        var jumps = false

        enum Step { case visit(vertex: Int, parent: Int, isTrue: Bool, depth: Int), finish(vertex: Int) }
        var stack: [Step] = []
        var descentSteps = 0.0
        for root in graph.roots {
            if placed[root] >= 0 {
                roots.append(placed[root])
                continue
            }
            roots.append(Int32(nodes.count))
            stack.append(.visit(vertex: root, parent: -1, isTrue: false, depth: 0))
            var leafDepths = 0, leaves = 0
            defer { descentSteps += leaves > 0 ? Double(leafDepths) / Double(leaves) : 0 }
            while let step = stack.popLast() {
                let vertex: Int, parent: Int, isTrue: Bool, depth: Int
                switch step {
                case .finish(let v):
                    state[v] = 2
                    continue
                case .visit(let v, let p, let t, let d):
                    (vertex, parent, isTrue, depth) = (v, p, t, d)
                }
                if state[vertex] == 1 {
                    throw context.attributeError("the tree at root \(root) has a cycle through node \(vertex)")
                }
                if state[vertex] == 2 {
                    if isTrue {
                        nodes[parent].child = placed[vertex]
                    } else {
                        // Shared false child: a jump, which NaN ≠ anything sends the true way.
                        nodes.append(Node(value: .nan, feature: 0, child: placed[vertex]))
                        rules.append(Rule.notEqual.rawValue)
                        jumps = true
                    }
                    continue
                }
                let index = Int32(nodes.count)
                placed[vertex] = index
                if isTrue { nodes[parent].child = index }
                if graph.rules[vertex] == TreeGraph.leaf {
                    leafDepths += depth
                    leaves += 1
                    let first = graph.weightStarts[vertex], weights = graph.weightStarts[vertex + 1] - first
                    let value = weights > 0 ? graph.weightValues[first] : graph.values[vertex]
                    nodes.append(Node(value: value, feature: Int32(-1 - weights), child: Int32(first)))
                    rules.append(0)
                    state[vertex] = 2
                } else {
                    nodes.append(Node(value: graph.values[vertex], feature: Int32(graph.features[vertex]), child: -1))
                    rules.append(graph.rules[vertex])
                    state[vertex] = 1
                    stack.append(.finish(vertex: vertex))
                    stack.append(.visit(vertex: graph.trueChildren[vertex], parent: Int(index), isTrue: true, depth: depth + 1))
                    stack.append(.visit(vertex: graph.falseChildren[vertex], parent: Int(index), isTrue: false, depth: depth + 1))
                }
            }
        }
        var uniform: Rule?
        var mixed = jumps
        var maxFeature = -1
        for (i, node) in nodes.enumerated() where !node.isLeaf {
            maxFeature = max(maxFeature, Int(node.feature))
            if mixed { continue }
            guard rules[i] < Self.tracksMissing, let rule = Rule(rawValue: rules[i]), rule != .member, uniform == nil || uniform == rule else {
                mixed = true
                continue
            }
            uniform = rule
        }
        let narrow = !mixed && nodes.allSatisfy { $0.isLeaf || Double(Float($0.value)) == $0.value }
        floatSplits = narrow ? nodes.indices.map { SplitNode(nodes[$0], at: $0) } : nil
        doubleSplits = !mixed ? nodes.indices.map { SplitNode(nodes[$0], at: $0) } : nil
        self.nodes = nodes
        self.rules = rules
        self.roots = roots
        weightTargets = graph.weightTargets
        weightValues = graph.weightValues
        memberBounds = graph.memberBounds
        members = graph.members
        uniformRule = mixed ? nil : (uniform ?? .lessOrEqual)
        self.maxFeature = maxFeature
        self.descentSteps = descentSteps
    }

    package var treeCount: Int { roots.count }
}

// MARK: - Descent

/// Which way a branch sends a feature value (`x` and the threshold in the nodes' type).
protocol SplitRule {
    func goesTrue<V: BinaryFloatingPoint>(_ x: V, _ threshold: V, at index: Int) -> Bool
}

struct LessOrEqualSplit: SplitRule {
    @inline(__always) func goesTrue<V: BinaryFloatingPoint>(_ x: V, _ threshold: V, at index: Int) -> Bool { x <= threshold }
}

struct LessSplit: SplitRule {
    @inline(__always) func goesTrue<V: BinaryFloatingPoint>(_ x: V, _ threshold: V, at index: Int) -> Bool { x < threshold }
}

/// Any rule, read per node, with missing-value tracking and set membership (double nodes).
struct MixedSplit: SplitRule {
    let rules: UnsafePointer<UInt8>
    let memberBounds: UnsafePointer<Int32>
    let members: UnsafeBufferPointer<Double>

    @inline(__always)
    func goesTrue<V: BinaryFloatingPoint>(_ x: V, _ threshold: V, at index: Int) -> Bool {
        let rule = rules[index]
        if rule & TreeForest.tracksMissing != 0 && x.isNaN { return true }
        switch rule & 7 {
        case 0: return x <= threshold
        case 1: return x < threshold
        case 2: return x >= threshold
        case 3: return x > threshold
        case 4: return x == threshold
        case 5: return x != threshold
        default:
            let set = Int(threshold), x = Double(x)
            for m in Int(memberBounds[set])..<Int(memberBounds[set + 1]) where members[m] == x { return true }
            return false
        }
    }
}

/// How the weights of the leaves a row reaches combine into its scores.
struct LeafAccumulation: Sendable {
    enum Combine: Sendable { case sum, min, max }
    let combine: Combine
    /// One target and each leaf's first weight (onnxruntime's one-output path): one score per row,
    /// no per-target flags.
    let single: Bool
    let targets: Int

    /// The scores of a row before any tree: 0, or ±∞ for a one-target MIN or MAX.
    var initial: Double {
        guard single else { return 0 }
        switch combine {
        case .sum: return 0
        case .min: return .infinity
        case .max: return -.infinity
        }
    }

    /// Folds the scores of another slice of the trees into these (tree-parallel runs).
    func merge(_ scores: UnsafeMutablePointer<Double>, _ seen: UnsafeMutablePointer<UInt8>,
               from other: UnsafePointer<Double>, _ otherSeen: UnsafePointer<UInt8>) {
        let count = single ? 1 : targets
        for t in 0..<count {
            let seenOther = single || otherSeen[t] != 0
            guard seenOther else { continue }
            let seenHere = single || seen[t] != 0
            switch combine {
            case .sum: scores[t] += other[t]
            case .min: scores[t] = !seenHere || other[t] < scores[t] ? other[t] : scores[t]
            case .max: scores[t] = !seenHere || other[t] > scores[t] ? other[t] : scores[t]
            }
            if !single { seen[t] = 1 }
        }
    }
}

/// Folds leaves into the scores of one row: ``LeafAccumulation`` with the forest's weights at hand.
struct LeafWeights {
    let accumulation: LeafAccumulation
    let targets: UnsafeBufferPointer<Int32>
    let values: UnsafeBufferPointer<Double>

    /// Folds leaf `node` into one row's scores (`targets` scores and flags, or one score).
    @inline(__always)
    func add(_ node: TreeForest.Node, into scores: UnsafeMutablePointer<Double>, _ seen: UnsafeMutablePointer<UInt8>) {
        if accumulation.single {
            switch accumulation.combine {
            case .sum: scores[0] += node.value
            case .min: scores[0] = Swift.min(scores[0], node.value)
            case .max: scores[0] = Swift.max(scores[0], node.value)
            }
            return
        }
        let first = Int(node.child)
        for k in first..<(first + node.weightCount) {
            let t = Int(targets[k]), w = values[k]
            switch accumulation.combine {
            case .sum: scores[t] += w
            case .min: scores[t] = seen[t] == 0 || w < scores[t] ? w : scores[t]
            case .max: scores[t] = seen[t] == 0 || w > scores[t] ? w : scores[t]
            }
            seen[t] = 1
        }
    }
}

extension TreeForest {
    /// Rows at a time a task descends each tree with: a block of rows stays in cache while the
    /// trees stream past it.
    static let rowBlock = 128

    /// Adds the leaves of trees `trees` for rows `rows` of `x` into `scores`/`seen`, whose first
    /// entries belong to `rows.lowerBound`.
    func accumulate<X: BinaryFloatingPoint>(
        _ x: UnsafePointer<X>, features: Int, rows: Range<Int>, trees: Range<Int>,
        _ accumulation: LeafAccumulation, into scores: UnsafeMutablePointer<Double>, _ seen: UnsafeMutablePointer<UInt8>
    ) {
        if trees.isEmpty { return }
        nodes.withUnsafeBufferPointer { nodes in
            roots.withUnsafeBufferPointer { roots in
                weightTargets.withUnsafeBufferPointer { targets in
                    weightValues.withUnsafeBufferPointer { values in
                        let nodes = nodes.baseAddress!, roots = roots.baseAddress!
                        let leaves = LeafWeights(accumulation: accumulation, targets: targets, values: values)
                        func run<R: SplitRule>(_ nodes: UnsafePointer<Node>, _ rule: R) {
                            Self.descend(nodes, roots, x, features, rows, trees, rule, leaves, scores, seen)
                        }
                        func interleave<V: BinaryFloatingPoint>(_ splits: [SplitNode<V>]?, _ rule: Rule) -> Bool {
                            guard let splits, rows.count >= Self.lanes || trees.count >= Self.lanes else { return false }
                            splits.withUnsafeBufferPointer { splits in
                                if rule == .less {
                                    Self.interleave(splits.baseAddress!, nodes, roots, x, features, rows, trees, LessSplit(), leaves, scores, seen)
                                } else {
                                    Self.interleave(splits.baseAddress!, nodes, roots, x, features, rows, trees, LessOrEqualSplit(), leaves, scores, seen)
                                }
                            }
                            return true
                        }
                        // Double rows compare in double: rounded to float, some would cross a threshold.
                        if let rule = uniformRule, X.self == Float.self ? interleave(floatSplits, rule) || interleave(doubleSplits, rule)
                            : interleave(doubleSplits, rule) {
                            return
                        }
                        switch uniformRule {
                        case .lessOrEqual?: run(nodes, LessOrEqualSplit())
                        case .less?: run(nodes, LessSplit())
                        default:
                            rules.withUnsafeBufferPointer { rules in
                                memberBounds.withUnsafeBufferPointer { bounds in
                                    members.withUnsafeBufferPointer { members in
                                        run(nodes, MixedSplit(rules: rules.baseAddress!, memberBounds: bounds.baseAddress!, members: members))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Rows a branch-free descent walks at once.
    static let lanes = 4

    /// Descends ``lanes`` rows at once per tree, branch-free, over blocks of rows: the rows'
    /// chains of loads are independent, so the core overlaps them, and no step waits on a
    /// mispredicted branch. With fewer rows than lanes, each row descends ``lanes`` trees at once
    /// instead. Rows or trees left over descend one at a time.
    private static func interleave<X: BinaryFloatingPoint, V: BinaryFloatingPoint, R: SplitRule>(
        _ splits: UnsafePointer<SplitNode<V>>, _ nodes: UnsafePointer<Node>, _ roots: UnsafePointer<Int32>,
        _ x: UnsafePointer<X>, _ features: Int, _ rows: Range<Int>, _ trees: Range<Int>, _ rule: R, _ leaves: LeafWeights,
        _ scores: UnsafeMutablePointer<Double>, _ seen: UnsafeMutablePointer<UInt8>
    ) {
        let width = leaves.accumulation.single ? 1 : leaves.accumulation.targets
        let children = UnsafeRawPointer(splits) + MemoryLayout<SplitNode<V>>.offset(of: \.falseChild)!
        let stride = MemoryLayout<SplitNode<V>>.stride
        /// The node after `i` for row `x`: its false or true child, picked by a load, not a branch.
        @inline(__always)
        func step(_ i: Int, _ x: UnsafePointer<X>) -> Int {
            let node = splits[i]
            let side = rule.goesTrue(V(x[Int(node.feature)]), node.value, at: i) ? 1 : 0
            return Int(children.load(fromByteOffset: i &* stride &+ side &* 4, as: Int32.self))
        }
        /// The leaves four rows (or one row in four trees) reach from roots `i`.
        @inline(__always)
        func descend4(_ i: (Int, Int, Int, Int), _ x: (UnsafePointer<X>, UnsafePointer<X>, UnsafePointer<X>, UnsafePointer<X>)) -> (Int, Int, Int, Int) {
            var (i0, i1, i2, i3) = i
            while true {
                let (j0, j1, j2, j3) = (step(i0, x.0), step(i1, x.1), step(i2, x.2), step(i3, x.3))
                // Only a leaf is its own child.
                if (j0 ^ i0) | (j1 ^ i1) | (j2 ^ i2) | (j3 ^ i3) == 0 { return (i0, i1, i2, i3) }
                (i0, i1, i2, i3) = (j0, j1, j2, j3)
            }
        }
        if rows.count < lanes {
            let grouped = trees.lowerBound + trees.count / lanes * lanes
            for row in rows {
                let r = x + row &* features, offset = (row &- rows.lowerBound) &* width
                var tree = trees.lowerBound
                while tree < grouped {
                    let (i0, i1, i2, i3) = descend4((Int(roots[tree]), Int(roots[tree + 1]), Int(roots[tree + 2]), Int(roots[tree + 3])), (r, r, r, r))
                    leaves.add(nodes[i0], into: scores + offset, seen + offset)
                    leaves.add(nodes[i1], into: scores + offset, seen + offset)
                    leaves.add(nodes[i2], into: scores + offset, seen + offset)
                    leaves.add(nodes[i3], into: scores + offset, seen + offset)
                    tree += lanes
                }
            }
            if grouped < trees.upperBound {
                descend(nodes, roots, x, features, rows, grouped..<trees.upperBound, rule, leaves, scores, seen)
            }
            return
        }
        var block = rows.lowerBound
        while block < rows.upperBound {
            let end = Swift.min(block + rowBlock, rows.upperBound)
            let grouped = block + (end - block) / lanes * lanes
            for tree in trees {
                let root = Int(roots[tree])
                var row = block
                while row < grouped {
                    let x0 = x + row &* features, x1 = x0 + features, x2 = x1 + features, x3 = x2 + features
                    let (i0, i1, i2, i3) = descend4((root, root, root, root), (x0, x1, x2, x3))
                    let offset = (row &- rows.lowerBound) &* width
                    leaves.add(nodes[i0], into: scores + offset, seen + offset)
                    leaves.add(nodes[i1], into: scores + offset + width, seen + offset + width)
                    leaves.add(nodes[i2], into: scores + offset + 2 * width, seen + offset + 2 * width)
                    leaves.add(nodes[i3], into: scores + offset + 3 * width, seen + offset + 3 * width)
                    row += lanes
                }
            }
            if grouped < end {
                descend(nodes, roots, x, features, grouped..<end, trees, rule, leaves,
                        scores + (grouped - rows.lowerBound) * width, seen + (grouped - rows.lowerBound) * width)
            }
            block = end
        }
    }

    /// Descends tree by tree over blocks of rows, one row at a time, and folds each leaf reached
    /// into its row's scores: the path for per-node rules and for rows left over by ``interleave``.
    private static func descend<X: BinaryFloatingPoint, R: SplitRule>(
        _ nodes: UnsafePointer<Node>, _ roots: UnsafePointer<Int32>, _ x: UnsafePointer<X>, _ features: Int,
        _ rows: Range<Int>, _ trees: Range<Int>, _ rule: R, _ leaves: LeafWeights,
        _ scores: UnsafeMutablePointer<Double>, _ seen: UnsafeMutablePointer<UInt8>
    ) {
        let width = leaves.accumulation.single ? 1 : leaves.accumulation.targets
        var block = rows.lowerBound
        while block < rows.upperBound {
            let end = Swift.min(block + rowBlock, rows.upperBound)
            for tree in trees {
                let root = Int(roots[tree])
                for row in block..<end {
                    let features = x + row &* features
                    var i = root
                    var node = nodes[i]
                    while node.feature >= 0 {
                        i = rule.goesTrue(Double(features[Int(node.feature)]), node.value, at: i) ? Int(node.child) : i &+ 1
                        node = nodes[i]
                    }
                    let offset = (row &- rows.lowerBound) &* width
                    leaves.add(node, into: scores + offset, seen + offset)
                }
            }
            block = end
        }
    }
}

// MARK: - Running over a batch

/// The rows of one run and where their scores go: the threading around ``TreeForest/accumulate``.
struct TreeBatch {
    let forest: TreeForest
    let accumulation: LeafAccumulation

    /// Scores per row: the targets, or one.
    var width: Int { accumulation.single ? 1 : accumulation.targets }

    /// The most tree slices a run with few rows splits the trees into.
    static let maxTreeSlices = 8
    /// Descent steps per row and slice at least (some microseconds): less work than that does not
    /// pay for handing a slice to another thread. onnxruntime splits from 80 trees on, which for
    /// shallow trees (gradient boosting's depth 3) costs more than it saves.
    static let stepsPerSlice = 2048.0
    /// Rows up to which a run splits the trees rather than the rows between threads.
    static let fewRows = 4

    /// Workspace bytes for `rows` rows of X whose type is not float or double (converted), the
    /// scores and flags, and the per-slice scores of a tree-parallel run.
    func workspace(rows: Int, features: Int, converting: Bool) -> (WorkspaceCarving, converted: Int, scores: Int, seen: Int, slices: Int, slicesSeen: Int) {
        var carving = WorkspaceCarving()
        let converted = carving.reserve(Double.self, converting ? rows * features : 0)
        let scores = carving.reserve(Double.self, rows * width)
        let seen = carving.reserve(UInt8.self, rows * width)
        let sliced = rows <= Self.fewRows ? Self.maxTreeSlices * rows * width : 0
        let slices = carving.reserve(Double.self, sliced)
        let slicesSeen = carving.reserve(UInt8.self, sliced)
        return (carving, converted, scores, seen, slices, slicesSeen)
    }

    /// Descends every tree for every row of `x` (`[rows, features]`), then calls `finish(row,
    /// scores, seen)` for each row, on the thread that scored it.
    func run(
        _ x: TensorView, rows: Int, features: Int, pool: ComputePool, workspace: UnsafeMutableRawPointer?,
        finish: (Int, UnsafeMutablePointer<Double>, UnsafeMutablePointer<UInt8>) -> Void
    ) {
        if rows == 0 { return }
        let converting = x.dataType != .float && x.dataType != .double
        let (_, convertedOffset, scoresOffset, seenOffset, slicesOffset, slicesSeenOffset) =
            self.workspace(rows: rows, features: features, converting: converting)
        let base = workspace!
        let scores = (base + scoresOffset).assumingMemoryBound(to: Double.self)
        let seen = (base + seenOffset).assumingMemoryBound(to: UInt8.self)
        let width = width, trees = forest.treeCount

        func score<X: BinaryFloatingPoint>(_ input: UnsafePointer<X>) {
            let slices = Swift.min(pool.threadCount, Self.maxTreeSlices, trees, Int(forest.descentSteps / Self.stepsPerSlice))
            if rows <= Self.fewRows && slices > 1 {
                // Few rows, many trees: each thread takes a slice of the trees; the slices merge in order.
                let sliceScores = (base + slicesOffset).assumingMemoryBound(to: Double.self)
                let sliceSeen = (base + slicesSeenOffset).assumingMemoryBound(to: UInt8.self)
                let stride = rows * width
                pool.parallelFor(slices) { slice in
                    let s = sliceScores + slice * stride, f = sliceSeen + slice * stride
                    s.initialize(repeating: accumulation.initial, count: stride)
                    f.initialize(repeating: 0, count: stride)
                    let treeRange = (trees * slice / slices)..<(trees * (slice + 1) / slices)
                    forest.accumulate(input, features: features, rows: 0..<rows, trees: treeRange, accumulation, into: s, f)
                }
                scores.update(from: sliceScores, count: stride)
                seen.update(from: sliceSeen, count: stride)
                for slice in 1..<slices {
                    for row in 0..<rows {
                        let at = row * width
                        accumulation.merge(scores + at, seen + at, from: sliceScores + slice * stride + at, sliceSeen + slice * stride + at)
                    }
                }
                for row in 0..<rows { finish(row, scores + row * width, seen + row * width) }
                return
            }
            pool.parallelRanges(rows, minimumChunk: 16) { range in
                let s = scores + range.lowerBound * width, f = seen + range.lowerBound * width
                s.initialize(repeating: accumulation.initial, count: range.count * width)
                f.initialize(repeating: 0, count: range.count * width)
                forest.accumulate(input, features: features, rows: range, trees: 0..<trees, accumulation, into: s, f)
                for row in range { finish(row, scores + row * width, seen + row * width) }
            }
        }

        switch x.dataType {
        case .float: score(UnsafePointer(x.pointer(as: Float.self)))
        case .double: score(UnsafePointer(x.pointer(as: Double.self)))
        default:
            let converted = (base + convertedOffset).assumingMemoryBound(to: Double.self)
            for i in 0..<(rows * features) { converted[i] = Self.real(x, i) }
            score(UnsafePointer(converted))
        }
    }

    private static func real(_ x: TensorView, _ i: Int) -> Double {
        switch x.dataType {
        case .int64: Double(x.pointer(as: Int64.self)[i])
        case .int32: Double(x.pointer(as: Int32.self)[i])
        case .float16: Double(x.pointer(as: Float16.self)[i].castFloat)
        default: Double(featureValue(x.data, x.dataType, i))
        }
    }
}
