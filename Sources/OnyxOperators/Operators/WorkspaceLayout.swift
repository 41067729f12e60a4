import OnyxCore
import OnyxKernels

/// Where the pieces of a kernel's workspace sit: each piece starts on a 64-byte boundary.
///
/// A kernel walks the same pieces in `workspaceByteCount` (with the planned descriptors) and in
/// `run` (with the views), so the size asked for and the pieces used agree; carving is pure
/// arithmetic and allocates nothing.
package struct WorkspaceLayout {
    package static let alignment = 64

    /// Bytes reserved so far, rounded up to the alignment.
    package private(set) var byteCount = 0

    package init() {}

    /// Reserves `bytes` and returns the offset where they start.
    @inline(__always)
    package mutating func reserve(bytes: Int) -> Int {
        let offset = byteCount
        byteCount += (bytes + Self.alignment - 1) & ~(Self.alignment - 1)
        return offset
    }

    /// Reserves room for `count` float32 values and returns the offset where it starts.
    @inline(__always)
    package mutating func reserve(floats count: Int) -> Int { reserve(bytes: count * MemoryLayout<Float>.stride) }
}

/// Float32 copies of a kernel's tensors in its workspace, for kernels that compute other float
/// types in float32 (the single staging mechanism: ``Float32Staged`` and the attention,
/// recurrent and transformer kernels use it).
///
/// `widens` says which element types are converted: a float32 tensor is used in place, a
/// tensor of a type `widens` accepts gets a float32 copy in the workspace, and any other tensor
/// (a bool mask, int64 lengths) gets no float32 pointer.
package enum Float32Staging {
    /// Workspace bytes for the float32 copies of these tensors, before the kernel's own scratch.
    package static func byteCount(
        inputs: [TensorDescriptor?], inputLimit: Int = .max, outputs: [TensorDescriptor?], widens: (DataType) -> Bool
    ) -> Int {
        var layout = WorkspaceLayout()
        for input in inputs.prefix(inputLimit) { if let input, widens(input.dataType) { _ = layout.reserve(floats: input.elementCount) } }
        for output in outputs { if let output, widens(output.dataType) { _ = layout.reserve(floats: output.elementCount) } }
        return layout.byteCount
    }

    /// Calls `body` with float32 pointers to the first `inputCount` inputs and `outputCount`
    /// outputs (copies in `workspace` for the types `widens` accepts; output copies zeroed when
    /// `zeroingOutputs`) and the workspace after those copies, then narrows the copies into the
    /// outputs.
    ///
    /// The pointer tables live on the stack: a run allocates nothing.
    package static func run<R>(
        inputs: UnsafeBufferPointer<TensorView?>, inputCount: Int,
        outputs: UnsafeBufferPointer<TensorView?>, outputCount: Int,
        workspace: UnsafeMutableRawPointer?, zeroingOutputs: Bool = true, widens: (DataType) -> Bool,
        _ body: (UnsafeBufferPointer<UnsafePointer<Float>?>, UnsafeBufferPointer<UnsafeMutablePointer<Float>?>,
                 UnsafeMutableRawPointer?) throws -> R
    ) rethrows -> R {
        var layout = WorkspaceLayout()
        func place(_ view: TensorView) -> UnsafeMutablePointer<Float>? {
            if view.dataType == .float { return view.pointer(as: Float.self) }
            guard widens(view.dataType) else { return nil }
            return (workspace! + layout.reserve(floats: view.elementCount)).assumingMemoryBound(to: Float.self)
        }
        return try withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: inputCount) { widened in
            for i in 0..<inputCount {
                guard i < inputs.count, let view = inputs[i], let target = place(view) else {
                    widened.initializeElement(at: i, to: nil)
                    continue
                }
                if view.dataType != .float {
                    Casting.convert(view.data, from: view.dataType, to: target, .float, count: view.elementCount)
                }
                widened.initializeElement(at: i, to: UnsafePointer(target))
            }
            return try withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<Float>?.self, capacity: outputCount) { results in
                for i in 0..<outputCount {
                    guard i < outputs.count, let view = outputs[i], let target = place(view) else {
                        results.initializeElement(at: i, to: nil)
                        continue
                    }
                    if zeroingOutputs, view.dataType != .float { target.update(repeating: 0, count: view.elementCount) }
                    results.initializeElement(at: i, to: target)
                }
                let result = try body(UnsafeBufferPointer(widened), UnsafeBufferPointer(results), workspace.map { $0 + layout.byteCount })
                for i in 0..<min(outputCount, outputs.count) {
                    guard let view = outputs[i], view.dataType != .float, let source = results[i] else { continue }
                    Casting.convert(source, from: .float, to: view.data, view.dataType, count: view.elementCount)
                }
                return result
            }
        }
    }
}
