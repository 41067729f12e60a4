import OnyxCore
import OnyxIR
import OnyxKernels

/// Shape and data-movement operators: Shape, Reshape, Flatten, Squeeze, Unsqueeze, Concat,
/// Transpose, Gather. None looks at element values except Gather's indices, so each works on
/// every data type by moving bytes.
extension OperatorRegistry {
    package static let shapeOperators: [OperatorRegistration] = [
        OperatorRegistration("Shape", versions: 1...14) { _ in ShapeKernel(start: 0, end: nil) },
        OperatorRegistration("Shape", versions: 15...Int.max) { context in
            ShapeKernel(start: try context.int("start", default: 0), end: try context.int("end"))
        },

        OperatorRegistration("Reshape", versions: 1...4) { context in
            guard let shape = try context.ints("shape") else {
                throw OnyxError.invalidAttribute("Reshape: missing attribute 'shape' (opset \(context.opset) takes the shape as an attribute)")
            }
            return ReshapeKernel(attributeShape: shape, allowZero: false)
        },
        OperatorRegistration("Reshape", versions: 5...13) { _ in ReshapeKernel(attributeShape: nil, allowZero: false) },
        OperatorRegistration("Reshape", versions: 14...Int.max) { context in
            ReshapeKernel(attributeShape: nil, allowZero: try context.int("allowzero", default: 0) != 0)
        },

        OperatorRegistration("Flatten") { context in FlattenKernel(axis: try context.int("axis", default: 1)) },

        OperatorRegistration("Squeeze", versions: 1...12) { context in
            SqueezeKernel(attributeAxes: try context.ints("axes"), axesFromInput: false)
        },
        OperatorRegistration("Squeeze", versions: 13...Int.max) { _ in
            SqueezeKernel(attributeAxes: nil, axesFromInput: true)
        },

        OperatorRegistration("Unsqueeze", versions: 1...12) { context in
            guard let axes = try context.ints("axes") else {
                throw OnyxError.invalidAttribute("Unsqueeze: missing attribute 'axes' (opset \(context.opset) takes the axes as an attribute)")
            }
            return UnsqueezeKernel(attributeAxes: axes)
        },
        OperatorRegistration("Unsqueeze", versions: 13...Int.max) { _ in UnsqueezeKernel(attributeAxes: nil) },

        // Concat-1 made `axis` optional (default 1); from opset 4 it is required.
        OperatorRegistration("Concat", versions: 1...3) { context in ConcatKernel(axis: try context.int("axis", default: 1)) },
        OperatorRegistration("Concat", versions: 4...Int.max) { context in
            guard let axis = try context.int("axis") else { throw OnyxError.invalidAttribute("Concat: missing attribute 'axis'") }
            return ConcatKernel(axis: axis)
        },

        OperatorRegistration("Transpose") { context in
            let perm = try context.ints("perm")
            if let perm, Set(perm) != Set(0..<perm.count) || Set(perm).count != perm.count {
                throw OnyxError.invalidAttribute("Transpose: perm \(shapeText(perm)) is not a permutation of 0..<\(perm.count)")
            }
            return TransposeKernel(perm: perm)
        },

        OperatorRegistration("Gather") { context in GatherKernel(axis: try context.int("axis", default: 0)) },
    ]
}

// MARK: - Shared helpers

/// Normalises a possibly negative axis against `rank`, or throws naming the op.
package func normalizedAxis(_ axis: Int, rank: Int, op: String) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < max(rank, 1) else {
        throw OnyxError.invalidAttribute("\(op): axis \(axis) is out of range for rank \(rank) (expected \(-rank)...\(rank - 1))")
    }
    return a
}

/// Reads a constant int64 (or int32) input known at plan time; `nil` if the input is left out.
///
/// - Throws: ``NeedsInputValues`` if the input is present but known only in a run; an error if it is not an integer tensor.
package func constantIntegers(_ input: PlannedInput?, op: String, what: String) throws -> [Int]? {
    guard let input else { return nil }
    let value = try input.requireConstant(op: op, what: what)
    switch value.dataType {
    case .int64: return try value.scalars(as: Int64.self).map { Int($0) }
    case .int32: return try value.scalars(as: Int32.self).map { Int($0) }
    default: throw OnyxError.unsupportedDataType("\(op): the \(what) input must be int64, found \(value.dataType)")
    }
}

/// The first input, or an error saying the op needs it.
private func dataInput(_ inputs: [PlannedInput?], _ op: String) throws -> PlannedInput {
    guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("\(op): missing input 0 (data)") }
    return x
}

// MARK: - Shape

