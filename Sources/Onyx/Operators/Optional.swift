extension OperatorRegistry {
    /// OptionalHasElement and OptionalGetElement on plain tensors.
    ///
    /// Onyx has no optional or sequence values: an optional is either a tensor or an omitted
    /// input, which is what the tensor forms of these operators see.
    static let optionalOperators: [OperatorRegistration] = [
        OperatorRegistration("OptionalHasElement", versions: 15...Int.max) { _ in OptionalHasElementKernel() },
        // An optional tensor that is present is the tensor itself.
        OperatorRegistration("OptionalGetElement", versions: 15...Int.max) { _ in IdentityKernel() },
    ]
}

/// OptionalHasElement: true when input 0 is given.
struct OptionalHasElementKernel: Kernel {
    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        [TensorDescriptor(.bool, [])]
    }

    func readsData(ofInput index: Int) -> Bool { false }

    func run(_ context: borrowing KernelContext) throws {
        context.output(0).data.storeBytes(of: context.input(0) == nil ? 0 : 1, as: UInt8.self)
    }
}
