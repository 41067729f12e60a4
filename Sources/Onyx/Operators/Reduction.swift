extension OperatorRegistry {
    static let reductionOperators: [OperatorRegistration] = [
        OperatorRegistration("ReduceMean", versions: 1...17) { context in
            ReduceMeanKernel(
                axes: .attribute(try context.ints("axes")),
                keepDims: try context.int("keepdims", default: 1) != 0, noopWithEmptyAxes: false)
        },
        OperatorRegistration("ReduceMean", versions: 18...Int.max) { context in
            ReduceMeanKernel(
                axes: .input,
                keepDims: try context.int("keepdims", default: 1) != 0,
                noopWithEmptyAxes: try context.int("noop_with_empty_axes", default: 0) != 0)
        },
    ]
}

/// ReduceMean, float32, over the given axes (negative ones count from the end).
///
/// The axes are the `axes` attribute before opset 18 and the optional second input from opset
/// 18; that input must be known when the session plans, since the output shape depends on it.
/// No axes (or an empty list) reduce every axis, unless `noop_with_empty_axes` is set, which
/// makes the op an identity.
struct ReduceMeanKernel: Kernel {
    enum Axes: Sendable { case attribute([Int]?), input }

    let axes: Axes
    let keepDims: Bool
    let noopWithEmptyAxes: Bool

    /// Marks the reduced axes of a rank-`rank` input in `mask`, from the axes `given` (`nil` if none).
    private func markReduced<S: Sequence<Int>>(_ given: S?, rank: Int, into mask: UnsafeMutablePointer<Bool>) throws {
        guard let given, given.contains(where: { _ in true }) else {
            mask.update(repeating: !noopWithEmptyAxes, count: rank)
            return
        }
        mask.update(repeating: false, count: rank)
        for axis in given {
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0 && a < rank else {
                throw OnyxError.invalidAttribute("ReduceMean: axis \(axis) is out of range for an input of rank \(rank)")
            }
            guard !mask[a] else {
                throw OnyxError.invalidAttribute("ReduceMean: axes \(Array(given)) name axis \(a) more than once")
            }
            mask[a] = true
        }
    }

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard (1...2).contains(inputs.count), let x = inputs[0] else {
            throw OnyxError.invalidModel("ReduceMean takes data and optional axes")
        }
        guard x.dataType == .float else {
            throw OnyxError.unsupportedDataType("ReduceMean supports float, got \(x.dataType)")
        }
        let given: [Int]?
        switch axes {
        case .attribute(let values):
            guard inputs.count == 1 else { throw OnyxError.invalidModel("ReduceMean before opset 18 takes one input") }
            given = values
        case .input:
            if inputs.count > 1, let axesInput = inputs[1] {
                guard axesInput.shape.count <= 1 else {
                    throw OnyxError.shapeMismatch("ReduceMean: axes must be a 1-D int64 tensor, got \(axesInput.descriptor)")
                }
                given = try constantIntegers(axesInput, op: "ReduceMean", what: "axes")
            } else {
                given = nil
            }
        }
        let rank = x.shape.count
        var mask = [Bool](repeating: false, count: rank)
        try mask.withUnsafeMutableBufferPointer { try markReduced(given, rank: rank, into: $0.baseAddress!) }
        var shape: [Int] = []
        for (axis, extent) in x.shape.enumerated() {
            if !mask[axis] { shape.append(extent) } else if keepDims { shape.append(1) }
        }
        return [TensorDescriptor(.float, shape)]
    }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let rank = x.rank
        try withUnsafeTemporaryAllocation(of: Bool.self, capacity: max(rank, 1)) { mask in
            let base = mask.baseAddress!
            switch axes {
            case .attribute(let values):
                try markReduced(values, rank: rank, into: base)
            case .input:
                if let axesInput = context.input(1) {
                    let n = axesInput.elementCount
                    if axesInput.dataType == .int32 {
                        let p = axesInput.pointer(as: Int32.self)
                        try markReduced((0..<n).lazy.map { Int(p[$0]) }, rank: rank, into: base)
                    } else {
                        let p = axesInput.pointer(as: Int64.self)
                        try markReduced((0..<n).lazy.map { Int(p[$0]) }, rank: rank, into: base)
                    }
                } else {
                    try markReduced([Int]?.none, rank: rank, into: base)
                }
            }
            ReductionLoops.mean(
                UnsafePointer(x.pointer(as: Float.self)), y.pointer(as: Float.self), shape: x.shape,
                reduced: UnsafePointer(base), pool: context.pool)
        }
    }
}
