import OnyxCore
import OnyxIR
import OnyxKernels

/// Indexing operators: NonZero, TopK, ArgMax, ArgMin, CumSum, CumProd, GatherElements,
/// GatherND, ScatterElements, Scatter, ScatterND, OneHot, Compress, Unique.
///
/// Indices may be negative and then count from the end once; an index still out of range is
/// an error naming the op, the axis, the index and the extent.
extension OperatorRegistry {
    /// Gather/Scatter families, TopK, ArgMax/ArgMin, NonZero and other indexing.
    package static let indexingOperators: [OperatorRegistration] = [
        OperatorRegistration("NonZero", versions: 9...Int.max) { _ in NonZeroKernel() },

        OperatorRegistration("TopK", versions: 1...9) { context in
            guard let k = try context.int("k") else { throw context.attributeError("missing attribute 'k'") }
            return TopKKernel(axis: try context.int("axis", default: -1), attributeK: k, largest: true)
        },
        OperatorRegistration("TopK", versions: 10...10) { context in
            TopKKernel(axis: try context.int("axis", default: -1), attributeK: nil, largest: true)
        },
        OperatorRegistration("TopK", versions: 11...Int.max) { context in
            // `sorted = 0` allows any order; the sorted order is one of them.
            _ = try context.int("sorted")
            return TopKKernel(
                axis: try context.int("axis", default: -1), attributeK: nil, largest: try context.int("largest", default: 1) != 0)
        },

        OperatorRegistration("ArgMax", versions: 1...11) { context in try ArgExtremumKernel(context, largest: true, hasSelectLast: false) },
        OperatorRegistration("ArgMax", versions: 12...Int.max) { context in try ArgExtremumKernel(context, largest: true, hasSelectLast: true) },
        OperatorRegistration("ArgMin", versions: 1...11) { context in try ArgExtremumKernel(context, largest: false, hasSelectLast: false) },
        OperatorRegistration("ArgMin", versions: 12...Int.max) { context in try ArgExtremumKernel(context, largest: false, hasSelectLast: true) },

        OperatorRegistration("CumSum", versions: 11...Int.max) { context in try CumulativeKernel(context, product: false) },
        OperatorRegistration("CumProd", versions: 26...Int.max) { context in try CumulativeKernel(context, product: true) },

        OperatorRegistration("GatherElements", versions: 11...Int.max) { context in
            GatherElementsKernel(axis: try context.int("axis", default: 0))
        },
        OperatorRegistration("GatherND", versions: 11...11) { _ in GatherNDKernel(batchDims: 0) },
        OperatorRegistration("GatherND", versions: 12...Int.max) { context in
            let b = try context.int("batch_dims", default: 0)
            guard b >= 0 else { throw context.attributeError("batch_dims \(b) is negative") }
            return GatherNDKernel(batchDims: b)
        },

        OperatorRegistration("Scatter", versions: 9...10) { context in
            ScatterElementsKernel(op: "Scatter", axis: try context.int("axis", default: 0), reduction: .none)
        },
        OperatorRegistration("Scatter", versions: 11...Int.max) { context in
            ScatterElementsKernel(op: "Scatter", axis: try context.int("axis", default: 0), reduction: .none)
        },
        OperatorRegistration("ScatterElements", versions: 11...15) { context in
            ScatterElementsKernel(op: "ScatterElements", axis: try context.int("axis", default: 0), reduction: .none)
        },
        OperatorRegistration("ScatterElements", versions: 16...17) { context in
            ScatterElementsKernel(
                op: "ScatterElements", axis: try context.int("axis", default: 0),
                reduction: try scatterReduction(context, allowed: [.none, .add, .mul]))
        },
        OperatorRegistration("ScatterElements", versions: 18...Int.max) { context in
            ScatterElementsKernel(
                op: "ScatterElements", axis: try context.int("axis", default: 0),
                reduction: try scatterReduction(context, allowed: [.none, .add, .mul, .max, .min]))
        },
        OperatorRegistration("ScatterND", versions: 11...15) { _ in ScatterNDKernel(reduction: .none) },
        OperatorRegistration("ScatterND", versions: 16...17) { context in
            ScatterNDKernel(reduction: try scatterReduction(context, allowed: [.none, .add, .mul]))
        },
        OperatorRegistration("ScatterND", versions: 18...Int.max) { context in
            ScatterNDKernel(reduction: try scatterReduction(context, allowed: [.none, .add, .mul, .max, .min]))
        },

        OperatorRegistration("OneHot", versions: 9...10) { context in OneHotKernel(axis: try context.int("axis", default: -1)) },
        OperatorRegistration("OneHot", versions: 11...Int.max) { context in OneHotKernel(axis: try context.int("axis", default: -1)) },

        OperatorRegistration("Compress", versions: 9...10) { context in CompressKernel(axis: try context.int("axis")) },
        OperatorRegistration("Compress", versions: 11...Int.max) { context in CompressKernel(axis: try context.int("axis")) },

        OperatorRegistration("Unique", versions: 11...Int.max) { context in
            UniqueKernel(axis: try context.int("axis"), sorted: try context.int("sorted", default: 1) != 0)
        },
    ]

