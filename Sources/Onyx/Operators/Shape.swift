extension OperatorRegistry {
    static let shapeOperators: [OperatorRegistration] = [
        OperatorRegistration("Shape") { context in
            ShapeKernel(start: try context.int("start", default: 0), end: try context.int("end"))
        },
        OperatorRegistration("Reshape", versions: 1...4) { context in
            guard let shape = try context.ints("shape") else { throw context.attributeError("missing 'shape'") }
            return ReshapeKernel(attributeShape: shape, allowZero: false)
        },
        OperatorRegistration("Reshape", versions: 5...Int.max) { context in
            ReshapeKernel(attributeShape: nil, allowZero: try context.int("allowzero", default: 0) != 0)
        },
        OperatorRegistration("Flatten") { context in FlattenKernel(axis: try context.int("axis", default: 1)) },
        OperatorRegistration("Squeeze", versions: 1...12) { context in SqueezeKernel(attributeAxes: try context.ints("axes"), fromInput: false) },
        OperatorRegistration("Squeeze", versions: 13...Int.max) { _ in SqueezeKernel(attributeAxes: nil, fromInput: true) },
        OperatorRegistration("Unsqueeze", versions: 1...12) { context in
            guard let axes = try context.ints("axes") else { throw context.attributeError("missing 'axes'") }
            return UnsqueezeKernel(attributeAxes: axes)
        },
        OperatorRegistration("Unsqueeze", versions: 13...Int.max) { _ in UnsqueezeKernel(attributeAxes: nil) },
        OperatorRegistration("Concat") { context in
            guard let axis = try context.int("axis") else { throw context.attributeError("missing 'axis'") }
            return ConcatKernel(axis: axis)
        },
        OperatorRegistration("Transpose") { context in TransposePermKernel(perm: try context.ints("perm")) },
        OperatorRegistration("Gather") { context in GatherKernel(axis: try context.int("axis", default: 0)) },
    ]
}

/// Normalises a possibly negative axis against `rank`, or throws naming the op.
func normalizedAxis(_ axis: Int, rank: Int, op: String) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < max(rank, 1) else {
        throw OnyxError.invalidAttribute("\(op): axis \(axis) is out of range for rank \(rank)")
    }
    return a
}

/// Reads a constant int64 (or int32) tensor known at plan time.
func constantIntegers(_ input: PlannedInput?, op: String, what: String) throws -> [Int]? {
    guard let input else { return nil }
    guard let value = input.constant else {
        throw OnyxError.shapeMismatch("\(op): the \(what) input must be computable when the session plans; it depends on input data")
    }
    switch value.dataType {
    case .int64: return try value.scalars(as: Int64.self).map(Int.init)
    case .int32: return try value.scalars(as: Int32.self).map(Int.init)
    default: throw OnyxError.unsupportedDataType("\(op): \(what) must be int64, got \(value.dataType)")
    }
}

/// Copies input 0 to output 0 unless the planner made them the same bytes.
func copyIfDistinct(_ context: borrowing KernelContext) {
    let x = context.input(0)!, y = context.output(0)
    if x.data != y.data { y.data.copyMemory(from: x.data, byteCount: y.byteCount) }
}

struct ShapeKernel: Kernel {
    let start: Int
    let end: Int?

    private func range(_ rank: Int) -> Range<Int> {
        func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + rank : v, 0), rank) }
        let s = clamp(start), e = clamp(end ?? rank)
        return s..<max(s, e)
    }

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Shape takes one input") }
        return [TensorDescriptor(.int64, [range(x.shape.count).count])]
    }

    func readsData(ofInput index: Int) -> Bool { false }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0).pointer(as: Int64.self)
        for (i, axis) in range(x.rank).enumerated() { y[i] = Int64(x.shape[axis]) }
    }
}

