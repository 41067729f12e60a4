extension OperatorRegistry {
    static let reductionOperators: [OperatorRegistration] = [
        OperatorRegistration("ReduceMean", versions: 1...17) { context in
            ReduceMeanKernel(
                attributeAxes: try context.ints("axes"), axesFromInput: false,
                keepDims: try context.int("keepdims", default: 1) != 0, noopWithEmptyAxes: false)
        },
        OperatorRegistration("ReduceMean", versions: 18...Int.max) { context in
            ReduceMeanKernel(
                attributeAxes: nil, axesFromInput: true,
                keepDims: try context.int("keepdims", default: 1) != 0,
                noopWithEmptyAxes: try context.int("noop_with_empty_axes", default: 0) != 0)
        },
    ]
}

/// ReduceMean over a set of axes (all when none are given, unless `noop_with_empty_axes`).
struct ReduceMeanKernel: Kernel {
    let attributeAxes: [Int]?
    let axesFromInput: Bool
    let keepDims: Bool
    let noopWithEmptyAxes: Bool

    private func axes(_ inputs: [PlannedInput?], rank: Int) throws -> [Int]? {
        let given = axesFromInput ? try constantIntegers(inputs.count > 1 ? inputs[1] : nil, op: "ReduceMean", what: "axes") : attributeAxes
        guard let given, !given.isEmpty else { return noopWithEmptyAxes ? [] : nil }
        return try Set(given.map { try normalizedAxis($0, rank: rank, op: "ReduceMean") }).sorted()
    }

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("ReduceMean takes data") }
        guard x.dataType == .float else { throw OnyxError.unsupportedDataType("ReduceMean supports float, got \(x.dataType)") }
        let rank = x.shape.count
        let reduced = Set(try axes(inputs, rank: rank) ?? Array(0..<rank))
        var shape: [Int] = []
        for (i, extent) in x.shape.enumerated() {
            if reduced.contains(i) { if keepDims { shape.append(1) } } else { shape.append(extent) }
        }
        return [TensorDescriptor(.float, shape)]
    }

    func readsData(ofInput index: Int) -> Bool { index == 0 }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let rank = x.rank
        var given: [Int]? = attributeAxes
        if axesFromInput, let axesInput = context.input(1) {
            given = axesInput.dataType == .int64
                ? (0..<axesInput.elementCount).map { Int(axesInput.pointer(as: Int64.self)[$0]) }
                : (0..<axesInput.elementCount).map { Int(axesInput.pointer(as: Int32.self)[$0]) }
        }
        var reduced = [Bool](repeating: given?.isEmpty ?? true ? !noopWithEmptyAxes : false, count: rank)
        for axis in given ?? [] { reduced[try normalizedAxis(axis, rank: rank, op: "ReduceMean")] = true }
        let input = x.pointer(as: Float.self), output = y.pointer(as: Float.self)
        let outCount = y.elementCount
        let inCount = x.elementCount
        guard outCount > 0 else { return }
        let divisor = Float(inCount / outCount)
        output.update(repeating: 0, count: outCount)
        // Output strides per input axis (0 on reduced axes).
        var strides = [Int](repeating: 0, count: rank)
        var step = 1
        for i in stride(from: rank - 1, through: 0, by: -1) where !reduced[i] {
            strides[i] = step
            step *= x.shape[i]
        }
        var index = [Int](repeating: 0, count: rank)
        var offset = 0
        for e in 0..<inCount {
            output[offset] += input[e]
            var axis = rank - 1
            while axis >= 0 {
                index[axis] += 1
                offset += strides[axis]
                if index[axis] < x.shape[axis] { break }
                offset -= strides[axis] * x.shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
        for i in 0..<outCount { output[i] /= divisor }
    }
}
