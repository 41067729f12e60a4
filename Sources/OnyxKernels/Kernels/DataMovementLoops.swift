import OnyxCore

/// Byte-moving loops shared by the data-movement operators (Slice, Expand, Tile, Pad, Split …).
///
/// Everything here works on elements of 1, 2, 4 or 8 bytes without looking at their values;
/// strides are in elements and may be zero (broadcast) or negative (reversed slices).
@usableFromInline package enum StridedCopy {
    /// Copies the strided view `source[Σ index[d]·sourceStrides[d]]` of `shape` into `destination`
    /// at `Σ index[d]·destinationStrides[d]`.
    ///
    /// Axes are coalesced first (unit axes dropped, neighbours merged where both sides step through
    /// them as one), so a contiguous block is one `memcpy` and a broadcast row is one fill loop.
    ///
    /// - Parameters:
    ///   - shape: The extents walked.
    ///   - source: The element at index 0 of the view.
    ///   - sourceStrides: Elements per step along each axis of `shape`.
    ///   - destination: The element index 0 is written to.
    ///   - destinationStrides: Elements per step along each axis; `nil` means contiguous (row-major `shape`).
    ///   - width: Bytes per element: 1, 2, 4 or 8.
    ///   - pool: Threads for large copies; `nil` stays on the calling thread.
    package static func copy(
        shape: [Int], from source: UnsafeRawPointer, sourceStrides: [Int],
        to destination: UnsafeMutableRawPointer, destinationStrides: [Int]? = nil,
        width: Int, pool: ComputePool? = nil
    ) {
        let rank = shape.count
        var count = 1
        for extent in shape { count *= extent }
        guard count > 0 else { return }
        let outStrides = destinationStrides ?? contiguousStrides(shape)
        // Coalesce, innermost first.
        var extents: [Int] = [], sStrides: [Int] = [], dStrides: [Int] = []
        extents.reserveCapacity(rank)
        sStrides.reserveCapacity(rank)
        dStrides.reserveCapacity(rank)
        for axis in stride(from: rank - 1, through: 0, by: -1) where shape[axis] != 1 {
            let e = shape[axis], s = sourceStrides[axis], d = outStrides[axis]
            if let last = extents.last, s == sStrides[sStrides.count - 1] * last, d == dStrides[dStrides.count - 1] * last {
                extents[extents.count - 1] *= e
            } else {
                extents.append(e)
                sStrides.append(s)
                dStrides.append(d)
            }
        }
        if extents.isEmpty {
            destination.copyMemory(from: source, byteCount: width)
            return
        }
        let walk = Walk(extents: extents, sourceStrides: sStrides, destinationStrides: dStrides)
        let rows = count / extents[0]
        let body: (Range<Int>) -> Void = { range in
            switch width {
            case 1: walk.run(UInt8.self, source, destination, range)
            case 2: walk.run(UInt16.self, source, destination, range)
            case 4: walk.run(UInt32.self, source, destination, range)
            default: walk.run(UInt64.self, source, destination, range)
            }
        }
        if let pool {
            pool.forEachChunk(rows, costPerItem: extents[0], body)
        } else {
            body(0..<rows)
        }
    }

    /// The product of `shape[range]`.
    @inlinable @inline(__always)
    package static func extentProduct(_ shape: [Int], _ range: Range<Int>) -> Int {
        var p = 1
        for d in range { p *= shape[d] }
        return p
    }

    /// Row-major element strides of `shape`.
    package static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = step
            step *= shape[axis]
        }
        return strides
    }

    /// The coalesced walk: `extents[0]` is the row; rows are numbered over the outer axes.
    private struct Walk {
        let extents: [Int]
        let sourceStrides: [Int]
        let destinationStrides: [Int]

        func run<T>(_: T.Type, _ source: UnsafeRawPointer, _ destination: UnsafeMutableRawPointer, _ rows: Range<Int>) {
            let src = source.assumingMemoryBound(to: T.self), dst = destination.assumingMemoryBound(to: T.self)
            let n = extents[0], ss = sourceStrides[0], ds = destinationStrides[0]
            let outer = extents.count - 1
            withUnsafeTemporaryAllocation(of: Int.self, capacity: max(outer, 1)) { index in
                // Position of the first row of the range.
                var rest = rows.lowerBound
                var s = 0, d = 0
                for k in 0..<outer {
                    index[k] = rest % extents[k + 1]
                    rest /= extents[k + 1]
                    s += index[k] * sourceStrides[k + 1]
                    d += index[k] * destinationStrides[k + 1]
                }
                for _ in rows {
                    if ss == 1 && ds == 1 {
                        (dst + d).update(from: src + s, count: n)
                    } else if ss == 0 {
                        let value = src[s]
                        var o = d
                        for _ in 0..<n { dst[o] = value; o += ds }
                    } else {
                        var i = s, o = d
                        for _ in 0..<n { dst[o] = src[i]; i += ss; o += ds }
                    }
                    var k = 0
                    while k < outer {
                        index[k] += 1
                        s += sourceStrides[k + 1]
                        d += destinationStrides[k + 1]
                        if index[k] < extents[k + 1] { break }
                        s -= sourceStrides[k + 1] * extents[k + 1]
                        d -= destinationStrides[k + 1] * extents[k + 1]
                        index[k] = 0
                        k += 1
                    }
                }
            }
        }
    }
}

