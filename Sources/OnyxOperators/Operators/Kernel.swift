import OnyxCore
import OnyxKernels

/// What planning knows about one input of a node: its type and shape, and its value if it is
/// a constant (an initializer, a folded node, or a shape computed from the input signature).
package struct PlannedInput: Sendable {
    package var descriptor: TensorDescriptor
    package var constant: Tensor?
    /// For a sequence, map or optional whose value is known: the value (`constant` holds its handle).
    package var containerValue: OnnxValue?

    package var dataType: DataType { descriptor.dataType }
    package var shape: [Int] { descriptor.shape }

    /// The input's value, which the output shape depends on (Reshape's shape, Slice's starts,
    /// TopK's k, NonZero's data).
    ///
    /// - Throws: ``NeedsInputValues`` if the value is only known during a run; the session then
    ///   runs this node with its inputs' values known, and plans what follows from its outputs.
    package func requireConstant(op: String, what: String) throws -> Tensor {
        guard let constant else { throw NeedsInputValues(op: op, what: what) }
        return constant
    }

    package init(descriptor: TensorDescriptor, constant: Tensor?, containerValue: OnnxValue? = nil) {
        self.descriptor = descriptor
        self.constant = constant
        self.containerValue = containerValue
    }

    /// The value of a sequence, map or optional input, which the output shape depends on.
    ///
    /// - Throws: ``NeedsInputValues`` if the value is only known during a run.
    package func requireValue(op: String, what: String) throws -> OnnxValue {
        guard let containerValue else { throw NeedsInputValues(op: op, what: what) }
        return containerValue
    }
}

/// Thrown while planning when an output shape depends on a value that is known only in a run.
///
/// The session answers by ending the plan before that node: a run runs the plan, then the node
/// with its inputs' values known, then a plan for the nodes after it made from the shapes the
/// node produced (cached by them), so operators such as NonZero, or Reshape fed by a graph input,
/// work without planning every run.
package struct NeedsInputValues: Error, CustomStringConvertible {
    package let op: String
    package let what: String

    package init(op: String, what: String) {
        self.op = op
        self.what = what
    }

    package var description: String {
        "\(op): the \(what) input must be known to compute the output shape"
    }
}

/// A kernel whose output shapes depend on its inputs' values and which finds both in one pass.
///
/// Such a node runs between the stages of a run (see ``NeedsInputValues``), where the session
/// would otherwise call ``Kernel/outputDescriptors(for:)`` and then run it, doing the same work
/// (the Tokenizer's tokenizing) twice.
package protocol ValueShapedKernel: Kernel {
    /// The outputs and their descriptors, every input's value known.
    ///
    /// - Parameter strings: The run's table, which string outputs index.
    func evaluate(knowing inputs: [PlannedInput?], strings: StringTable) throws -> [(descriptor: TensorDescriptor, tensor: Tensor)]
}

/// How a kernel's output 0 may share memory with one of its inputs.
package enum KernelAliasing: Sendable, Equatable {
    /// The output gets its own buffer.
    case none
    /// The kernel can write output 0 over input `input` (same byte count) when that input dies here.
    case inPlace(input: Int)
    /// Output 0 is input `input`'s bytes under a new shape (Reshape, Flatten, Identity …). The
    /// planner aliases the two whenever it can; the kernel still copies if handed distinct buffers.
    case view(input: Int)
}

/// A prepared operator: attributes parsed and validated, constant weights packed.
///
/// Created once per session by an ``OperatorRegistration``; used from many runs at once,
/// so a kernel keeps no per-run state.
package protocol Kernel: Sendable {
    /// The type and shape of each output for one input-shape signature.
    ///
    /// `inputs[i]` is `nil` for an optional input the node leaves out. Constant inputs carry
    /// their value, so shape-computing inputs (Reshape's shape, ReduceMean's axes) can be read.
    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor]

    /// Scratch bytes the kernel needs in a run with these shapes (im2col buffers and such).
    func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int

    /// Whether the kernel reads the data (not just the shape) of input `index`.
    func readsData(ofInput index: Int) -> Bool

    /// How output 0 may share memory with an input.
    var aliasing: KernelAliasing { get }

    /// Computes the outputs. Output buffers are allocated (not zeroed) by the caller.
    func run(_ context: borrowing KernelContext) throws
}

extension Kernel {
    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int { 0 }
    package func readsData(ofInput index: Int) -> Bool { true }
    package var aliasing: KernelAliasing { .none }
}