    private static func scatterReduction(_ context: NodeContext, allowed: [ScatterReduction]) throws -> ScatterReduction {
        let name = try context.string("reduction", default: "none")
        guard let reduction = ScatterReduction(rawValue: name), allowed.contains(reduction) else {
            throw context.attributeError(
                "reduction '\(name)' is not supported at opset \(context.opset); expected \(allowed.map(\.rawValue).joined(separator: ", "))")
        }
        return reduction
    }
}

// MARK: - Shared helpers

/// `index` made non-negative against `extent`, or an error naming the op, axis, index and extent.
@inline(__always)
private func checkedIndex(_ index: Int, extent: Int, op: String, axis: Int) throws -> Int {
    let i = index < 0 ? index &+ extent : index
    guard i >= 0 && i < extent else {
        throw OnyxError.invalidInput(
            "\(op): index \(index) is out of range for axis \(axis) of extent \(extent) (expected \(-extent)...\(extent - 1))")
    }
    return i
}

/// GatherElements' and ScatterElements' addressing: for each element of `indices` (row-major), the
/// data offset of its own coordinates with the coordinate on `axis` replaced by its checked value.
private func elementOffsets(
    _ indices: TensorView, dataShape: [Int], axis a: Int, op: String
) throws -> [Int] {
    let rank = dataShape.count
    let strides = StridedCopy.contiguousStrides(dataShape)
    let extent = dataShape[a]
    var offsets = [Int](repeating: 0, count: indices.elementCount)
    var index = [Int](repeating: 0, count: rank)
    var base = 0  // data offset of `index` with the axis coordinate left out
    for (n, value) in OperandAccess.integers(indices).enumerated() {
        offsets[n] = base + (try checkedIndex(value, extent: extent, op: op, axis: a)) * strides[a]
        var d = rank - 1
        while d >= 0 {
            index[d] += 1
            if d != a { base += strides[d] }
            if index[d] < indices.shape[d] { break }
            if d != a { base -= strides[d] * indices.shape[d] }
            index[d] = 0
            d -= 1
        }
    }
    return offsets
}

/// Checks that `type` is an int32 or int64 index type.
private func checkIndexType(_ type: DataType, _ op: String, _ what: String = "indices") throws {
    guard type == .int32 || type == .int64 else {
        throw OnyxError.unsupportedDataType("\(op): \(what) must be int32 or int64, found \(type)")
    }
}

/// `x`'s type, or an error if the op does arithmetic or comparisons and `x` is bool.
private func checkNumeric(_ type: DataType, _ op: String) throws {
    guard type != .bool else { throw OnyxError.unsupportedDataType("\(op) does not support bool") }
}

// MARK: - NonZero

package struct NonZeroKernel: Kernel {
    /// Row-major positions of the non-zero elements of `count` elements of `type`.
    private struct Positions: IndexingElementVisitor {
        let data: UnsafeRawPointer
        let count: Int
        func visit<T: IndexingElement>(_: T.Type) -> [Int] {
            let p = data.assumingMemoryBound(to: T.self)
            var result: [Int] = []
            for i in 0..<count where p[i] != T.zeroValue { result.append(i) }
            return result
        }
    }

    private static func positions(_ data: UnsafeRawPointer, _ type: DataType, _ count: Int) throws -> [Int] {
        try type.visitIndexingElement(Positions(data: data, count: count), boolAsByte: true) ?? []
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "NonZero", "X")
        let value = try x.requireConstant(op: "NonZero", what: "X")
        let count = try value.withUnsafeBytes { try Self.positions($0.baseAddress!, value.dataType, value.elementCount).count }
        return [TensorDescriptor(.int64, [max(x.shape.count, 1), count])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let positions = try Self.positions(x.data, x.dataType, x.elementCount)
        let rank = max(x.rank, 1), n = positions.count
        let shape = x.rank == 0 ? [1] : x.shape
        let out = y.pointer(as: Int64.self)
        for (j, position) in positions.enumerated() {
            var rest = position
            for d in stride(from: rank - 1, through: 0, by: -1) {
                out[d * n + j] = Int64(rest % shape[d])
                rest /= shape[d]
            }
        }
    }
}

// MARK: - TopK

