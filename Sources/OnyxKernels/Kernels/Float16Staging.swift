import OnyxCore

/// Float32 copies of a kernel's float16 tensors, for kernels that compute float16 data in float32.
@usableFromInline package enum Float16Staging {
    /// Calls `body` with float32 copies of the float16 `inputs` (nil for absent or other-typed
    /// inputs) and float32 buffers for the float16 `outputs`, then narrows those buffers into
    /// the outputs.
    package static func run(
        inputs: [TensorView?], outputs: [TensorView?],
        _ body: ([UnsafePointer<Float>?], [UnsafeMutablePointer<Float>?]) throws -> Void
    ) rethrows {
        let staged = inputs.map { $0?.dataType == .float16 ? $0 : nil }
        let narrowed = outputs.map { $0?.dataType == .float16 ? $0 : nil }
        let total = (staged + narrowed).reduce(0) { $0 + ($1?.elementCount ?? 0) }
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(total, 1))
        defer { buffer.deallocate() }
        var cursor = buffer
        var widened: [UnsafePointer<Float>?] = []
        for view in staged {
            guard let view else {
                widened.append(nil)
                continue
            }
            let source = view.pointer(as: Float16.self)
            for i in 0..<view.elementCount { cursor[i] = Float(source[i]) }
            widened.append(UnsafePointer(cursor))
            cursor += view.elementCount
        }
        var results: [UnsafeMutablePointer<Float>?] = []
        for view in narrowed {
            guard let view else {
                results.append(nil)
                continue
            }
            cursor.update(repeating: 0, count: view.elementCount)
            results.append(cursor)
            cursor += view.elementCount
        }
        try body(widened, results)
        for (view, result) in zip(narrowed, results) {
            guard let view, let result else { continue }
            let destination = view.pointer(as: Float16.self)
            for i in 0..<view.elementCount { destination[i] = Float16(result[i]) }
        }
    }
}
