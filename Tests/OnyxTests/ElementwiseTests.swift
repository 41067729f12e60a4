import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Add, Sub, Mul, Div, Relu and Clip against naive references and hand-computed values.
@Suite struct ElementwiseTests {
    // MARK: - Helpers

    static func run(
        _ op: String, opset: Int = 17, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:],
        isa: KernelISA = .preferred, threads: Int = 1
    ) throws -> Tensor {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: ["y"], attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs, isa: isa, threads: threads)[0]
    }

    static func f(_ shape: [Int], _ values: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: values) }

    /// Deterministic values in about −11…11, never 0 when `nonZero`.
    static func values(_ count: Int, seed: Int, nonZero: Bool = false) -> [Int] {
        (0..<count).map { i in
            let v = (i * 7919 + seed * 104729) % 23 - 11
            return nonZero && v == 0 ? 5 : v
        }
    }

    static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
        let rank = max(a.count, b.count)
        let pa = Array(repeating: 1, count: rank - a.count) + a, pb = Array(repeating: 1, count: rank - b.count) + b
        return zip(pa, pb).map { $0 == 1 ? $1 : $0 }
    }

    /// The element of a tensor of `shape` that output index `index` (in `outShape`) reads.
    static func sourceOffset(_ index: [Int], _ shape: [Int], _ outShape: [Int]) -> Int {
        let lead = outShape.count - shape.count
        var offset = 0
        for axis in 0..<shape.count {
            offset = offset * shape[axis] + (shape[axis] == 1 ? 0 : index[axis + lead])
        }
        return offset
    }

    /// Naive broadcasting: `f(a[...], b[...])` for every output index.
    static func reference<T>(_ a: [T], _ sa: [Int], _ b: [T], _ sb: [Int], _ f: (T, T) -> T) -> [T] {
        let out = broadcastShape(sa, sb)
        let count = out.reduce(1, *)
        var result: [T] = []
        for linear in 0..<count {
            var index = [Int](repeating: 0, count: out.count)
            var rest = linear
            for axis in (0..<out.count).reversed() {
                index[axis] = rest % out[axis]
                rest /= out[axis]
            }
            result.append(f(a[sourceOffset(index, sa, out)], b[sourceOffset(index, sb, out)]))
        }
        return result
    }

    /// Runs `kernel` with output 0 written over input 0's buffer, as the planner does in place.
    static func runInPlace(_ op: String, opset: Int = 17, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:]) throws -> Tensor {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: ["y"], attributes: attributes)
        let registration = try #require(OperatorRegistry.registration(domain: "", opType: op, opset: opset))
        let kernel = try registration.make(NodeContext(node: node, opset: opset, constantInputs: inputs, isa: .preferred))
        #expect(kernel.aliasing == .inPlace(input: 0))
        let planned = inputs.map { $0.map { PlannedInput(descriptor: TensorDescriptor($0.dataType, $0.shape), constant: nil) } }
        let descriptor = try kernel.outputDescriptors(for: planned)[0]
        var buffer = try #require(inputs[0])
        #expect(descriptor.byteCount == buffer.byteCount)
        buffer = Tensor(dataType: buffer.dataType, shape: buffer.shape, storage: TensorStorage(copying: buffer.withUnsafeBytes { $0 }))
        let views: [TensorView?] = inputs.enumerated().map { i, t in
            t.map { TensorView(dataType: $0.dataType, shape: $0.shape, data: i == 0 ? buffer.baseAddress : $0.baseAddress) }
        }
        let outputs: [TensorView?] = [TensorView(dataType: descriptor.dataType, shape: descriptor.shape, data: buffer.baseAddress)]
        try withExtendedLifetime((inputs, buffer)) {
            try views.withUnsafeBufferPointer { inputBuffer in
                try outputs.withUnsafeBufferPointer { outputBuffer in
                    try kernel.run(KernelContext(inputs: inputBuffer, outputs: outputBuffer, workspace: nil, pool: ComputePool(threadCount: 1)))
                }
            }
        }
        return try buffer.reshaped(descriptor.shape)
    }

    // MARK: - Broadcasting shapes

    @Test func broadcastShapes() throws {
        #expect(try Broadcasting.shape([2, 3], [3], op: "Add") == [2, 3])
        #expect(try Broadcasting.shape([], [4, 1], op: "Add") == [4, 1])
        #expect(try Broadcasting.shape([3, 1], [1, 4], op: "Add") == [3, 4])
        #expect(try Broadcasting.shape([8, 1, 6, 1], [7, 1, 5], op: "Add") == [8, 7, 6, 5])
        #expect(try Broadcasting.shape([0, 3], [1, 3], op: "Add") == [0, 3])
        let error = #expect(throws: OnyxError.self) { try Broadcasting.shape([2, 3], [4], op: "Add") }
        #expect(error?.code == .shapeMismatch)
        #expect(error?.message == "Add: shapes [2, 3] and [4] are not broadcastable")
        #expect(try OnyxKernels.broadcastShapes([5, 1, 7], [1, 6, 1]) == [5, 6, 7])
        let plain = #expect(throws: OnyxError.self) { try OnyxKernels.broadcastShapes([3], [2, 4]) }
        #expect(plain?.message == "shapes [3] and [2, 4] are not broadcastable")
    }

    /// Shape pairs covering each fast path and the general walk.
    static let shapePairs: [([Int], [Int])] = [
        ([2, 3], [2, 3]),                // same shape
        ([], [2, 3]), ([2, 3], []),      // scalar either side
        ([1], [7, 17]),                  // one-element tensor
        ([3, 4], [4]),                   // row vector
        ([3, 4], [3, 1]), ([3, 1], [3, 4]), // column either side
        ([2, 3, 5, 7], [3, 1, 1]),       // per-channel bias
        ([1, 3, 1, 1], [2, 3, 5, 7]),    // per-channel on the left
        ([2, 3, 5, 7], [2, 3, 1, 1]),    // per-image-channel (squeeze-excitation)
        ([3, 1], [1, 4]),                // outer product
        ([2, 1, 3], [2, 1]),             // rank-different, both sides broadcast
        ([5, 1, 7], [1, 6, 1]),
        ([1, 7, 1, 17], [3, 1, 63, 1]),
        ([2, 3, 4, 5], [2, 1, 4, 1]),
        ([257], [257]), ([1, 257], [63, 1]),
        ([0, 3], [3]),                   // empty
    ]

    @Test(arguments: shapePairs)
    func floatArithmeticMatchesReference(_ shapes: ([Int], [Int])) throws {
        let (sa, sb) = shapes
        let a = Self.values(sa.reduce(1, *), seed: 1).map(Float.init)
        let b = Self.values(sb.reduce(1, *), seed: 2, nonZero: true).map(Float.init)
        let ops: [(String, (Float, Float) -> Float)] = [("Add", { $0 + $1 }), ("Sub", { $0 - $1 }), ("Mul", { $0 * $1 }), ("Div", { $0 / $1 })]
        for (op, f) in ops {
            let y = try Self.run(op, [Self.f(sa, a), Self.f(sb, b)])
            #expect(y.shape == Self.broadcastShape(sa, sb))
            #expect(try y.scalars(as: Float.self) == Self.reference(a, sa, b, sb, f), "\(op) \(sa) \(sb)")
        }
    }

    @Test(arguments: shapePairs)
    func integerAndDoubleArithmeticMatchesReference(_ shapes: ([Int], [Int])) throws {
        let (sa, sb) = shapes
        let a = Self.values(sa.reduce(1, *), seed: 3), b = Self.values(sb.reduce(1, *), seed: 4, nonZero: true)
        let ops: [(String, (Int, Int) -> Int)] = [("Add", { $0 + $1 }), ("Sub", { $0 - $1 }), ("Mul", { $0 * $1 }), ("Div", { $0 / $1 })]
        for (op, f) in ops {
            let expected = Self.reference(a, sa, b, sb, f)
            let y64 = try Self.run(op, [try Tensor(shape: sa, scalars: a.map(Int64.init)), try Tensor(shape: sb, scalars: b.map(Int64.init))])
            #expect(try y64.scalars(as: Int64.self) == expected.map(Int64.init), "\(op) int64 \(sa) \(sb)")
            let y32 = try Self.run(op, [try Tensor(shape: sa, scalars: a.map(Int32.init)), try Tensor(shape: sb, scalars: b.map(Int32.init))])
            #expect(try y32.scalars(as: Int32.self) == expected.map(Int32.init), "\(op) int32 \(sa) \(sb)")
        }
        let yd = try Self.run("Div", [try Tensor(shape: sa, scalars: a.map(Double.init)), try Tensor(shape: sb, scalars: b.map(Double.init))])
        #expect(try yd.scalars(as: Double.self) == Self.reference(a.map(Double.init), sa, b.map(Double.init), sb) { $0 / $1 })
    }

    /// Big enough to split across threads (above `ElementwiseLoops.parallelThreshold`), including
    /// splits that cut rows in the middle.
    @Test(arguments: [([2, 300_007], [300_007]), ([3, 1], [1, 200_003]), ([(1 << 19) + 5], []), ([4, 3, 211, 211], [3, 1, 1]),
                      ([700, 1, 3], [1, 300, 1])])
    func largeTensorsSplitAcrossThreads(_ shapes: ([Int], [Int])) throws {
        let (sa, sb) = shapes
        let a = Self.values(sa.reduce(1, *), seed: 5).map(Float.init)
        let b = Self.values(sb.reduce(1, *), seed: 6).map(Float.init)
        let y = try Self.run("Sub", [Self.f(sa, a), Self.f(sb, b)], threads: 2)
        #expect(try y.scalars(as: Float.self) == Self.reference(a, sa, b, sb) { $0 - $1 })
    }

    @Test func inPlaceBinaryOperations() throws {
        for (sa, sb) in [([2, 3, 5, 7], [2, 3, 5, 7]), ([2, 3, 5, 7], [3, 1, 1]), ([4, 9], [9]), ([4, 9], [4, 1]), ([33], [])] {
            let a = Self.values(sa.reduce(1, *), seed: 7).map(Float.init), b = Self.values(sb.reduce(1, *), seed: 8).map(Float.init)
            let y = try Self.runInPlace("Mul", [Self.f(sa, a), Self.f(sb, b)])
            #expect(try y.scalars(as: Float.self) == Self.reference(a, sa, b, sb) { $0 * $1 }, "\(sa) \(sb)")
        }
        // x + x, one buffer read twice and written.
        let x = Self.f([19], (0..<19).map(Float.init))
        let y = try Self.runInPlace("Add", [x, x])
        #expect(try y.scalars(as: Float.self) == (0..<19).map { Float(2 * $0) })
    }

    // MARK: - Integer semantics

    @Test func integerDivisionTruncatesTowardZero() throws {
        let a = try Tensor(shape: [6], scalars: [7, -7, 7, -7, Int64.min, 5] as [Int64])
        let b = try Tensor(shape: [6], scalars: [2, 2, -2, -2, -1, 7] as [Int64])
        #expect(try Self.run("Div", [a, b]).scalars(as: Int64.self) == [3, -3, -3, 3, Int64.min, 0])
        let u = try Self.run("Div", [try Tensor(shape: [3], scalars: [200, 9, 255] as [UInt8]), Tensor(scalar: UInt8(4))])
        #expect(try u.scalars(as: UInt8.self) == [50, 2, 63])
    }

    @Test func integerDivisionByZeroIsAnError() throws {
        let a = try Tensor(shape: [3], scalars: [1, 2, 3] as [Int32])
        let error = #expect(throws: OnyxError.self) {
            try Self.run("Div", [a, try Tensor(shape: [3], scalars: [1, 0, 1] as [Int32])])
        }
        #expect(error?.code == .invalidInput)
        #expect(error?.message.contains("division by zero") == true)
    }

    @Test func integerArithmeticWraps() throws {
        let a = try Tensor(shape: [2], scalars: [Int32.max, Int32.min] as [Int32])
        #expect(try Self.run("Add", [a, Tensor(scalar: Int32(1))]).scalars(as: Int32.self) == [Int32.min, Int32.min + 1])
        #expect(try Self.run("Mul", [a, Tensor(scalar: Int32(2))]).scalars(as: Int32.self) == [-2, 0])
    }

    /// The shape arithmetic of exported models: `Shape → Gather → Mul/Div` on int64 scalars.
    @Test func int64ScalarShapeArithmetic() throws {
        let batch = Tensor(scalar: Int64(8)), features = try Tensor(shape: [1], scalars: [Int64(512)])
        let product = try Self.run("Mul", [batch, features])
        #expect(product.shape == [1])
        #expect(try product.scalars(as: Int64.self) == [4096])
        let scalar = try Self.run("Div", [Tensor(scalar: Int64(4096)), Tensor(scalar: Int64(64))])
        #expect(scalar.shape == [])
        #expect(try scalar.scalars(as: Int64.self) == [64])
    }

    // MARK: - Opset 1–6 broadcasting

    @Test func legacyBroadcastWithAxis() throws {
        let a = Self.f([2, 3, 2], (0..<12).map(Float.init))
        let y = try Self.run("Add", opset: 6, [a, Self.f([3], [100, 200, 300])], ["broadcast": .int(1), "axis": .int(1)])
        #expect(y.shape == [2, 3, 2])
        #expect(try y.scalars(as: Float.self) == [100, 101, 202, 203, 304, 305, 106, 107, 208, 209, 310, 311])
        // Without axis, B lines up with A's trailing axes.
        let trailing = try Self.run("Mul", opset: 6, [a, Self.f([2], [1, -1])], ["broadcast": .int(1)])
        #expect(try trailing.scalars(as: Float.self) == (0..<12).map { Float($0 % 2 == 0 ? $0 : -$0) })
        // A negative axis counts from A's end.
        let negative = try Self.run("Sub", opset: 6, [a, Self.f([3, 1], [1, 2, 3])], ["broadcast": .int(1), "axis": .int(-2)])
        #expect(try negative.scalars(as: Float.self) == [-1, 0, 0, 1, 1, 2, 5, 6, 6, 7, 7, 8])
        // Same shapes need no attribute.
        #expect(try Self.run("Div", opset: 1, [Self.f([2], [4, 9]), Self.f([2], [2, 3])]).scalars(as: Float.self) == [2, 3])
    }

    @Test func legacyBroadcastErrors() throws {
        let a = Self.f([2, 3], [1, 2, 3, 4, 5, 6])
        let noFlag = #expect(throws: OnyxError.self) { try Self.run("Add", opset: 6, [a, Self.f([3], [1, 2, 3])]) }
        #expect(noFlag?.code == .shapeMismatch)
        #expect(noFlag?.message.contains("broadcast = 0") == true)
        // B may not grow A.
        #expect(throws: OnyxError.self) { try Self.run("Add", opset: 6, [Self.f([3], [1, 2, 3]), a], ["broadcast": .int(1)]) }
        #expect(throws: OnyxError.self) {
            try Self.run("Add", opset: 6, [a, Self.f([3], [1, 2, 3])], ["broadcast": .int(1), "axis": .int(0)])
        }
        #expect(throws: OnyxError.self) {
            try Self.run("Add", opset: 6, [a, Self.f([3], [1, 2, 3])], ["broadcast": .int(1), "axis": .int(2)])
        }
    }

    // MARK: - Errors

    @Test func binaryErrors() throws {
        let a = Self.f([2, 3], [1, 2, 3, 4, 5, 6])
        let shape = #expect(throws: OnyxError.self) { try Self.run("Add", [a, Self.f([4], [1, 2, 3, 4])]) }
        #expect(shape?.code == .shapeMismatch)
        #expect(shape?.message == "Add: shapes [2, 3] and [4] are not broadcastable")
        let mixed = #expect(throws: OnyxError.self) { try Self.run("Mul", [a, try Tensor(shape: [3], scalars: [1, 2, 3] as [Int64])]) }
        #expect(mixed?.code == .unsupportedDataType)
        #expect(mixed?.message.contains("float and int64") == true)
        let bool = #expect(throws: OnyxError.self) {
            try Self.run("Add", [try Tensor(shape: [1], scalars: [true]), try Tensor(shape: [1], scalars: [false])])
        }
        #expect(bool?.code == .unsupportedDataType)
        let arity = #expect(throws: OnyxError.self) { try Self.run("Sub", [a]) }
        #expect(arity?.code == .invalidModel)
    }

    // MARK: - Relu

    static let activationInput: [Float] = (0..<37).map { Float($0 - 18) * 0.5 }

    @Test(arguments: KernelISA.supported)
    func reluOnEveryISA(_ isa: KernelISA) throws {
        let y = try Self.run("Relu", [Self.f([37], Self.activationInput)], isa: isa)
        #expect(try y.scalars(as: Float.self) == Self.activationInput.map { max(0, $0) })
    }

    @Test func reluOtherTypes() throws {
        #expect(try Self.run("Relu", [try Tensor(shape: [3], scalars: [-1, 0, 5] as [Int64])]).scalars(as: Int64.self) == [0, 0, 5])
        #expect(try Self.run("Relu", [try Tensor(shape: [3], scalars: [-1, 0, 5] as [Int32])]).scalars(as: Int32.self) == [0, 0, 5])
        #expect(try Self.run("Relu", [try Tensor(shape: [2], scalars: [-128, 127] as [Int8])]).scalars(as: Int8.self) == [0, 127])
        #expect(try Self.run("Relu", [try Tensor(shape: [2], scalars: [-2.5, 2.5] as [Double])]).scalars(as: Double.self) == [0, 2.5])
        #expect(try Self.run("Relu", [try Tensor(shape: [2], scalars: [-2.5, 2.5] as [Float16])]).scalars(as: Float16.self) == [0, 2.5])
        let error = #expect(throws: OnyxError.self) { try Self.run("Relu", [try Tensor(shape: [1], scalars: [UInt8(1)])]) }
        #expect(error?.code == .unsupportedDataType)
    }

    @Test func reluLargeInPlaceAndThreaded() throws {
        let n = (1 << 19) + 3
        let x = Self.f([n], Self.values(n, seed: 9).map(Float.init))
        let expected = Self.values(n, seed: 9).map { Float(max(0, $0)) }
        #expect(try Self.run("Relu", [x], threads: 2).scalars(as: Float.self) == expected)
        #expect(try Self.runInPlace("Relu", [x]).scalars(as: Float.self) == expected)
        #expect(try Self.runInPlace("Relu", [try Tensor(shape: [3], scalars: [-3, 3, -1] as [Int64])]).scalars(as: Int64.self) == [0, 3, 0])
    }

    // MARK: - Clip

    @Test(arguments: KernelISA.supported)
    func clipAttributesBeforeOpset11(_ isa: KernelISA) throws {
        let x = Self.f([37], Self.activationInput)
        let both = try Self.run("Clip", opset: 6, [x], ["min": .float(-1), "max": .float(4)], isa: isa)
        #expect(try both.scalars(as: Float.self) == Self.activationInput.map { min(max($0, -1), 4) })
        let low = try Self.run("Clip", opset: 6, [x], ["min": .float(0)], isa: isa)
        #expect(try low.scalars(as: Float.self) == Self.activationInput.map { max($0, 0) })
        let high = try Self.run("Clip", opset: 1, [x], ["max": .float(6)], isa: isa)
        #expect(try high.scalars(as: Float.self) == Self.activationInput.map { min($0, 6) })
        #expect(try Self.run("Clip", opset: 6, [x], isa: isa).scalars(as: Float.self) == Self.activationInput)
    }

    @Test(arguments: KernelISA.supported)
    func clipInputsFromOpset11(_ isa: KernelISA) throws {
        let x = Self.f([37], Self.activationInput)
        for opset in [11, 12, 13] {
            let both = try Self.run("Clip", opset: opset, [x, Tensor(scalar: Float(0)), Tensor(scalar: Float(6))], isa: isa)
            #expect(try both.scalars(as: Float.self) == Self.activationInput.map { min(max($0, 0), 6) })
            let maxOnly = try Self.run("Clip", opset: opset, [x, nil, Tensor(scalar: Float(1))], isa: isa)
            #expect(try maxOnly.scalars(as: Float.self) == Self.activationInput.map { min($0, 1) })
            let minOnly = try Self.run("Clip", opset: opset, [x, Self.f([1], [-2])], isa: isa)
            #expect(try minOnly.scalars(as: Float.self) == Self.activationInput.map { max($0, -2) })
            #expect(try Self.run("Clip", opset: opset, [x], isa: isa).scalars(as: Float.self) == Self.activationInput)
        }
        // min > max: everything becomes max.
        let inverted = try Self.run("Clip", opset: 13, [x, Tensor(scalar: Float(3)), Tensor(scalar: Float(1))], isa: isa)
        #expect(try inverted.scalars(as: Float.self) == Array(repeating: 1, count: 37))
    }

    @Test func clipOtherTypes() throws {
        let ints = try Tensor(shape: [5], scalars: [-9, -1, 0, 4, 99] as [Int64])
        let y = try Self.run("Clip", opset: 13, [ints, Tensor(scalar: Int64(-1)), Tensor(scalar: Int64(10))])
        #expect(try y.scalars(as: Int64.self) == [-1, -1, 0, 4, 10])
        let int32 = try Self.run("Clip", opset: 12, [try Tensor(shape: [3], scalars: [-5, 5, 50] as [Int32]), nil, Tensor(scalar: Int32(6))])
        #expect(try int32.scalars(as: Int32.self) == [-5, 5, 6])
        let uint8 = try Self.run("Clip", opset: 13, [try Tensor(shape: [3], scalars: [0, 100, 255] as [UInt8]), Tensor(scalar: UInt8(10))])
        #expect(try uint8.scalars(as: UInt8.self) == [10, 100, 255])
        // Double keeps the pre-11 attribute bounds too.
        let double = try Self.run("Clip", opset: 6, [try Tensor(shape: [3], scalars: [-3, 0.5, 3] as [Double])], ["min": .float(-1), "max": .float(1)])
        #expect(try double.scalars(as: Double.self) == [-1, 0.5, 1])
        let inPlace = try Self.runInPlace("Clip", opset: 13, [Self.f([4], [-2, -1, 1, 2]), Tensor(scalar: Float(-1.5)), Tensor(scalar: Float(1.5))])
        #expect(try inPlace.scalars(as: Float.self) == [-1.5, -1, 1, 1.5])
    }

    @Test func clipErrors() throws {
        let x = Self.f([3], [1, 2, 3])
        let vector = #expect(throws: OnyxError.self) { try Self.run("Clip", opset: 13, [x, Self.f([2], [0, 1])]) }
        #expect(vector?.code == .shapeMismatch)
        #expect(vector?.message.contains("min must be a scalar of float") == true)
        let type = #expect(throws: OnyxError.self) { try Self.run("Clip", opset: 13, [x, nil, Tensor(scalar: Int64(1))]) }
        #expect(type?.code == .shapeMismatch)
        let oldInt = #expect(throws: OnyxError.self) {
            try Self.run("Clip", opset: 6, [try Tensor(shape: [1], scalars: [Int64(1)])], ["min": .float(0)])
        }
        #expect(oldInt?.code == .unsupportedDataType)
        let kind = #expect(throws: OnyxError.self) { try Self.run("Clip", opset: 6, [x], ["min": .string("zero")]) }
        #expect(kind?.code == .invalidAttribute)
        let bool = #expect(throws: OnyxError.self) { try Self.run("Clip", opset: 13, [try Tensor(shape: [1], scalars: [true])]) }
        #expect(bool?.code == .unsupportedDataType)
    }
}
