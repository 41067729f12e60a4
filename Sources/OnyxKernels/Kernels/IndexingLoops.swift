import OnyxCore

/// Element types the value-reading indexing operators (TopK, ArgMax, CumSum, Scatter
/// reductions, Unique, NonZero) compare and combine.
///
/// Order puts NaN after every number and NaN equal to NaN, so sorting never sees an
/// inconsistent comparison and Unique keeps one NaN.
@usableFromInline package protocol IndexingElement: TensorElement, Comparable {
    static var zeroValue: Self { get }
    /// Whether the value is NaN (always false for integers).
    var isUnordered: Bool { get }
    /// `a + b`, wrapping for integers.
    static func sum(_ a: Self, _ b: Self) -> Self
    /// `a · b`, wrapping for integers.
    static func product(_ a: Self, _ b: Self) -> Self
}

extension IndexingElement where Self: BinaryFloatingPoint {
    @usableFromInline package static var zeroValue: Self { 0 }
    @inlinable @inline(__always) package var isUnordered: Bool { isNaN }
    @inlinable @inline(__always) package static func sum(_ a: Self, _ b: Self) -> Self { a + b }
    @inlinable @inline(__always) package static func product(_ a: Self, _ b: Self) -> Self { a * b }
}

extension IndexingElement where Self: FixedWidthInteger {
    @usableFromInline package static var zeroValue: Self { 0 }
    @inlinable @inline(__always) package var isUnordered: Bool { false }
    @inlinable @inline(__always) package static func sum(_ a: Self, _ b: Self) -> Self { a &+ b }
    @inlinable @inline(__always) package static func product(_ a: Self, _ b: Self) -> Self { a &* b }
}

extension Float: IndexingElement {}
extension Double: IndexingElement {}
extension Float16: IndexingElement {}
extension Int8: IndexingElement {}
extension UInt8: IndexingElement {}
extension Int16: IndexingElement {}
extension UInt16: IndexingElement {}
extension Int32: IndexingElement {}
extension UInt32: IndexingElement {}
extension Int64: IndexingElement {}
extension UInt64: IndexingElement {}

extension IndexingElement {
    /// Strict order with NaN last.
    @inlinable @inline(__always)
    package static func orderedBefore(_ a: Self, _ b: Self) -> Bool {
        if a.isUnordered { return false }
        if b.isUnordered { return true }
        return a < b
    }

    /// Equality with NaN equal to NaN.
    @inlinable @inline(__always)
    package static func orderedEqual(_ a: Self, _ b: Self) -> Bool {
        a == b || (a.isUnordered && b.isUnordered)
    }
}

/// Code run once per element type: `visit(T.self)` with the Swift type of a ``DataType``.
@usableFromInline package protocol IndexingElementVisitor {
    associatedtype Result
    func visit<T: IndexingElement>(_ type: T.Type) throws -> Result
}

extension DataType {
    /// Calls `visitor` with the Swift type of this data type; bool is visited as `UInt8` (0 or 1)
    /// when `boolAsByte`, else it returns `nil`, as it does for types with no arithmetic.
    @inlinable package func visitIndexingElement<V: IndexingElementVisitor>(_ visitor: V, boolAsByte: Bool = false) throws -> V.Result? {
        switch self {
        case .float: try visitor.visit(Float.self)
        case .double: try visitor.visit(Double.self)
        case .float16: try visitor.visit(Float16.self)
        case .int8: try visitor.visit(Int8.self)
        case .uint8: try visitor.visit(UInt8.self)
        case .int16: try visitor.visit(Int16.self)
        case .uint16: try visitor.visit(UInt16.self)
        case .int32: try visitor.visit(Int32.self)
        case .uint32: try visitor.visit(UInt32.self)
        case .int64: try visitor.visit(Int64.self)
        case .uint64: try visitor.visit(UInt64.self)
        case .bool: boolAsByte ? try visitor.visit(UInt8.self) : nil
        case .string, .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1,
             .int4, .uint4, .int2, .uint2:
            nil
        }
    }
}

/// Copying single elements between positions computed by the caller, by element width.
@usableFromInline package enum ElementMove {
    /// `destination[d] = source[s]` for element positions `s`, `d` (in elements of `width` bytes).
    @inlinable @inline(__always)
    package static func move(_ source: UnsafeRawPointer, _ s: Int, _ destination: UnsafeMutableRawPointer, _ d: Int, width: Int) {
        switch width {
        case 1: destination.storeBytes(of: source.load(fromByteOffset: s, as: UInt8.self), toByteOffset: d, as: UInt8.self)
        case 2: destination.storeBytes(of: source.load(fromByteOffset: 2 * s, as: UInt16.self), toByteOffset: 2 * d, as: UInt16.self)
        case 4: destination.storeBytes(of: source.load(fromByteOffset: 4 * s, as: UInt32.self), toByteOffset: 4 * d, as: UInt32.self)
        default: destination.storeBytes(of: source.load(fromByteOffset: 8 * s, as: UInt64.self), toByteOffset: 8 * d, as: UInt64.self)
        }
    }
}

/// How Scatter-family ops combine an update with the value already there.
@usableFromInline package enum ScatterReduction: String, Sendable {
    case none, add, mul, max, min

    @inlinable @inline(__always)
    package func combine<T: IndexingElement>(_ old: T, _ update: T) -> T {
        switch self {
        case .none: update
        case .add: T.sum(old, update)
        case .mul: T.product(old, update)
        case .max: update > old ? update : old
        case .min: update < old ? update : old
        }
    }
}
