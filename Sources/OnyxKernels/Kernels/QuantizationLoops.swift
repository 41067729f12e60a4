internal import CKernels
import OnyxCore

/// How the scale and zero point of QuantizeLinear / DequantizeLinear map onto the data tensor:
/// one value for all elements, one per index along `axis`, or one per block of `blockSize`
/// indices along `axis`.
///
/// The data is viewed as `[outer, extent, inner]` around the quantization axis.
@usableFromInline package struct QuantizationParameterLayout: Equatable {
    @usableFromInline package enum Granularity: Equatable {
        case perTensor
        case perAxis
        /// `blocks` parameter rows of `blockSize` indices each (the last may be shorter).
        case blocked(blockSize: Int, blocks: Int)
    }

    package let granularity: Granularity
    package let outer: Int
    package let extent: Int
    package let inner: Int

    /// Works out the granularity from the parameter's shape, as the specification does: a
    /// one-element parameter is per tensor, a 1-D one per axis, one of the data's rank blocked.
    ///
    /// - Parameters:
    ///   - op: The operator named in error messages.
    ///   - data: The shape of the data tensor (x).
    ///   - parameter: The shape of the scale.
    ///   - axis: The quantization axis (may be negative).
    ///   - blockSize: The `block_size` attribute; 0 when not blocked.
    package init(op: String, data: [Int], parameter: [Int], axis: Int, blockSize: Int) throws {
        let parameterCount = parameter.reduce(1, *)
        let total = data.reduce(1, *)
        if parameterCount == 1 && blockSize == 0 {
            granularity = .perTensor
            outer = 1
            extent = total
            inner = 1
            return
        }
        let rank = data.count
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else {
            throw OnyxError.invalidAttribute(
                "\(op): axis \(axis) is out of range for input rank \(rank) (expected \(-rank)...\(rank - 1))")
        }
        outer = data[..<a].reduce(1, *)
        extent = data[a]
        inner = data[(a + 1)...].reduce(1, *)
        if blockSize == 0 {
            guard parameter.count == 1, parameter[0] == extent else {
                throw OnyxError.shapeMismatch(
                    "\(op): the scale of shape \(shapeText(parameter)) must be a scalar or 1-D of length \(extent) (input axis \(a) of \(shapeText(data)))")
            }
            granularity = .perAxis
            return
        }
        guard blockSize > 0 else {
            throw OnyxError.invalidAttribute("\(op): block_size must be positive, got \(blockSize)")
        }
        let blocks = (extent + blockSize - 1) / blockSize
        var expected = data
        expected[a] = blocks
        guard parameter == expected else {
            throw OnyxError.shapeMismatch(
                "\(op): for blocked quantization of \(shapeText(data)) along axis \(a) with block_size \(blockSize) the scale must have shape \(shapeText(expected)), got \(shapeText(parameter))")
        }
        granularity = .blocked(blockSize: blockSize, blocks: blocks)
    }

    /// Calls `body(elementOffset, parameterIndex, count)` for runs of elements that share one
    /// parameter, covering every element once.
    package func forEachRun(_ body: (Int, Int, Int) throws -> Void) rethrows {
        switch granularity {
        case .perTensor:
            try body(0, 0, extent)
        case .perAxis:
            for o in 0..<outer {
                for d in 0..<extent { try body((o * extent + d) * inner, d, inner) }
            }
        case .blocked(let blockSize, let blocks):
            for o in 0..<outer {
                if inner == 1 {
                    for b in 0..<blocks {
                        let start = b * blockSize
                        try body(o * extent + start, o * blocks + b, min(blockSize, extent - start))
                    }
                } else {
                    for d in 0..<extent {
                        let row = (o * blocks + d / blockSize) * inner
                        for i in 0..<inner { try body((o * extent + d) * inner + i, row + i, 1) }
                    }
                }
            }
        }
    }
}

