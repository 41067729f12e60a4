/// Where a session's runs spend their time, node by node, gathered by
/// ``InferenceSession/run(_:profile:)``.
///
/// Times are wall-clock nanoseconds of each node's kernel (with every thread it uses); the
/// rest of a run (binding inputs, allocating outputs) is not attributed to any node.
public struct RunProfile: Sendable {
    /// The time of one node, or of every node of one operator type.
    public struct Entry: Sendable, Equatable {
        /// The operator type (after fusion: a Conv carrying its activation is a Conv), with its
        /// domain in parentheses when it is not ai.onnx: "Conv (onyx.nchwc)" is a convolution in
        /// the blocked layout.
        public let opType: String
        /// The node's name, or for a per-type entry the number of its nodes as text.
        public let name: String
        /// Nodes the entry covers.
        public let nodeCount: Int
        /// Seconds over all profiled runs.
        public let seconds: Double
        /// For a node, its fastest run in seconds: on a machine shared with other work the
        /// least disturbed figure, comparable with another runtime's per-node minimum. For a
        /// per-type entry, the sum of its nodes' fastest runs.
        public let fastestSeconds: Double
        /// The entry's part of the time of all nodes, from 0 to 1.
        public let share: Double
    }

    /// Profiled runs so far.
    public private(set) var runs = 0
    private var nodes: [(name: String, opType: String, nanoseconds: UInt64, fastest: UInt64)] = []

    /// An empty profile, to pass to ``InferenceSession/run(_:profile:)``.
    public init() {}

    /// Seconds spent in nodes over all profiled runs.
    public var totalSeconds: Double { Double(nodes.reduce(0) { $0 + $1.nanoseconds }) / 1e9 }

    /// Every node that ran, slowest first (nodes computed when the plan was made do not run).
    public var byNode: [Entry] {
        let total = max(totalSeconds, .leastNonzeroMagnitude)
        return nodes.filter { $0.nanoseconds > 0 }.map { node in
            let seconds = Double(node.nanoseconds) / 1e9
            return Entry(
                opType: node.opType, name: node.name, nodeCount: 1, seconds: seconds, fastestSeconds: Double(node.fastest) / 1e9,
                share: seconds / total)
        }
        .sorted { $0.seconds > $1.seconds }
    }

    /// Time per operator type, slowest first: where to look for the next gain.
    public var byOperatorType: [Entry] {
        var grouped: [String: (count: Int, nanoseconds: UInt64, fastest: UInt64)] = [:]
        for node in nodes where node.nanoseconds > 0 {
            grouped[node.opType, default: (0, 0, 0)].count += 1
            grouped[node.opType, default: (0, 0, 0)].nanoseconds += node.nanoseconds
            grouped[node.opType, default: (0, 0, 0)].fastest += node.fastest
        }
        let total = max(totalSeconds, .leastNonzeroMagnitude)
        return grouped.map { opType, group in
            let seconds = Double(group.nanoseconds) / 1e9
            return Entry(
                opType: opType, name: "\(group.count) nodes", nodeCount: group.count, seconds: seconds,
                fastestSeconds: Double(group.fastest) / 1e9, share: seconds / total)
        }
        .sorted { $0.seconds > $1.seconds }
    }

    /// Adds one run's per-step times.
    mutating func add(_ timings: [UInt64], steps: [ExecutableGraph.Step]) {
        if nodes.count != steps.count {
            nodes = steps.map {
                (name: $0.name, opType: $0.domain.isEmpty ? $0.opType : "\($0.opType) (\($0.domain))", nanoseconds: 0,
                 fastest: UInt64.max)
            }
        }
        for (index, time) in timings.enumerated() {
            nodes[index].nanoseconds += time
            nodes[index].fastest = min(nodes[index].fastest, time)
        }
        runs += 1
    }
}
