import Onyx

/// Stacking requests along axis 0 and splitting results back.
enum Batching {
    /// The tensors stacked along axis 0; every other axis must agree.
    static func concatenate(_ tensors: [Tensor]) throws -> Tensor {
        guard let first = tensors.first else { throw HandlerError(status: 500, "empty batch") }
        let rows = tensors.reduce(0) { $0 + $1.shape[0] }
        var shape = first.shape
        shape[0] = rows
        if first.dataType == .string {
            return try Tensor(strings: tensors.flatMap { try $0.strings() }, shape: shape)
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(rows * first.shape.dropFirst().reduce(1, *) * first.dataType.byteWidth)
        for tensor in tensors {
            tensor.withUnsafeBytes { bytes.append(contentsOf: $0) }
        }
        return try bytes.withUnsafeBytes { try Tensor(dataType: first.dataType, shape: shape, bytes: $0) }
    }

    /// Rows `rows` of `tensor` along axis 0.
    static func slice(_ tensor: Tensor, rows: Range<Int>) throws -> Tensor {
        guard tensor.rank >= 1, rows.upperBound <= tensor.shape[0] else {
            throw HandlerError(status: 500, "output \(tensor.shape) has no rows \(rows)")
        }
        let rowBytes = tensor.shape.dropFirst().reduce(1, *) * tensor.dataType.byteWidth
        var shape = tensor.shape
        shape[0] = rows.count
        if tensor.dataType == .string {
            let width = tensor.shape.dropFirst().reduce(1, *)
            return try Tensor(strings: Array(try tensor.strings()[(rows.lowerBound * width)..<(rows.upperBound * width)]), shape: shape)
        }
        return try tensor.withUnsafeBytes { raw in
            try Tensor(dataType: tensor.dataType, shape: shape,
                       bytes: UnsafeRawBufferPointer(rebasing: raw[(rows.lowerBound * rowBytes)..<(rows.upperBound * rowBytes)]))
        }
    }
}