/// An element type QuantizeLinear reads (float, float16, bfloat16, int32).
@usableFromInline package protocol QuantizationSource {
    func converted<P: BinaryFloatingPoint>(to _: P.Type) -> P
}
extension Float: QuantizationSource {
    @inlinable @inline(__always) package func converted<P: BinaryFloatingPoint>(to _: P.Type) -> P { P(self) }
}
extension Float16: QuantizationSource {
    @inlinable @inline(__always) package func converted<P: BinaryFloatingPoint>(to _: P.Type) -> P { P(self) }
}
extension Int32: QuantizationSource {
    @inlinable @inline(__always) package func converted<P: BinaryFloatingPoint>(to _: P.Type) -> P { P(self) }
}
extension BFloat16Bits: QuantizationSource {
    @inlinable @inline(__always) package func converted<P: BinaryFloatingPoint>(to _: P.Type) -> P { P(castFloat) }
}

/// How QuantizeLinear divides x by the scale: in the precision of the scale's type or of its
/// `precision` attribute, the quotient rounded to it.
@usableFromInline package protocol QuantizationDivision {
    func quotient<X: QuantizationSource>(_ x: X) -> Double
}

/// Division in a Swift floating-point type (float16, float, double).
@usableFromInline package struct NativeDivision<P: BinaryFloatingPoint>: QuantizationDivision {
    @usableFromInline let scale: P
    @inlinable package init(scale: Double) { self.scale = P(scale) }
    @inlinable @inline(__always) package func quotient<X: QuantizationSource>(_ x: X) -> Double { Double(x.converted(to: P.self) / scale) }
}

/// Division in bfloat16: x and the scale rounded to bfloat16, divided in float (correctly rounded
/// for such narrow operands), the quotient rounded to bfloat16.
@usableFromInline package struct BFloat16Division: QuantizationDivision {
    @usableFromInline let scale: Float
    @inlinable package init(scale: Double) { self.scale = Self.round(Float(scale)) }
    @inlinable @inline(__always) static func round(_ v: Float) -> Float {
        Float(bitPattern: UInt32(BFloat16Bits.fromFloat(v.bitPattern)) << 16)
    }
    @inlinable @inline(__always) package func quotient<X: QuantizationSource>(_ x: X) -> Double {
        Double(Self.round(Self.round(x.converted(to: Float.self)) / scale))
    }
}

/// Where QuantizeLinear puts a quotient: rounded and clamped into an integer type, or converted
/// into a narrow float format.
@usableFromInline package protocol QuantizedStore {
    func store(_ quotient: Double, at index: Int)
}

/// `saturate(round_half_even(q) + zeroPoint)` into `Q`, clamped to `bounds` (int4 is stored in
/// Int8 but saturates at −8…7); a NaN quotient gives the zero point.
@usableFromInline package struct IntegerQuantizedStore<Q: FixedWidthInteger>: QuantizedStore {
    @usableFromInline let y: UnsafeMutablePointer<Q>
    @usableFromInline let zero: Double, low: Double, high: Double
    @inlinable package init(_ y: UnsafeMutablePointer<Q>, zeroPoint: Int32, bounds: ClosedRange<Int32>) {
        self.y = y
        zero = Double(zeroPoint)
        low = Double(bounds.lowerBound)
        high = Double(bounds.upperBound)
    }
    @inlinable @inline(__always) package func store(_ q: Double, at index: Int) {
        let v = q.isNaN ? zero : q.rounded(.toNearestOrEven) + zero
        y[index] = Q(v > low ? (v < high ? v : high) : low)
    }
}

/// `q + zeroPoint` converted to a float8 or float4e2m1 format as Cast converts (ties to even;
/// beyond the range as `saturate` says).
package struct MiniFloatQuantizedStore: QuantizedStore {
    let y: UnsafeMutablePointer<UInt8>
    let format: MiniFloat
    let zero: Double
    let saturate: Bool
    package init(_ y: UnsafeMutablePointer<UInt8>, format: MiniFloat, zeroPoint: Double, saturate: Bool) {
        self.y = y
        self.format = format
        zero = zeroPoint
        self.saturate = saturate
    }
    @inline(__always) package func store(_ q: Double, at index: Int) {
        y[index] = UInt8(truncatingIfNeeded: format.bits(q + zero, saturate: saturate))
    }
}

