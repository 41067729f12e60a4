import OnyxCore

/// Where each output position along one resized axis reads: `taps` input indices (clamped to
/// the input) and weights per output, or nothing where tf_crop_and_resize extrapolates.
@usableFromInline package struct ResizeTable {
    package var taps: Int
    package var indices: [Int]
    package var weights: [Double]
    package var extrapolated: [Bool]
}

/// Resize's loops: the per-axis tables, nearest gathering and separable interpolation.
@usableFromInline package enum ResizeLoops {
    /// The source coordinate of output `o` along an axis, and whether it lies outside the region
    /// tf_crop_and_resize reads.
    private static func source(
        _ o: Int, scale s: Double, input: Int, output: Int, roi: (Double, Double), _ mode: ResizeAttributes.Coordinates
    ) -> (Double, Bool) {
        let x = Double(o), n = Double(input)
        let width = s * n
        switch mode {
        case .halfPixel: return ((x + 0.5) / s - 0.5, false)
        case .halfPixelSymmetric:
            let adjustment = Double(output) / width
            let offset = n / 2 * (1 - adjustment)
            return (offset + (x + 0.5) / s - 0.5, false)
        case .pytorchHalfPixel: return (width == 1 ? -0.5 : (x + 0.5) / s - 0.5, false)
        case .alignCorners: return (width == 1 ? 0 : x * (n - 1) / (width - 1), false)
        case .asymmetric: return (x / s, false)
        case .tfHalfPixelForNearest: return ((x + 0.5) / s, false)
        case .tfCropAndResize:
            var v = width == 1 ? (roi.1 - roi.0) * (n - 1) / 2 : x * (roi.1 - roi.0) * (n - 1) / (width - 1)
            v += roi.0 * (n - 1)
            return (v, v < 0 || v > n - 1)
        }
    }

    /// The table of one resized axis.
    package static func table(for plan: ResizeAxisPlan, input: Int, roi: (Double, Double), _ a: ResizeAttributes) -> ResizeTable {
        let s = plan.scale, output = plan.output
        let last = max(input - 1, 0)
        func clamp(_ i: Int) -> Int { min(max(i, 0), last) }
        switch a.mode {
        case .nearest:
            var table = ResizeTable(taps: 1, indices: [], weights: [], extrapolated: [])
            for o in 0..<output {
                let (x, outside) = source(o, scale: s, input: input, output: output, roi: roi, a.coordinates)
                let f = x.rounded(.down), r = x - f
                var i = f
                if r != 0 {
                    switch a.rounding {
                    case .roundPreferFloor: i = r <= 0.5 ? f : f + 1
                    case .roundPreferCeil: i = r < 0.5 ? f : f + 1
                    case .floor: i = f
                    case .ceil: i = f + 1
                    case .legacy: i = s < 1 ? f + 1 : f
                    }
                }
                table.indices.append(clamp(Int(max(min(i, 1e15), -1e15))))
                table.weights.append(1)
                table.extrapolated.append(outside)
            }
            return table
        case .linear, .cubic:
            let effective = a.antialias ? min(s, 1) : 1
            let first = a.mode == .linear
                ? Int((-1 / effective).rounded(.down)) + 1
                : Int((-2 / effective).rounded(.down)) + 1
            let taps = 2 - 2 * first
            var table = ResizeTable(taps: taps, indices: [], weights: [], extrapolated: [])
            let alpha = a.cubicCoefficient
            func cubic(_ d: Double) -> Double {
                let x = abs(d), x2 = x * x, x3 = x2 * x
                if x <= 1 { return (alpha + 2) * x3 - (alpha + 3) * x2 + 1 }
                if x < 2 { return alpha * x3 - 5 * alpha * x2 + 8 * alpha * x - 4 * alpha }
                return 0
            }
            var weights = [Double](repeating: 0, count: taps), indices = [Int](repeating: 0, count: taps)
            for o in 0..<output {
                let (x, outside) = source(o, scale: s, input: input, output: output, roi: roi, a.coordinates)
                var base = x.rounded(.down), r = x - base
                // At an exact sample the reference takes the neighbours below with ratio 1.
                if r == 0 { base -= 1; r = 1 }
                let start = Int(max(min(base, 1e15), -1e15))
                var sum: Double = 0
                for k in 0..<taps {
                    let i = first + k
                    let w = a.mode == .linear
                        ? min(max(1 - abs((Double(i) - r) * effective), 0), 1)
                        : cubic(effective * (Double(i) - r))
                    indices[k] = start + i
                    weights[k] = w
                    sum += w
                }
                if a.antialias && sum != 0 {
                    for k in 0..<taps { weights[k] /= sum }
                }
                if a.excludeOutside {
                    var kept: Double = 0
                    for k in 0..<taps {
                        if indices[k] < 0 || indices[k] >= input { weights[k] = 0 }
                        kept += weights[k]
                    }
                    if kept != 0 { for k in 0..<taps { weights[k] /= kept } }
                }
                for k in 0..<taps {
                    table.indices.append(clamp(indices[k]))
                    table.weights.append(weights[k])
                }
                table.extrapolated.append(outside)
            }
            return table
        }
    }

    // MARK: - Nearest

    /// Gathers the nearest input element for every output, moving bytes (any element type).
    package static func nearest(
        _ x: TensorView, _ y: TensorView, outputShape: [Int], axes: [ResizeAxisPlan], tables: [ResizeTable],
        extrapolation: Double, pool: ComputePool, op: String
    ) throws {
        let rank = x.rank
        var inputStrides = [Int](repeating: 1, count: rank)
        for a in stride(from: rank - 2, through: 0, by: -1) { inputStrides[a] = inputStrides[a + 1] * x.shape[a + 1] }
        // Per axis and output index: the input offset, or −1 where the value is extrapolated.
        var offsets: [[Int]] = (0..<rank).map { a in (0..<outputShape[a]).map { $0 * inputStrides[a] } }
        for (plan, table) in zip(axes, tables) {
            offsets[plan.axis] = (0..<plan.output).map { o in
                table.extrapolated[o] ? -1 : table.indices[o] * inputStrides[plan.axis]
            }
        }
        func gather<T>(_: T.Type, fill: T) {
            let src = UnsafePointer(x.pointer(as: T.self)), dst = y.pointer(as: T.self)
            let inner = outputShape[rank - 1], lastOffsets = offsets[rank - 1]
            let rows = y.elementCount / max(inner, 1)
            lastOffsets.withUnsafeBufferPointer { last in
                pool.forEachChunk(rows, costPerItem: inner) { range in
                    for row in range {
                        // The row's input offset, or −1 when any outer axis extrapolates.
                        var rest = row, base = 0
                        for a in stride(from: rank - 2, through: 0, by: -1) {
                            let o = offsets[a][rest % outputShape[a]]
                            rest /= outputShape[a]
                            if o < 0 || base < 0 { base = -1 } else { base += o }
                        }
                        let out = dst + row * inner
                        if base < 0 {
                            for i in 0..<inner { out[i] = fill }
                        } else {
                            for i in 0..<inner { out[i] = last[i] < 0 ? fill : src[base + last[i]] }
                        }
                    }
                }
            }
        }
        switch x.dataType {
        case .float: gather(Float.self, fill: Float(extrapolation))
        case .double: gather(Double.self, fill: extrapolation)
        case .float16: gather(Float16.self, fill: Float(extrapolation).castFloat16)
        case .int8: gather(Int8.self, fill: .saturating(extrapolation.rounded(.toNearestOrEven)))
        case .uint8: gather(UInt8.self, fill: .saturating(extrapolation.rounded(.toNearestOrEven)))
        case .int16: gather(Int16.self, fill: .saturating(extrapolation.rounded(.toNearestOrEven)))
        case .uint16: gather(UInt16.self, fill: .saturating(extrapolation.rounded(.toNearestOrEven)))
        case .int32: gather(Int32.self, fill: .saturating(extrapolation.rounded(.toNearestOrEven)))
        case .uint32: gather(UInt32.self, fill: .saturating(extrapolation.rounded(.toNearestOrEven)))
        case .int64: gather(Int64.self, fill: .saturating(extrapolation.rounded(.toNearestOrEven)))
        case .uint64: gather(UInt64.self, fill: .saturating(extrapolation.rounded(.toNearestOrEven)))
        case .bool: gather(UInt8.self, fill: extrapolation != 0 ? 1 : 0)
        case .string: gather(Int64.self, fill: 0)  // handles; the empty string outside
        case .bfloat16: gather(UInt16.self, fill: UInt16(truncatingIfNeeded: ElementFill.element(extrapolation, as: .bfloat16)))
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1,
             .int4, .uint4, .int2, .uint2:
            gather(UInt8.self, fill: UInt8(truncatingIfNeeded: ElementFill.element(extrapolation, as: x.dataType)))
        }
    }

    // MARK: - Linear and cubic

    /// Interpolates one axis at a time in Double, then converts to the element type.
    package static func interpolate(
        _ x: TensorView, _ y: TensorView, axes: [ResizeAxisPlan], tables: [ResizeTable],
        extrapolation: Double, pool: ComputePool, op: String
    ) throws {
        var shape = x.shape
        var current = UnsafeMutablePointer<Double>.allocate(capacity: max(x.elementCount, 1))
        defer { current.deallocate() }
        try load(x, into: current)
        for (plan, table) in zip(axes, tables) {
            let a = plan.axis
            let outer = shape[..<a].reduce(1, *), input = shape[a], inner = shape[(a + 1)...].reduce(1, *)
            let output = plan.output
            let next = UnsafeMutablePointer<Double>.allocate(capacity: max(outer * output * inner, 1))
            let src = UnsafePointer(current)
            table.indices.withUnsafeBufferPointer { indices in
                table.weights.withUnsafeBufferPointer { weights in
                    pool.forEachChunk(outer * output, costPerItem: table.taps * inner) { range in
                        for item in range {
                            let block = item / output, o = item % output
                            let dst = next + item * inner
                            if table.extrapolated[o] {
                                dst.update(repeating: extrapolation, count: inner)
                                continue
                            }
                            dst.update(repeating: 0, count: inner)
                            for k in 0..<table.taps {
                                let w = weights[o * table.taps + k]
                                if w == 0 { continue }
                                let line = src + (block * input + indices[o * table.taps + k]) * inner
                                for j in 0..<inner { dst[j] += w * line[j] }
                            }
                        }
                    }
                }
            }
            current.deallocate()
            current = next
            shape[a] = output
        }
        try store(current, into: y)
    }

    private static func load(_ x: TensorView, into buffer: UnsafeMutablePointer<Double>) throws {
        let n = x.elementCount
        func read<T: CastSource>(_: T.Type) {
            let p = x.pointer(as: T.self)
            for i in 0..<n { buffer[i] = p[i].castDouble }
        }
        switch x.dataType {
        case .float: read(Float.self)
        case .double: read(Double.self)
        case .float16: read(Float16.self)
        case .int8: read(Int8.self)
        case .uint8: read(UInt8.self)
        case .int16: read(Int16.self)
        case .uint16: read(UInt16.self)
        case .int32: read(Int32.self)
        case .uint32: read(UInt32.self)
        case .int64: read(Int64.self)
        case .uint64: read(UInt64.self)
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            Casting.convert(x.data, from: x.dataType, to: buffer, .double, count: n)
        case .bool, .string, .int4, .uint4, .int2, .uint2:
            throw OnyxError.unsupportedDataType("Resize: linear and cubic interpolation do not apply to \(x.dataType)")
        }
    }

    private static func store(_ buffer: UnsafeMutablePointer<Double>, into y: TensorView) throws {
        let n = y.elementCount
        func integer<T: CastInteger>(_: T.Type) {
            let p = y.pointer(as: T.self)
            for i in 0..<n { p[i] = .saturating(buffer[i].rounded(.toNearestOrEven)) }
        }
        switch y.dataType {
        case .float: let p = y.pointer(as: Float.self); for i in 0..<n { p[i] = Float(buffer[i]) }
        case .double: y.pointer(as: Double.self).update(from: buffer, count: n)
        case .float16: let p = y.pointer(as: Float16.self); for i in 0..<n { p[i] = buffer[i].castFloat16 }
        case .int8: integer(Int8.self)
        case .uint8: integer(UInt8.self)
        case .int16: integer(Int16.self)
        case .uint16: integer(UInt16.self)
        case .int32: integer(Int32.self)
        case .uint32: integer(UInt32.self)
        case .int64: integer(Int64.self)
        case .uint64: integer(UInt64.self)
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            Casting.convert(buffer, from: .double, to: y.data, y.dataType, count: n)
        case .bool, .string, .int4, .uint4, .int2, .uint2:
            throw OnyxError.unsupportedDataType("Resize: linear and cubic interpolation do not apply to \(y.dataType)")
        }
    }
}

