import OnyxCore
import OnyxIR
import OnyxKernels

/// Running one kernel outside a plan: constant folding at session creation and operator tests.
extension OperatorRegistry {
    /// Prepares a kernel for `node` with every input given as a constant, runs it, and returns its outputs.
    ///
    /// - Parameters:
    ///   - node: The node to evaluate.
    ///   - opset: The opset version of the node's domain.
    ///   - inputs: One tensor per node input; `nil` for an omitted optional input.
    ///   - isa: The micro-kernel variant to use.
    ///   - threads: Threads the kernel may use.
    /// - Returns: One tensor per node output.
    package static func evaluate(
        _ node: Node, opset: Int, inputs: [Tensor?], isa: KernelISA = .preferred, threads: Int = 1
    ) throws -> [Tensor] {
        guard let registration = registration(domain: node.domain, opType: node.opType, opset: opset) else {
            throw OnyxError.unsupportedOperator(node: node, opset: opset)
        }
        let context = NodeContext(node: node, opset: opset, constantInputs: inputs, isa: isa)
        try checkElementTypes(domain: node.domain, opType: node.opType, nodeName: node.name, inputs.map { $0?.dataType })
        let kernel = try registration.make(context)
        let planned = inputs.map { $0.map { PlannedInput(descriptor: TensorDescriptor($0.dataType, $0.shape), constant: $0) } }
        try checkElementTypes(
            domain: node.domain, opType: node.opType, nodeName: node.name, try kernel.outputDescriptors(for: planned).map(\.dataType))
        return try kernel.evaluate(inputs: inputs, pool: ComputePool(threadCount: threads))
    }
}

extension Kernel {
    /// Runs the kernel on concrete tensors, allocating its outputs and workspace.
    ///
    /// String inputs are interned into `strings` (a new table if `nil`), and string outputs index it.
    package func evaluate(inputs: [Tensor?], pool: ComputePool, strings: StringTable? = nil) throws -> [Tensor] {
        let planned = inputs.map { $0.map { PlannedInput(descriptor: TensorDescriptor($0.dataType, $0.shape), constant: $0) } }
        let descriptors = try outputDescriptors(for: planned)
        var table = strings
        var inputs = inputs
        if table == nil && (inputs.contains { $0?.dataType == .string } || descriptors.contains { $0.dataType == .string }) {
            table = StringTable()
        }
        if let table { inputs = try inputs.map { try $0?.rebased(into: table) } }
        var outputs: [Tensor] = []
        for d in descriptors {
            let byteCount = try Tensor.checkedByteCount(d.dataType, d.shape)
            outputs.append(Tensor(dataType: d.dataType, shape: d.shape,
                                  storage: TensorStorage(byteCount: byteCount, strings: d.dataType == .string ? table : nil)))
        }
        let workspaceBytes = workspaceByteCount(
            inputs: inputs.map { $0.map { TensorDescriptor($0.dataType, $0.shape) } }, outputs: descriptors)
        let workspace = workspaceBytes > 0
            ? UnsafeMutableRawPointer.allocate(byteCount: workspaceBytes, alignment: TensorStorage.alignment)
            : nil
        defer { workspace?.deallocate() }

        let inputViews = inputs.map { $0.map { TensorView(dataType: $0.dataType, shape: $0.shape, data: $0.baseAddress) } }
        let outputViews: [TensorView?] = outputs.map { TensorView(dataType: $0.dataType, shape: $0.shape, data: $0.baseAddress) }
        try withExtendedLifetime((inputs, outputs)) {
            try inputViews.withUnsafeBufferPointer { inputBuffer in
                try outputViews.withUnsafeBufferPointer { outputBuffer in
                    let context = KernelContext(
                        inputs: inputBuffer, outputs: outputBuffer, workspace: workspace, pool: pool, strings: table)
                    try run(context)
                }
            }
        }
        return outputs
    }
}

extension OnyxError {
    /// `unsupported operator Foo (ai.onnx, opset 17) at node 'bar'`.
    package static func unsupportedOperator(node: Node, opset: Int) -> OnyxError {
        let domain = node.domain.isEmpty ? "ai.onnx" : node.domain
        return OnyxError(
            .unsupportedOperator,
            "unsupported operator \(node.opType) (\(domain), opset \(opset)) at node '\(node.name)'")
    }
}
