import OnyxCore

/// Gathering slices of a tensor along one axis by int32 or int64 indices (Gather, embeddings).
@usableFromInline package enum Gathering {
    /// The first index outside `-extent..<extent`, if any.
    ///
    /// - Parameters:
    ///   - indices: `count` indices of `indexType` (`.int32` or `.int64`).
    ///   - extent: The extent of the gathered axis.
    package static func firstInvalidIndex(
        _ indices: UnsafeRawPointer, indexType: DataType, count: Int, extent: Int
    ) -> Int? {
        switch indexType {
        case .int32: firstInvalid(indices.assumingMemoryBound(to: Int32.self), count, extent)
        case .int64: firstInvalid(indices.assumingMemoryBound(to: Int64.self), count, extent)
        default: preconditionFailure("Gathering: index type \(indexType) is not int32 or int64")
        }
    }

    private static func firstInvalid<I: FixedWidthInteger>(_ indices: UnsafePointer<I>, _ count: Int, _ extent: Int) -> Int? {
        let upper = Int64(extent)
        for i in 0..<count {
            let index = Int64(indices[i])
            if index < -upper || index >= upper { return Int(index) }
        }
        return nil
    }

    /// Copies, for each of `outer` blocks and each index, the `sliceBytes` slice the index picks.
    ///
    /// `data` is `outer × extent × sliceBytes`; `output` is `outer × count × sliceBytes`. Indices
    /// must already be checked with ``firstInvalidIndex(_:indexType:count:extent:)``; negative ones
    /// count from the end.
    package static func gather(
        _ data: UnsafeRawPointer, _ indices: UnsafeRawPointer, indexType: DataType, count: Int,
        outer: Int, extent: Int, sliceBytes: Int, into output: UnsafeMutableRawPointer, pool: ComputePool?
    ) {
        let slices = outer * count
        guard slices > 0, sliceBytes > 0 else { return }
        let threshold = 1 << 18
        if let pool, pool.threadCount > 1, slices > 1, slices * sliceBytes >= threshold {
            pool.parallelRanges(slices, minimumChunk: max(1, threshold / 4 / sliceBytes)) { range in
                copySlices(data, indices, indexType, count, extent, sliceBytes, output, range)
            }
        } else {
            copySlices(data, indices, indexType, count, extent, sliceBytes, output, 0..<slices)
        }
    }

    private static func copySlices(
        _ data: UnsafeRawPointer, _ indices: UnsafeRawPointer, _ indexType: DataType, _ count: Int, _ extent: Int,
        _ sliceBytes: Int, _ output: UnsafeMutableRawPointer, _ range: Range<Int>
    ) {
        if indexType == .int32 {
            copySlices(data, indices.assumingMemoryBound(to: Int32.self), count, extent, sliceBytes, output, range)
        } else {
            copySlices(data, indices.assumingMemoryBound(to: Int64.self), count, extent, sliceBytes, output, range)
        }
    }

    /// Slices `range` of the output (slice `s` is block `s / count`, index `s % count`).
    private static func copySlices<I: FixedWidthInteger>(
        _ data: UnsafeRawPointer, _ indices: UnsafePointer<I>, _ count: Int, _ extent: Int, _ sliceBytes: Int,
        _ output: UnsafeMutableRawPointer, _ range: Range<Int>
    ) {
        let aligned = (Int(bitPattern: data) | Int(bitPattern: output) | sliceBytes) & (sliceBytes - 1) == 0
        switch sliceBytes {
        case 4 where aligned: copyElements(UInt32.self, data, indices, count, extent, output, range)
        case 8 where aligned: copyElements(UInt64.self, data, indices, count, extent, output, range)
        case 2 where aligned: copyElements(UInt16.self, data, indices, count, extent, output, range)
        case 1: copyElements(UInt8.self, data, indices, count, extent, output, range)
        default:
            var block = range.lowerBound / count, i = range.lowerBound % count
            var out = output + range.lowerBound * sliceBytes
            for _ in range {
                var index = Int(indices[i])
                if index < 0 { index += extent }
                out.copyMemory(from: data + (block * extent + index) * sliceBytes, byteCount: sliceBytes)
                out += sliceBytes
                i += 1
                if i == count { i = 0; block += 1 }
            }
        }
    }

    /// The one-element-slice case (gathering along the last axis): typed loads, no `memcpy`.
    @inline(__always)
    private static func copyElements<T, I: FixedWidthInteger>(
        _ type: T.Type, _ data: UnsafeRawPointer, _ indices: UnsafePointer<I>, _ count: Int, _ extent: Int,
        _ output: UnsafeMutableRawPointer, _ range: Range<Int>
    ) {
        let source = data.assumingMemoryBound(to: T.self)
        let out = output.assumingMemoryBound(to: T.self)
        var block = range.lowerBound / count, i = range.lowerBound % count
        for s in range {
            var index = Int(indices[i])
            if index < 0 { index += extent }
            out[s] = source[block * extent + index]
            i += 1
            if i == count { i = 0; block += 1 }
        }
    }
}
