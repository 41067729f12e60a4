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
        let layout = StagingLayout(inputs: inputs, outputs: outputs, inner: inner)
        return layout.total
    }

    package func readsData(ofInput index: Int) -> Bool { inner.readsData(ofInput: index) }
    package var aliasing: KernelAliasing { inner.aliasing }

    package func run(_ context: borrowing KernelContext) throws {
        // float32 runs straight through, building nothing (a steady-state run allocates no arrays).
        // Reads each view's type in place: copying a view would retain its shape array.
        var needsStaging = false
        for index in 0..<context.inputs.count where context.inputs[index].map({ Self.isStaged($0.dataType) }) == true {
            needsStaging = true
        }
        guard needsStaging else { return try inner.run(context) }
        let inputs = (0..<context.inputCount).map { context.input($0) }
        let outputs = (0..<context.outputs.count).map { context.optionalOutput($0) }
        let layout = StagingLayout(
            inputs: inputs.map { $0.map { TensorDescriptor($0.dataType, $0.shape) } },
            outputs: outputs.map { $0.map { TensorDescriptor($0.dataType, $0.shape) } ?? TensorDescriptor(.float, [0]) },
            inner: inner)
        guard let workspace = context.workspace else {
            throw OnyxError.internalError("staged kernel ran without its workspace")
        }
        func staged(_ view: TensorView?, at offset: Int?) -> TensorView? {
            guard let view, let offset else { return view }
            return TensorView(dataType: .float, shape: view.shape, data: workspace + offset)
        }
        let innerInputs = zip(inputs, layout.inputOffsets).map { staged($0, at: $1) }
        let innerOutputs = zip(outputs, layout.outputOffsets).map { staged($0, at: $1) }
        for (view, target) in zip(inputs, innerInputs) {
            guard let view, let target, view.data != target.data else { continue }
            Casting.convert(view.data, from: view.dataType, to: target.data, .float, count: view.elementCount)
        }
        try innerInputs.withUnsafeBufferPointer { innerInputBuffer in
            try innerOutputs.withUnsafeBufferPointer { innerOutputBuffer in
                try inner.run(KernelContext(
                    inputs: innerInputBuffer, outputs: innerOutputBuffer,
                    workspace: layout.innerBytes > 0 ? workspace : nil, pool: context.pool))
            }
        }
        for (view, source) in zip(outputs, innerOutputs) {
            guard let view, let source, view.data != source.data else { continue }
            Casting.convert(source.data, from: .float, to: view.data, view.dataType, count: view.elementCount)
        }
    }
}

/// Where a staged kernel's pieces sit in its workspace: the wrapped kernel's own scratch first,
/// then a float32 copy of every staged input and output.
private struct StagingLayout {
    var innerBytes = 0
    var inputOffsets: [Int?] = []
    var outputOffsets: [Int?] = []
    var total = 0

    init(inputs: [TensorDescriptor?], outputs: [TensorDescriptor], inner: any Kernel) {
        func asFloat(_ d: TensorDescriptor) -> TensorDescriptor {
            Float32Staged.isStaged(d.dataType) ? TensorDescriptor(.float, d.shape) : d
        }
        innerBytes = inner.workspaceByteCount(inputs: inputs.map { $0.map(asFloat) }, outputs: outputs.map(asFloat))
        total = Self.aligned(innerBytes)
        func place(_ d: TensorDescriptor?) -> Int? {
            guard let d, Float32Staged.isStaged(d.dataType) else { return nil }
            defer { total += Self.aligned(d.elementCount * 4) }
            return total
        }
        inputOffsets = inputs.map(place)
        outputOffsets = outputs.map(place)
    }

    static func aligned(_ bytes: Int) -> Int { (bytes + 63) & ~63 }
}
