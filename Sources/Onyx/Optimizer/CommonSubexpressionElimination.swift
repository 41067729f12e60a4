import OnyxCore
import OnyxIR

/// Computes each value once: nodes of the same operator, attributes and inputs are merged into
/// the first, and its readers read that one's outputs. Small initializers of equal type, shape
/// and bytes count as the same input, so the per-layer copies of one constant that exporters
/// write (GPT-2's legacy export repeats `Where(mask, 0, −∞)` in each of its 12 layers, each with
/// its own Constant nodes) collapse to one node.
///
/// Left alone: nodes with subgraphs, the nondeterministic operators, nodes with no inputs, a
/// duplicate whose outputs are graph outputs or read by a subgraph (its names must survive),
/// attributes holding tensors larger than the compared size, initializers that are also graph
/// inputs (a caller may override them) and string tensors (their elements are table handles).
struct CommonSubexpressionElimination: GraphPass {
    /// Initializers and tensor attributes up to this size are compared by value.
    static let comparedBytes = 4096

    func apply(to graph: inout Graph) {
        let protected = graph.protectedValueNames
        let graphInputs = Set(graph.inputs.map(\.name))
        var renames: [String: String] = [:]

        var firstWithContent: [ContentKey: String] = [:]
        for (name, tensor) in graph.initializers
        where !graphInputs.contains(name) && !protected.contains(name) {
            guard let key = ContentKey(tensor) else { continue }
            if let first = firstWithContent[key] { renames[name] = first } else { firstWithContent[key] = name }
        }

        guard let sorted = try? graph.topologicallySortedNodes() else { return }
        func resolve(_ name: String) -> String { renames[name] ?? name }
        var firstComputing: [NodeKey: Int] = [:]
        var kept: [Node] = []
        var merged = false
        for var node in sorted {
            node.inputs = node.inputs.map(resolve)
            let key = NodeKey(node)
            if let key, let first = firstComputing[key] {
                let original = kept[first]
                // The duplicate's outputs go; each must have a counterpart computed by the original.
                if zip(node.outputs, original.outputs).allSatisfy({ $0.isEmpty || (!$1.isEmpty && !protected.contains($0)) }) {
                    for (duplicate, output) in zip(node.outputs, original.outputs) where !duplicate.isEmpty {
                        renames[duplicate] = output
                    }
                    merged = true
                    continue
                }
            } else if let key {
                firstComputing[key] = kept.count
            }
            kept.append(node)
        }
        guard merged || !renames.isEmpty else { return }
        graph.nodes = kept
    }

    /// A tensor's type, shape and bytes, for tensors small enough to compare.
    struct ContentKey: Hashable {
        let dataType: DataType
        let shape: [Int]
        let bytes: [UInt8]

        init?(_ tensor: Tensor) {
            guard tensor.dataType != .string, tensor.byteCount <= CommonSubexpressionElimination.comparedBytes else { return nil }
            dataType = tensor.dataType
            shape = tensor.shape
            bytes = tensor.withUnsafeBytes { Array($0.prefix(tensor.byteCount)) }
        }
    }

    /// What a node computes: its operator, attributes and (resolved) inputs, and which outputs it writes.
    struct NodeKey: Hashable {
        let domain: String
        let opType: String
        let inputs: [String]
        let writes: [Bool]
        let attributes: [String]

        init?(_ node: Node) {
            guard !node.inputs.allSatisfy(\.isEmpty), !ExecutableGraph.nondeterministicOps.contains(node.opType)
            else { return nil }
            var attributes: [String] = []
            for name in node.attributes.keys.sorted() {
                guard let value = Self.canonical(node.attributes[name]!) else { return nil }
                attributes.append(name + "=" + value)
            }
            domain = Model.canonicalDomain(node.domain)
            opType = node.opType
            inputs = node.inputs
            writes = node.outputs.map { !$0.isEmpty }
            self.attributes = attributes
        }

        /// An attribute's value as text that is equal exactly when the values are (floats by bit
        /// pattern, so −0 and NaN payloads stay apart); nil for subgraphs (a node with one is never
        /// merged) and large tensors.
        static func canonical(_ attribute: Attribute) -> String? {
            func bits(_ values: [Float]) -> String { values.map { String($0.bitPattern, radix: 16) }.joined(separator: ",") }
            func tensor(_ t: Tensor) -> String? {
                guard let key = ContentKey(t) else { return nil }
                return "\(key.dataType)\(key.shape):" + key.bytes.map { String($0, radix: 16) }.joined(separator: ",")
            }
            switch attribute {
            case .float(let v): return "f" + bits([v])
            case .int(let v): return "i\(v)"
            case .string(let v): return "s" + v.debugDescription
            case .floats(let v): return "F" + bits(v)
            case .ints(let v): return "I" + v.map(String.init).joined(separator: ",")
            case .strings(let v): return "S" + v.map(\.debugDescription).joined(separator: ",")
            case .tensor(let t): return tensor(t).map { "t" + $0 }
            case .tensors(let ts):
                let parts = ts.map(tensor)
                return parts.contains { $0 == nil } ? nil : "T" + parts.map { $0! }.joined(separator: ";")
            case .type(let t): return "y\(t)"
            case .graph, .graphs: return nil
            }
        }
    }
}
