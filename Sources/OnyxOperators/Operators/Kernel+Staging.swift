import OnyxCore
import OnyxKernels

/// Runs a float32 kernel on float16, double or bfloat16 tensors by converting them to float32 in
/// the workspace and the results back (rounded to nearest even): Gemm, MatMul and Conv keep one
/// hand-tuned float32 path, and the operators without bfloat16 loops compute it so.
///
/// Float32 inputs go straight to the wrapped kernel; nothing is converted.
package struct Float32Staged: Kernel {
    package let inner: any Kernel
    /// The types converted to float32 around the kernel.
    package let stagedTypes: [DataType]
    /// `stagedTypes` as a set of bits by raw value: the run loop tests it without touching an array.
    private let stagedBits: UInt64

    /// Whether tensors of `type` are converted to float32 around the kernel.
    @inline(__always)
    package func isStaged(_ type: DataType) -> Bool { stagedBits & (1 << UInt64(type.rawValue)) != 0 }

    /// Prepares `make` with any constant inputs of `stagedTypes` converted to float32, so weight
    /// packing at session creation happens for those types too.
    package init(
        _ context: NodeContext, staging stagedTypes: [DataType] = [.float16, .double, .bfloat16],
        _ make: (NodeContext) throws -> any Kernel
    ) throws {
        self.stagedTypes = stagedTypes
        stagedBits = stagedTypes.reduce(0) { $0 | 1 << UInt64($1.rawValue) }
        let constants = try context.constantInputs.map { value in
            try value.map { stagedTypes.contains($0.dataType) ? try $0.converted(to: .float) : $0 }
        }
        var converted = context
        converted.constantInputs = constants
        inner = try make(converted)
    }

    /// The staged element type of these inputs, or `nil` when they need no staging.
    private func stagedType(_ types: [DataType?]) -> DataType? {
        types.lazy.compactMap { $0 }.first { isStaged($0) }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let staged = stagedType(inputs.map { $0?.dataType }) else { return try inner.outputDescriptors(for: inputs) }
        let converted = try inputs.map { input -> PlannedInput? in
            guard let input, isStaged(input.dataType) else { return input }
            return PlannedInput(descriptor: TensorDescriptor(.float, input.shape),
                                constant: try input.constant?.converted(to: .float))
        }
        return try inner.outputDescriptors(for: converted).map {
            $0.dataType == .float ? TensorDescriptor(staged, $0.shape) : $0
        }
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard stagedType(inputs.map { $0?.dataType }) != nil else {
            return inner.workspaceByteCount(inputs: inputs, outputs: outputs)
        }
        // The float32 copies first, then the wrapped kernel's own scratch.
        func asFloat(_ d: TensorDescriptor) -> TensorDescriptor { isStaged(d.dataType) ? TensorDescriptor(.float, d.shape) : d }
        return Float32Staging.byteCount(inputs: inputs, outputs: outputs, widens: isStaged)
            + inner.workspaceByteCount(inputs: inputs.map { $0.map(asFloat) }, outputs: outputs.map(asFloat))
    }

    package func readsData(ofInput index: Int) -> Bool { inner.readsData(ofInput: index) }
    package var aliasing: KernelAliasing { inner.aliasing }

    package func run(_ context: borrowing KernelContext) throws {
        // float32 runs straight through. Reads each view's type in place: copying a view would
        // retain its shape array.
        var needsStaging = false
        for index in 0..<context.inputs.count where context.inputs[index].map({ isStaged($0.dataType) }) == true {
            needsStaging = true
        }
        guard needsStaging else { return try inner.run(context) }
        guard let workspace = context.workspace else {
            throw OnyxError.internalError("staged kernel ran without its workspace")
        }
        let inputs = context.inputs, outputs = context.outputs, pool = context.pool
        let inner = self.inner, stagedTypes = self.stagedTypes
        try Float32Staging.run(
            inputs: inputs, inputCount: inputs.count, outputs: outputs, outputCount: outputs.count,
            workspace: workspace, zeroingOutputs: false, widens: { stagedTypes.contains($0) }
        ) { widened, results, rest in
            // The wrapped kernel's views: the float32 copies in place of the staged tensors.
            try withUnsafeTemporaryAllocation(of: TensorView?.self, capacity: inputs.count + outputs.count) { views in
                for (i, view) in inputs.enumerated() {
                    views.initializeElement(at: i, to: view.flatMap { view in
                        stagedTypes.contains(view.dataType) ? TensorView(dataType: .float, shape: view.shape, data: UnsafeMutableRawPointer(mutating: widened[i]!)) : view
                    })
                }
                for (i, view) in outputs.enumerated() {
                    views.initializeElement(at: inputs.count + i, to: view.flatMap { view in
                        stagedTypes.contains(view.dataType) ? TensorView(dataType: .float, shape: view.shape, data: results[i]!) : view
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