/// An element type DequantizeLinear writes: float, float16 or bfloat16, rounded from a Float.
@usableFromInline package protocol DequantizedElement {
    static func rounded(_ value: Float) -> Self
}
extension Float: DequantizedElement {
    @inlinable @inline(__always) package static func rounded(_ value: Float) -> Float { value }
}
extension Float16: DequantizedElement {
    @inlinable @inline(__always) package static func rounded(_ value: Float) -> Float16 { Float16(value) }
}
extension BFloat16Bits: DequantizedElement {
    @inlinable @inline(__always) package static func rounded(_ value: Float) -> BFloat16Bits {
        BFloat16Bits(raw: fromFloat(value.bitPattern))
    }
}

extension Double {
    fileprivate var nanToZero: Double { isNaN ? 0 : self }
}

/// Element loops of the quantization operators.
@usableFromInline package enum QuantizationLoops {
    /// `y[i] = table[x[i]]` for `count` bytes (a 256-byte table): the quantized unary operators' loop.
    package static func lookup(
        _ table: UnsafePointer<UInt8>, _ x: UnsafePointer<UInt8>, into y: UnsafeMutablePointer<UInt8>, count: Int,
        isa: KernelISA
    ) {
        onyx_lookup_u8(isa.cValue, table, x, y, count)
    }

    /// Element `index` of `view` as a Double, for parameters (scales, zero points) of any
    /// numeric type.
    package static func double(_ view: TensorView, at index: Int) -> Double {
        switch view.dataType {
        case .float: Double(view.pointer(as: Float.self)[index])
        case .double: view.pointer(as: Double.self)[index]
        case .float16: Double(view.pointer(as: Float16.self)[index])
        case .int8: Double(view.pointer(as: Int8.self)[index])
        case .uint8: Double(view.pointer(as: UInt8.self)[index])
        case .int16: Double(view.pointer(as: Int16.self)[index])
        case .uint16: Double(view.pointer(as: UInt16.self)[index])
        case .int32: Double(view.pointer(as: Int32.self)[index])
        case .uint32: Double(view.pointer(as: UInt32.self)[index])
        case .int64: Double(view.pointer(as: Int64.self)[index])
        case .uint64: Double(view.pointer(as: UInt64.self)[index])
        case .bool: view.pointer(as: UInt8.self)[index] != 0 ? 1 : 0
        case .string: .nan  // the planner keeps strings away from the quantization operators
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1,
             .int4, .uint4, .int2, .uint2:
            Casting.double(view.data, view.dataType, at: index)
        }
    }

    /// Element `index` of an integer tensor as an Int32 (zero points of the integer types).
    package static func int32(_ view: TensorView, at index: Int) -> Int32 {
        switch view.dataType {
        case .int8, .int4, .int2: Int32(view.pointer(as: Int8.self)[index])
        case .uint8, .uint4, .uint2: Int32(view.pointer(as: UInt8.self)[index])
        case .int16: Int32(view.pointer(as: Int16.self)[index])
        case .uint16: Int32(view.pointer(as: UInt16.self)[index])
        case .int32: view.pointer(as: Int32.self)[index]
        default:
            // Not a zero-point type the operators accept; clamp rather than trap.
            Int32(max(min(double(view, at: index).rounded(), 2_147_483_647), -2_147_483_648).nanToZero)
        }
    }

    /// `y = store(x / scale)`: the division as `division` does it, the result stored (rounded,
    /// offset by the zero point, saturated) as `store` does.
    @inlinable @inline(__always)
    package static func quantize<X: QuantizationSource, D: QuantizationDivision, S: QuantizedStore>(
        _ x: UnsafePointer<X>, count: Int, division: D, into store: S
    ) {
        for i in 0..<count { store.store(division.quotient(x[i]), at: i) }
    }

    /// `y = saturate(round_half_even(x / scale) + zeroPoint)` for float input and a float scale,
    /// in Float throughout so the loop vectorises; saturating at `bounds`.
    @inlinable @inline(__always)
    package static func quantizeFloat<Q: FixedWidthInteger>(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Q>, count: Int, scale: Float, zeroPoint: Int32,
        bounds: ClosedRange<Int32>
    ) {
        // Every value these types hold is exact in Float, and so are the clamp bounds.
        let low = Float(bounds.lowerBound), high = Float(bounds.upperBound), zero = Float(zeroPoint)
        for i in 0..<count {
            let q = x[i] / scale
            let v = q.isNaN ? zero : q.rounded(.toNearestOrEven) + zero
            y[i] = Q(v > low ? (v < high ? v : high) : low)
        }
    }

    /// `y = (x - zeroPoint) · scale`, computed in Float (exact for 8- and 16-bit x) and rounded to `O`.
    @inlinable @inline(__always)
    package static func dequantize<X: BinaryInteger, O: DequantizedElement>(
        _ x: UnsafePointer<X>, _ y: UnsafeMutablePointer<O>, count: Int, scale: Float, zeroPoint: Int32
    ) {
        let zero = Float(zeroPoint)
        for i in 0..<count { y[i] = O.rounded((Float(x[i]) - zero) * scale) }
    }

    /// ``dequantize(_:_:count:scale:zeroPoint:)`` for int32 x, whose difference from the zero
    /// point needs more than Float's precision.
    @inlinable @inline(__always)
    package static func dequantizeWide<O: DequantizedElement>(
        _ x: UnsafePointer<Int32>, _ y: UnsafeMutablePointer<O>, count: Int, scale: Float, zeroPoint: Int32
    ) {
        let s = Double(scale), zero = Int64(zeroPoint)
        for i in 0..<count { y[i] = O.rounded(Float(Double(Int64(x[i]) - zero) * s)) }
    }

    /// ``dequantize(_:_:count:scale:zeroPoint:)`` for x in a float8 or float4e2m1 `format`
    /// (bit patterns), with a zero point of that type given by its value.
    @inline(__always)
    package static func dequantize<O: DequantizedElement>(
        _ x: UnsafePointer<UInt8>, format: MiniFloat, _ y: UnsafeMutablePointer<O>, count: Int, scale: Float, zeroPoint: Float
    ) {
        // In Float, as ONNX's reference computes it: exact whenever the zero point is 0.
        for i in 0..<count { y[i] = O.rounded((format.float(UInt32(x[i])) - zeroPoint) * scale) }
    }

    /// Copies `count` elements of an 8-bit integer tensor into Int32 with `zeroPoint` subtracted.
    @inlinable @inline(__always)
    package static func widen<T: FixedWidthInteger>(
        _ source: UnsafePointer<T>, _ destination: UnsafeMutablePointer<Int32>, count: Int, zeroPoint: Int32
    ) {
        for i in 0..<count { destination[i] = Int32(truncatingIfNeeded: source[i]) &- zeroPoint }
    }

    /// Widens any 8-bit integer tensor (`int8` or `uint8`) at `offset` into Int32 minus `zeroPoint`.
    package static func widen(
        _ view: TensorView, offset: Int, into destination: UnsafeMutablePointer<Int32>, count: Int, zeroPoint: Int32
    ) {
        switch view.dataType {
        case .int8: widen(UnsafePointer(view.pointer(as: Int8.self) + offset), destination, count: count, zeroPoint: zeroPoint)
        case .uint8: widen(UnsafePointer(view.pointer(as: UInt8.self) + offset), destination, count: count, zeroPoint: zeroPoint)
        default:
            for i in 0..<count { destination[i] = int32(view, at: offset + i) &- zeroPoint }
        }
    }

    /// `c[m×n] = a[m×k] · b[k×n]` on row-major Int32 matrices, wrapping on overflow (the
    /// accumulation of the integer operators is 32-bit by specification).
    package static func multiply(
        m: Int, n: Int, k: Int, a: UnsafePointer<Int32>, b: UnsafePointer<Int32>, c: UnsafeMutablePointer<Int32>,
        pool: ComputePool
    ) {
        pool.forEachChunk(m, costPerItem: n * k) { rows in
            for i in rows {
                let row = c + i * n
                row.update(repeating: 0, count: n)
                for p in 0..<k {
                    let av = a[i * k + p]
                    if av == 0 { continue }
                    let bRow = b + p * n
                    for j in 0..<n { row[j] = row[j] &+ av &* bRow[j] }
                }
            }
        }
    }
}