package struct ShapeKernel: Kernel {
    package let start: Int
    package let end: Int?

    /// The axes reported: `start` and `end` clamp to `0...rank` after adding `rank` to negatives.
    private func axes(_ rank: Int) -> Range<Int> {
        func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + rank : v, 0), rank) }
        let s = clamp(start), e = clamp(end ?? rank)
        return s..<max(s, e)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try dataInput(inputs, "Shape")
        return [TensorDescriptor(.int64, [axes(x.shape.count).count])]
    }

    package func readsData(ofInput index: Int) -> Bool { false }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0).pointer(as: Int64.self)
        var i = 0
        for axis in axes(x.rank) {
            y[i] = Int64(x.shape[axis])
            i += 1
        }
    }
}

// MARK: - Reshape, Flatten, Squeeze, Unsqueeze (views)

package struct ReshapeKernel: Kernel {
    /// The target shape of opset < 5, given as an attribute.
    package let attributeShape: [Int]?
    package let allowZero: Bool

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try dataInput(inputs, "Reshape")
        let requested: [Int]
        if let attributeShape {
            requested = attributeShape
        } else {
            guard let target = try constantIntegers(inputs.count > 1 ? inputs[1] : nil, op: "Reshape", what: "shape") else {
                throw OnyxError.invalidModel("Reshape: missing input 1 (shape)")
            }
            guard inputs[1]!.shape.count <= 1 else {
                throw OnyxError.shapeMismatch("Reshape: the shape input must be 1-D, found shape \(shapeText(inputs[1]!.shape))")
            }
            requested = target
        }
        return [TensorDescriptor(x.dataType, try Self.resolve(requested, input: x.shape, allowZero: allowZero))]
    }

    /// The output shape for `requested`: 0 copies the input extent (unless `allowZero`), one -1 is inferred.
    package static func resolve(_ requested: [Int], input: [Int], allowZero: Bool) throws -> [Int] {
        let count = try Tensor.checkedElementCount(input)
        func failure(_ why: String = "") -> OnyxError {
            OnyxError.shapeMismatch(
                "Reshape: cannot reshape \(shapeText(input)) (\(count) elements) to \(shapeText(requested))\(why)")
        }
        var shape = requested
        var inferred: Int?
        for (i, extent) in requested.enumerated() {
            if extent == 0 && !allowZero {
                guard i < input.count else { throw failure(": 0 copies axis \(i), which the input does not have") }
                shape[i] = input[i]
            } else if extent == -1 {
                guard inferred == nil else { throw failure(": more than one -1") }
                inferred = i
            } else if extent < -1 {
                throw failure(": extent \(extent) is negative")
            }
        }
        if let i = inferred {
            if allowZero && shape.contains(0) { throw failure(": -1 cannot be inferred when allowzero keeps a 0") }
            var known = 1
            for (j, extent) in shape.enumerated() where j != i {
                let (product, overflow) = known.multipliedReportingOverflow(by: extent)
                guard !overflow else { throw failure() }
                known = product
            }
            guard known > 0, count % known == 0 else { throw failure() }
            shape[i] = count / known
        }
        guard let total = try? Tensor.checkedElementCount(shape), total == count else { throw failure() }
        return shape
    }

    package func readsData(ofInput index: Int) -> Bool { index == 0 }
    package var aliasing: KernelAliasing { .view(input: 0) }
    package func run(_ context: borrowing KernelContext) throws { copyIfDistinct(context) }
}

package struct FlattenKernel: Kernel {
    package let axis: Int

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try dataInput(inputs, "Flatten")
        let rank = x.shape.count
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a <= rank else {
            throw OnyxError.invalidAttribute("Flatten: axis \(axis) is out of range for rank \(rank) (expected \(-rank)...\(rank))")
        }
        let outer = x.shape[0..<a].reduce(1, *), inner = x.shape[a...].reduce(1, *)
        return [TensorDescriptor(x.dataType, [outer, inner])]
    }

    package var aliasing: KernelAliasing { .view(input: 0) }
    package func run(_ context: borrowing KernelContext) throws { copyIfDistinct(context) }
}

