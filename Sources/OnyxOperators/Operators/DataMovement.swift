import OnyxCore
import OnyxIR
import OnyxKernels

/// Data-movement operators: Slice, Split, Expand, Tile, Range, ConstantOfShape, Size, Pad,
/// DepthToSpace, SpaceToDepth, Trilu, EyeLike, CenterCropPad, ReverseSequence.
///
/// Apart from Range and EyeLike (which make values) and Pad's constant, none looks at element
/// values, so each works on every data type by moving 1-, 2-, 4- or 8-byte elements.
extension OperatorRegistry {
    /// Split, Slice, Expand, Tile, Pad and other data movement.
    package static let dataMovementOperators: [OperatorRegistration] = [
        OperatorRegistration("Slice", versions: 1...9) { context in
            guard let starts = try context.ints("starts"), let ends = try context.ints("ends") else {
                throw context.attributeError("missing attribute 'starts' or 'ends' (opset \(context.opset) takes them as attributes)")
            }
            return SliceKernel(attributes: .init(starts: starts, ends: ends, axes: try context.ints("axes")))
        },
        OperatorRegistration("Slice", versions: 10...Int.max) { _ in SliceKernel(attributes: nil) },

        OperatorRegistration("Split", versions: 1...1) { context in
            SplitKernel(
                axis: try context.int("axis", default: 0), attributeSplit: try context.ints("split"),
                splitFromInput: true, numOutputs: nil, outputCount: context.outputCount)
        },
        OperatorRegistration("Split", versions: 2...12) { context in
            SplitKernel(
                axis: try context.int("axis", default: 0), attributeSplit: try context.ints("split"),
                splitFromInput: false, numOutputs: nil, outputCount: context.outputCount)
        },
        OperatorRegistration("Split", versions: 13...17) { context in
            SplitKernel(
                axis: try context.int("axis", default: 0), attributeSplit: nil,
                splitFromInput: true, numOutputs: nil, outputCount: context.outputCount)
        },
        OperatorRegistration("Split", versions: 18...Int.max) { context in
            let numOutputs = try context.int("num_outputs")
            if let numOutputs {
                guard numOutputs >= 1 else { throw context.attributeError("num_outputs \(numOutputs) must be at least 1") }
                guard numOutputs == context.outputCount else {
                    throw context.attributeError("num_outputs is \(numOutputs) but the node has \(context.outputCount) outputs")
                }
                if context.hasInput(1) { throw context.attributeError("give either the split input or num_outputs, not both") }
            }
            return SplitKernel(
                axis: try context.int("axis", default: 0), attributeSplit: nil,
                splitFromInput: true, numOutputs: numOutputs, outputCount: context.outputCount)
        },

        OperatorRegistration("Expand", versions: 8...Int.max) { _ in ExpandKernel() },

        OperatorRegistration("Tile", versions: 1...5) { _ in TileKernel(legacyAxisInput: true) },
        OperatorRegistration("Tile", versions: 6...Int.max) { _ in TileKernel(legacyAxisInput: false) },

        OperatorRegistration("Range", versions: 11...Int.max) { context in
            let stash = try context.int("stash_type", default: 1)
            guard stash == 1 || stash == 11 else {
                throw context.attributeError("stash_type \(stash) is not float (1) or double (11)")
            }
            return RangeKernel()
        },

        OperatorRegistration("ConstantOfShape", versions: 9...Int.max) { context in
            guard let value = try context.tensor("value") else { return ConstantOfShapeKernel(value: Tensor(scalar: Float(0))) }
            guard value.elementCount == 1 else {
                throw context.attributeError("attribute 'value' must hold one element, found shape \(shapeText(value.shape))")
            }
            return ConstantOfShapeKernel(value: value)
        },

        OperatorRegistration("Size") { _ in SizeKernel() },

        OperatorRegistration("Pad", versions: 1...1) { context in
            try PadKernel(context, legacyPads: try context.ints("paddings"), legacyPadsName: "paddings")
        },
        OperatorRegistration("Pad", versions: 2...10) { context in
            try PadKernel(context, legacyPads: try context.ints("pads"), legacyPadsName: "pads")
        },
        OperatorRegistration("Pad", versions: 11...17) { context in try PadKernel(context, hasAxesInput: false) },
        OperatorRegistration("Pad", versions: 18...Int.max) { context in try PadKernel(context, hasAxesInput: true) },

        OperatorRegistration("DepthToSpace", versions: 1...10) { context in
            try SpaceDepthKernel(context, toDepth: false, mode: "DCR")
        },
        OperatorRegistration("DepthToSpace", versions: 11...Int.max) { context in
            try SpaceDepthKernel(context, toDepth: false, mode: try context.string("mode", default: "DCR"))
        },
        OperatorRegistration("SpaceToDepth", versions: 1...27) { context in
            try SpaceDepthKernel(context, toDepth: true, mode: "DCR")
        },
        OperatorRegistration("SpaceToDepth", versions: 28...Int.max) { context in
            try SpaceDepthKernel(context, toDepth: true, mode: try context.string("mode", default: "DCR"))
        },

        OperatorRegistration("Trilu", versions: 14...Int.max) { context in
            TriluKernel(upper: try context.int("upper", default: 1) != 0)
        },

        OperatorRegistration("EyeLike", versions: 9...Int.max) { context in
            var type: DataType?
            if let code = try context.int("dtype") {
                guard let t = DataType(rawValue: Int32(truncatingIfNeeded: code)), Int(t.rawValue) == code else {
                    throw context.attributeError(
                        "dtype \(DataType.onnxName(ofCode: Int32(truncatingIfNeeded: code))) is not supported")
                }
                type = t
            }
            return EyeLikeKernel(dataType: type, k: try context.int("k", default: 0))
        },

        OperatorRegistration("CenterCropPad", versions: 18...Int.max) { context in
            CenterCropPadKernel(axes: try context.ints("axes"))
        },

        OperatorRegistration("ReverseSequence", versions: 10...Int.max) { context in
            let batch = try context.int("batch_axis", default: 1), time = try context.int("time_axis", default: 0)
            guard (0...1).contains(batch), (0...1).contains(time), batch != time else {
                throw context.attributeError("batch_axis \(batch) and time_axis \(time) must be 0 and 1 in some order")
            }
            return ReverseSequenceKernel(batchAxis: batch)
        },
    ]
}