package struct TopKKernel: Kernel {
    package let axis: Int
    /// Opset < 10: k is an attribute.
    package let attributeK: Int?
    package let largest: Bool

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "TopK", "X")
        try checkNumeric(x.dataType, "TopK")
        guard x.shape.count > 0 else { throw OnyxError.shapeMismatch("TopK: the input must have rank 1 or more, found a scalar") }
        let a = try normalizedAxis(axis, rank: x.shape.count, op: "TopK")
        let k: Int
        if let attributeK {
            k = attributeK
        } else {
            guard let given = try constantIntegers(OperandAccess.optional(inputs, 1), op: "TopK", what: "K"), given.count == 1 else {
                throw OnyxError.invalidModel("TopK: input 1 (K) must hold one int64 value")
            }
            k = given[0]
        }
        guard k >= 0 && k <= x.shape[a] else {
            throw OnyxError.invalidInput("TopK: k = \(k) is out of range for axis \(a) of extent \(x.shape[a]) (expected 0...\(x.shape[a]))")
        }
        var shape = x.shape
        shape[a] = k
        return [TensorDescriptor(x.dataType, shape), TensorDescriptor(.int64, shape)]
    }

    package func readsData(ofInput index: Int) -> Bool { index == 0 }

    private struct Select: IndexingElementVisitor {
        let x: TensorView, values: TensorView?, indices: TensorView?
        let axis: Int, k: Int, largest: Bool

        func visit<T: IndexingElement>(_: T.Type) {
            let source = x.pointer(as: T.self)
            let n = x.shape[axis]
            let outer = StridedCopy.extentProduct(x.shape, 0..<axis), inner = StridedCopy.extentProduct(x.shape, (axis + 1)..<x.rank)
            var order = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(n, 1))
            defer { order.deallocate() }
            let largest = self.largest
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * n * inner + i
                    // Whether index a comes before index b: ties go to the lower index; NaN counts as the largest value.
                    func before(_ a: Int, _ b: Int) -> Bool {
                        let va = source[base + a * inner], vb = source[base + b * inner]
                        if T.orderedEqual(va, vb) { return a < b }
                        return largest ? T.orderedBefore(vb, va) : T.orderedBefore(va, vb)
                    }
                    if k * 8 < n {
                        Self.selectFirst(k, of: n, into: order, before)
                    } else {
                        for j in 0..<n { order[j] = j }
                        order.sort(by: before)
                    }
                    let outBase = o * k * inner + i
                    for j in 0..<k {
                        values?.pointer(as: T.self)[outBase + j * inner] = source[base + order[j] * inner]
                        indices?.pointer(as: Int64.self)[outBase + j * inner] = Int64(order[j])
                    }
                }
            }
        }

        /// The first `k` of `0..<n` in `before` order, written sorted to `order[0..<k]`: a heap of
        /// the best `k` so far with the worst at its root, so `n` much larger than `k` costs `n log k`.
        private static func selectFirst(
            _ k: Int, of n: Int, into order: UnsafeMutableBufferPointer<Int>, _ before: (Int, Int) -> Bool
        ) {
            guard k > 0 else { return }
            func siftDown(_ start: Int, _ count: Int) {
                var parent = start
                while true {
                    var worst = parent
                    let left = 2 * parent + 1, right = left + 1
                    if left < count && before(order[worst], order[left]) { worst = left }
                    if right < count && before(order[worst], order[right]) { worst = right }
                    if worst == parent { return }
                    order.swapAt(parent, worst)
                    parent = worst
                }
            }
            for j in 0..<k { order[j] = j }
            for p in stride(from: k / 2 - 1, through: 0, by: -1) { siftDown(p, k) }
            for j in k..<n where before(j, order[0]) {
                order[0] = j
                siftDown(0, k)
            }
            var best = UnsafeMutableBufferPointer(rebasing: order[0..<k])
            best.sort(by: before)
        }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!
        let values = context.optionalOutput(0), indices = context.optionalOutput(1)
        guard let shape = values?.shape ?? indices?.shape else { return }
        let a = axis < 0 ? axis + x.rank : axis
        _ = try x.dataType.visitIndexingElement(Select(x: x, values: values, indices: indices, axis: a, k: shape[a], largest: largest))
    }
}

// MARK: - ArgMax, ArgMin

