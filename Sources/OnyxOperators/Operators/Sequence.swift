import OnyxCore
import OnyxIR
import OnyxKernels

// Sequences travel as handles into the run's value store (see `ValueStore`); their tensors are
// copies, so they outlive the run memory they came from. An operator that returns one element
// (SequenceAt) or joins them (ConcatFromSequence) has an output shape that depends on the
// sequence's contents: it plans with the values known, as Reshape fed by an input does.

extension OperatorRegistry {
    /// SequenceEmpty, SequenceConstruct, SequenceAt, SequenceInsert, SequenceErase,
    /// SequenceLength, SplitToSequence, ConcatFromSequence.
    package static let sequenceOperators: [OperatorRegistration] = [
        OperatorRegistration("SequenceEmpty", versions: 11...Int.max) { context in try SequenceEmptyKernel(context) },
        OperatorRegistration("SequenceConstruct", versions: 11...Int.max) { _ in SequenceConstructKernel() },
        OperatorRegistration("SequenceAt", versions: 11...Int.max) { _ in SequenceAtKernel() },
        OperatorRegistration("SequenceInsert", versions: 11...Int.max) { _ in SequenceInsertKernel() },
        OperatorRegistration("SequenceErase", versions: 11...Int.max) { _ in SequenceEraseKernel() },
        OperatorRegistration("SequenceLength", versions: 11...Int.max) { _ in SequenceLengthKernel() },
        OperatorRegistration("SplitToSequence", versions: 11...Int.max) { context in try SplitToSequenceKernel(context) },
        OperatorRegistration("ConcatFromSequence", versions: 11...Int.max) { context in try ConcatFromSequenceKernel(context) },
    ]
}

/// The elements of a sequence input whose value is known at planning, or `NeedsInputValues`.
private func plannedElements(_ input: PlannedInput?, op: String) throws -> [OnnxValue] {
    guard let input, case .sequence? = input.descriptor.container else {
        throw OnyxError.unsupportedDataType("\(op): input 0 must be a sequence")
    }
    guard let elements = try input.requireValue(op: op, what: "sequence").sequence else {
        throw OnyxError.internalError("\(op): a sequence input holds another value")
    }
    return elements
}

/// The elements of sequence input `index` in a run.
private func sequence(_ context: borrowing KernelContext, input index: Int, op: String) throws -> [OnnxValue] {
    guard let elements = try context.value(ofInput: index).sequence else {
        throw OnyxError.unsupportedDataType("\(op): input \(index) must be a sequence")
    }
    return elements
}

/// A position input (int32 or int64 scalar), counted from the end when negative, checked
/// against `count` (positions may equal `count` where `allowEnd`, for an insert at the end).
private func position(_ value: OnnxValue?, count: Int, allowEnd: Bool, op: String) throws -> Int? {
    guard let tensor = value?.tensor else { return nil }
    guard tensor.elementCount == 1 else { throw OnyxError.invalidInput("\(op): position must be a scalar, got \(tensor.shape)") }
    let raw: Int
    switch tensor.dataType {
    case .int32: raw = Int(try tensor.scalars(as: Int32.self)[0])
    case .int64: raw = Int(try tensor.scalars(as: Int64.self)[0])
    default: throw OnyxError.unsupportedDataType("\(op): position must be int32 or int64, got \(tensor.dataType)")
    }
    let resolved = raw < 0 ? raw + count : raw
    guard resolved >= 0, resolved < count || (allowEnd && resolved == count) else {
        throw OnyxError.invalidInput("\(op): position \(raw) is out of range for a sequence of \(count)")
    }
    return resolved
}

/// The element type of a sequence descriptor.
private func elementType(_ descriptor: TensorDescriptor, op: String) throws -> ValueType {
    guard case .sequence(let element)? = descriptor.container else {
        throw OnyxError.unsupportedDataType("\(op): input 0 must be a sequence, got \(descriptor)")
    }
    return element
}

