/// A concrete tensor type: element type and fixed extents.
///
/// A sequence, map or optional value is described by its `container` type; it travels as a
/// scalar `int64` handle into the run's ``ValueStore``.
@usableFromInline package struct TensorDescriptor: Hashable, Sendable, CustomStringConvertible {
    package var dataType: DataType
    package var shape: [Int]
    /// The type of a sequence, map or optional value; `nil` for a tensor.
    package var container: ValueType?

    package init(_ dataType: DataType, _ shape: [Int]) {
        self.dataType = dataType
        self.shape = shape
        self.container = nil
    }

    /// A sequence, map or optional value of `type`: a handle.
    package init(container type: ValueType) {
        self.dataType = .int64
        self.shape = []
        self.container = type
    }

    /// The value's full type.
    package var valueType: ValueType { container ?? .tensor(dataType) }

    package var elementCount: Int { shape.reduce(1, *) }
    package var byteCount: Int { elementCount * dataType.byteWidth }
    package var rank: Int { shape.count }
    @usableFromInline package var description: String { container?.description ?? "\(dataType)\(shape)" }
}

/// A tensor as a kernel sees it during a run: type, shape, and a pointer to its bytes.
@usableFromInline package struct TensorView {
    package let dataType: DataType
    package let shape: [Int]
    @usableFromInline package let data: UnsafeMutableRawPointer
    /// The element is a handle into the run's ``ValueStore``: a sequence, map or optional.
    package let isValueHandle: Bool

    @usableFromInline package var elementCount: Int { shape.reduce(1, *) }
    package var byteCount: Int { elementCount * dataType.byteWidth }
    package var rank: Int { shape.count }

    @inlinable @inline(__always)
    package func pointer<T>(as type: T.Type) -> UnsafeMutablePointer<T> {
        data.assumingMemoryBound(to: T.self)
    }

    @inlinable @inline(__always)
    package func buffer<T>(as type: T.Type) -> UnsafeMutableBufferPointer<T> {
        UnsafeMutableBufferPointer(start: data.assumingMemoryBound(to: T.self), count: elementCount)
    }

    package init(dataType: DataType, shape: [Int], data: UnsafeMutableRawPointer, isValueHandle: Bool = false) {
        self.dataType = dataType
        self.shape = shape
        self.data = data
        self.isValueHandle = isValueHandle
    }

    /// A view of `descriptor`'s value at `data`.
    package init(_ descriptor: TensorDescriptor, data: UnsafeMutableRawPointer) {
        self.init(dataType: descriptor.dataType, shape: descriptor.shape, data: data, isValueHandle: descriptor.container != nil)
    }
}