package struct ArgExtremumKernel: Kernel {
    package let largest: Bool
    package let axis: Int
    package let keepDims: Bool
    package let selectLastIndex: Bool

    package init(_ context: NodeContext, largest: Bool, hasSelectLast: Bool) throws {
        self.largest = largest
        self.axis = try context.int("axis", default: 0)
        self.keepDims = try context.int("keepdims", default: 1) != 0
        self.selectLastIndex = hasSelectLast ? try context.int("select_last_index", default: 0) != 0 : false
    }

    private var op: String { largest ? "ArgMax" : "ArgMin" }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, op, "data")
        try checkNumeric(x.dataType, op)
        guard x.shape.count > 0 else { throw OnyxError.shapeMismatch("\(op): the input must have rank 1 or more, found a scalar") }
        let a = try normalizedAxis(axis, rank: x.shape.count, op: op)
        guard x.shape[a] > 0 else { throw OnyxError.shapeMismatch("\(op): axis \(a) of \(shapeText(x.shape)) is empty") }
        var shape = x.shape
        if keepDims { shape[a] = 1 } else { shape.remove(at: a) }
        return [TensorDescriptor(.int64, shape)]
    }

    private struct Search: IndexingElementVisitor {
        let x: TensorView, y: TensorView, axis: Int, largest: Bool, last: Bool

        func visit<T: IndexingElement>(_: T.Type) {
            let source = x.pointer(as: T.self), out = y.pointer(as: Int64.self)
            let n = x.shape[axis]
            let outer = StridedCopy.extentProduct(x.shape, 0..<axis), inner = StridedCopy.extentProduct(x.shape, (axis + 1)..<x.rank)
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * n * inner + i
                    var best = source[base], bestIndex = 0
                    for j in 1..<max(n, 1) {
                        let v = source[base + j * inner]
                        let better = largest ? (last ? v >= best : v > best) : (last ? v <= best : v < best)
                        if better { best = v; bestIndex = j }
                    }
                    out[o * inner + i] = Int64(bestIndex)
                }
            }
        }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!
        let a = axis < 0 ? axis + x.rank : axis
        _ = try x.dataType.visitIndexingElement(Search(x: x, y: context.output(0), axis: a, largest: largest, last: selectLastIndex))
    }
}

// MARK: - CumSum, CumProd

package struct CumulativeKernel: Kernel {
    package let product: Bool
    package let exclusive: Bool
    package let reverse: Bool

    package init(_ context: NodeContext, product: Bool) throws {
        self.product = product
        self.exclusive = try context.int("exclusive", default: 0) != 0
        self.reverse = try context.int("reverse", default: 0) != 0
    }

    private var op: String { product ? "CumProd" : "CumSum" }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, op, "x")
        try checkNumeric(x.dataType, op)
        let axis = try OperandAccess.required(inputs, 1, op, "axis")
        try checkIndexType(axis.dataType, op, "axis")
        guard axis.descriptor.elementCount == 1 else {
            throw OnyxError.invalidInput("\(op): axis must be a scalar, found shape \(shapeText(axis.shape))")
        }
        if let value = axis.constant {
            _ = try normalizedAxis(try constantIntegers(PlannedInput(descriptor: axis.descriptor, constant: value), op: op, what: "axis")![0],
                                   rank: x.shape.count, op: op)
        }
        return [x.descriptor]
    }

    private struct Scan: IndexingElementVisitor {
        let x: TensorView, y: TensorView, axis: Int, product: Bool, exclusive: Bool, reverse: Bool

        func visit<T: IndexingElement>(_: T.Type) {
            let source = x.pointer(as: T.self), out = y.pointer(as: T.self)
            let n = x.rank == 0 ? 1 : x.shape[axis]
            let outer = StridedCopy.extentProduct(x.shape, 0..<min(axis, x.rank)), inner = x.rank == 0 ? 1 : StridedCopy.extentProduct(x.shape, (axis + 1)..<x.rank)
            let identity = product ? Self.one(T.self) : T.zeroValue
            for o in 0..<outer {
                for i in 0..<inner {
                    var acc = identity
                    for step in 0..<n {
                        let j = reverse ? n - 1 - step : step
                        let at = (o * n + j) * inner + i
                        let v = source[at]
                        if exclusive { out[at] = acc }
                        acc = product ? T.product(acc, v) : T.sum(acc, v)
                        if !exclusive { out[at] = acc }
                    }
                }
            }
        }

        /// 1 in `T`, made from bytes so integers and floats share this code.
        private static func one<T: IndexingElement>(_: T.Type) -> T {
            var bits = ElementFill.element(1, as: T.dataType)
            return withUnsafeBytes(of: &bits) { $0.load(as: T.self) }
        }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!
        let given = OperandAccess.integers(context.input(1)!)
        let axis = try normalizedAxis(given.first ?? 0, rank: x.rank, op: op)
        _ = try x.dataType.visitIndexingElement(
            Scan(x: x, y: context.output(0), axis: axis, product: product, exclusive: exclusive, reverse: reverse))
    }
}

// MARK: - GatherElements