package struct SqueezeKernel: Kernel {
    /// The axes of opset < 13; `nil` squeezes every unit axis.
    package let attributeAxes: [Int]?
    package let axesFromInput: Bool

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try dataInput(inputs, "Squeeze")
        let rank = x.shape.count
        let axes = axesFromInput
            ? try constantIntegers(inputs.count > 1 ? inputs[1] : nil, op: "Squeeze", what: "axes")
            : attributeAxes
        // An empty axes list squeezes every unit axis, as when axes are left out (onnxruntime does the same).
        guard let axes, !axes.isEmpty else {
            return [TensorDescriptor(x.dataType, x.shape.filter { $0 != 1 })]
        }
        var squeezed = [Bool](repeating: false, count: rank)
        for axis in axes {
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0 && a < rank else {
                throw OnyxError.invalidAttribute("Squeeze: axis \(axis) is out of range for rank \(rank) (expected \(-rank)...\(rank - 1))")
            }
            guard x.shape[a] == 1 else {
                throw OnyxError.shapeMismatch("Squeeze: axis \(axis) of \(shapeText(x.shape)) has extent \(x.shape[a]); expected 1")
            }
            squeezed[a] = true
        }
        let shape = x.shape.indices.filter { !squeezed[$0] }.map { x.shape[$0] }
        return [TensorDescriptor(x.dataType, shape)]
    }

    package func readsData(ofInput index: Int) -> Bool { index == 0 }
    package var aliasing: KernelAliasing { .view(input: 0) }
    package func run(_ context: borrowing KernelContext) throws { copyIfDistinct(context) }
}

package struct UnsqueezeKernel: Kernel {
    /// The axes of opset < 13; from 13 they come from input 1.
    package let attributeAxes: [Int]?

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try dataInput(inputs, "Unsqueeze")
        let axes: [Int]
        if let attributeAxes {
            axes = attributeAxes
        } else {
            guard let given = try constantIntegers(inputs.count > 1 ? inputs[1] : nil, op: "Unsqueeze", what: "axes") else {
                throw OnyxError.invalidModel("Unsqueeze: missing input 1 (axes)")
            }
            axes = given
        }
        // Axes index the output, whose rank is the input's plus one per axis.
        let rank = x.shape.count + axes.count
        var inserted = [Bool](repeating: false, count: rank)
        for axis in axes {
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0 && a < rank else {
                throw OnyxError.invalidAttribute("Unsqueeze: axis \(axis) is out of range for output rank \(rank) (expected \(-rank)...\(rank - 1))")
            }
            guard !inserted[a] else { throw OnyxError.invalidAttribute("Unsqueeze: axes \(shapeText(axes)) name axis \(a) twice") }
            inserted[a] = true
        }
        var shape = [Int](repeating: 1, count: rank)
        var next = 0
        for i in 0..<rank where !inserted[i] {
            shape[i] = x.shape[next]
            next += 1
        }
        return [TensorDescriptor(x.dataType, shape)]
    }

    package func readsData(ofInput index: Int) -> Bool { index == 0 }
    package var aliasing: KernelAliasing { .view(input: 0) }
    package func run(_ context: borrowing KernelContext) throws { copyIfDistinct(context) }
}

// MARK: - Concat

