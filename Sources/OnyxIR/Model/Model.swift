import OnyxCore

/// A decoded ONNX model: metadata, the operator sets it imports, and its main graph.
public struct Model: Sendable {
    /// The ONNX IR version the file declares.
    public var irVersion: Int
    /// Operator set version imported per domain; the default domain is `""` (ai.onnx).
    public var opsetImports: [String: Int]
    /// The tool that wrote the model (`pytorch`, …).
    public var producerName: String
    /// The producer's version.
    public var producerVersion: String
    /// The model's domain (reverse-DNS, optional).
    public var domain: String
    /// The model's own version number.
    public var modelVersion: Int
    /// Free-form documentation.
    public var docString: String
    /// `metadata_props` as a dictionary.
    public var metadata: [String: String]
    /// The main graph.
    public var graph: Graph

    /// Creates a model from its parts, for graphs built in code.
    ///
    /// - Parameters:
    ///   - irVersion: The ONNX IR version to declare.
    ///   - opsetImports: Operator set version per domain; `""` is ai.onnx.
    ///   - producerName: The tool that made the model.
    ///   - producerVersion: The producer's version.
    ///   - domain: The model's domain (reverse-DNS).
    ///   - modelVersion: The model's own version number.
    ///   - docString: Free-form documentation.
    ///   - metadata: `metadata_props`.
    ///   - graph: The main graph.
    public init(
        irVersion: Int = 8, opsetImports: [String: Int], producerName: String = "",
        producerVersion: String = "", domain: String = "", modelVersion: Int = 0,
        docString: String = "", metadata: [String: String] = [:], graph: Graph
    ) {
        self.irVersion = irVersion
        self.opsetImports = opsetImports
        self.producerName = producerName
        self.producerVersion = producerVersion
        self.domain = domain
        self.modelVersion = modelVersion
        self.docString = docString
        self.metadata = metadata
        self.graph = graph
    }

    /// The opset version imported for `domain`, treating `ai.onnx` and `""` as one.
    public func opsetVersion(for domain: String) -> Int? {
        let key = Self.canonicalDomain(domain)
        return opsetImports[key] ?? (key == "" ? opsetImports["ai.onnx"] : nil)
    }

    /// `""` for the default domain whichever way it is spelled.
    package static func canonicalDomain(_ domain: String) -> String {
        domain == "ai.onnx" ? "" : domain
    }
}

/// A computation graph: nodes in any order, named values, constant initializers.
public struct Graph: Sendable {
    /// The graph's name.
    public var name: String
    /// The nodes; their order in the file need not be topological.
    public var nodes: [Node]
    /// Inputs supplied by the caller (initializers with the same name are defaults and are dropped here).
    public var inputs: [Value]
    /// The values the graph produces.
    public var outputs: [Value]
    /// Type annotations for intermediate values.
    public var valueInfo: [Value]
    /// Constant tensors by name, in file order.
    public var initializers: [(name: String, tensor: Tensor)]
    /// Free-form documentation.
    public var docString: String

    /// Creates a graph from its parts.
    ///
    /// - Parameters:
    ///   - name: The graph's name.
    ///   - nodes: The nodes, in any order.
    ///   - inputs: Values the caller supplies.
    ///   - outputs: Values the graph produces.
    ///   - valueInfo: Type annotations for intermediate values.
    ///   - initializers: Constant tensors by name.
    ///   - docString: Free-form documentation.
    public init(
        name: String = "", nodes: [Node], inputs: [Value], outputs: [Value],
        valueInfo: [Value] = [], initializers: [(name: String, tensor: Tensor)] = [],
        docString: String = ""
    ) {
        self.name = name
        self.nodes = nodes
        self.inputs = inputs
        self.outputs = outputs
        self.valueInfo = valueInfo
        self.initializers = initializers
        self.docString = docString
    }
}

/// One operator application.
public struct Node: Sendable {
    /// The node's name (may be empty in the file; the decoder names unnamed nodes after their first output).
    public var name: String
    /// The operator, e.g. `Conv`.
    public var opType: String
    /// The operator's domain; `""` is ai.onnx.
    public var domain: String
    /// Input value names; `""` marks an omitted optional input.
    public var inputs: [String]
    /// Output value names; `""` marks an omitted optional output.
    public var outputs: [String]
    /// Attributes by name.
    public var attributes: [String: Attribute]
    /// Free-form documentation.
    public var docString: String

