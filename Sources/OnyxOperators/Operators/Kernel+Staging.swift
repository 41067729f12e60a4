import OnyxCore
import OnyxKernels

/// Runs a float32 kernel on float16 or double tensors by converting them to float32 in the
/// workspace and the results back: Gemm, MatMul and Conv keep one hand-tuned float32 path.
///
/// Float32 inputs go straight to the wrapped kernel; nothing is converted.
package struct Float32Staged: Kernel {
    package let inner: any Kernel

    /// Whether tensors of `type` are converted to float32 around the kernel (float16 and double).
    @inline(__always)
    package static func isStaged(_ type: DataType) -> Bool { type == .float16 || type == .double }

    /// Prepares `make` with any float16/double constant inputs converted to float32, so weight
    /// packing at session creation happens for those types too.
    package init(_ context: NodeContext, _ make: (NodeContext) throws -> any Kernel) throws {
        let constants = try context.constantInputs.map { value in
            try value.map { Self.isStaged($0.dataType) ? try $0.converted(to: .float) : $0 }
        }
        var converted = context
        converted.constantInputs = constants
        inner = try make(converted)
    }

    /// The staged element type of these inputs, or `nil` when they need no staging.
    private static func stagedType(_ types: [DataType?]) -> DataType? {
        types.lazy.compactMap { $0 }.first { isStaged($0) }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let staged = Self.stagedType(inputs.map { $0?.dataType }) else { return try inner.outputDescriptors(for: inputs) }
        let converted = try inputs.map { input -> PlannedInput? in
            guard let input, Self.isStaged(input.dataType) else { return input }
            return PlannedInput(descriptor: TensorDescriptor(.float, input.shape),
                                constant: try input.constant?.converted(to: .float))
        }
        return try inner.outputDescriptors(for: converted).map {
            $0.dataType == .float ? TensorDescriptor(staged, $0.shape) : $0
        }
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard Self.stagedType(inputs.map { $0?.dataType }) != nil else {
            return inner.workspaceByteCount(inputs: inputs, outputs: outputs)
        }
        // The float32 copies first, then the wrapped kernel's own scratch.
        func asFloat(_ d: TensorDescriptor) -> TensorDescriptor { Self.isStaged(d.dataType) ? TensorDescriptor(.float, d.shape) : d }
        return Float32Staging.byteCount(inputs: inputs, outputs: outputs, widens: Self.isStaged)
            + inner.workspaceByteCount(inputs: inputs.map { $0.map(asFloat) }, outputs: outputs.map(asFloat))
    }

    package func readsData(ofInput index: Int) -> Bool { inner.readsData(ofInput: index) }
    package var aliasing: KernelAliasing { inner.aliasing }

    package func run(_ context: borrowing KernelContext) throws {
        // float32 runs straight through. Reads each view's type in place: copying a view would
        // retain its shape array.
        var needsStaging = false
        for index in 0..<context.inputs.count where context.inputs[index].map({ Self.isStaged($0.dataType) }) == true {
            needsStaging = true
        }
        guard needsStaging else { return try inner.run(context) }
        guard let workspace = context.workspace else {
            throw OnyxError.internalError("staged kernel ran without its workspace")
        }
        let inputs = context.inputs, outputs = context.outputs, pool = context.pool
        let inner = self.inner
        try Float32Staging.run(
            inputs: inputs, inputCount: inputs.count, outputs: outputs, outputCount: outputs.count,
            workspace: workspace, zeroingOutputs: false, widens: Self.isStaged
        ) { widened, results, rest in
            // The wrapped kernel's views: the float32 copies in place of the staged tensors.
            try withUnsafeTemporaryAllocation(of: TensorView?.self, capacity: inputs.count + outputs.count) { views in
                for (i, view) in inputs.enumerated() {
                    views.initializeElement(at: i, to: view.flatMap { view in
                        Self.isStaged(view.dataType) ? TensorView(dataType: .float, shape: view.shape, data: UnsafeMutableRawPointer(mutating: widened[i]!)) : view
                    })
                }
                for (i, view) in outputs.enumerated() {
                    views.initializeElement(at: inputs.count + i, to: view.flatMap { view in
                        Self.isStaged(view.dataType) ? TensorView(dataType: .float, shape: view.shape, data: results[i]!) : view
                    })
                }
                defer { _ = views.deinitialize() }
                try Self.run(inner, views: UnsafeBufferPointer(views), inputCount: inputs.count, workspace: rest, pool: pool)
            }
        }
    }

    /// Runs `inner` on `views` (inputs, then outputs). A function of its own: building the
    /// noncopyable context inside the nested closures above crashes the optimiser (Swift 6.3.1).
    @inline(never)
    private static func run(
        _ inner: any Kernel, views: UnsafeBufferPointer<TensorView?>, inputCount: Int,
        workspace: UnsafeMutableRawPointer?, pool: ComputePool
    ) throws {
        try inner.run(KernelContext(
            inputs: UnsafeBufferPointer(rebasing: views[0..<inputCount]),
            outputs: UnsafeBufferPointer(rebasing: views[inputCount...]), workspace: workspace, pool: pool))
    }
}