// MARK: - Shared helpers

/// Reading a node's inputs while planning and running (the data-movement and indexing operators).
package enum OperandAccess {
    /// Input `index`, or `nil` if the node has fewer inputs or leaves it out.
    package static func optional(_ inputs: [PlannedInput?], _ index: Int) -> PlannedInput? {
        index < inputs.count ? inputs[index] : nil
    }

    /// Input `index`, or an error naming the op and the input.
    package static func required(_ inputs: [PlannedInput?], _ index: Int, _ op: String, _ what: String) throws -> PlannedInput {
        guard let input = optional(inputs, index) else {
            throw OnyxError.invalidModel("\(op): missing input \(index) (\(what))")
        }
        return input
    }

    /// The values of an int32 or int64 tensor seen in a run (types are checked while planning).
    package static func integers(_ view: TensorView) -> [Int] {
        let n = view.elementCount
        switch view.dataType {
        case .int32: return UnsafeBufferPointer(start: view.pointer(as: Int32.self), count: n).map { Int($0) }
        case .int64: return UnsafeBufferPointer(start: view.pointer(as: Int64.self), count: n).map { Int($0) }
        default: return []
        }
    }
}

/// Input `index`, or `nil` if the node has fewer inputs or leaves it out. Kept as a free
/// function because other operator families (Quantization) call it.
package func optionalInput(_ inputs: [PlannedInput?], _ index: Int) -> PlannedInput? {
    OperandAccess.optional(inputs, index)
}

// MARK: - Slice