package struct GatherElementsKernel: Kernel {
    package let axis: Int

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let data = try OperandAccess.required(inputs, 0, "GatherElements", "data")
        let indices = try OperandAccess.required(inputs, 1, "GatherElements", "indices")
        try checkIndexType(indices.dataType, "GatherElements")
        let rank = data.shape.count
        guard rank >= 1, indices.shape.count == rank else {
            throw OnyxError.shapeMismatch(
                "GatherElements: data \(shapeText(data.shape)) and indices \(shapeText(indices.shape)) must have the same rank ≥ 1")
        }
        let a = try normalizedAxis(axis, rank: rank, op: "GatherElements")
        for d in 0..<rank where d != a && indices.shape[d] > data.shape[d] {
            throw OnyxError.shapeMismatch(
                "GatherElements: indices \(shapeText(indices.shape)) exceed data \(shapeText(data.shape)) on axis \(d)")
        }
        return [TensorDescriptor(data.dataType, indices.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let data = context.input(0)!, indices = context.input(1)!, y = context.output(0)
        let rank = data.rank, a = axis < 0 ? axis + rank : axis
        let width = data.dataType.byteWidth
        let offsets = try elementOffsets(indices, dataShape: data.shape, axis: a, op: "GatherElements")
        for (n, offset) in offsets.enumerated() {
            ElementMove.move(data.data, offset, y.data, n, width: width)
        }
    }
}

// MARK: - GatherND

package struct GatherNDKernel: Kernel {
    package let batchDims: Int

    /// Tuple length `m`, and the element count of the slice each tuple picks.
    private func geometry(data: [Int], indices: [Int]) throws -> (m: Int, slice: Int) {
        let r = data.count, q = indices.count, b = batchDims
        guard r >= 1, q >= 1 else { throw OnyxError.shapeMismatch("GatherND: data and indices must have rank 1 or more") }
        guard b < min(q, r) else {
            throw OnyxError.invalidAttribute("GatherND: batch_dims \(b) must be less than the ranks of data (\(r)) and indices (\(q))")
        }
        guard Array(data[0..<b]) == Array(indices[0..<b]) else {
            throw OnyxError.shapeMismatch(
                "GatherND: the first \(b) axes of data \(shapeText(data)) and indices \(shapeText(indices)) must agree")
        }
        let m = indices[q - 1]
        guard m >= 1 && m <= r - b else {
            throw OnyxError.shapeMismatch("GatherND: indices tuples of length \(m) do not fit data of rank \(r) with batch_dims \(b)")
        }
        return (m, StridedCopy.extentProduct(data, (b + m)..<r))
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let data = try OperandAccess.required(inputs, 0, "GatherND", "data")
        let indices = try OperandAccess.required(inputs, 1, "GatherND", "indices")
        guard indices.dataType == .int64 else {
            throw OnyxError.unsupportedDataType("GatherND: indices must be int64, found \(indices.dataType)")
        }
        let (m, _) = try geometry(data: data.shape, indices: indices.shape)
        let shape = Array(indices.shape.dropLast()) + Array(data.shape[(batchDims + m)...])
        return [TensorDescriptor(data.dataType, shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let data = context.input(0)!, indices = context.input(1)!, y = context.output(0)
        let (m, slice) = try geometry(data: data.shape, indices: indices.shape)
        let b = batchDims, width = data.dataType.byteWidth
        let strides = StridedCopy.contiguousStrides(data.shape)
        let batches = StridedCopy.extentProduct(data.shape, 0..<b)
        let batchStride = StridedCopy.extentProduct(data.shape, b..<data.rank)
        let tuples = StridedCopy.extentProduct(indices.shape, b..<(indices.rank - 1))
        let index = indices.pointer(as: Int64.self)
        let sliceBytes = slice * width
        var out = y.data
        for batch in 0..<batches {
            for t in 0..<tuples {
                let tuple = index + (batch * tuples + t) * m
                var offset = batch * batchStride
                for k in 0..<m {
                    let axis = b + k
                    offset += try checkedIndex(Int(tuple[k]), extent: data.shape[axis], op: "GatherND", axis: axis) * strides[axis]
                }
                out.copyMemory(from: data.data + offset * width, byteCount: sliceBytes)
                out += sliceBytes
            }
        }
    }
}

// MARK: - ScatterElements, Scatter

/// Applies `reduction` to `count` element pairs: `output[targets[n]] ⊕= updates[n]`.
private struct ScatterApply: IndexingElementVisitor {
    let output: UnsafeMutableRawPointer
    let updates: UnsafeRawPointer
    /// Element offsets in `output`, one per update; each `slice` elements long.
    let targets: [Int]
    let slice: Int
    let reduction: ScatterReduction

    func visit<T: IndexingElement>(_: T.Type) {
        let out = output.assumingMemoryBound(to: T.self), source = updates.assumingMemoryBound(to: T.self)
        for (n, target) in targets.enumerated() {
            for e in 0..<slice {
                out[target + e] = reduction.combine(out[target + e], source[n * slice + e])
            }
        }
    }

    /// Runs the reduction, or copies bytes when there is none (every type, bool included).
    static func run(_ apply: ScatterApply, type: DataType, op: String) throws {
        if apply.reduction == .none {
            let width = type.byteWidth, bytes = apply.slice * width
            for (n, target) in apply.targets.enumerated() {
                (apply.output + target * width).copyMemory(from: apply.updates + n * bytes, byteCount: bytes)
            }
            return
        }
        guard try type.visitIndexingElement(apply) != nil else {
            throw OnyxError.unsupportedDataType("\(op): reduction \(apply.reduction.rawValue) does not support \(type)")
        }
    }
}

package struct ScatterElementsKernel: Kernel {
    package let op: String
    package let axis: Int
    package let reduction: ScatterReduction

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let data = try OperandAccess.required(inputs, 0, op, "data")
        let indices = try OperandAccess.required(inputs, 1, op, "indices")
        let updates = try OperandAccess.required(inputs, 2, op, "updates")
        try checkIndexType(indices.dataType, op)
        if reduction != .none { try checkNumeric(data.dataType, op) }
        let rank = data.shape.count
        guard rank >= 1, indices.shape.count == rank, updates.shape == indices.shape, updates.dataType == data.dataType else {
            throw OnyxError.shapeMismatch(
                "\(op): expected data of rank ≥ 1 and indices and updates of one shape and that rank; found data \(data.descriptor), "
                    + "indices \(shapeText(indices.shape)), updates \(updates.descriptor)")
        }
        let a = try normalizedAxis(axis, rank: rank, op: op)
        for d in 0..<rank where d != a && indices.shape[d] > data.shape[d] {
            throw OnyxError.shapeMismatch("\(op): indices \(shapeText(indices.shape)) exceed data \(shapeText(data.shape)) on axis \(d)")
        }
        return [data.descriptor]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let data = context.input(0)!, indices = context.input(1)!, updates = context.input(2)!, y = context.output(0)
        let rank = data.rank, a = axis < 0 ? axis + rank : axis
        let targets = try elementOffsets(indices, dataShape: data.shape, axis: a, op: op)
        if y.data != data.data { y.data.copyMemory(from: data.data, byteCount: y.byteCount) }
        try ScatterApply.run(
            ScatterApply(output: y.data, updates: updates.data, targets: targets, slice: 1, reduction: reduction),
            type: data.dataType, op: op)
    }
}

// MARK: - ScatterND

package struct ScatterNDKernel: Kernel {
    package let reduction: ScatterReduction

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let data = try OperandAccess.required(inputs, 0, "ScatterND", "data")
        let indices = try OperandAccess.required(inputs, 1, "ScatterND", "indices")
        let updates = try OperandAccess.required(inputs, 2, "ScatterND", "updates")
        guard indices.dataType == .int64 else {
            throw OnyxError.unsupportedDataType("ScatterND: indices must be int64, found \(indices.dataType)")
        }
        if reduction != .none { try checkNumeric(data.dataType, "ScatterND") }
        guard updates.dataType == data.dataType else {
            throw OnyxError.unsupportedDataType("ScatterND: updates are \(updates.dataType); expected \(data.dataType) like data")
        }
        guard let m = indices.shape.last, data.shape.count >= 1, m <= data.shape.count else {
            throw OnyxError.shapeMismatch(
                "ScatterND: indices \(shapeText(indices.shape)) do not index data \(shapeText(data.shape))")
        }
        let expected = Array(indices.shape.dropLast()) + Array(data.shape[m...])
        guard updates.shape == expected else {
            throw OnyxError.shapeMismatch("ScatterND: updates have shape \(shapeText(updates.shape)); expected \(shapeText(expected))")
        }
        return [data.descriptor]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let data = context.input(0)!, indices = context.input(1)!, updates = context.input(2)!, y = context.output(0)
        let m = indices.shape[indices.rank - 1]
        let strides = StridedCopy.contiguousStrides(data.shape)
        let tuples = StridedCopy.extentProduct(indices.shape, 0..<(indices.rank - 1))
        let index = indices.pointer(as: Int64.self)
        var targets = [Int](repeating: 0, count: tuples)
        for t in 0..<tuples {
            var offset = 0
            for k in 0..<m {
                offset += try checkedIndex(Int(index[t * m + k]), extent: data.shape[k], op: "ScatterND", axis: k) * strides[k]
            }
            targets[t] = offset
        }
        if y.data != data.data { y.data.copyMemory(from: data.data, byteCount: y.byteCount) }
        try ScatterApply.run(
            ScatterApply(output: y.data, updates: updates.data, targets: targets,
                         slice: StridedCopy.extentProduct(data.shape, m..<data.rank), reduction: reduction),
            type: data.dataType, op: "ScatterND")
    }
}

// MARK: - OneHot

package struct OneHotKernel: Kernel {
    package let axis: Int

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let indices = try OperandAccess.required(inputs, 0, "OneHot", "indices")
        let depthInput = try OperandAccess.required(inputs, 1, "OneHot", "depth")
        let values = try OperandAccess.required(inputs, 2, "OneHot", "values")
        try checkNumeric(indices.dataType, "OneHot")
        try checkNumeric(depthInput.dataType, "OneHot")
        guard values.shape == [2] else {
            throw OnyxError.shapeMismatch("OneHot: values must have shape [2] (off, on), found \(shapeText(values.shape))")
        }
        guard depthInput.descriptor.elementCount == 1 else {
            throw OnyxError.invalidInput("OneHot: depth must hold one value, found shape \(shapeText(depthInput.shape))")
        }
        let depth = Self.integers(try depthInput.requireConstant(op: "OneHot", what: "depth"))[0]
        guard depth >= 0 else { throw OnyxError.invalidInput("OneHot: depth \(depth) is negative") }
        let rank = indices.shape.count + 1
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else {
            throw OnyxError.invalidAttribute("OneHot: axis \(axis) is out of range for output rank \(rank) (expected \(-rank)...\(rank - 1))")
        }
        var shape = indices.shape
        shape.insert(depth, at: a)
        return [TensorDescriptor(values.dataType, shape)]
    }

    /// Depth only sets the output shape; a run reads it from there.
    package func readsData(ofInput index: Int) -> Bool { index != 1 }

    /// The values of a numeric tensor as integers (floats truncate toward zero).
    private static func integers(_ t: Tensor) -> [Int] {
        var result = [Int64](repeating: 0, count: t.elementCount)
        t.withUnsafeBytes { bytes in
            result.withUnsafeMutableBytes { Casting.convert(bytes.baseAddress!, from: t.dataType, to: $0.baseAddress!, .int64, count: t.elementCount) }
        }
        return result.map { Int($0) }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let indices = context.input(0)!, values = context.input(2)!, y = context.output(0)
        let rank = y.rank, a = axis < 0 ? axis + rank : axis
        let depth = y.shape[a], width = y.dataType.byteWidth
        ElementFill.fill(y.data, count: y.elementCount, value: values.data, width: width)
        let count = indices.elementCount
        var positions = [Int64](repeating: 0, count: count)
        positions.withUnsafeMutableBytes {
            Casting.convert(indices.data, from: indices.dataType, to: $0.baseAddress!, .int64, count: count)
        }
        let inner = StridedCopy.extentProduct(indices.shape, a..<indices.rank)
        for (n, raw) in positions.enumerated() {
            var i = Int(raw)
            if i < 0 { i += depth }
            guard i >= 0 && i < depth else { continue }  // out of range: all "off", as the spec says
            let o = n / inner, r = n % inner
            ElementMove.move(values.data, 1, y.data, (o * depth + i) * inner + r, width: width)
        }
    }
}

