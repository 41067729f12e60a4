import OnyxCore
import OnyxIR
import OnyxKernels

/// Build-time view of a node: its attributes, the operator set version, and the values of
/// inputs that are constant for the whole session (initializers, folded nodes).
package struct NodeContext {
    package let node: Node
    /// The opset version imported for the node's domain.
    package let opset: Int
    /// `constantInputs[i]` is input i's value if it is constant for the session.
    package var constantInputs: [Tensor?]
    /// The micro-kernel variant the session uses.
    package let isa: KernelISA
    /// The model's opset imports, for the subgraphs of control-flow nodes.
    package var opsetImports: [String: Int] = [:]
    /// Prepares the subgraphs of control-flow nodes; `nil` where no runtime can (a node evaluated alone).
    package var subgraphs: (any SubgraphCompiler)? = nil

    package var inputCount: Int { node.inputs.count }
    package var outputCount: Int { node.outputs.count }

    /// Whether input `index` is present (given and not the empty name).
    package func hasInput(_ index: Int) -> Bool {
        index < node.inputs.count && !node.inputs[index].isEmpty
    }

    package func constantInput(_ index: Int) -> Tensor? {
        index < constantInputs.count ? constantInputs[index] : nil
    }

    package func attribute(_ name: String) -> Attribute? { node.attributes[name] }

    package func int(_ name: String) throws -> Int? {
        switch node.attributes[name] {
        case nil: return nil
        case .int(let v): return v
        case let other?: throw wrongKind(name, expected: "int", found: other)
        }
    }

    package func int(_ name: String, default value: Int) throws -> Int { try int(name) ?? value }

    package func float(_ name: String) throws -> Float? {
        switch node.attributes[name] {
        case nil: return nil
        case .float(let v): return v
        case .int(let v): return Float(v)
        case let other?: throw wrongKind(name, expected: "float", found: other)
        }
    }

    package func float(_ name: String, default value: Float) throws -> Float { try float(name) ?? value }

    package func string(_ name: String) throws -> String? {
        switch node.attributes[name] {
        case nil: return nil
        case .string(let v): return v
        case let other?: throw wrongKind(name, expected: "string", found: other)
        }
    }

    package func string(_ name: String, default value: String) throws -> String { try string(name) ?? value }

    package func ints(_ name: String) throws -> [Int]? {
        switch node.attributes[name] {
        case nil: return nil
        case .ints(let v): return v
        case .int(let v): return [v]
        case let other?: throw wrongKind(name, expected: "ints", found: other)
        }
    }

    package func floats(_ name: String) throws -> [Float]? {
        switch node.attributes[name] {
        case nil: return nil
        case .floats(let v): return v
        case .float(let v): return [v]
        case let other?: throw wrongKind(name, expected: "floats", found: other)
        }
    }

    package func tensor(_ name: String) throws -> Tensor? {
        switch node.attributes[name] {
        case nil: return nil
        case .tensor(let v): return v
        case let other?: throw wrongKind(name, expected: "tensor", found: other)
        }
    }

    /// An `.invalidAttribute` error naming this node.
    package func attributeError(_ message: String) -> OnyxError {
        OnyxError.invalidAttribute("\(node.opType) node '\(node.name)': \(message)")
    }

    private func wrongKind(_ name: String, expected: String, found: Attribute) -> OnyxError {
        attributeError("attribute '\(name)' must be \(expected), found \(found.kindName)")
    }

    package init(
        node: Node, opset: Int, constantInputs: [Tensor?], isa: KernelISA, opsetImports: [String: Int] = [:],
        subgraphs: (any SubgraphCompiler)? = nil
    ) {
        self.node = node
        self.opset = opset
        self.constantInputs = constantInputs
        self.isa = isa
        self.opsetImports = opsetImports
        self.subgraphs = subgraphs
    }
}

/// One operator implementation: which (domain, op type, opset versions) it serves and how to
/// prepare a kernel for a node.
package struct OperatorRegistration: Sendable {
    package let domain: String
    package let opType: String
    /// The opset versions this implementation follows (ONNX `since_version` up to the next change).
    package let versions: ClosedRange<Int>
    package let make: @Sendable (NodeContext) throws -> any Kernel

    package init(
        _ opType: String, domain: String = "", versions: ClosedRange<Int> = 1...Int.max,
        make: @escaping @Sendable (NodeContext) throws -> any Kernel
    ) {
        self.domain = domain
        self.opType = opType
        self.versions = versions
        self.make = make
    }
}

/// The table of every operator Onyx implements. Each operator family file contributes a list.
package enum OperatorRegistry {
    package static let all: [OperatorRegistration] = families.flatMap { $0 }

    private static let index: [String: [OperatorRegistration]] = Dictionary(
        grouping: all, by: { key(domain: $0.domain, opType: $0.opType) })

    private static func key(domain: String, opType: String) -> String {
        Model.canonicalDomain(domain) + "::" + opType
    }

    /// The implementation of `opType` in `domain` at `opset`, if any.
    package static func registration(domain: String, opType: String, opset: Int) -> OperatorRegistration? {
        index[key(domain: domain, opType: opType)]?.first { $0.versions.contains(opset) }.map(stagingNarrowFloats)
    }

    /// Whether any opset of `opType` in `domain` is implemented.
    package static func knows(domain: String, opType: String) -> Bool {
        index[key(domain: domain, opType: opType)] != nil
    }
}