package struct SliceKernel: Kernel {
    /// Opset < 10: the slice comes from attributes (steps are 1).
    package struct Attributes: Sendable {
        package var starts: [Int]
        package var ends: [Int]
        package var axes: [Int]?
    }

    package let attributes: Attributes?

    /// Where the slice starts and how it steps: an output of `shape` reads
    /// `data[offset + Σ index[d]·strides[d]]`.
    package struct Plan {
        package var shape: [Int]
        package var offset: Int
        package var strides: [Int]
    }

    /// The slice of a tensor of `shape`, with ONNX's clamping (start and end clamp to the axis,
    /// to `dim - 1` and `-1` when stepping backwards).
    package static func plan(_ shape: [Int], starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?) throws -> Plan {
        let rank = shape.count
        guard starts.count == ends.count else {
            throw OnyxError.invalidInput("Slice: starts has \(starts.count) values but ends has \(ends.count)")
        }
        if let axes, axes.count != starts.count {
            throw OnyxError.invalidInput("Slice: axes has \(axes.count) values but starts has \(starts.count)")
        }
        if let steps, steps.count != starts.count {
            throw OnyxError.invalidInput("Slice: steps has \(steps.count) values but starts has \(starts.count)")
        }
        guard axes != nil || starts.count <= rank else {
            throw OnyxError.invalidInput("Slice: \(starts.count) starts given for an input of rank \(rank)")
        }
        let contiguous = StridedCopy.contiguousStrides(shape)
        var plan = Plan(shape: shape, offset: 0, strides: contiguous)
        var seen = [Bool](repeating: false, count: rank)
        for i in 0..<starts.count {
            let axis = try normalizedAxis(axes?[i] ?? i, rank: rank, op: "Slice")
            guard !seen[axis] else { throw OnyxError.invalidInput("Slice: axis \(axes?[i] ?? i) is given twice") }
            seen[axis] = true
            let step = steps?[i] ?? 1
            guard step != 0 else { throw OnyxError.invalidInput("Slice: step 0 on axis \(axis)") }
            let dim = shape[axis]
            var start = starts[i], end = ends[i]
            if start < 0 { start += dim }
            if end < 0 { end += dim }
            let count: Int
            if step > 0 {
                start = min(max(start, 0), dim)
                end = min(max(end, 0), dim)
                count = end > start ? 1 + (end - start - 1) / step : 0
            } else {
                start = min(max(start, 0), dim - 1)
                end = min(max(end, -1), dim - 1)
                count = start > end ? 1 + Int(UInt(start - end - 1) / step.magnitude) : 0
            }
            plan.shape[axis] = count
            plan.strides[axis] = count > 1 ? step &* contiguous[axis] : 0
            if count > 0 { plan.offset += start * contiguous[axis] }
        }
        return plan
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "Slice", "data")
        return [TensorDescriptor(x.dataType, try plan(inputs, shape: x.shape).shape)]
    }

    private func plan(_ inputs: [PlannedInput?], shape: [Int]) throws -> Plan {
        if let attributes {
            return try Self.plan(shape, starts: attributes.starts, ends: attributes.ends, axes: attributes.axes, steps: nil)
        }
        guard let starts = try constantIntegers(OperandAccess.optional(inputs, 1), op: "Slice", what: "starts"),
              let ends = try constantIntegers(OperandAccess.optional(inputs, 2), op: "Slice", what: "ends")
        else { throw OnyxError.invalidModel("Slice: missing input starts or ends") }
        return try Self.plan(
            shape, starts: starts, ends: ends,
            axes: try constantIntegers(OperandAccess.optional(inputs, 3), op: "Slice", what: "axes"),
            steps: try constantIntegers(OperandAccess.optional(inputs, 4), op: "Slice", what: "steps"))
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let plan: Plan
        if let attributes {
            plan = try Self.plan(x.shape, starts: attributes.starts, ends: attributes.ends, axes: attributes.axes, steps: nil)
        } else {
            plan = try Self.plan(
                x.shape, starts: OperandAccess.integers(context.input(1)!), ends: OperandAccess.integers(context.input(2)!),
                axes: context.input(3).map(OperandAccess.integers), steps: context.input(4).map(OperandAccess.integers))
        }
        let width = x.dataType.byteWidth
        StridedCopy.copy(
            shape: plan.shape, from: x.data + plan.offset * width, sourceStrides: plan.strides, to: y.data,
            width: width, pool: context.pool)
    }
}

// MARK: - Split

package struct SplitKernel: Kernel {
    package let axis: Int
    /// Opset < 13: the sizes as an attribute.
    package let attributeSplit: [Int]?
    /// Whether input 1 may give the sizes (opset 1 and 13+).
    package let splitFromInput: Bool
    /// Opset 18: split into this many parts, the last one smaller if need be.
    package let numOutputs: Int?
    package let outputCount: Int

    /// The extent of each output along the axis.
    private func sizes(dim: Int, given: [Int]?) throws -> [Int] {
        if let split = given ?? attributeSplit {
            guard split.count == outputCount else {
                throw OnyxError.invalidInput("Split: split has \(split.count) sizes but the node has \(outputCount) outputs")
            }
            guard split.allSatisfy({ $0 >= 0 }), split.reduce(0, &+) == dim else {
                throw OnyxError.invalidInput("Split: sizes \(shapeText(split)) do not add up to the axis extent \(dim)")
            }
            return split
        }
        let parts = numOutputs ?? outputCount
        guard parts > 0 else { throw OnyxError.invalidModel("Split: the node has no outputs") }
        if dim % parts == 0 { return [Int](repeating: dim / parts, count: parts) }
        guard numOutputs != nil else {
            throw OnyxError.invalidInput("Split: axis extent \(dim) does not divide into \(parts) equal parts")
        }
        let chunk = dim / parts + 1
        let last = dim - chunk * (parts - 1)
        guard last >= 0 else {
            throw OnyxError.invalidInput("Split: axis extent \(dim) cannot be split into \(parts) parts of \(chunk)")
        }
        return [Int](repeating: chunk, count: parts - 1) + [last]
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "Split", "input")
        guard x.shape.count > 0 else { throw OnyxError.shapeMismatch("Split: cannot split a scalar") }
        let a = try normalizedAxis(axis, rank: x.shape.count, op: "Split")
        let given = splitFromInput ? try constantIntegers(OperandAccess.optional(inputs, 1), op: "Split", what: "split") : nil
        return try sizes(dim: x.shape[a], given: given).map { size in
            var shape = x.shape
            shape[a] = size
            return TensorDescriptor(x.dataType, shape)
        }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!
        let a = axis < 0 ? axis + x.rank : axis
        let given = splitFromInput ? context.input(1).map(OperandAccess.integers) : nil
        let sizes = try sizes(dim: x.shape[a], given: given)
        let outer = StridedCopy.extentProduct(x.shape, 0..<a)
        let inner = StridedCopy.extentProduct(x.shape, (a + 1)..<x.rank) * x.dataType.byteWidth
        let rowBytes = x.shape[a] * inner
        var offset = 0
        for (i, size) in sizes.enumerated() {
            let chunk = size * inner
            if let y = context.optionalOutput(i) {
                ByteCopy.copyRows(
                    from: x.data + offset, sourceStride: rowBytes, to: y.data, destinationStride: chunk,
                    rowBytes: chunk, rows: outer)
            }
            offset += chunk
        }
    }
}