struct ReshapeKernel: Kernel {
    let attributeShape: [Int]?
    let allowZero: Bool

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Reshape takes data and shape") }
        let requested: [Int]
        if let attributeShape {
            requested = attributeShape
        } else {
            guard inputs.count > 1, let target = try constantIntegers(inputs[1], op: "Reshape", what: "shape") else {
                throw OnyxError.invalidModel("Reshape takes data and shape")
            }
            requested = target
        }
        var shape = requested
        var inferred: Int?
        for (i, extent) in requested.enumerated() {
            if extent == 0 && !allowZero {
                guard i < x.shape.count else {
                    throw OnyxError.shapeMismatch("Reshape: shape \(requested) copies axis \(i) but the input \(x.shape) has rank \(x.shape.count)")
                }
                shape[i] = x.shape[i]
            } else if extent == -1 {
                guard inferred == nil else { throw OnyxError.shapeMismatch("Reshape: shape \(requested) has more than one -1") }
                inferred = i
            } else if extent < -1 {
                throw OnyxError.shapeMismatch("Reshape: shape \(requested) has a negative extent")
            }
        }
        let count = x.descriptor.elementCount
        if let i = inferred {
            let known = shape.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            guard known > 0, count % known == 0 else {
                throw OnyxError.shapeMismatch("Reshape: cannot reshape \(x.shape) (\(count) elements) to \(requested)")
            }
            shape[i] = count / known
        }
        guard try Tensor.checkedElementCount(shape) == count else {
            throw OnyxError.shapeMismatch("Reshape: cannot reshape \(x.shape) (\(count) elements) to \(requested)")
        }
        return [TensorDescriptor(x.dataType, shape)]
    }

    func readsData(ofInput index: Int) -> Bool { index == 0 }
    var aliasing: KernelAliasing { .view(input: 0) }
    func run(_ context: borrowing KernelContext) throws { copyIfDistinct(context) }
}

struct FlattenKernel: Kernel {
    let axis: Int

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Flatten takes one input") }
        let rank = x.shape.count
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a <= rank else { throw OnyxError.invalidAttribute("Flatten: axis \(axis) is out of range for rank \(rank)") }
        let outer = x.shape[0..<a].reduce(1, *), inner = x.shape[a...].reduce(1, *)
        return [TensorDescriptor(x.dataType, [outer, inner])]
    }

    var aliasing: KernelAliasing { .view(input: 0) }
    func run(_ context: borrowing KernelContext) throws { copyIfDistinct(context) }
}

struct SqueezeKernel: Kernel {
    let attributeAxes: [Int]?
    let fromInput: Bool

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Squeeze takes data") }
        let rank = x.shape.count
        let axes = fromInput ? try constantIntegers(inputs.count > 1 ? inputs[1] : nil, op: "Squeeze", what: "axes") : attributeAxes
        var shape: [Int] = []
        if let axes {
            let normalized = try Set(axes.map { try normalizedAxis($0, rank: rank, op: "Squeeze") })
            for (i, extent) in x.shape.enumerated() {
                if normalized.contains(i) {
                    guard extent == 1 else { throw OnyxError.shapeMismatch("Squeeze: axis \(i) of \(x.shape) is \(extent), not 1") }
                } else {
                    shape.append(extent)
                }
            }
        } else {
            shape = x.shape.filter { $0 != 1 }
        }
        return [TensorDescriptor(x.dataType, shape)]
    }

    func readsData(ofInput index: Int) -> Bool { index == 0 }
    var aliasing: KernelAliasing { .view(input: 0) }
    func run(_ context: borrowing KernelContext) throws { copyIfDistinct(context) }
}

struct UnsqueezeKernel: Kernel {
    let attributeAxes: [Int]?

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Unsqueeze takes data") }
        guard let axes = try attributeAxes ?? constantIntegers(inputs.count > 1 ? inputs[1] : nil, op: "Unsqueeze", what: "axes") else {
            throw OnyxError.invalidModel("Unsqueeze needs axes")
        }
        let rank = x.shape.count + axes.count
        let normalized = try axes.map { try normalizedAxis($0, rank: rank, op: "Unsqueeze") }
        guard Set(normalized).count == normalized.count else {
            throw OnyxError.invalidAttribute("Unsqueeze: axes \(axes) repeat an axis")
        }
        var shape: [Int] = []
        var source = x.shape.makeIterator()
        for i in 0..<rank { shape.append(normalized.contains(i) ? 1 : source.next()!) }
        return [TensorDescriptor(x.dataType, shape)]
    }

    func readsData(ofInput index: Int) -> Bool { index == 0 }
    var aliasing: KernelAliasing { .view(input: 0) }
    func run(_ context: borrowing KernelContext) throws { copyIfDistinct(context) }
}