package struct ConcatKernel: Kernel {
    package let axis: Int

    /// Whether input `x` takes part: a 1-D empty tensor is skipped when the others have another
    /// rank (exporters use it as "nothing yet").
    private static func skipped(_ shape: [Int], rank: Int) -> Bool {
        shape.count != rank && shape == [0]
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let present = inputs.compactMap { $0 }
        guard let first = present.first(where: { $0.shape != [0] }) ?? present.first else {
            throw OnyxError.invalidModel("Concat: expected at least one input, found none")
        }
        let rank = first.shape.count
        guard rank > 0 else { throw OnyxError.shapeMismatch("Concat: cannot concatenate scalars (input shape [])") }
        let a = try normalizedAxis(axis, rank: rank, op: "Concat")
        var shape = first.shape
        shape[a] = 0
        for (i, input) in inputs.enumerated() {
            guard let input else { continue }
            guard input.dataType == first.dataType else {
                throw OnyxError.unsupportedDataType("Concat: input \(i) is \(input.dataType); expected \(first.dataType) like the others")
            }
            if Self.skipped(input.shape, rank: rank) { continue }
            guard input.shape.count == rank,
                  (0..<rank).allSatisfy({ $0 == a || input.shape[$0] == first.shape[$0] })
            else {
                throw OnyxError.shapeMismatch(
                    "Concat: input \(i) has shape \(shapeText(input.shape)); expected \(shapeText(first.shape)) on every axis but \(a)")
            }
            shape[a] += input.shape[a]
        }
        return [TensorDescriptor(first.dataType, shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let y = context.output(0)
        let rank = y.rank
        let a = axis < 0 ? axis + rank : axis
        let width = y.dataType.byteWidth
        var outer = 1
        for d in 0..<a { outer *= y.shape[d] }
        var inner = width
        for d in (a + 1)..<rank { inner *= y.shape[d] }
        let rowBytes = y.shape[a] * inner
        var pieces: [(source: UnsafeRawPointer, offset: Int, bytes: Int)] = []
        pieces.reserveCapacity(context.inputCount)
        var offset = 0
        for i in 0..<context.inputCount {
            guard let x = context.input(i), x.rank == rank else { continue }
            let chunk = x.shape[a] * inner
            pieces.append((UnsafeRawPointer(x.data), offset, chunk))
            offset += chunk
        }
        let total = outer * rowBytes
        guard context.pool.threadCount > 1, total >= Self.parallelBytes, outer * pieces.count <= 64 else {
            for piece in pieces {
                ByteCopy.copyRows(
                    from: piece.source, sourceStride: piece.bytes, to: y.data + piece.offset, destinationStride: rowBytes,
                    rowBytes: piece.bytes, rows: outer)
            }
            return
        }
        // A large copy of few rows (DenseNet's Concats, megabytes each at 56²) is cut into equal
        // byte ranges of the output: one thread does not reach the memory bandwidth two do.
        let destination = y.data, slice = Self.sliceBytes
        context.pool.parallelRanges((total + slice - 1) / slice, minimumChunk: 1) { slices in
            let low = slices.lowerBound * slice, high = min(total, slices.upperBound * slice)
            for row in 0..<outer {
                for piece in pieces {
                    let start = row * rowBytes + piece.offset
                    let from = max(low, start), to = min(high, start + piece.bytes)
                    guard from < to else { continue }
                    (destination + from).copyMemory(from: piece.source + row * piece.bytes + (from - start), byteCount: to - from)
                }
            }
        }
    }

    /// Output bytes from which the copies are split over the threads, and the unit of the split.
    static let parallelBytes = 1 << 20, sliceBytes = 64 << 10
}

// MARK: - Transpose

package struct TransposeKernel: Kernel {
    /// Output axis `i` is input axis `perm[i]`; `nil` reverses the axes.
    package let perm: [Int]?

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try dataInput(inputs, "Transpose")
        if let perm, perm.count != x.shape.count {
            throw OnyxError.shapeMismatch(
                "Transpose: perm \(shapeText(perm)) has \(perm.count) axes; the input \(shapeText(x.shape)) has \(x.shape.count)")
        }
        let p = perm ?? Array((0..<x.shape.count).reversed())
        return [TensorDescriptor(x.dataType, p.map { x.shape[$0] })]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        Transposition.permute(x.data, y.data, shape: x.shape, perm: perm, width: x.dataType.byteWidth, pool: context.pool)
    }
}

// MARK: - Gather

package struct GatherKernel: Kernel {
    package let axis: Int

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 2, let data = inputs[0], let indices = inputs[1] else {
            throw OnyxError.invalidModel("Gather: expected inputs data and indices")
        }
        guard indices.dataType == .int64 || indices.dataType == .int32 else {
            throw OnyxError.unsupportedDataType("Gather: indices must be int32 or int64, found \(indices.dataType)")
        }
        let rank = data.shape.count
        guard rank >= 1 else { throw OnyxError.shapeMismatch("Gather: data must have rank 1 or more, found a scalar") }
        let a = try normalizedAxis(axis, rank: rank, op: "Gather")
        // Constant indices (the usual Shape → Gather chains) are checked now rather than per run.
        if let constant = indices.constant {
            try constant.withUnsafeBytes { bytes in
                try Self.check(bytes.baseAddress!, indices.dataType, constant.elementCount, extent: data.shape[a], axis: a)
            }
        }
        return [TensorDescriptor(data.dataType, Array(data.shape[0..<a]) + indices.shape + Array(data.shape[(a + 1)...]))]
    }

    private static func check(_ indices: UnsafeRawPointer, _ type: DataType, _ count: Int, extent: Int, axis: Int) throws {
        if let bad = Gathering.firstInvalidIndex(indices, indexType: type, count: count, extent: extent) {
            throw OnyxError.invalidInput(
                "Gather: index \(bad) is out of range for axis \(axis) of extent \(extent) (expected \(-extent)...\(extent - 1))")
        }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let data = context.input(0)!, indices = context.input(1)!, y = context.output(0)
        let rank = data.rank
        let a = axis < 0 ? axis + rank : axis
        let extent = data.shape[a]
        let count = indices.elementCount
        try Self.check(indices.data, indices.dataType, count, extent: extent, axis: a)
        var outer = 1
        for d in 0..<a { outer *= data.shape[d] }
        var sliceBytes = data.dataType.byteWidth
        for d in (a + 1)..<rank { sliceBytes *= data.shape[d] }
        Gathering.gather(
            data.data, indices.data, indexType: indices.dataType, count: count, outer: outer, extent: extent,
            sliceBytes: sliceBytes, into: y.data, pool: context.pool)
    }
}
