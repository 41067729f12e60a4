import OnyxCore

extension OperatorRegistry {
    /// OptionalHasElement and OptionalGetElement on plain tensors.
    ///
    /// Onyx has no optional or sequence values: an optional is either a tensor or an omitted
    /// input, which is what the tensor forms of these operators see.
    package static let optionalOperators: [OperatorRegistration] = [
        OperatorRegistration("OptionalHasElement", versions: 15...Int.max) { _ in OptionalHasElementKernel() },
        // An optional tensor that is present is the tensor itself.
        OperatorRegistration("OptionalGetElement", versions: 15...Int.max) { _ in IdentityKernel() },
    ]
}

/// OptionalHasElement: true when input 0 is given.
package struct OptionalHasElementKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        [TensorDescriptor(.bool, [])]
    }

    package func readsData(ofInput index: Int) -> Bool { false }

    package func run(_ context: borrowing KernelContext) throws {
        context.output(0).data.storeBytes(of: context.input(0) == nil ? 0 : 1, as: UInt8.self)
    }
}