struct ConcatKernel: Kernel {
    let axis: Int

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let present = inputs.compactMap { $0 }
        guard let first = present.first else { throw OnyxError.invalidModel("Concat takes at least one input") }
        let rank = first.shape.count
        let a = try normalizedAxis(axis, rank: rank, op: "Concat")
        var shape = first.shape
        shape[a] = 0
        for input in present {
            guard input.dataType == first.dataType else {
                throw OnyxError.unsupportedDataType("Concat: inputs mix \(first.dataType) and \(input.dataType)")
            }
            guard input.shape.count == rank,
                  zip(input.shape, first.shape).enumerated().allSatisfy({ $0.offset == a || $0.element.0 == $0.element.1 })
            else {
                throw OnyxError.shapeMismatch("Concat: shape \(input.shape) does not match \(first.shape) off axis \(a)")
            }
            shape[a] += input.shape[a]
        }
        return [TensorDescriptor(first.dataType, shape)]
    }

    func run(_ context: borrowing KernelContext) throws {
        let y = context.output(0)
        let a = try normalizedAxis(axis, rank: y.rank, op: "Concat")
        let width = y.dataType.byteWidth
        let outer = y.shape[0..<a].reduce(1, *)
        let inner = y.shape[(a + 1)...].reduce(1, *) * width
        let rowBytes = y.shape[a] * inner
        var offset = 0
        for i in 0..<context.inputCount {
            guard let x = context.input(i) else { continue }
            let chunk = x.shape[a] * inner
            for o in 0..<outer {
                (y.data + o * rowBytes + offset).copyMemory(from: x.data + o * chunk, byteCount: chunk)
            }
            offset += chunk
        }
    }
}

struct TransposePermKernel: Kernel {
    let perm: [Int]?

    private func permutation(_ rank: Int) throws -> [Int] {
        let p = perm ?? Array((0..<rank).reversed())
        guard p.count == rank, Set(p) == Set(0..<rank) else {
            throw OnyxError.invalidAttribute("Transpose: perm \(p) is not a permutation of \(rank) axes")
        }
        return p
    }

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Transpose takes one input") }
        let p = try permutation(x.shape.count)
        return [TensorDescriptor(x.dataType, p.map { x.shape[$0] })]
    }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        TransposeKernel.permute(x.data, y.data, shape: x.shape, perm: try permutation(x.rank), width: x.dataType.byteWidth)
    }
}

struct GatherKernel: Kernel {
    let axis: Int

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 2, let data = inputs[0], let indices = inputs[1] else {
            throw OnyxError.invalidModel("Gather takes data and indices")
        }
        guard indices.dataType == .int64 || indices.dataType == .int32 else {
            throw OnyxError.unsupportedDataType("Gather: indices must be int32 or int64, got \(indices.dataType)")
        }
        let a = try normalizedAxis(axis, rank: data.shape.count, op: "Gather")
        return [TensorDescriptor(data.dataType, Array(data.shape[0..<a]) + indices.shape + Array(data.shape[(a + 1)...]))]
    }

    func run(_ context: borrowing KernelContext) throws {
        let data = context.input(0)!, indices = context.input(1)!, y = context.output(0)
        let a = try normalizedAxis(axis, rank: data.rank, op: "Gather")
        let width = data.dataType.byteWidth
        let outer = data.shape[0..<a].reduce(1, *)
        let extent = data.shape[a]
        let inner = data.shape[(a + 1)...].reduce(1, *) * width
        let count = indices.elementCount
        var resolved = [Int](repeating: 0, count: count)
        for i in 0..<count {
            var index = indices.dataType == .int64 ? Int(indices.pointer(as: Int64.self)[i]) : Int(indices.pointer(as: Int32.self)[i])
            if index < 0 { index += extent }
            guard index >= 0 && index < extent else {
                throw OnyxError(.invalidInput, "Gather: index \(index < 0 ? index - extent : index) is out of range for axis \(a) of extent \(extent)")
            }
            resolved[i] = index
        }
        var out = y.data
        for o in 0..<outer {
            let base = data.data + o * extent * inner
            for i in 0..<count {
                out.copyMemory(from: base + resolved[i] * inner, byteCount: inner)
                out += inner
            }
        }
    }
}