    /// Creates a node.
    ///
    /// - Parameters:
    ///   - name: The node's name, used in error messages.
    ///   - opType: The operator, e.g. `Conv`.
    ///   - domain: The operator's domain; `""` is ai.onnx.
    ///   - inputs: Input value names; `""` omits an optional input.
    ///   - outputs: Output value names; `""` omits an optional output.
    ///   - attributes: Attributes by name.
    ///   - docString: Free-form documentation.
    public init(
        name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
        attributes: [String: Attribute] = [:], docString: String = ""
    ) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.docString = docString
    }
}

/// A named value of the graph with its declared type, if any.
public struct Value: Sendable, Hashable {
    /// The value's name.
    public var name: String
    /// The declared tensor type; `nil` when the file leaves it out, or when the value is a
    /// sequence, map or optional (see ``valueType``).
    public var type: TensorType?
    /// The declared type in full: `.tensor(dataType)` for a tensor, or a sequence, map or optional
    /// type; `nil` when the file leaves it out.
    public var valueType: ValueType?
    /// Free-form documentation.
    public var docString: String

    /// Creates a named tensor value.
    ///
    /// - Parameters:
    ///   - name: The value's name.
    ///   - type: Its declared tensor type, or `nil` if undeclared.
    ///   - docString: Free-form documentation.
    public init(name: String, type: TensorType?, docString: String = "") {
        self.name = name
        self.type = type
        self.valueType = type.map { .tensor($0.dataType) }
        self.docString = docString
    }

    /// Creates a named value of any type: for a tensor, prefer ``init(name:type:docString:)``, which
    /// also carries the declared shape.
    ///
    /// - Parameters:
    ///   - name: The value's name.
    ///   - valueType: Its declared type.
    ///   - docString: Free-form documentation.
    public init(name: String, valueType: ValueType, docString: String = "") {
        self.name = name
        if case .tensor(let dataType) = valueType {
            self.type = TensorType(dataType: dataType, shape: nil)
        } else {
            self.type = nil
        }
        self.valueType = valueType
        self.docString = docString
    }
}

/// A declared tensor type: element type and a shape whose axes may be symbolic.
public struct TensorType: Sendable, Hashable, CustomStringConvertible {
    /// The element type.
    public var dataType: DataType
    /// The shape; `nil` when even the rank is unknown.
    public var shape: Shape?

    /// Creates a declared tensor type.
    ///
    /// - Parameters:
    ///   - dataType: The element type.
    ///   - shape: The declared shape, or `nil` when even the rank is unknown.
    public init(dataType: DataType, shape: Shape?) {
        self.dataType = dataType
        self.shape = shape
    }

    public var description: String {
        "\(dataType)\(shape.map { $0.description } ?? "[?]")"
    }
}

/// A declared shape whose axes are fixed extents, named symbols (`batch`), or unknown.
public struct Shape: Sendable, Hashable, CustomStringConvertible {
    /// One axis of a declared shape.
    public enum Dimension: Sendable, Hashable, CustomStringConvertible {
        /// A known extent.
        case fixed(Int)
        /// A named extent (`batch`, `sequence`): any extent, the same wherever the name appears.
        case symbolic(String)
        /// An extent the model does not declare.
        case unknown

        public var description: String {
            switch self {
            case .fixed(let n): String(n)
            case .symbolic(let name): name
            case .unknown: "?"
            }
        }
    }

    /// The axes.
    public var dimensions: [Dimension]

    /// Creates a shape from its axes.
    ///
    /// - Parameter dimensions: The axes, outermost first.
    public init(_ dimensions: [Dimension]) {
        self.dimensions = dimensions
    }

    /// A fully static shape.
    public init(fixed extents: [Int]) {
        self.dimensions = extents.map { .fixed($0) }
    }

    /// The number of axes.
    public var rank: Int { dimensions.count }

    /// The extents if every axis is fixed.
    public var fixedExtents: [Int]? {
        var result: [Int] = []
        for d in dimensions {
            guard case .fixed(let n) = d else { return nil }
            result.append(n)
        }
        return result
    }

    /// Whether `extents` is an instance of this shape (symbolic and unknown axes match anything).
    public func accepts(_ extents: [Int]) -> Bool {
        guard extents.count == dimensions.count else { return false }
        for (d, n) in zip(dimensions, extents) {
            if case .fixed(let m) = d, m != n { return false }
        }
        return true
    }

    public var description: String { "[" + dimensions.map(\.description).joined(separator: ", ") + "]" }
}
