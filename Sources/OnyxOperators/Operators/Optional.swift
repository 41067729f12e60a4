import OnyxCore

extension OperatorRegistry {
    /// Optional, OptionalHasElement and OptionalGetElement.
    ///
    /// An optional value travels as a handle into the run's value store (see `ValueStore`). The
    /// opset-15 forms also take a plain tensor, or an omitted input, as the optional's content.
    package static let optionalOperators: [OperatorRegistration] = [
        OperatorRegistration("Optional", versions: 15...Int.max) { context in try OptionalKernel(context) },
        OperatorRegistration("OptionalHasElement", versions: 15...Int.max) { _ in OptionalHasElementKernel() },
        OperatorRegistration("OptionalGetElement", versions: 15...Int.max) { _ in OptionalGetElementKernel() },
    ]

    /// Whether Onyx runs `opType` of `domain` on sequences, maps or optionals. The planner refuses
    /// them anywhere else, so no other kernel reads a handle as a number.
    package static func takesContainers(domain: String, opType: String) -> Bool {
        switch domain {
        case "": containerOperatorTypes.contains(opType)
        case "ai.onnx.ml": ["ZipMap", "CastMap", "DictVectorizer"].contains(opType)
        default: false
        }
    }

    private static let containerOperatorTypes: Set<String> = [
        "Identity", "Optional", "OptionalHasElement", "OptionalGetElement",
        "SequenceEmpty", "SequenceConstruct", "SequenceAt", "SequenceInsert", "SequenceErase", "SequenceLength",
        "SplitToSequence", "ConcatFromSequence", "SequenceMap", "If", "Loop",
    ]
}

/// Optional: an optional holding input 0, or an empty optional of the `type` attribute.
package struct OptionalKernel: Kernel {
    let type: ValueType?

    init(_ context: NodeContext) throws {
        switch context.attribute("type") {
        case nil: type = nil
        case .type(let declared)?: type = declared
        case let other?: throw context.attributeError("attribute 'type' must be a type, found \(other.kindName)")
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        if let input = inputs.first ?? nil { return [TensorDescriptor(container: .optional(input.descriptor.valueType))] }
        guard let type else { throw OnyxError.invalidModel("Optional: without an input, the 'type' attribute is required") }
        return [TensorDescriptor(container: .optional(type))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let content = context.input(0) == nil ? nil : try context.value(ofInput: 0)
        try context.store(.optional(content), intoOutput: 0)
    }
}

/// OptionalHasElement: whether input 0 holds a value: an optional that is not empty, or any
/// other value given at all.
package struct OptionalHasElementKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        [TensorDescriptor(.bool, [])]
    }

    package func readsData(ofInput index: Int) -> Bool { true }

    package func run(_ context: borrowing KernelContext) throws {
        var present = context.input(0) != nil
        if present, context.input(0)!.isValueHandle, case .optional(let content) = try context.value(ofInput: 0) {
            present = content != nil
        }
        context.output(0).data.storeBytes(of: present ? 1 : 0, as: UInt8.self)
    }
}

/// OptionalGetElement: the value an optional holds (an error if it is empty); a tensor or
/// sequence input is its own value.
package struct OptionalGetElementKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let input = inputs.first ?? nil else { throw OnyxError.invalidModel("OptionalGetElement: missing input 0") }
        guard case .optional(let element)? = input.descriptor.container else { return [input.descriptor] }
        if !element.isTensor { return [TensorDescriptor(container: element)] }
        // A tensor's shape is known only from the value.
        guard case .optional(let content) = try input.requireValue(op: "OptionalGetElement", what: "optional") else {
            throw OnyxError.internalError("OptionalGetElement: an optional type holds another value")
        }
        guard let tensor = content?.tensor else { throw OnyxError.invalidInput("OptionalGetElement: the optional is empty") }
        return [TensorDescriptor(tensor.dataType, tensor.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let value = try context.value(ofInput: 0)
        guard context.input(0)!.isValueHandle, case .optional(let content) = value else {
            return try context.store(value, intoOutput: 0)
        }
        guard let content else { throw OnyxError.invalidInput("OptionalGetElement: the optional is empty") }
        try context.store(content, intoOutput: 0)
    }
}