// MARK: - Compress

package struct CompressKernel: Kernel {
    /// `nil` compresses the flattened input.
    package let axis: Int?

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "Compress", "input")
        let condition = try OperandAccess.required(inputs, 1, "Compress", "condition")
        guard condition.dataType == .bool, condition.shape.count == 1 else {
            throw OnyxError.invalidInput("Compress: condition must be a 1-D bool tensor, found \(condition.descriptor)")
        }
        let flags = try condition.requireConstant(op: "Compress", what: "condition").scalars(as: Bool.self)
        let extent: Int
        var shape: [Int]
        var a = 0
        if let axis {
            guard x.shape.count > 0 else { throw OnyxError.shapeMismatch("Compress: cannot compress a scalar along an axis") }
            a = try normalizedAxis(axis, rank: x.shape.count, op: "Compress")
            extent = x.shape[a]
            shape = x.shape
        } else {
            extent = x.descriptor.elementCount
            shape = [extent]
        }
        guard flags.count <= extent else {
            throw OnyxError.invalidInput("Compress: condition has \(flags.count) values but the axis has \(extent) elements")
        }
        shape[a] = flags.filter { $0 }.count
        return [TensorDescriptor(x.dataType, shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, condition = context.input(1)!, y = context.output(0)
        let flags = condition.data.assumingMemoryBound(to: UInt8.self)
        let width = x.dataType.byteWidth
        let a = axis.map { $0 < 0 ? $0 + x.rank : $0 }
        let extent = a.map { x.shape[$0] } ?? x.elementCount
        let outer = a.map { StridedCopy.extentProduct(x.shape, 0..<$0) } ?? 1
        let inner = (a.map { StridedCopy.extentProduct(x.shape, ($0 + 1)..<x.rank) } ?? 1) * width
        var out = y.data
        for o in 0..<outer {
            for j in 0..<min(condition.elementCount, extent) where flags[j] != 0 {
                out.copyMemory(from: x.data + (o * extent + j) * inner, byteCount: inner)
                out += inner
            }
        }
    }
}