/// The batch geometry of a NumPy `matmul` (1-D operands promoted, batch axes broadcast), for
/// the integer matrix products.
@usableFromInline package struct IntegerMatMulGeometry {
    package var m = 1, n = 1, k = 1
    package var batchShape: [Int] = []
    package var aBatchStrides: [Int] = []
    package var bBatchStrides: [Int] = []
    package var aBatchCount = 1, bBatchCount = 1
    package var outputShape: [Int] = []
    package var batchCount: Int { batchShape.reduce(1, *) }

    package init(_ a: [Int], _ b: [Int], op: String) throws {
        guard !a.isEmpty, !b.isEmpty else { throw OnyxError.shapeMismatch("\(op): inputs must not be scalars") }
        let a2 = a.count == 1 ? [1, a[0]] : a
        let b2 = b.count == 1 ? [b[0], 1] : b
        m = a2[a2.count - 2]
        k = a2[a2.count - 1]
        n = b2[b2.count - 1]
        guard b2[b2.count - 2] == k else {
            throw OnyxError.shapeMismatch(
                "\(op): shapes \(shapeText(a)) and \(shapeText(b)) do not agree on the inner dimension (\(k) vs \(b2[b2.count - 2]))")
        }
        let aBatch = Array(a2.dropLast(2)), bBatch = Array(b2.dropLast(2))
        batchShape = try Broadcasting.shape(aBatch, bBatch, op: op)
        aBatchStrides = Broadcasting.strides(of: aBatch, in: batchShape)
        bBatchStrides = Broadcasting.strides(of: bBatch, in: batchShape)
        aBatchCount = aBatch.reduce(1, *)
        bBatchCount = bBatch.reduce(1, *)
        outputShape = batchShape + (a.count == 1 ? [] : [m]) + (b.count == 1 ? [] : [n])
    }

    /// The batch index into A and into B of output batch `batch`.
    package func operandBatches(_ batch: Int) -> (a: Int, b: Int) {
        var rest = batch, ia = 0, ib = 0
        for axis in stride(from: batchShape.count - 1, through: 0, by: -1) {
            let i = rest % batchShape[axis]
            rest /= batchShape[axis]
            ia += i * aBatchStrides[axis]
            ib += i * bBatchStrides[axis]
        }
        return (ia, ib)
    }
}