// MARK: - Expand, Tile

package struct ExpandKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "Expand", "input")
        guard let shape = try constantIntegers(OperandAccess.optional(inputs, 1), op: "Expand", what: "shape") else {
            throw OnyxError.invalidModel("Expand: missing input 1 (shape)")
        }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw OnyxError.invalidInput("Expand: shape \(shapeText(shape)) has a negative extent")
        }
        return [TensorDescriptor(x.dataType, try Broadcasting.shape(x.shape, shape, op: "Expand"))]
    }

    package func readsData(ofInput index: Int) -> Bool { index == 0 }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        StridedCopy.copy(
            shape: y.shape, from: x.data, sourceStrides: Broadcasting.strides(of: x.shape, in: y.shape), to: y.data,
            width: x.dataType.byteWidth, pool: context.pool)
    }
}

package struct TileKernel: Kernel {
    /// Opset < 6: inputs `tiles` (a count) and `axis` instead of one repeat per axis.
    package let legacyAxisInput: Bool

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "Tile", "input")
        let rank = x.shape.count
        var repeats: [Int]
        if legacyAxisInput {
            guard let tiles = try constantIntegers(OperandAccess.optional(inputs, 1), op: "Tile", what: "tiles"), tiles.count == 1,
                  let axis = try constantIntegers(OperandAccess.optional(inputs, 2), op: "Tile", what: "axis"), axis.count == 1
            else { throw OnyxError.invalidModel("Tile (opset < 6): expected scalar inputs tiles and axis") }
            repeats = [Int](repeating: 1, count: rank)
            repeats[try normalizedAxis(axis[0], rank: rank, op: "Tile")] = tiles[0]
        } else {
            guard let given = try constantIntegers(OperandAccess.optional(inputs, 1), op: "Tile", what: "repeats") else {
                throw OnyxError.invalidModel("Tile: missing input 1 (repeats)")
            }
            repeats = given
        }
        guard repeats.count == rank else {
            throw OnyxError.invalidInput("Tile: repeats \(shapeText(repeats)) has \(repeats.count) values; the input has rank \(rank)")
        }
        guard repeats.allSatisfy({ $0 >= 0 }) else {
            throw OnyxError.invalidInput("Tile: repeats \(shapeText(repeats)) has a negative value")
        }
        var shape = x.shape
        for d in 0..<rank {
            let (product, overflow) = shape[d].multipliedReportingOverflow(by: repeats[d])
            guard !overflow else { throw OnyxError.limitExceeded("Tile: output extent overflows on axis \(d)") }
            shape[d] = product
        }
        return [TensorDescriptor(x.dataType, shape)]
    }

    package func readsData(ofInput index: Int) -> Bool { index == 0 }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        guard y.elementCount > 0 else { return }
        // The output is the view [r0, d0, r1, d1, …] of the input with stride 0 on each repeat axis.
        let strides = StridedCopy.contiguousStrides(x.shape)
        var shape: [Int] = [], sourceStrides: [Int] = []
        for d in 0..<x.rank {
            shape += [y.shape[d] / x.shape[d], x.shape[d]]
            sourceStrides += [0, strides[d]]
        }
        StridedCopy.copy(
            shape: shape, from: x.data, sourceStrides: sourceStrides, to: y.data, width: x.dataType.byteWidth,
            pool: context.pool)
    }
}

// MARK: - Range, ConstantOfShape, Size

