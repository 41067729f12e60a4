import OnyxCore
import OnyxKernels

// One place that maps a `DataType` to its Swift element type and calls generic code with it.
//
// Swift cannot pass a generic closure, so an operator writes a small visitor: a struct holding its
// buffers whose generic `visit` runs the typed loop. `DataType.visitFloating(_:operation:)` and its
// siblings switch once and call `visit` with the concrete type, so every `visit` is specialised: the
// same code as a hand-written `switch`. The visitor protocols are internal on purpose: a conformance
// to a protocol other modules can see keeps its unspecialised `visit` (and the generic loop calls in
// it) in the binary as a witness; to an internal protocol the optimizer drops it.

/// Generic code over the floating-point element types (see `DataType.visitFloating`).
protocol FloatingElementVisitor {
    associatedtype Result
    func visit<T: FloatingElement>(_ type: T.Type) throws -> Result
}

/// Generic code over the integer element types (see `DataType.visitInteger`).
protocol IntegerElementVisitor {
    associatedtype Result
    func visit<T: IntegerElement>(_ type: T.Type) throws -> Result
}

/// Generic code over every numeric element type: a visitor either has one `visit` for both
/// families (constrained by what they share, such as `Comparable`) or one for each.
typealias NumericElementVisitor = FloatingElementVisitor & IntegerElementVisitor

/// Generic code over every element type; bool, stored as one byte, has its own method.
protocol ElementVisitor: FloatingElementVisitor, IntegerElementVisitor {
    func visitBool() throws -> Result
}

extension DataType {
    /// Calls `visitor.visit` with the Swift type of a float, double or float16 tensor.
    ///
    /// - Parameters:
    ///   - visitor: The generic code to run.
    ///   - operation: The operator's name, for the error.
    /// - Returns: What `visit` returns.
    /// - Throws: `unsupportedDataType` naming the operator and the type for any other type, and
    ///   whatever `visit` throws.
    @inline(__always)
    func visitFloating<V: FloatingElementVisitor>(
        _ visitor: V, operation: @autoclosure () -> String
    ) throws -> V.Result {
        switch self {
        case .float: try visitor.visit(Float.self)
        case .double: try visitor.visit(Double.self)
        case .float16: try visitor.visit(Float16.self)
        default: throw unsupported(by: operation())
        }
    }

    /// Calls `visitor.visit` with the Swift type of an integer tensor (signed or unsigned).
    ///
    /// - Throws: `unsupportedDataType` naming the operator and the type for any other type, and
    ///   whatever `visit` throws.
    @inline(__always)
    func visitInteger<V: IntegerElementVisitor>(
        _ visitor: V, operation: @autoclosure () -> String
    ) throws -> V.Result {
        switch self {
        case .int8: try visitor.visit(Int8.self)
        case .int16: try visitor.visit(Int16.self)
        case .int32: try visitor.visit(Int32.self)
        case .int64: try visitor.visit(Int64.self)
        case .uint8: try visitor.visit(UInt8.self)
        case .uint16: try visitor.visit(UInt16.self)
        case .uint32: try visitor.visit(UInt32.self)
        case .uint64: try visitor.visit(UInt64.self)
        default: throw unsupported(by: operation())
        }
    }

    /// Calls `visitor.visit` with the Swift type of any numeric tensor.
    ///
    /// - Throws: `unsupportedDataType` naming the operator for bool, and whatever `visit` throws.
    @inline(__always)
    func visitNumeric<V: NumericElementVisitor>(
        _ visitor: V, operation: @autoclosure () -> String
    ) throws -> V.Result {
        switch self {
        case .float, .double, .float16: try visitFloating(visitor, operation: operation())
        case .bool: throw unsupported(by: operation())
        default: try visitInteger(visitor, operation: operation())
        }
    }

    /// Calls `visitor.visit` with the Swift type of the tensor, or `visitBool` for bool.
    ///
    /// - Throws: Whatever the visitor throws.
    @inline(__always)
    func visitElement<V: ElementVisitor>(_ visitor: V) throws -> V.Result {
        switch self {
        case .bool: try visitor.visitBool()
        default: try visitNumeric(visitor, operation: "")
        }
    }

    /// "`operation` does not support `self`", the error of the visits above.
    func unsupported(by operation: String) -> OnyxError {
        OnyxError.unsupportedDataType("\(operation) does not support \(self)")
    }
}