/// Which element of a row or column parameter (zero point, scale) of a matrix operand applies:
/// one for the tensor, one per row (column) shared by every batch, or one per row (column) per batch.
@usableFromInline package struct MatrixParameterLayout {
    @usableFromInline package enum Kind { case scalar, perLine, perBatchLine }
    @usableFromInline package let kind: Kind
    @usableFromInline package let lines: Int

    /// - Parameters:
    ///   - operand: The operand's shape, rank ≥ 1.
    ///   - parameter: The parameter's shape.
    ///   - rows: Per row (A) or per column (B).
    package init(op: String, name: String, operand: [Int], parameter: [Int], rows: Bool) throws {
        let operand2 = operand.count == 1 ? (rows ? [1, operand[0]] : [operand[0], 1]) : operand
        let lineAxis = rows ? operand2.count - 2 : operand2.count - 1
        lines = operand2[lineAxis]
        if parameter.reduce(1, *) == 1 {
            kind = .scalar
            return
        }
        if parameter == [lines] {
            kind = .perLine
            return
        }
        var expected = operand2
        expected[rows ? operand2.count - 1 : operand2.count - 2] = 1
        guard parameter == expected else {
            throw OnyxError.shapeMismatch(
                "\(op): \(name) of shape \(shapeText(parameter)) must be a scalar, [\(lines)] or \(shapeText(expected))")
        }
        kind = .perBatchLine
    }

    /// The parameter index for line `line` of operand batch `batch`.
    @inlinable @inline(__always)
    package func index(batch: Int, line: Int) -> Int {
        switch kind {
        case .scalar: 0
        case .perLine: line
        case .perBatchLine: batch * lines + line
        }
    }
}