package struct RangeKernel: Kernel {
    package static let supportedTypes: [DataType] = [.float, .double, .float16, .int16, .int32, .int64]

    /// The number of elements `max(ceil((limit − start) / delta), 0)`.
    package static func count(_ start: Tensor, _ limit: Tensor, _ delta: Tensor) throws -> Int {
        if start.dataType.isFloatingPoint {
            let s = try scalar(start), l = try scalar(limit), d = try scalar(delta)
            guard d != 0 else { throw OnyxError.invalidInput("Range: delta is 0") }
            let n = ((l - s) / d).rounded(.up)
            guard !n.isNaN else { throw OnyxError.invalidInput("Range: start \(s), limit \(l) or delta \(d) is NaN") }
            if n <= 0 { return 0 }
            guard n < Double(1 << 40) else { throw OnyxError.limitExceeded("Range: \(n) elements is too many") }
            return Int(n)
        }
        let s = try integer(start), l = try integer(limit), d = try integer(delta)
        guard d != 0 else { throw OnyxError.invalidInput("Range: delta is 0") }
        let (diff, overflow) = l.subtractingReportingOverflow(s)
        guard !overflow else { throw OnyxError.limitExceeded("Range: limit − start overflows") }
        if d > 0 { return diff > 0 ? (diff - 1) / d + 1 : 0 }
        return diff < 0 ? (diff + 1) / d + 1 : 0
    }

    private static func scalar(_ t: Tensor) throws -> Double {
        var value = 0.0
        t.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { Casting.convert(base, from: t.dataType, to: &value, .double, count: 1) }
        }
        return value
    }

    private static func integer(_ t: Tensor) throws -> Int {
        var value: Int64 = 0
        t.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { Casting.convert(base, from: t.dataType, to: &value, .int64, count: 1) }
        }
        return Int(value)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 3, let start = inputs[0], let limit = inputs[1], let delta = inputs[2] else {
            throw OnyxError.invalidModel("Range: expected inputs start, limit and delta")
        }
        guard Self.supportedTypes.contains(start.dataType) else {
            throw OnyxError.unsupportedDataType(
                "Range does not support \(start.dataType); supported: \(Self.supportedTypes.map(\.onnxName).joined(separator: ", "))")
        }
        for (name, input) in [("start", start), ("limit", limit), ("delta", delta)] {
            guard input.dataType == start.dataType, input.descriptor.elementCount == 1 else {
                throw OnyxError.invalidInput("Range: \(name) must be a scalar of \(start.dataType), found \(input.descriptor)")
            }
        }
        let count = try Self.count(
            try start.requireConstant(op: "Range", what: "start"), try limit.requireConstant(op: "Range", what: "limit"),
            try delta.requireConstant(op: "Range", what: "delta"))
        return [TensorDescriptor(start.dataType, [count])]
    }

    package func readsData(ofInput index: Int) -> Bool { index == 0 || index == 2 }

    package func run(_ context: borrowing KernelContext) throws {
        let start = context.input(0)!, delta = context.input(2)!, y = context.output(0)
        let n = y.elementCount
        func integers<T: FixedWidthInteger>(_: T.Type) {
            let s = Int64(start.pointer(as: T.self).pointee), d = Int64(delta.pointer(as: T.self).pointee)
            let out = y.pointer(as: T.self)
            for i in 0..<n { out[i] = T(truncatingIfNeeded: s &+ Int64(i) &* d) }
        }
        func floats<T: BinaryFloatingPoint>(_: T.Type) {
            let s = Double(start.pointer(as: T.self).pointee), d = Double(delta.pointer(as: T.self).pointee)
            let out = y.pointer(as: T.self)
            for i in 0..<n { out[i] = T(s + Double(i) * d) }
        }
        switch y.dataType {
        case .float: floats(Float.self)
        case .double: floats(Double.self)
        case .float16: floats(Float16.self)
        case .int16: integers(Int16.self)
        case .int32: integers(Int32.self)
        case .int64: integers(Int64.self)
        default: throw OnyxError.unsupportedDataType("Range does not support \(y.dataType)")
        }
    }
}

package struct ConstantOfShapeKernel: Kernel {
    package let value: Tensor

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let input = try OperandAccess.required(inputs, 0, "ConstantOfShape", "input")
        guard input.shape.count == 1 else {
            throw OnyxError.shapeMismatch("ConstantOfShape: the shape input must be 1-D, found shape \(shapeText(input.shape))")
        }
        guard let shape = try constantIntegers(input, op: "ConstantOfShape", what: "shape") else { return [] }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw OnyxError.invalidInput("ConstantOfShape: shape \(shapeText(shape)) has a negative extent")
        }
        return [TensorDescriptor(value.dataType, shape)]
    }

    package func readsData(ofInput index: Int) -> Bool { false }

    package func run(_ context: borrowing KernelContext) throws {
        let y = context.output(0)
        value.withUnsafeBytes { bytes in
            ElementFill.fill(y.data, count: y.elementCount, value: bytes.baseAddress!, width: value.dataType.byteWidth)
        }
    }
}

package struct SizeKernel: Kernel {
    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        _ = try OperandAccess.required(inputs, 0, "Size", "data")
        return [TensorDescriptor(.int64, [])]
    }

    package func readsData(ofInput index: Int) -> Bool { false }

    package func run(_ context: borrowing KernelContext) throws {
        context.output(0).pointer(as: Int64.self).pointee = Int64(context.input(0)!.elementCount)
    }
}

// MARK: - Pad