/// SequenceEmpty: a sequence of no tensors of `dtype` (float by default).
package struct SequenceEmptyKernel: Kernel {
    let dataType: DataType

    init(_ context: NodeContext) throws {
        let code = try context.int("dtype", default: Int(DataType.float.rawValue))
        guard let dataType = DataType(rawValue: Int32(truncatingIfNeeded: code)) else {
            throw context.attributeError("dtype \(code) is not a type Onyx supports")
        }
        self.dataType = dataType
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        [TensorDescriptor(container: .sequence(.tensor(dataType)))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        try context.store(.sequence([]), intoOutput: 0)
    }
}

/// SequenceConstruct: a sequence of the inputs, which share one element type.
package struct SequenceConstructKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let given = inputs.compactMap { $0 }
        guard let first = given.first, given.count == inputs.count else {
            throw OnyxError.invalidModel("SequenceConstruct needs at least one input and no omitted ones")
        }
        guard given.allSatisfy({ $0.descriptor.valueType == first.descriptor.valueType }) else {
            throw OnyxError.unsupportedDataType("SequenceConstruct: the inputs are of different types \(given.map(\.descriptor.valueType))")
        }
        return [TensorDescriptor(container: .sequence(first.descriptor.valueType))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let elements = try (0..<context.inputCount).map { try context.value(ofInput: $0) }
        try context.store(.sequence(elements), intoOutput: 0)
    }
}

/// SequenceAt: the element at `position` (negative counts from the end).
package struct SequenceAtKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let elements = try plannedElements(inputs.first ?? nil, op: "SequenceAt")
        guard inputs.count > 1, let positionInput = inputs[1] else { throw OnyxError.invalidModel("SequenceAt: missing input 1 (position)") }
        let constant = try positionInput.requireConstant(op: "SequenceAt", what: "position")
        let index = try position(.tensor(constant), count: elements.count, allowEnd: false, op: "SequenceAt")!
        switch elements[index] {
        case .tensor(let tensor): return [TensorDescriptor(tensor.dataType, tensor.shape)]
        case let other: return [TensorDescriptor(container: other.type)]
        }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let elements = try sequence(context, input: 0, op: "SequenceAt")
        let index = try position(try context.value(ofInput: 1), count: elements.count, allowEnd: false, op: "SequenceAt")!
        try context.store(elements[index], intoOutput: 0)
    }
}

/// SequenceInsert: the sequence with `tensor` inserted at `position` (the end by default).
package struct SequenceInsertKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let sequence = inputs.first ?? nil, inputs.count > 1, let tensor = inputs[1] else {
            throw OnyxError.invalidModel("SequenceInsert needs a sequence and a tensor")
        }
        let element = try elementType(sequence.descriptor, op: "SequenceInsert")
        guard element == tensor.descriptor.valueType else {
            throw OnyxError.unsupportedDataType("SequenceInsert: cannot insert \(tensor.descriptor.valueType) into a sequence of \(element)")
        }
        return [sequence.descriptor]
    }

    package func run(_ context: borrowing KernelContext) throws {
        var elements = try sequence(context, input: 0, op: "SequenceInsert")
        let at = try position(context.input(2) == nil ? nil : try context.value(ofInput: 2), count: elements.count,
                              allowEnd: true, op: "SequenceInsert") ?? elements.count
        elements.insert(try context.value(ofInput: 1), at: at)
        try context.store(.sequence(elements), intoOutput: 0)
    }
}

/// SequenceErase: the sequence without the element at `position` (the last by default).
package struct SequenceEraseKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let sequence = inputs.first ?? nil else { throw OnyxError.invalidModel("SequenceErase: missing input 0") }
        _ = try elementType(sequence.descriptor, op: "SequenceErase")
        return [sequence.descriptor]
    }

    package func run(_ context: borrowing KernelContext) throws {
        var elements = try sequence(context, input: 0, op: "SequenceErase")
        guard !elements.isEmpty else { throw OnyxError.invalidInput("SequenceErase: the sequence is empty") }
        let at = try position(context.input(1) == nil ? nil : try context.value(ofInput: 1), count: elements.count,
                              allowEnd: false, op: "SequenceErase") ?? elements.count - 1
        elements.remove(at: at)
        try context.store(.sequence(elements), intoOutput: 0)
    }
}

/// SequenceLength: the number of elements, an int64 scalar.
package struct SequenceLengthKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let sequence = inputs.first ?? nil else { throw OnyxError.invalidModel("SequenceLength: missing input 0") }
        _ = try elementType(sequence.descriptor, op: "SequenceLength")
        return [TensorDescriptor(.int64, [])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let count = try sequence(context, input: 0, op: "SequenceLength").count
        context.output(0).data.storeBytes(of: Int64(count), as: Int64.self)
    }
}

