/// GridSample's sampling loop: N-d nearest, N-linear and N-cubic interpolation with zeros,
/// border or reflection padding, following PyTorch's `grid_sample` (and ONNX's reference).
///
/// For each output point the taps along every spatial axis (1, 2 or 4 of them) are resolved
/// once into in-plane offsets and weights; every channel then reads the same taps.
@usableFromInline package enum GridSampling {
    @usableFromInline package enum Mode: Sendable { case nearest, linear, cubic }
    @usableFromInline package enum Padding: Sendable { case zeros, border, reflection }

    @usableFromInline package struct Geometry {
        @usableFromInline package let mode: Mode
        @usableFromInline package let padding: Padding
        @usableFromInline package let alignCorners: Bool
        @usableFromInline package let batch: Int
        @usableFromInline package let channels: Int
        /// The input's spatial extents d1…dr.
        @usableFromInline package let inputExtents: [Int]
        /// The number of output points per image (the product of the grid's middle axes).
        @usableFromInline package let outputPoints: Int

        package init(
            mode: Mode, padding: Padding, alignCorners: Bool, batch: Int, channels: Int, inputExtents: [Int],
            outputPoints: Int
        ) {
            self.mode = mode
            self.padding = padding
            self.alignCorners = alignCorners
            self.batch = batch
            self.channels = channels
            self.inputExtents = inputExtents
            self.outputPoints = outputPoints
        }
    }

    @usableFromInline package static func taps(_ mode: Mode) -> Int {
        switch mode {
        case .nearest: 1
        case .linear: 2
        case .cubic: 4
        }
    }

    /// Samples `x` (N, C, d1…dr) at `grid` (N, points, r; normalised, last axis first) into `y` (N, C, points).
    @inlinable package static func sample<X: VisionElement, C: BinaryFloatingPoint>(
        _ g: Geometry, x: UnsafePointer<X>, grid: UnsafePointer<C>, y: UnsafeMutablePointer<X>, pool: ComputePool
    ) {
        let rank = g.inputExtents.count
        let tapsPerAxis = taps(g.mode)
        var combinations = 1
        for _ in 0..<rank { combinations *= tapsPerAxis }
        var planeSize = 1
        for e in g.inputExtents { planeSize *= e }
        var strides = [Int](repeating: 1, count: rank)
        for axis in stride(from: rank - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * g.inputExtents[axis + 1] }
        let extents = g.inputExtents, points = g.outputPoints, channels = g.channels

        pool.forEachChunk(g.batch * points, costPerItem: channels * combinations + rank * 8) { range in
            let axisIndex = UnsafeMutablePointer<Int>.allocate(capacity: max(rank * 4, 1))
            let axisWeight = UnsafeMutablePointer<C>.allocate(capacity: max(rank * 4, 1))
            let offsets = UnsafeMutablePointer<Int>.allocate(capacity: combinations)
            let weights = UnsafeMutablePointer<C>.allocate(capacity: combinations)
            let digits = UnsafeMutablePointer<Int>.allocate(capacity: max(rank, 1))
            defer {
                axisIndex.deallocate(); axisWeight.deallocate(); offsets.deallocate(); weights.deallocate(); digits.deallocate()
            }
            for item in range {
                let n = item / points, o = item - n * points
                let location = grid + item * rank
                for axis in 0..<rank {
                    resolveAxis(g, extent: extents[axis], normalized: location[rank - 1 - axis],
                                index: axisIndex + axis * 4, weight: axisWeight + axis * 4)
                }
                // Every combination of one tap per axis: offset in the plane (-1 reads zero) and weight.
                var used = 0
                for a in 0..<rank { digits[a] = 0 }
                for _ in 0..<combinations {
                    var offset = 0
                    var weight: C = 1
                    for a in 0..<rank {
                        let index = axisIndex[a * 4 + digits[a]]
                        if index < 0 { offset = -1; break }
                        offset += index * strides[a]
                        weight *= axisWeight[a * 4 + digits[a]]
                    }
                    if offset >= 0 {
                        offsets[used] = offset
                        weights[used] = weight
                        used += 1
                    }
                    var a = rank - 1
                    while a >= 0 {
                        digits[a] += 1
                        if digits[a] < tapsPerAxis { break }
                        digits[a] = 0
                        a -= 1
                    }
                }
                for c in 0..<channels {
                    let plane = x + (n * channels + c) * planeSize
                    var sum: C = 0
                    for k in 0..<used { sum += weights[k] * plane[offsets[k]].real(C.self) }
                    y[(n * channels + c) * points + o] = X.converting(sum)
                }
            }
        }
    }

    /// The taps along one axis: up to four plane indices (already mapped by the padding mode;
    /// -1 where the padding reads zero) and their weights.
    @inline(__always)
    @inlinable package static func resolveAxis<C: BinaryFloatingPoint>(
        _ g: Geometry, extent: Int, normalized: C, index: UnsafeMutablePointer<Int>, weight: UnsafeMutablePointer<C>
    ) {
        let length = C(extent)
        var coordinate = g.alignCorners ? (normalized + 1) / 2 * (length - 1) : ((normalized + 1) * length - 1) / 2
        if g.mode == .nearest { coordinate = coordinate.rounded(.toNearestOrEven) }
        let low: C = g.alignCorners ? 0 : -0.5
        let high: C = g.alignCorners ? length - 1 : length - 0.5
        if coordinate < low || coordinate > high {
            switch g.padding {
            case .zeros: break
            case .border: coordinate = min(max(coordinate, 0), length - 1)
            case .reflection: coordinate = reflect(coordinate, low, high)
            }
        }
        let count = taps(g.mode)
        guard coordinate.isFinite else {
            for k in 0..<count { index[k] = -1; weight[k] = 0 }
            return
        }
        // Far outside, every tap reads padding; clamping keeps the integer conversion in range.
        coordinate = min(max(coordinate, -8), length + 8)
        switch g.mode {
        case .nearest:
            index[0] = padded(Int(coordinate), extent, g, low, high)
            weight[0] = 1
        case .linear:
            let floor = coordinate.rounded(.down), f = coordinate - floor, i0 = Int(floor)
            index[0] = padded(i0, extent, g, low, high); weight[0] = 1 - f
            index[1] = padded(i0 + 1, extent, g, low, high); weight[1] = f
        case .cubic:
            let floor = coordinate.rounded(.down), f = coordinate - floor, i0 = Int(floor)
            let a: C = -0.75
            let f1 = f + 1, f2 = 1 - f, f3 = 2 - f
            weight[0] = ((a * f1 - 5 * a) * f1 + 8 * a) * f1 - 4 * a
            weight[1] = ((a + 2) * f - (a + 3)) * f * f + 1
            weight[2] = ((a + 2) * f2 - (a + 3)) * f2 * f2 + 1
            weight[3] = ((a * f3 - 5 * a) * f3 + 8 * a) * f3 - 4 * a
            for k in 0..<4 { index[k] = padded(i0 - 1 + k, extent, g, low, high) }
        }
    }

    /// Maps a tap's integer index into the plane by the padding mode; -1 means "reads zero".
    @inline(__always)
    @inlinable package static func padded<C: BinaryFloatingPoint>(_ i: Int, _ extent: Int, _ g: Geometry, _ low: C, _ high: C) -> Int {
        if i >= 0 && i < extent { return i }
        switch g.padding {
        case .zeros: return -1
        case .border: return min(max(i, 0), extent - 1)
        case .reflection:
            let r = Int(reflect(C(i), low, high))
            return min(max(r, 0), extent - 1)
        }
    }

    /// Folds `x` back into `[low, high]` by mirroring at the borders as often as needed.
    @inlinable @inline(__always)
    package static func reflect<C: BinaryFloatingPoint>(_ x: C, _ low: C, _ high: C) -> C {
        let span = high - low
        guard span > 0, x.isFinite else { return low }
        if x < low {
            let d = (low - x).truncatingRemainder(dividingBy: 2 * span)
            return d <= span ? low + d : high - (d - span)
        }
        if x > high {
            let d = (x - high).truncatingRemainder(dividingBy: 2 * span)
            return d <= span ? high - d : low + (d - span)
        }
        return x
    }
}
