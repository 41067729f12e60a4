import OnyxIR

extension Model {
    /// A node Onyx cannot run, with the opset it was looked up at.
    public struct UnsupportedNode: Sendable, CustomStringConvertible {
        /// The node.
        public let node: Node
        /// The opset version of the node's domain, or `nil` if the model imports none.
        public let opset: Int?

        public var description: String {
            let domain = node.domain.isEmpty ? "ai.onnx" : node.domain
            guard let opset else {
                return "operator \(node.opType) (\(domain), no opset import) at node '\(node.name)'"
            }
            return "unsupported operator \(node.opType) (\(domain), opset \(opset)) at node '\(node.name)'"
        }
    }

    /// The nodes of the main graph whose operator (at the imported opset) Onyx does not implement.
    public var unsupportedNodes: [UnsupportedNode] {
        graph.nodes.compactMap { node in
            guard let opset = opsetVersion(for: node.domain) else { return UnsupportedNode(node: node, opset: nil) }
            let known = OperatorRegistry.registration(domain: node.domain, opType: node.opType, opset: opset) != nil
            return known ? nil : UnsupportedNode(node: node, opset: opset)
        }
    }

    /// The number of parameters (elements of every initializer) and their bytes.
    public var parameterCount: (elements: Int, bytes: Int) {
        graph.initializers.reduce((0, 0)) { total, entry in
            (total.0 + entry.tensor.elementCount, total.1 + entry.tensor.byteCount)
        }
    }
}