package struct PadKernel: Kernel {
    package enum Mode: String, Sendable { case constant, reflect, edge, wrap }

    package let mode: Mode
    /// Opset < 11: the pads (and the constant value) are attributes.
    package let legacyPads: [Int]?
    package let legacyValue: Double
    /// Opset 18+: input 3 may name the padded axes.
    package let hasAxesInput: Bool

    package init(_ context: NodeContext, legacyPads: [Int]? = nil, legacyPadsName: String? = nil, hasAxesInput: Bool = false) throws {
        let name = try context.string("mode", default: "constant")
        guard let mode = Mode(rawValue: name) else {
            throw context.attributeError("mode '\(name)' is not constant, reflect, edge or wrap")
        }
        self.mode = mode
        if let legacyPadsName {
            guard let legacyPads else { throw context.attributeError("missing attribute '\(legacyPadsName)'") }
            self.legacyPads = legacyPads
        } else {
            self.legacyPads = nil
        }
        self.legacyValue = Double(try context.float("value", default: 0))
        self.hasAxesInput = hasAxesInput
    }

    /// Elements added before and after each axis (negative removes).
    private func pads(rank: Int, pads: [Int], axes: [Int]?) throws -> (before: [Int], after: [Int]) {
        let axes = try (axes ?? Array(0..<rank)).map { try normalizedAxis($0, rank: rank, op: "Pad") }
        guard pads.count == 2 * axes.count else {
            throw OnyxError.invalidInput("Pad: pads has \(pads.count) values; expected \(2 * axes.count) (two per padded axis)")
        }
        var before = [Int](repeating: 0, count: rank), after = before
        for (i, axis) in axes.enumerated() {
            before[axis] = pads[i]
            after[axis] = pads[axes.count + i]
        }
        return (before, after)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "Pad", "data")
        let given: [Int]
        if let legacyPads {
            given = legacyPads
        } else {
            guard let p = try constantIntegers(OperandAccess.optional(inputs, 1), op: "Pad", what: "pads") else {
                throw OnyxError.invalidModel("Pad: missing input 1 (pads)")
            }
            given = p
        }
        if let value = OperandAccess.optional(inputs, 2), legacyPads == nil {
            guard value.dataType == x.dataType, value.descriptor.elementCount <= 1 else {
                throw OnyxError.invalidInput("Pad: constant_value must be a scalar of \(x.dataType), found \(value.descriptor)")
            }
        }
        let axes = hasAxesInput ? try constantIntegers(OperandAccess.optional(inputs, 3), op: "Pad", what: "axes") : nil
        let (before, after) = try pads(rank: x.shape.count, pads: given, axes: axes)
        var shape = x.shape
        for d in 0..<shape.count {
            shape[d] = x.shape[d] &+ before[d] &+ after[d]
            guard shape[d] >= 0 else {
                throw OnyxError.invalidInput("Pad: pads \(before[d]), \(after[d]) remove more than the \(x.shape[d]) elements of axis \(d)")
            }
            if mode != .constant && shape[d] > 0 && x.shape[d] - max(0, -before[d]) - max(0, -after[d]) <= 0 {
                throw OnyxError.invalidInput("Pad: \(mode.rawValue) mode cannot pad axis \(d), which has no elements left")
            }
        }
        return [TensorDescriptor(x.dataType, shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let rank = x.rank, width = x.dataType.byteWidth
        let given = legacyPads ?? OperandAccess.integers(context.input(1)!)
        let axes = hasAxesInput ? context.input(3).map(OperandAccess.integers) : nil
        let (before, _) = try pads(rank: rank, pads: given, axes: axes)
        let strides = StridedCopy.contiguousStrides(x.shape)
        // The part of the input that is kept, and where it lands.
        var kept = [Int](repeating: 0, count: rank), sourceStart = kept, destinationStart = kept
        for d in 0..<rank {
            sourceStart[d] = max(0, -before[d])
            destinationStart[d] = max(0, before[d])
            kept[d] = max(0, min(x.shape[d] - sourceStart[d], y.shape[d] - destinationStart[d]))
        }
        if mode == .constant {
            var value: UInt64 = 0
            if legacyPads != nil {
                value = ElementFill.element(legacyValue, as: x.dataType)
            } else if let v = context.input(2), v.elementCount == 1 {
                withUnsafeMutableBytes(of: &value) { $0.baseAddress!.copyMemory(from: v.data, byteCount: width) }
            }
            withUnsafeBytes(of: &value) { ElementFill.fill(y.data, count: y.elementCount, value: $0.baseAddress!, width: width) }
            let source = x.data + zip(sourceStart, strides).reduce(0) { $0 + $1.0 * $1.1 } * width
            let outStrides = StridedCopy.contiguousStrides(y.shape)
            let destination = y.data + zip(destinationStart, outStrides).reduce(0) { $0 + $1.0 * $1.1 } * width
            StridedCopy.copy(
                shape: kept, from: source, sourceStrides: strides, to: destination, destinationStrides: outStrides,
                width: width, pool: context.pool)
            return
        }
        guard y.elementCount > 0 else { return }
        let offsets: [[Int]] = (0..<rank).map { d in
            let n = kept[d]
            return (0..<y.shape[d]).map { o in
                var i = o - destinationStart[d]
                if i < 0 || i >= n {
                    switch mode {
                    case .edge: i = min(max(i, 0), n - 1)
                    case .wrap: i = ((i % n) + n) % n
                    case .reflect:
                        if n == 1 {
                            i = 0
                        } else {
                            let period = 2 * (n - 1)
                            i = ((i % period) + period) % period
                            if i >= n { i = period - i }
                        }
                    case .constant: break
                    }
                }
                return (sourceStart[d] + i) * strides[d]
            }
        }
        IndexedCopy.copy(shape: y.shape, offsets: offsets, from: x.data, to: y.data, width: width)
    }
}

// MARK: - DepthToSpace, SpaceToDepth

/// DepthToSpace and SpaceToDepth: a reshape to six axes, a transpose, and a reshape back.
package struct SpaceDepthKernel: Kernel {
    package let toDepth: Bool
    package let blocksize: Int
    /// Column-row-depth order (CRD) rather than depth-column-row (DCR).
    package let crd: Bool

    package init(_ context: NodeContext, toDepth: Bool, mode: String) throws {
        guard let blocksize = try context.int("blocksize") else { throw context.attributeError("missing attribute 'blocksize'") }
        guard blocksize > 0 else { throw context.attributeError("blocksize \(blocksize) must be positive") }
        guard mode == "DCR" || mode == "CRD" else { throw context.attributeError("mode '\(mode)' is not DCR or CRD") }
        self.toDepth = toDepth
        self.blocksize = blocksize
        self.crd = mode == "CRD"
    }

    private var op: String { toDepth ? "SpaceToDepth" : "DepthToSpace" }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, op, "input")
        guard x.shape.count == 4 else {
            throw OnyxError.shapeMismatch("\(op): the input must be 4-D (N, C, H, W), found shape \(shapeText(x.shape))")
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let b = blocksize
        func times(_ a: Int, _ b: Int) throws -> Int {
            let (p, overflow) = a.multipliedReportingOverflow(by: b)
            guard !overflow else { throw OnyxError.limitExceeded("\(op): blocksize \(blocksize) makes the output too large") }
            return p
        }
        let area = try times(b, b)
        if toDepth {
            guard h % b == 0, w % b == 0 else {
                throw OnyxError.shapeMismatch("\(op): height \(h) and width \(w) must be multiples of blocksize \(b)")
            }
            return [TensorDescriptor(x.dataType, [n, try times(c, area), h / b, w / b])]
        }
        guard c % area == 0 else {
            throw OnyxError.shapeMismatch("\(op): channels \(c) must be a multiple of blocksize² \(area)")
        }
        return [TensorDescriptor(x.dataType, [n, c / area, try times(h, b), try times(w, b)])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let b = blocksize
        let shape: [Int], perm: [Int]
        if toDepth {
            shape = [n, c, h / b, b, w / b, b]
            perm = crd ? [0, 1, 3, 5, 2, 4] : [0, 3, 5, 1, 2, 4]
        } else if crd {
            shape = [n, c / (b * b), b, b, h, w]
            perm = [0, 1, 4, 2, 5, 3]
        } else {
            shape = [n, b, b, c / (b * b), h, w]
            perm = [0, 3, 4, 1, 5, 2]
        }
        Transposition.permute(x.data, y.data, shape: shape, perm: perm, width: x.dataType.byteWidth, pool: context.pool)
    }
}

// MARK: - Trilu, EyeLike

package struct TriluKernel: Kernel {
    package let upper: Bool

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "Trilu", "input")
        guard x.shape.count >= 2 else {
            throw OnyxError.shapeMismatch("Trilu: the input must have rank 2 or more, found shape \(shapeText(x.shape))")
        }
        if let k = OperandAccess.optional(inputs, 1) {
            guard k.dataType == .int64, k.descriptor.elementCount == 1 else {
                throw OnyxError.invalidInput("Trilu: k must be an int64 scalar, found \(k.descriptor)")
            }
        }
        return [x.descriptor]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let rows = x.shape[x.rank - 2], columns = x.shape[x.rank - 1]
        let width = x.dataType.byteWidth
        // k beyond the matrix behaves as ±(rows + columns).
        let limit = rows + columns
        let k = context.input(1).map { Int(max(min($0.pointer(as: Int64.self).pointee, Int64(limit)), Int64(-limit))) } ?? 0
        if x.data != y.data { y.data.copyMemory(from: x.data, byteCount: y.byteCount) }
        let matrices = StridedCopy.extentProduct(x.shape, 0..<(x.rank - 2))
        let rowBytes = columns * width
        for m in 0..<matrices {
            for i in 0..<rows {
                let row = y.data + (m * rows + i) * rowBytes
                // Upper keeps columns j ≥ i + k; lower keeps j ≤ i + k.
                let zeroed = upper ? 0..<min(max(i + k, 0), columns) : min(max(i + k + 1, 0), columns)..<columns
                if !zeroed.isEmpty { (row + zeroed.lowerBound * width).initializeMemory(as: UInt8.self, repeating: 0, count: zeroed.count * width) }
            }
        }
    }
}

