import OnyxCore

extension Graph {
    /// The nodes in an order where every node comes after the producers of its inputs.
    ///
    /// Stable: among nodes that are ready, file order is kept. Subgraph (If/Loop body) references
    /// to outer values are not edges here.
    ///
    /// - Throws: ``OnyxError`` `.invalidModel` naming a node on a cycle.
    package func topologicallySortedNodes() throws -> [Node] {
        var producer: [String: Int] = [:]
        for (index, node) in nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producer[output] = index }
        }
        var pending = [Int](repeating: 0, count: nodes.count)
        var dependents = [[Int]](repeating: [], count: nodes.count)
        for (index, node) in nodes.enumerated() {
            for input in node.inputs + node.implicitInputs where !input.isEmpty {
                if let source = producer[input] {
                    pending[index] += 1
                    dependents[source].append(index)
                }
            }
        }
        // A min-heap on file position would be exact; a sorted ready list is simpler and graphs are small.
        var ready = nodes.indices.filter { pending[$0] == 0 }.reversed().map { $0 }
        var order: [Node] = []
        order.reserveCapacity(nodes.count)
        while let index = ready.popLast() {
            order.append(nodes[index])
            var released: [Int] = []
            for next in dependents[index] {
                pending[next] -= 1
                if pending[next] == 0 { released.append(next) }
            }
            if !released.isEmpty {
                ready.append(contentsOf: released)
                ready.sort(by: >)
            }
        }
        guard order.count == nodes.count else {
            let stuck = nodes.indices.first { pending[$0] > 0 }!
            throw OnyxError.invalidModel("the graph has a cycle through node '\(nodes[stuck].name)' (\(nodes[stuck].opType))")
        }
        return order
    }
}