/// Everything a kernel may touch during one run of one node.
package struct KernelContext: ~Copyable {
    package let inputs: UnsafeBufferPointer<TensorView?>
    /// One slot per node output; `nil` where the node leaves an optional output out.
    package let outputs: UnsafeBufferPointer<TensorView?>
    /// Scratch memory of the size the kernel asked for, 64-byte aligned; `nil` if it asked for none.
    package let workspace: UnsafeMutableRawPointer?
    package let pool: ComputePool
    /// The run's string table, which every string tensor's handles index; `nil` in runs of graphs
    /// without strings.
    package let strings: StringTable?
    /// The run's sequences, maps and optionals; `nil` in runs of graphs without them.
    package let values: ValueStore?

    package var inputCount: Int { inputs.count }

    /// Input `index`, or `nil` if the node leaves it out.
    @inline(__always)
    package func input(_ index: Int) -> TensorView? {
        index < inputs.count ? inputs[index] : nil
    }

    /// Output `index`, which the node must have (outputs 0 and any the kernel requires).
    @inline(__always)
    package func output(_ index: Int) -> TensorView {
        outputs[index]!
    }

    /// Output `index`, or `nil` if the node leaves this optional output out.
    @inline(__always)
    package func optionalOutput(_ index: Int) -> TensorView? {
        index < outputs.count ? outputs[index] : nil
    }

    package init(
        inputs: UnsafeBufferPointer<TensorView?>, outputs: UnsafeBufferPointer<TensorView?>,
        workspace: UnsafeMutableRawPointer?, pool: ComputePool, strings: StringTable? = nil, values: ValueStore? = nil
    ) {
        self.inputs = inputs
        self.outputs = outputs
        self.workspace = workspace
        self.pool = pool
        self.strings = strings
        self.values = values
    }

    /// The run's string table, for kernels that read or write text.
    package func stringTable() throws -> StringTable {
        guard let strings else { throw OnyxError.internalError("a string value reached a run without a string table") }
        return strings
    }

    /// The strings of input `index`, a string tensor, in row-major order.
    package func strings(ofInput index: Int) throws -> [String] {
        let view = input(index)!
        return try stringTable().strings(UnsafeBufferPointer(view.buffer(as: Int64.self)))
    }

    /// Input `index` as a value: a sequence, map or optional from the run's store, or a tensor
    /// copied out of the run's memory (string tensors keep the run's table).
    package func value(ofInput index: Int) throws -> OnnxValue {
        let view = input(index)!
        if view.isValueHandle {
            guard let values else { throw OnyxError.internalError("a sequence, map or optional reached a run without a value store") }
            return try values.value(view.data.load(as: Int64.self))
        }
        let bytes = UnsafeRawBufferPointer(start: view.data, count: view.byteCount)
        return .tensor(Tensor(dataType: view.dataType, shape: view.shape,
                              storage: TensorStorage(copying: bytes, strings: view.dataType == .string ? strings : nil)))
    }

    /// Writes `value` into output `index`: a sequence, map or optional goes into the run's store
    /// and the output holds its handle; a tensor's elements are copied into the output, whose
    /// type and shape it must have.
    package func store(_ value: OnnxValue, intoOutput index: Int) throws {
        let view = output(index)
        if view.isValueHandle {
            guard let values else { throw OnyxError.internalError("a sequence, map or optional reached a run without a value store") }
            view.data.storeBytes(of: values.add(value), as: Int64.self)
            return
        }
        guard case .tensor(var tensor) = value, tensor.dataType == view.dataType, tensor.shape == view.shape else {
            throw OnyxError.internalError("output \(index) is \(view.dataType)\(view.shape); the operator produced \(value)")
        }
        if tensor.dataType == .string { tensor = try tensor.rebased(into: try stringTable()) }
        tensor.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress, bytes.count > 0 { view.data.copyMemory(from: base, byteCount: bytes.count) }
        }
    }

    /// Writes `values`, one per element, into output `index`, a string tensor.
    package func store<S: Sequence<String>>(_ values: S, intoOutput index: Int) throws {
        let table = try stringTable()
        let out = output(index).buffer(as: Int64.self)
        var i = 0
        for value in values where i < out.count {
            out[i] = table.intern(value)
            i += 1
        }
    }
}

/// Copies input 0 to output 0 unless the planner made them the same bytes (view kernels:
/// Identity, Reshape, Flatten, Squeeze, Unsqueeze, Dropout).
package func copyIfDistinct(_ context: borrowing KernelContext) {
    let x = context.input(0)!, y = context.output(0)
    if x.data != y.data { y.data.copyMemory(from: x.data, byteCount: y.byteCount) }
}