package struct EyeLikeKernel: Kernel {
    /// The output type; `nil` keeps the input's.
    package let dataType: DataType?
    package let k: Int

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "EyeLike", "input")
        guard x.shape.count == 2 else {
            throw OnyxError.shapeMismatch("EyeLike: the input must be 2-D, found shape \(shapeText(x.shape))")
        }
        return [TensorDescriptor(dataType ?? x.dataType, x.shape)]
    }

    package func readsData(ofInput index: Int) -> Bool { false }

    package func run(_ context: borrowing KernelContext) throws {
        let y = context.output(0)
        let rows = y.shape[0], columns = y.shape[1], width = y.dataType.byteWidth
        y.data.initializeMemory(as: UInt8.self, repeating: 0, count: y.byteCount)
        var one = ElementFill.element(1, as: y.dataType)
        guard k > -rows, k < columns else { return }
        for i in max(0, -k)..<min(rows, columns - k) {
            (y.data + (i * columns + i + k) * width).copyMemory(from: &one, byteCount: width)
        }
    }
}

// MARK: - CenterCropPad

package struct CenterCropPadKernel: Kernel {
    package let axes: [Int]?

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "CenterCropPad", "input_data")
        guard let shape = try constantIntegers(OperandAccess.optional(inputs, 1), op: "CenterCropPad", what: "shape") else {
            throw OnyxError.invalidModel("CenterCropPad: missing input 1 (shape)")
        }
        let rank = x.shape.count
        let axes = try (axes ?? Array(0..<rank)).map { try normalizedAxis($0, rank: rank, op: "CenterCropPad") }
        guard shape.count == axes.count else {
            throw OnyxError.invalidInput("CenterCropPad: shape \(shapeText(shape)) has \(shape.count) values for \(axes.count) axes")
        }
        guard Set(axes).count == axes.count else { throw OnyxError.invalidAttribute("CenterCropPad: axes repeat an axis") }
        var out = x.shape
        for (axis, extent) in zip(axes, shape) {
            guard extent >= 0 else { throw OnyxError.invalidInput("CenterCropPad: shape \(shapeText(shape)) has a negative extent") }
            out[axis] = extent
        }
        return [TensorDescriptor(x.dataType, out)]
    }

    package func readsData(ofInput index: Int) -> Bool { index == 0 }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let width = x.dataType.byteWidth
        y.data.initializeMemory(as: UInt8.self, repeating: 0, count: y.byteCount)
        let inStrides = StridedCopy.contiguousStrides(x.shape), outStrides = StridedCopy.contiguousStrides(y.shape)
        var kept = x.shape, source = 0, destination = 0
        for d in 0..<x.rank {
            let dim = x.shape[d], extent = y.shape[d]
            kept[d] = min(dim, extent)
            if extent < dim { source += (dim - extent) / 2 * inStrides[d] }
            if extent > dim { destination += (extent - dim) / 2 * outStrides[d] }
        }
        StridedCopy.copy(
            shape: kept, from: x.data + source * width, sourceStrides: inStrides, to: y.data + destination * width,
            destinationStrides: outStrides, width: width, pool: context.pool)
    }
}

