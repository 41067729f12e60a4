/// Element-type conversion between every ``DataType``.
///
/// Semantics (those of a C cast where C defines them):
/// - float → integer truncates toward zero. Values beyond the target's range clamp to its
///   minimum or maximum and NaN becomes 0 (C leaves both undefined; this never traps).
/// - integer → integer keeps the low bits (two's complement wrap), as C does.
/// - integer or float → float rounds to nearest, ties to even; too large becomes ±infinity.
/// - anything → bool is `x != 0` (NaN is true); bool → anything is 0 or 1.
enum Casting {
    /// Converts `count` elements of `source` (of type `from`) into `destination` (of type `to`).
    ///
    /// The buffers must not overlap unless they are the same and the types are equal.
    static func convert(
        _ source: UnsafeRawPointer, from: DataType, to destination: UnsafeMutableRawPointer, _ to: DataType,
        count: Int, pool: ComputePool? = nil
    ) {
        guard count > 0 else { return }
        if from == to {
            if source != UnsafeRawPointer(destination) {
                destination.copyMemory(from: source, byteCount: count * from.byteWidth)
            }
            return
        }
        let threshold = 1 << 17
        if let pool, pool.threadCount > 1, count >= threshold {
            pool.parallelRanges(count, minimumChunk: threshold / 2) { range in
                convert(source + range.lowerBound * from.byteWidth, from,
                        destination + range.lowerBound * to.byteWidth, to, range.count)
            }
        } else {
            convert(source, from, destination, to, count)
        }
    }

    private static func convert(
        _ source: UnsafeRawPointer, _ from: DataType, _ destination: UnsafeMutableRawPointer, _ to: DataType, _ n: Int
    ) {
        switch from {
        case .float: convert(source.assumingMemoryBound(to: Float.self), destination, to, n)
        case .double: convert(source.assumingMemoryBound(to: Double.self), destination, to, n)
        case .float16: convert(source.assumingMemoryBound(to: Float16.self), destination, to, n)
        case .int8: convert(source.assumingMemoryBound(to: Int8.self), destination, to, n)
        case .uint8: convert(source.assumingMemoryBound(to: UInt8.self), destination, to, n)
        case .int16: convert(source.assumingMemoryBound(to: Int16.self), destination, to, n)
        case .uint16: convert(source.assumingMemoryBound(to: UInt16.self), destination, to, n)
        case .int32: convert(source.assumingMemoryBound(to: Int32.self), destination, to, n)
        case .uint32: convert(source.assumingMemoryBound(to: UInt32.self), destination, to, n)
        case .int64: convert(source.assumingMemoryBound(to: Int64.self), destination, to, n)
        case .uint64: convert(source.assumingMemoryBound(to: UInt64.self), destination, to, n)
        case .bool: convert(source.assumingMemoryBound(to: BoolByte.self), destination, to, n)
        }
    }

    private static func convert<S: CastSource>(
        _ source: UnsafePointer<S>, _ destination: UnsafeMutableRawPointer, _ to: DataType, _ n: Int
    ) {
        switch to {
        case .float: map(source, destination, n) { $0.castFloat }
        case .double: map(source, destination, n) { $0.castDouble }
        case .float16: map(source, destination, n) { $0.castFloat16 }
        case .bool: map(source, destination, n) { $0.castIsNonzero ? 1 as UInt8 : 0 }
        case .int8: map(source, destination, n) { $0.castInteger(Int8.self) }
        case .uint8: map(source, destination, n) { $0.castInteger(UInt8.self) }
        case .int16: map(source, destination, n) { $0.castInteger(Int16.self) }
        case .uint16: map(source, destination, n) { $0.castInteger(UInt16.self) }
        case .int32: map(source, destination, n) { $0.castInteger(Int32.self) }
        case .uint32: map(source, destination, n) { $0.castInteger(UInt32.self) }
        case .int64: map(source, destination, n) { $0.castInteger(Int64.self) }
        case .uint64: map(source, destination, n) { $0.castInteger(UInt64.self) }
        }
    }

    @inline(__always)
    private static func map<S, D>(
        _ source: UnsafePointer<S>, _ destination: UnsafeMutableRawPointer, _ n: Int, _ f: (S) -> D
    ) {
        let out = destination.assumingMemoryBound(to: D.self)
        for i in 0..<n { out[i] = f(source[i]) }
    }
}

/// A bool element as stored: one byte, any nonzero value read as true.
struct BoolByte {
    var raw: UInt8
}

/// An element type Casting can convert from.
protocol CastSource {
    var castFloat: Float { get }
    var castDouble: Double { get }
    var castFloat16: Float16 { get }
    var castIsNonzero: Bool { get }
    func castInteger<T: FixedWidthInteger>(_ type: T.Type) -> T
}

extension CastSource where Self: BinaryFloatingPoint {
    @inline(__always) var castIsNonzero: Bool { self != 0 }

    /// Truncates toward zero; clamps out-of-range values; NaN → 0.
    @inline(__always)
    func castInteger<T: FixedWidthInteger>(_ type: T.Type) -> T {
        if isNaN { return 0 }
        // Self(T.max) may round up to 2^bits, which is already out of range: hence `>=`.
        if self >= Self(T.max) { return T.max }
        if self <= Self(T.min) { return T.min }
        return T(self)
    }
}

extension Float: CastSource {
    @inline(__always) var castFloat: Float { self }
    @inline(__always) var castDouble: Double { Double(self) }
    @inline(__always) var castFloat16: Float16 { Float16(self) }
}

extension Double: CastSource {
    @inline(__always) var castFloat: Float { Float(self) }
    @inline(__always) var castDouble: Double { self }
    @inline(__always) var castFloat16: Float16 { Float16(self) }
}

extension Float16: CastSource {
    @inline(__always) var castFloat: Float { Float(self) }
    @inline(__always) var castDouble: Double { Double(self) }
    @inline(__always) var castFloat16: Float16 { self }
}

extension CastSource where Self: FixedWidthInteger {
    @inline(__always) var castFloat: Float { Float(self) }
    @inline(__always) var castDouble: Double { Double(self) }
    @inline(__always) var castFloat16: Float16 { Float16(self) }
    @inline(__always) var castIsNonzero: Bool { self != 0 }
    @inline(__always) func castInteger<T: FixedWidthInteger>(_ type: T.Type) -> T { T(truncatingIfNeeded: self) }
}

extension Int8: CastSource {}
extension UInt8: CastSource {}
extension Int16: CastSource {}
extension UInt16: CastSource {}
extension Int32: CastSource {}
extension UInt32: CastSource {}
extension Int64: CastSource {}
extension UInt64: CastSource {}

extension BoolByte: CastSource {
    @inline(__always) var castIsNonzero: Bool { raw != 0 }
    @inline(__always) var castFloat: Float { castIsNonzero ? 1 : 0 }
    @inline(__always) var castDouble: Double { castIsNonzero ? 1 : 0 }
    @inline(__always) var castFloat16: Float16 { castIsNonzero ? 1 : 0 }
    @inline(__always) func castInteger<T: FixedWidthInteger>(_ type: T.Type) -> T { castIsNonzero ? 1 : 0 }
}