/// Direct N-D integer convolution through im2col and an Int32 matrix product.
@usableFromInline package enum IntegerConvolution {
    /// Output spatial extents, begin pads, strides and dilations for one call.
    @usableFromInline package struct Geometry {
        package var input: [Int]
        package var kernel: [Int]
        package var output: [Int]
        package var padBegin: [Int]
        package var strides: [Int]
        package var dilations: [Int]

        package var kernelArea: Int { kernel.reduce(1, *) }
        package var outputArea: Int { output.reduce(1, *) }
        package var inputArea: Int { input.reduce(1, *) }

        package init(input: [Int], kernel: [Int], output: [Int], padBegin: [Int], strides: [Int], dilations: [Int]) {
            self.input = input
            self.kernel = kernel
            self.output = output
            self.padBegin = padBegin
            self.strides = strides
            self.dilations = dilations
        }
    }

    /// Writes `cols[(c·K + kernelIndex), outputIndex] = image[c, …] − 0` (the image already has
    /// its zero point removed; padding reads 0) for `channels` channels.
    package static func im2col(
        _ image: UnsafePointer<Int32>, channels: Int, _ g: Geometry, into cols: UnsafeMutablePointer<Int32>
    ) {
        let rank = g.input.count
        let kernelArea = g.kernelArea, outputArea = g.outputArea, inputArea = g.inputArea
        withUnsafeTemporaryAllocation(of: Int.self, capacity: max(rank, 1) * 2) { scratch in
            let kernelIndex = scratch.baseAddress!, outputIndex = scratch.baseAddress! + rank
            for kernelLinear in 0..<kernelArea {
                var rest = kernelLinear
                for axis in stride(from: rank - 1, through: 0, by: -1) {
                    kernelIndex[axis] = rest % g.kernel[axis]
                    rest /= g.kernel[axis]
                }
                for axis in 0..<rank { outputIndex[axis] = 0 }
                for outputLinear in 0..<outputArea {
                    var offset = 0
                    var inside = true
                    for axis in 0..<rank {
                        let position = outputIndex[axis] * g.strides[axis] + kernelIndex[axis] * g.dilations[axis]
                            - g.padBegin[axis]
                        if position < 0 || position >= g.input[axis] { inside = false; break }
                        offset = offset * g.input[axis] + position
                    }
                    for c in 0..<channels {
                        cols[(c * kernelArea + kernelLinear) * outputArea + outputLinear] =
                            inside ? image[c * inputArea + offset] : 0
                    }
                    var axis = rank - 1
                    while axis >= 0 {
                        outputIndex[axis] += 1
                        if outputIndex[axis] < g.output[axis] { break }
                        outputIndex[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
    }
}

/// Determinants of square matrices.
@usableFromInline package enum Determinant {
    /// The determinant of the `n×n` row-major matrix in `matrix`, which is overwritten (LU
    /// decomposition with partial pivoting).
    package static func compute(_ matrix: UnsafeMutablePointer<Double>, n: Int) -> Double {
        var determinant = 1.0
        for column in 0..<n {
            var pivot = column
            var largest = abs(matrix[column * n + column])
            for row in (column + 1)..<n where abs(matrix[row * n + column]) > largest {
                largest = abs(matrix[row * n + column])
                pivot = row
            }
            if largest == 0 {
                // NaN entries compare false and never become the pivot; let them show.
                if (column..<n).contains(where: { matrix[$0 * n + column].isNaN }) { return .nan }
                return 0
            }
            if pivot != column {
                for j in 0..<n {
                    let held = matrix[pivot * n + j]
                    matrix[pivot * n + j] = matrix[column * n + j]
                    matrix[column * n + j] = held
                }
                determinant = -determinant
            }
            let diagonal = matrix[column * n + column]
            determinant *= diagonal
            for row in (column + 1)..<n {
                let factor = matrix[row * n + column] / diagonal
                if factor == 0 { continue }
                for j in (column + 1)..<n { matrix[row * n + j] -= factor * matrix[column * n + j] }
            }
        }
        return determinant
    }
}