// MARK: - ReverseSequence

package struct ReverseSequenceKernel: Kernel {
    /// 0 or 1; the time axis is the other one.
    package let batchAxis: Int

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "ReverseSequence", "input")
        let lens = try OperandAccess.required(inputs, 1, "ReverseSequence", "sequence_lens")
        guard x.shape.count >= 2 else {
            throw OnyxError.shapeMismatch("ReverseSequence: the input must have rank 2 or more, found shape \(shapeText(x.shape))")
        }
        guard lens.dataType == .int64, lens.shape == [x.shape[batchAxis]] else {
            throw OnyxError.invalidInput(
                "ReverseSequence: sequence_lens must be int64 of shape [\(x.shape[batchAxis])], found \(lens.descriptor)")
        }
        if let constant = lens.constant { try Self.check(try constant.scalars(as: Int64.self).map { Int($0) }, time: x.shape[1 - batchAxis]) }
        return [x.descriptor]
    }

    private static func check(_ lens: [Int], time: Int) throws {
        if let (b, bad) = lens.enumerated().first(where: { $0.element < 0 || $0.element > time }) {
            throw OnyxError.invalidInput("ReverseSequence: sequence_lens[\(b)] = \(bad) is out of range 0...\(time)")
        }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let lens = OperandAccess.integers(context.input(1)!)
        try Self.check(lens, time: x.shape[1 - batchAxis])
        let inner = StridedCopy.extentProduct(x.shape, 2..<x.rank) * x.dataType.byteWidth
        for i0 in 0..<x.shape[0] {
            for i1 in 0..<x.shape[1] {
                let (b, t) = batchAxis == 0 ? (i0, i1) : (i1, i0)
                let source = t < lens[b] ? lens[b] - 1 - t : t
                let (s0, s1) = batchAxis == 0 ? (i0, source) : (source, i1)
                (y.data + (i0 * x.shape[1] + i1) * inner).copyMemory(from: x.data + (s0 * x.shape[1] + s1) * inner, byteCount: inner)
            }
        }
    }
}
