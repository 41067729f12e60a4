import Synchronization

/// The type of a value an ONNX graph passes around: a tensor of an element type, or a sequence,
/// map or optional of such values.
public indirect enum ValueType: Sendable, Hashable, CustomStringConvertible {
    /// A tensor of this element type (any shape).
    case tensor(DataType)
    /// An ordered list of values of one type.
    case sequence(ValueType)
    /// Keys of an integer or string type mapped to values of one type.
    case map(key: DataType, value: ValueType)
    /// A value of the type, or none.
    case optional(ValueType)

    public var description: String {
        switch self {
        case .tensor(let type): "tensor(\(type))"
        case .sequence(let element): "seq(\(element))"
        case .map(let key, let value): "map(\(key), \(value))"
        case .optional(let element): "optional(\(element))"
        }
    }

    /// Whether values of this type are tensors.
    public var isTensor: Bool {
        if case .tensor = self { return true }
        return false
    }
}

/// A value of any ONNX type: what ``ValueType`` describes, with its data.
///
/// Tensors are the common case and ``InferenceSession``'s `run` takes and returns them directly;
/// models with sequence, map or optional inputs or outputs (scikit-learn classifiers whose ZipMap
/// returns one map of label → probability per row, for instance) use `run(values:)`.
public indirect enum OnnxValue: Sendable, CustomStringConvertible {
    /// A tensor.
    case tensor(Tensor)
    /// An ordered list of values, all of one type.
    case sequence([OnnxValue])
    /// A map: `keys` and `values` are 1-D tensors of equal length, entry `i` mapping `keys[i]` to
    /// `values[i]`. Keys are int64 or strings.
    case map(keys: Tensor, values: Tensor)
    /// A value, or none.
    case optional(OnnxValue?)

    /// The tensor, if this value is one.
    public var tensor: Tensor? {
        if case .tensor(let tensor) = self { return tensor }
        return nil
    }

    /// The elements, if this value is a sequence.
    public var sequence: [OnnxValue]? {
        if case .sequence(let elements) = self { return elements }
        return nil
    }

    public var description: String {
        switch self {
        case .tensor(let tensor): tensor.description
        case .sequence(let elements): "[" + elements.map(\.description).joined(separator: ", ") + "]"
        case .map(let keys, let values): "map<\(keys.dataType), \(values.dataType)>(\(keys.elementCount) entries)"
        case .optional(let value): value.map { "optional(\($0))" } ?? "none"
        }
    }

    /// Whether the value is of `type`, checked as deep as the values go (an empty sequence
    /// matches any sequence type).
    public func conforms(to type: ValueType) -> Bool {
        switch (self, type) {
        case (.tensor(let tensor), .tensor(let element)): tensor.dataType == element
        case (.sequence(let elements), .sequence(let element)): elements.allSatisfy { $0.conforms(to: element) }
        case (.map(let keys, let values), .map(let key, let value)): keys.dataType == key && value == .tensor(values.dataType)
        case (.optional(let value), .optional(let element)): value?.conforms(to: element) ?? true
        default: false
        }
    }

    /// The value's type, as far as its data tells (the element type of an empty sequence is not
    /// known; it is reported as float).
    public var type: ValueType {
        switch self {
        case .tensor(let tensor): .tensor(tensor.dataType)
        case .sequence(let elements): .sequence(elements.first?.type ?? .tensor(.float))
        case .map(let keys, let values): .map(key: keys.dataType, value: .tensor(values.dataType))
        case .optional(let value): .optional(value?.type ?? .tensor(.float))
        }
    }
}

/// The sequences, maps and optionals of one run.
///
/// A graph value that is not a tensor travels through the executor as an 8-byte handle (a scalar
/// `int64` tensor) into this store, the way strings travel as handles into a ``StringTable``. So
/// the planner places and moves it like any small tensor, and only the operators that work on
/// sequences, maps and optionals look into the store. Handle 0 is never handed out.
package final class ValueStore: Sendable {
    private let values = Mutex<[OnnxValue]>([])

    package init() {}

    /// Stores `value` and returns its handle.
    package func add(_ value: OnnxValue) -> Int64 {
        values.withLock { values in
            values.append(value)
            return Int64(values.count)
        }
    }

    /// The value of `handle`.
    ///
    /// - Throws: `internalError` for a handle the store never handed out.
    package func value(_ handle: Int64) throws -> OnnxValue {
        try values.withLock { values in
            guard handle >= 1, handle <= values.count else {
                throw OnyxError.internalError("value handle \(handle) is not in this run's store of \(values.count)")
            }
            return values[Int(handle - 1)]
        }
    }
}
