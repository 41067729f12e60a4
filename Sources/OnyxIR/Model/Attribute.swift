import OnyxCore

/// A node attribute, as ONNX defines its kinds.
public enum Attribute: Sendable {
    /// A single float (`FLOAT`).
    case float(Float)
    /// A single integer (`INT`).
    case int(Int)
    /// A string (`STRING`), decoded as UTF-8.
    case string(String)
    /// A constant tensor (`TENSOR`).
    case tensor(Tensor)
    /// A subgraph (`GRAPH`): the body of `If`, `Loop` or `Scan`.
    case graph(Graph)
    /// A list of floats (`FLOATS`).
    case floats([Float])
    /// A list of integers (`INTS`).
    case ints([Int])
    /// A list of strings (`STRINGS`).
    case strings([String])
    /// A list of tensors (`TENSORS`).
    case tensors([Tensor])
    /// A list of subgraphs (`GRAPHS`).
    case graphs([Graph])
    /// A type (`TYPE_PROTO`): the element type of an `Optional` made without an input.
    case type(ValueType)

    /// ONNX's name for the attribute's kind, for error messages.
    public var kindName: String {
        switch self {
        case .float: "float"
        case .int: "int"
        case .string: "string"
        case .tensor: "tensor"
        case .graph: "graph"
        case .floats: "floats"
        case .ints: "ints"
        case .strings: "strings"
        case .tensors: "tensors"
        case .graphs: "graphs"
        case .type: "type"
        }
    }
}