/// SplitToSequence: `input` split along `axis` into pieces of the sizes `split` gives (a scalar:
/// equal pieces of that size, the last shorter; omitted: pieces of 1, their axis removed unless
/// `keepdims`).
package struct SplitToSequenceKernel: Kernel {
    let axis: Int
    let keepDims: Bool

    init(_ context: NodeContext) throws {
        axis = try context.int("axis", default: 0)
        keepDims = try context.int("keepdims", default: 1) != 0
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let input = inputs.first ?? nil else { throw OnyxError.invalidModel("SplitToSequence: missing input 0") }
        guard input.descriptor.container == nil else { throw OnyxError.unsupportedDataType("SplitToSequence: input 0 must be a tensor") }
        return [TensorDescriptor(container: .sequence(.tensor(input.dataType)))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        guard let tensor = try context.value(ofInput: 0).tensor else { throw OnyxError.internalError("SplitToSequence: input 0 is not a tensor") }
        let a = try normalizedAxis(axis, rank: tensor.rank, op: "SplitToSequence")
        let extent = tensor.shape[a]
        var sizes: [Int]
        var dropAxis = false
        if context.input(1) != nil, let split = try context.value(ofInput: 1).tensor {
            let values = try integers(split)
            if split.rank == 0 {
                guard let size = values.first, size > 0 else { throw OnyxError.invalidInput("SplitToSequence: split must be positive") }
                sizes = Array(repeating: size, count: extent / size)
                if extent % size != 0 { sizes.append(extent % size) }
            } else {
                guard values.allSatisfy({ $0 >= 0 }), values.reduce(0, +) == extent else {
                    throw OnyxError.invalidInput("SplitToSequence: split \(values) does not add up to the axis extent \(extent)")
                }
                sizes = values
            }
        } else {
            sizes = Array(repeating: 1, count: extent)
            dropAxis = !keepDims
        }
        var pieces: [OnnxValue] = []
        var start = 0
        for size in sizes {
            var piece = try TensorSlicing.range(tensor, axis: a, range: start..<(start + size))
            if dropAxis {
                var shape = piece.shape
                shape.remove(at: a)
                piece = try piece.reshaped(shape)
            }
            pieces.append(.tensor(piece))
            start += size
        }
        try context.store(.sequence(pieces), intoOutput: 0)
    }

    private func integers(_ tensor: Tensor) throws -> [Int] {
        switch tensor.dataType {
        case .int32: try tensor.scalars(as: Int32.self).map(Int.init)
        case .int64: try tensor.scalars(as: Int64.self).map(Int.init)
        default: throw OnyxError.unsupportedDataType("SplitToSequence: split must be int32 or int64, got \(tensor.dataType)")
        }
    }
}

/// ConcatFromSequence: the sequence's tensors joined along `axis`, or stacked along a new axis
/// there when `new_axis` is 1.
package struct ConcatFromSequenceKernel: Kernel {
    let axis: Int
    let newAxis: Bool

    init(_ context: NodeContext) throws {
        guard let axis = try context.int("axis") else { throw context.attributeError("missing attribute 'axis'") }
        self.axis = axis
        newAxis = try context.int("new_axis", default: 0) != 0
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let tensors = try plannedElements(inputs.first ?? nil, op: "ConcatFromSequence").compactMap(\.tensor)
        let joined = try join(tensors)
        return [TensorDescriptor(joined.dataType, joined.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let tensors = try sequence(context, input: 0, op: "ConcatFromSequence").compactMap(\.tensor)
        try context.store(.tensor(try join(tensors)), intoOutput: 0)
    }

    private func join(_ tensors: [Tensor]) throws -> Tensor {
        guard let first = tensors.first else { throw OnyxError.invalidInput("ConcatFromSequence: the sequence is empty") }
        let a = try normalizedAxis(axis, rank: first.rank + (newAxis ? 1 : 0), op: "ConcatFromSequence")
        if newAxis { return try TensorSlicing.stack(tensors, axis: a, op: "ConcatFromSequence") }
        return try TensorSlicing.concatenate(tensors, axis: a, op: "ConcatFromSequence")
    }
}