/// Filling a buffer with copies of one element.
@usableFromInline package enum ElementFill {
    /// Writes `count` copies of the `width`-byte element at `value` to `destination`.
    package static func fill(_ destination: UnsafeMutableRawPointer, count: Int, value: UnsafeRawPointer, width: Int) {
        guard count > 0 else { return }
        switch width {
        case 1: destination.initializeMemory(as: UInt8.self, repeating: value.loadUnaligned(as: UInt8.self), count: count)
        case 2: destination.initializeMemory(as: UInt16.self, repeating: value.loadUnaligned(as: UInt16.self), count: count)
        case 4: destination.initializeMemory(as: UInt32.self, repeating: value.loadUnaligned(as: UInt32.self), count: count)
        default: destination.initializeMemory(as: UInt64.self, repeating: value.loadUnaligned(as: UInt64.self), count: count)
        }
    }

    /// The bytes of `value` converted to `type` (8 bytes, the first `type.byteWidth` meaningful).
    package static func element(_ value: Double, as type: DataType) -> UInt64 {
        var source = value
        var bytes: UInt64 = 0
        withUnsafeMutableBytes(of: &bytes) { out in
            Casting.convert(&source, from: .double, to: out.baseAddress!, type, count: 1)
        }
        return bytes
    }
}

/// Copying a tensor through per-axis index tables (Pad's edge, reflect and wrap modes).
@usableFromInline package enum IndexedCopy {
    /// Writes output element `(i0, i1, …)` = `source[Σ offsets[d][i_d]]`.
    ///
    /// - Parameters:
    ///   - shape: The output extents.
    ///   - offsets: For each axis, one source element offset per output index (already multiplied by the stride).
    ///   - width: Bytes per element: 1, 2, 4 or 8.
    package static func copy(
        shape: [Int], offsets: [[Int]], from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer,
        width: Int
    ) {
        var count = 1
        for extent in shape { count *= extent }
        guard count > 0 else { return }
        switch width {
        case 1: run(UInt8.self, shape, offsets, source, destination)
        case 2: run(UInt16.self, shape, offsets, source, destination)
        case 4: run(UInt32.self, shape, offsets, source, destination)
        default: run(UInt64.self, shape, offsets, source, destination)
        }
    }

    private static func run<T>(
        _: T.Type, _ shape: [Int], _ offsets: [[Int]], _ source: UnsafeRawPointer, _ destination: UnsafeMutableRawPointer
    ) {
        let src = source.assumingMemoryBound(to: T.self), dst = destination.assumingMemoryBound(to: T.self)
        let rank = shape.count
        guard rank > 0 else { dst[0] = src[0]; return }
        let inner = offsets[rank - 1], n = shape[rank - 1]
        var index = [Int](repeating: 0, count: rank)
        var out = 0
        let rows = shape.dropLast().reduce(1, *)
        for _ in 0..<rows {
            var base = 0
            for d in 0..<(rank - 1) { base += offsets[d][index[d]] }
            inner.withUnsafeBufferPointer { table in
                for j in 0..<n { dst[out + j] = src[base + table[j]] }
            }
            out += n
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
    }
}