/// Resize's attributes, validated once per node.
@usableFromInline package struct ResizeAttributes: Sendable {
    @usableFromInline package enum Mode: String, Sendable { case nearest, linear, cubic }
    @usableFromInline package enum Coordinates: String, Sendable {
        case halfPixel = "half_pixel", halfPixelSymmetric = "half_pixel_symmetric"
        case pytorchHalfPixel = "pytorch_half_pixel", alignCorners = "align_corners", asymmetric
        case tfHalfPixelForNearest = "tf_half_pixel_for_nn", tfCropAndResize = "tf_crop_and_resize"
    }
    @usableFromInline package enum Rounding: String, Sendable {
        case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil
        /// Resize-10 and Upsample: the floor when enlarging, the ceiling when shrinking (as onnxruntime).
        case legacy
    }
    @usableFromInline package enum AspectPolicy: String, Sendable { case stretch, notLarger = "not_larger", notSmaller = "not_smaller" }

    package var mode: Mode
    package var coordinates: Coordinates
    package var rounding: Rounding
    package var cubicCoefficient: Double
    package var excludeOutside: Bool
    package var extrapolationValue: Double
    package var antialias: Bool
    package var axes: [Int]?
    package var aspectPolicy: AspectPolicy

    package init(mode: Mode, coordinates: Coordinates, rounding: Rounding, cubicCoefficient: Double, excludeOutside: Bool,
         extrapolationValue: Double, antialias: Bool, axes: [Int]?, aspectPolicy: AspectPolicy) {
        (self.mode, self.coordinates, self.rounding, self.aspectPolicy) = (mode, coordinates, rounding, aspectPolicy)
        (self.cubicCoefficient, self.excludeOutside, self.extrapolationValue) = (cubicCoefficient, excludeOutside, extrapolationValue)
        (self.antialias, self.axes) = (antialias, axes)
    }
}

/// One resized axis: its scale and output extent.
@usableFromInline package struct ResizeAxisPlan {
    package var axis: Int
    package var scale: Double
    package var output: Int

    package init(axis: Int, scale: Double, output: Int) {
        self.axis = axis
        self.scale = scale
        self.output = output
    }
}