// MARK: - Unique

package struct UniqueKernel: Kernel {
    /// `nil` finds unique elements of the flattened input; otherwise unique slices along the axis.
    package let axis: Int?
    package let sorted: Bool

    /// The unique slices, in output order.
    package struct Groups {
        /// Index of each group's first occurrence.
        package var first: [Int]
        package var counts: [Int]
        /// For each input slice, the position of its group in the output.
        package var inverse: [Int]
    }

    /// Finds the groups of equal slices: `count` slices, slice `j` being the `outer × inner`
    /// elements at `(o · count + j) · inner + i`.
    private struct Grouping: IndexingElementVisitor {
        let data: UnsafeRawPointer
        let outer: Int, count: Int, inner: Int
        let sorted: Bool

        func visit<T: IndexingElement>(_: T.Type) -> Groups {
            let p = data.assumingMemoryBound(to: T.self)
            let (outer, count, inner) = (self.outer, self.count, self.inner)
            /// -1, 0 or 1 comparing slices a and b lexicographically.
            func compare(_ a: Int, _ b: Int) -> Int {
                for o in 0..<outer {
                    for i in 0..<inner {
                        let va = p[(o * count + a) * inner + i], vb = p[(o * count + b) * inner + i]
                        if T.orderedEqual(va, vb) { continue }
                        return T.orderedBefore(va, vb) ? -1 : 1
                    }
                }
                return 0
            }
            // Sorting by (slice, index) keeps each group's first occurrence at its front.
            let order = (0..<count).sorted { a, b in
                let c = compare(a, b)
                return c != 0 ? c < 0 : a < b
            }
            var first: [Int] = [], counts: [Int] = []
            var group = [Int](repeating: 0, count: count)
            for (position, j) in order.enumerated() {
                if position == 0 || compare(order[position - 1], j) != 0 {
                    first.append(j)
                    counts.append(0)
                }
                group[j] = first.count - 1
                counts[counts.count - 1] += 1
            }
            if !sorted {
                // Groups by first occurrence instead.
                let byFirst = first.indices.sorted { first[$0] < first[$1] }
                var rank = [Int](repeating: 0, count: first.count)
                for (r, g) in byFirst.enumerated() { rank[g] = r }
                return Groups(first: byFirst.map { first[$0] }, counts: byFirst.map { counts[$0] }, inverse: group.map { rank[$0] })
            }
            return Groups(first: first, counts: counts, inverse: group)
        }
    }

    /// `(outer, count, inner)` for `shape`.
    private func layout(_ shape: [Int]) throws -> (Int, Int, Int) {
        guard let axis else { return (1, shape.reduce(1, *), 1) }
        guard shape.count > 0 else { throw OnyxError.shapeMismatch("Unique: cannot take unique slices of a scalar") }
        let a = try normalizedAxis(axis, rank: shape.count, op: "Unique")
        return (StridedCopy.extentProduct(shape, 0..<a), shape[a], StridedCopy.extentProduct(shape, (a + 1)..<shape.count))
    }

    private func groups(_ data: UnsafeRawPointer, _ type: DataType, _ shape: [Int]) throws -> Groups {
        let (outer, count, inner) = try layout(shape)
        guard let groups = try type.visitIndexingElement(
            Grouping(data: data, outer: outer, count: count, inner: inner, sorted: sorted), boolAsByte: true)
        else { throw OnyxError.unsupportedDataType("Unique does not support \(type)") }
        return groups
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try OperandAccess.required(inputs, 0, "Unique", "X")
        let value = try x.requireConstant(op: "Unique", what: "X")
        let (_, count, _) = try layout(x.shape)
        let groups = try value.withUnsafeBytes { try self.groups($0.baseAddress!, x.dataType, x.shape) }
        let u = groups.first.count
        var shape = [u]
        if let axis {
            shape = x.shape
            shape[try normalizedAxis(axis, rank: x.shape.count, op: "Unique")] = u
        }
        return [
            TensorDescriptor(x.dataType, shape), TensorDescriptor(.int64, [u]),
            TensorDescriptor(.int64, [count]), TensorDescriptor(.int64, [u]),
        ]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!
        let groups = try groups(x.data, x.dataType, x.shape)
        let (outer, count, inner) = try layout(x.shape)
        let u = groups.first.count, bytes = inner * x.dataType.byteWidth
        if let y = context.optionalOutput(0) {
            for o in 0..<outer {
                for (g, j) in groups.first.enumerated() {
                    (y.data + (o * u + g) * bytes).copyMemory(from: x.data + (o * count + j) * bytes, byteCount: bytes)
                }
            }
        }
        for (output, values) in [(1, groups.first), (2, groups.inverse), (3, groups.counts)] {
            guard let view = context.optionalOutput(output) else { continue }
            let out = view.pointer(as: Int64.self)
            for (n, v) in values.enumerated() { out[n] = Int64(v) }
        }
    }
}
