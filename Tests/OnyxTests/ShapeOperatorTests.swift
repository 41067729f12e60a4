import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Shape, Reshape, Flatten, Squeeze, Unsqueeze, Concat, Transpose and Gather against
/// hand-computed results and naive references, across opset variants and data types.
@Suite struct ShapeOperatorTests {
    // MARK: - Helpers

    static func f(_ shape: [Int], _ values: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: values) }
    static func i64(_ shape: [Int], _ values: [Int64]) -> Tensor { try! Tensor(shape: shape, scalars: values) }
    static func i32(_ shape: [Int], _ values: [Int32]) -> Tensor { try! Tensor(shape: shape, scalars: values) }
    static func iota(_ shape: [Int]) -> Tensor { f(shape, (0..<shape.reduce(1, *)).map(Float.init)) }

    static func node(_ op: String, _ inputs: [Tensor?], _ attributes: [String: Attribute], outputs: Int) -> Node {
        Node(
            name: op.lowercased(), opType: op,
            inputs: inputs.enumerated().map { $0.element == nil ? "" : "in\($0.offset)" },
            outputs: (0..<outputs).map { "out\($0)" }, attributes: attributes)
    }

    static func run(
        _ op: String, opset: Int = 17, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:],
        outputs: Int = 1, threads: Int = 1
    ) throws -> [Tensor] {
        try OperatorRegistry.evaluate(node(op, inputs, attributes, outputs: outputs), opset: opset, inputs: inputs, threads: threads)
    }

    static func run1(_ op: String, opset: Int = 17, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:]) throws -> Tensor {
        try run(op, opset: opset, inputs, attributes)[0]
    }

    /// The kernel for a node, prepared with the given constant inputs.
    static func kernel(_ op: String, opset: Int = 17, _ attributes: [String: Attribute] = [:], constants: [Tensor?] = []) throws -> any Kernel {
        let registration = try #require(OperatorRegistry.registration(domain: "", opType: op, opset: opset))
        let n = node(op, constants, attributes, outputs: 1)
        return try registration.make(NodeContext(node: n, opset: opset, constantInputs: constants, isa: .preferred))
    }

    /// Plans with `inputs` as run-time values (no constants) and runs, as a session does for graph inputs.
    static func runWithoutConstants(_ kernel: any Kernel, _ inputs: [Tensor]) throws -> [Tensor] {
        let planned = inputs.map { PlannedInput(descriptor: TensorDescriptor($0.dataType, $0.shape), constant: nil) }
        let descriptors = try kernel.outputDescriptors(for: planned)
        let outputs = descriptors.map { Tensor(zeros: $0.dataType, shape: $0.shape) }
        let inputViews: [TensorView?] = inputs.map { TensorView(dataType: $0.dataType, shape: $0.shape, data: $0.baseAddress) }
        let outputViews: [TensorView?] = outputs.map { TensorView(dataType: $0.dataType, shape: $0.shape, data: $0.baseAddress) }
        try withExtendedLifetime((inputs, outputs)) {
            try inputViews.withUnsafeBufferPointer { i in
                try outputViews.withUnsafeBufferPointer { o in
                    try kernel.run(KernelContext(inputs: i, outputs: o, workspace: nil, pool: ComputePool(threadCount: 1)))
                }
            }
        }
        return outputs
    }

    static func floats(_ t: Tensor) throws -> [Float] { try t.scalars(as: Float.self) }
    static func ints(_ t: Tensor) throws -> [Int64] { try t.scalars(as: Int64.self) }

    static func message(_ body: () throws -> Void) -> String {
        do { try body() } catch let error as OnyxError { return error.message } catch { return "\(error)" }
        return "no error"
    }

    /// Deterministic pseudo-random bytes.
    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
    }

    /// Random elements; strings are 8 hex digits, so `bytes` gives 8 bytes per element for them too.
    static func randomTensor(_ type: DataType, _ shape: [Int], seed: UInt64) -> Tensor {
        var bytes = randomBytes(shape.reduce(1, *) * type.byteWidth, seed: seed)
        if type == .string {
            let texts = stride(from: 0, to: bytes.count, by: 8).map { i in
                bytes[i..<(i + 4)].map { String($0 >> 4, radix: 16) + String($0 & 15, radix: 16) }.joined()
            }
            return try! Tensor(strings: texts, shape: shape)
        }
        if type.bitWidth < 8 {
            // One element per byte: keep the element's bits, sign-extended for int4 and int2.
            let unused = UInt8(8 - type.bitWidth), signed = type == .int4 || type == .int2
            bytes = bytes.map { signed ? UInt8(bitPattern: Int8(bitPattern: $0 << unused) >> unused) : ($0 << unused) >> unused }
        }
        return try! bytes.withUnsafeBytes { try Tensor(dataType: type, shape: shape, bytes: $0) }
    }

    /// Every type whose elements are bytes (a string element is a handle into its tensor's table).
    static let byteTypes = DataType.allCases.filter { $0 != .string }

    /// The elements' bytes; for strings, their UTF-8 text (handles differ from table to table).
    static func bytes(_ t: Tensor) -> [UInt8] {
        if t.dataType == .string { return Array(((try? t.strings()) ?? []).joined().utf8) }
        return t.withUnsafeBytes { Array($0) }
    }

    // MARK: - Shape

    @Test func shapeReportsExtentsWithStartAndEnd() throws {
        let x = Self.iota([2, 3, 4, 5])
        #expect(try Self.ints(Self.run1("Shape", opset: 13, [x])) == [2, 3, 4, 5])
        #expect(try Self.ints(Self.run1("Shape", opset: 15, [x], ["start": .int(1)])) == [3, 4, 5])
        #expect(try Self.ints(Self.run1("Shape", opset: 15, [x], ["end": .int(2)])) == [2, 3])
        #expect(try Self.ints(Self.run1("Shape", opset: 15, [x], ["start": .int(-3), "end": .int(-1)])) == [3, 4])
        // Out-of-range start/end clamp; start past end gives an empty shape.
        #expect(try Self.ints(Self.run1("Shape", opset: 15, [x], ["start": .int(-10), "end": .int(10)])) == [2, 3, 4, 5])
        let empty = try Self.run1("Shape", opset: 15, [x], ["start": .int(3), "end": .int(1)])
        #expect(empty.shape == [0])
        // Before opset 15 there are no start/end attributes.
        #expect(try Self.ints(Self.run1("Shape", opset: 14, [x], ["start": .int(1)])) == [2, 3, 4, 5])
        // A scalar has an empty shape; an int8 tensor works the same.
        #expect(try Self.run1("Shape", [Tensor(scalar: Float(1))]).shape == [0])
        #expect(try Self.ints(Self.run1("Shape", [Tensor(shape: [7, 0], scalars: [Int8]())])) == [7, 0])
        #expect(try Self.kernel("Shape").readsData(ofInput: 0) == false)
    }

    // MARK: - Reshape

    @Test func reshapeCopiesZerosAndInfersMinusOne() throws {
        let x = Self.iota([2, 3, 4])
        let y = try Self.run1("Reshape", opset: 14, [x, Self.i64([3], [0, -1, 2])])
        #expect(y.shape == [2, 6, 2])
        #expect(try Self.floats(y) == (0..<24).map(Float.init))
        #expect(try Self.run1("Reshape", opset: 13, [x, Self.i64([2], [-1, 4])]).shape == [6, 4])
        #expect(try Self.run1("Reshape", opset: 13, [x, Self.i64([4], [0, 0, 2, 2])]).shape == [2, 3, 2, 2])
        #expect(try Self.run1("Reshape", opset: 13, [x, Self.i64([1], [-1])]).shape == [24])
        #expect(try Self.run1("Reshape", opset: 13, [Self.f([1], [5]), Self.i64([0], [])]).shape == [])
        // allowzero = 1: a 0 is a real zero extent.
        let empty = Self.f([0, 3], [])
        #expect(try Self.run1("Reshape", opset: 14, [empty, Self.i64([2], [3, 0])], ["allowzero": .int(1)]).shape == [3, 0])
        #expect(try Self.run1("Reshape", opset: 14, [empty, Self.i64([2], [0, 3])]).shape == [0, 3])
        // Without allowzero, 0 copies: [0, 3] → [3, 0] means [3, 3], which does not fit.
        #expect(throws: OnyxError.self) { try Self.run("Reshape", opset: 14, [empty, Self.i64([2], [3, 0])]) }
        // allowzero with a 0 on a non-empty input cannot fit either.
        #expect(throws: OnyxError.self) {
            try Self.run("Reshape", opset: 14, [x, Self.i64([2], [0, -1])], ["allowzero": .int(1)])
        }
        // Opset < 5 takes the shape as an attribute.
        #expect(try Self.run1("Reshape", opset: 1, [x], ["shape": .ints([4, 0, -1])]).shape == [4, 3, 2])
        #expect(throws: OnyxError.self) { try Self.run("Reshape", opset: 4, [x]) }
        // Any data type moves unchanged; int32 shape input is accepted too.
        let bytes = Self.randomTensor(.uint16, [6, 4], seed: 3)
        let reshaped = try Self.run1("Reshape", opset: 14, [bytes, Self.i32([2], [3, 8])])
        #expect(reshaped.dataType == .uint16 && reshaped.shape == [3, 8] && Self.bytes(reshaped) == Self.bytes(bytes))
    }

    @Test func reshapeErrorsSayWhatWasExpected() throws {
        let x = Self.iota([2, 3])
        let tooBig = Self.message { _ = try Self.run("Reshape", opset: 14, [x, Self.i64([2], [4, -1])]) }
        #expect(tooBig.contains("Reshape: cannot reshape [2,3] (6 elements) to [4,-1]"), "\(tooBig)")
        #expect(throws: OnyxError.self) { try Self.run("Reshape", opset: 14, [x, Self.i64([2], [-1, -1])]) }
        #expect(throws: OnyxError.self) { try Self.run("Reshape", opset: 14, [x, Self.i64([2], [-2, 3])]) }
        #expect(throws: OnyxError.self) { try Self.run("Reshape", opset: 14, [x, Self.i64([3], [1, 1, 0])]) }
        #expect(throws: OnyxError.self) { try Self.run("Reshape", opset: 14, [x, Self.i64([2], [4, 2])]) }
        #expect(throws: OnyxError.self) { try Self.run("Reshape", opset: 14, [x, Self.f([2], [3, 2])]) }

        // A shape known only in a run: the kernel asks the session to plan with values.
        let kernel = try Self.kernel("Reshape", opset: 14)
        let notConstant = Self.message {
            _ = try kernel.outputDescriptors(for: [
                PlannedInput(descriptor: TensorDescriptor(.float, [2, 3]), constant: nil),
                PlannedInput(descriptor: TensorDescriptor(.int64, [2]), constant: nil),
            ])
        }
        #expect(notConstant.contains("shape input must be known to compute the output shape"), "\(notConstant)")
        #expect(kernel.readsData(ofInput: 1) == false)
        #expect(kernel.aliasing == .view(input: 0))
    }

    // MARK: - Flatten

    @Test(arguments: [
        (0, [1, 120]), (1, [2, 60]), (2, [6, 20]), (3, [24, 5]), (4, [120, 1]),
        (-1, [24, 5]), (-2, [6, 20]), (-4, [1, 120]),
    ])
    func flattenSplitsAtAxis(axis: Int, expected: [Int]) throws {
        let x = Self.iota([2, 3, 4, 5])
        let y = try Self.run1("Flatten", opset: 13, [x], ["axis": .int(axis)])
        #expect(y.shape == expected)
        #expect(try Self.floats(y) == (0..<120).map(Float.init))
    }

    @Test func flattenDefaultsAndErrors() throws {
        #expect(try Self.run1("Flatten", opset: 9, [Self.iota([2, 3, 4])]).shape == [2, 12])
        #expect(try Self.run1("Flatten", [Tensor(scalar: Float(3))], ["axis": .int(0)]).shape == [1, 1])
        #expect(throws: OnyxError.self) { try Self.run("Flatten", [Tensor(scalar: Float(3))]) }
        #expect(throws: OnyxError.self) { try Self.run("Flatten", [Self.iota([2, 3])], ["axis": .int(3)]) }
        #expect(throws: OnyxError.self) { try Self.run("Flatten", [Self.iota([2, 3])], ["axis": .int(-3)]) }
        #expect(try Self.kernel("Flatten").aliasing == .view(input: 0))
    }

    // MARK: - Squeeze and Unsqueeze

    @Test func squeezeTakesAxesFromAttributeThenInput() throws {
        let x = Self.iota([1, 3, 1, 2])
        #expect(try Self.run1("Squeeze", opset: 11, [x], ["axes": .ints([0])]).shape == [3, 1, 2])
        #expect(try Self.run1("Squeeze", opset: 11, [x], ["axes": .ints([-2, 0])]).shape == [3, 2])
        #expect(try Self.run1("Squeeze", opset: 11, [x]).shape == [3, 2])
        #expect(try Self.run1("Squeeze", opset: 1, [x], ["axes": .ints([2])]).shape == [1, 3, 2])
        #expect(try Self.run1("Squeeze", opset: 13, [x, Self.i64([1], [-2])]).shape == [1, 3, 2])
        #expect(try Self.run1("Squeeze", opset: 13, [x, Self.i64([2], [0, 2])]).shape == [3, 2])
        #expect(try Self.run1("Squeeze", opset: 13, [x]).shape == [3, 2])
        #expect(try Self.run1("Squeeze", opset: 13, [x, nil]).shape == [3, 2])
        #expect(try Self.run1("Squeeze", opset: 13, [Self.f([1, 1], [4])]).shape == [])
        let y = try Self.run1("Squeeze", opset: 21, [x, Self.i64([1], [0])])
        #expect(try Self.floats(y) == [0, 1, 2, 3, 4, 5])
    }

    @Test func squeezeRejectsBadAxes() throws {
        let x = Self.iota([1, 3, 1])
        let notUnit = Self.message { _ = try Self.run("Squeeze", opset: 13, [x, Self.i64([1], [1])]) }
        #expect(notUnit.contains("axis 1 of [1,3,1] has extent 3; expected 1"), "\(notUnit)")
        #expect(throws: OnyxError.self) { try Self.run("Squeeze", opset: 13, [x, Self.i64([1], [3])]) }
        #expect(throws: OnyxError.self) { try Self.run("Squeeze", opset: 13, [x, Self.i64([1], [-4])]) }
        #expect(throws: OnyxError.self) { try Self.run("Squeeze", opset: 11, [x], ["axes": .ints([5])]) }
        #expect(throws: OnyxError.self) { try Self.run("Squeeze", opset: 13, [x, Self.f([1], [0])]) }
        let kernel = try Self.kernel("Squeeze", opset: 13)
        #expect(throws: NeedsInputValues.self) {
            _ = try kernel.outputDescriptors(for: [
                PlannedInput(descriptor: TensorDescriptor(.float, [1, 3, 1]), constant: nil),
                PlannedInput(descriptor: TensorDescriptor(.int64, [1]), constant: nil),
            ])
        }
        #expect(kernel.aliasing == .view(input: 0))
        #expect(kernel.readsData(ofInput: 1) == false)
    }

    @Test func unsqueezeTakesAxesFromAttributeThenInput() throws {
        let x = Self.iota([3, 4])
        #expect(try Self.run1("Unsqueeze", opset: 11, [x], ["axes": .ints([0])]).shape == [1, 3, 4])
        #expect(try Self.run1("Unsqueeze", opset: 11, [x], ["axes": .ints([0, 3])]).shape == [1, 3, 4, 1])
        #expect(try Self.run1("Unsqueeze", opset: 11, [x], ["axes": .ints([-1])]).shape == [3, 4, 1])
        #expect(try Self.run1("Unsqueeze", opset: 13, [x, Self.i64([1], [1])]).shape == [3, 1, 4])
        #expect(try Self.run1("Unsqueeze", opset: 13, [x, Self.i64([2], [-1, 0])]).shape == [1, 3, 4, 1])
        #expect(try Self.run1("Unsqueeze", opset: 13, [x, Self.i64([3], [4, 1, 0])]).shape == [1, 1, 3, 4, 1])
        #expect(try Self.run1("Unsqueeze", opset: 13, [Tensor(scalar: Int64(7)), Tensor(scalar: Int64(0))]).shape == [1])
        let y = try Self.run1("Unsqueeze", opset: 13, [x, Self.i64([1], [2])])
        #expect(try Self.floats(y) == (0..<12).map(Float.init))
    }

    @Test func unsqueezeRejectsBadAxes() throws {
        let x = Self.iota([3, 4])
        #expect(throws: OnyxError.self) { try Self.run("Unsqueeze", opset: 13, [x, Self.i64([1], [3])]) }
        #expect(throws: OnyxError.self) { try Self.run("Unsqueeze", opset: 13, [x, Self.i64([1], [-4])]) }
        let repeated = Self.message { _ = try Self.run("Unsqueeze", opset: 13, [x, Self.i64([2], [1, -3])]) }
        #expect(repeated.contains("twice"), "\(repeated)")
        #expect(throws: OnyxError.self) { try Self.run("Unsqueeze", opset: 11, [x]) }
        #expect(throws: OnyxError.self) { try Self.run("Unsqueeze", opset: 13, [x]) }
        let kernel = try Self.kernel("Unsqueeze", opset: 13)
        let notConstant = Self.message {
            _ = try kernel.outputDescriptors(for: [
                PlannedInput(descriptor: TensorDescriptor(.float, [3, 4]), constant: nil),
                PlannedInput(descriptor: TensorDescriptor(.int64, [1]), constant: nil),
            ])
        }
        #expect(notConstant.contains("axes input must be known to compute the output shape"), "\(notConstant)")
        #expect(kernel.aliasing == .view(input: 0))
    }

    // MARK: - Concat

    @Test func concatJoinsAlongAnyAxis() throws {
        let a = Self.f([2, 2], [1, 2, 3, 4]), b = Self.f([2, 1], [5, 6]), c = Self.f([2, 3], [7, 8, 9, 10, 11, 12])
        let last = try Self.run1("Concat", [a, b, c], ["axis": .int(-1)])
        #expect(last.shape == [2, 6])
        #expect(try Self.floats(last) == [1, 2, 5, 7, 8, 9, 3, 4, 6, 10, 11, 12])
        #expect(try Self.floats(Self.run1("Concat", opset: 4, [a, b, c], ["axis": .int(1)])) == Self.floats(last))
        let first = try Self.run1("Concat", [a, Self.f([1, 2], [9, 9]), a], ["axis": .int(0)])
        #expect(first.shape == [5, 2])
        #expect(try Self.floats(first) == [1, 2, 3, 4, 9, 9, 1, 2, 3, 4])
        // Opset 1 defaults the axis to 1.
        #expect(try Self.run1("Concat", opset: 1, [a, b]).shape == [2, 3])
        // Middle axis of a rank-3 tensor.
        let x = Self.iota([2, 1, 2]), y = Self.f([2, 2, 2], (100..<108).map(Float.init))
        #expect(try Self.floats(Self.run1("Concat", [x, y], ["axis": .int(-2)]))
            == [0, 1, 100, 101, 102, 103, 2, 3, 104, 105, 106, 107])
    }

    @Test(arguments: byteTypes)
    func concatMovesEveryDataType(type: DataType) throws {
        let a = Self.randomTensor(type, [3, 2, 5], seed: 1), b = Self.randomTensor(type, [3, 4, 5], seed: 2)
        let y = try Self.run1("Concat", [a, b], ["axis": .int(1)])
        #expect(y.dataType == type && y.shape == [3, 6, 5])
        let w = type.byteWidth
        let ab = Self.bytes(a), bb = Self.bytes(b), yb = Self.bytes(y)
        var expected: [UInt8] = []
        for o in 0..<3 {
            expected += ab[(o * 10 * w)..<((o + 1) * 10 * w)]
            expected += bb[(o * 20 * w)..<((o + 1) * 20 * w)]
        }
        #expect(yb == expected)
        // Last axis: one-element rows.
        let c = Self.randomTensor(type, [4, 1], seed: 3), d = Self.randomTensor(type, [4, 1], seed: 4)
        let cd = try Self.run1("Concat", [c, d], ["axis": .int(-1)])
        let cb = Self.bytes(c), db = Self.bytes(d)
        var interleaved: [UInt8] = []
        for r in 0..<4 {
            interleaved += cb[(r * w)..<((r + 1) * w)]
            interleaved += db[(r * w)..<((r + 1) * w)]
        }
        #expect(Self.bytes(cd) == interleaved)
    }

    /// Copies of a megabyte and more split into 64 KB ranges of the output over two threads: the
    /// ranges straddle inputs and rows (a DenseNet Concat, one image and two; a middle axis; odd
    /// sizes that do not fill the last range), and the result is the one-thread one.
    @Test(arguments: [
        ([[1, 256, 56, 56], [1, 32, 56, 56]], 1), ([[2, 96, 56, 56], [2, 17, 56, 56], [2, 1, 56, 56]], 1),
        ([[3, 131, 257], [3, 7, 257], [3, 263, 257]], 1), ([[4, 1, 300, 257], [4, 1, 100, 257]], 2),
    ])
    func largeConcatUsesThreads(shapes: [[Int]], axis: Int) throws {
        let inputs = shapes.enumerated().map { Self.randomTensor(.float, $0.element, seed: UInt64($0.offset + 3)) }
        let threaded = try Self.run("Concat", inputs, ["axis": .int(axis)], threads: 2)[0]
        let serial = try Self.run("Concat", inputs, ["axis": .int(axis)], threads: 1)[0]
        #expect(threaded.byteCount >= ConcatKernel.parallelBytes, "\(shapes)")
        #expect(threaded.shape == serial.shape && Self.bytes(threaded) == Self.bytes(serial), "\(shapes)")
    }

    @Test func concatAllowsEmptyInputs() throws {
        let a = Self.i64([2], [1, 2]), none = Self.i64([0], [])
        #expect(try Self.ints(Self.run1("Concat", [none, a, none, Self.i64([1], [3])], ["axis": .int(0)])) == [1, 2, 3])
        let m = Self.f([2, 2], [1, 2, 3, 4])
        let y = try Self.run1("Concat", [m, Self.f([2, 0], []), m], ["axis": .int(1)])
        #expect(y.shape == [2, 4])
        #expect(try Self.floats(y) == [1, 2, 1, 2, 3, 4, 3, 4])
        // A 1-D empty tensor next to rank-2 inputs is skipped (exporters use it as "nothing yet").
        #expect(try Self.floats(Self.run1("Concat", [Self.f([0], []), m], ["axis": .int(0)])) == [1, 2, 3, 4])
        #expect(try Self.run1("Concat", [Self.f([0, 3], []), Self.f([0, 3], [])], ["axis": .int(0)]).shape == [0, 3])
    }

    @Test func concatRejectsMismatches() throws {
        let a = Self.f([2, 2], [1, 2, 3, 4])
        let shape = Self.message { _ = try Self.run("Concat", [a, Self.f([3, 1], [1, 2, 3])], ["axis": .int(1)]) }
        #expect(shape.contains("input 1 has shape [3,1]; expected [2,2] on every axis but 1"), "\(shape)")
        #expect(throws: OnyxError.self) { try Self.run("Concat", [a, Self.i64([2, 2], [1, 2, 3, 4])], ["axis": .int(0)]) }
        #expect(throws: OnyxError.self) { try Self.run("Concat", [a, Self.f([4], [1, 2, 3, 4])], ["axis": .int(0)]) }
        #expect(throws: OnyxError.self) { try Self.run("Concat", [a, a], ["axis": .int(2)]) }
        #expect(throws: OnyxError.self) { try Self.run("Concat", [a, a], ["axis": .int(-3)]) }
        #expect(throws: OnyxError.self) { try Self.run("Concat", [a, a]) }
        #expect(throws: OnyxError.self) { try Self.run("Concat", [Tensor(scalar: Float(1))], ["axis": .int(0)]) }
    }

    // MARK: - Transpose

    /// out[i0, i1, …] = in[j] where j's axis perm[k] index is i_k.
    static func naiveTranspose(_ x: Tensor, _ perm: [Int]) -> [UInt8] {
        let shape = x.shape, rank = shape.count, w = x.dataType.byteWidth
        let outShape = perm.map { shape[$0] }
        var inStrides = [Int](repeating: 1, count: rank)
        for d in stride(from: rank - 2, through: 0, by: -1) { inStrides[d] = inStrides[d + 1] * shape[d + 1] }
        let source = bytes(x)
        var out: [UInt8] = []
        let count = shape.reduce(1, *)
        for linear in 0..<count {
            var rest = linear, offset = 0
            for k in stride(from: rank - 1, through: 0, by: -1) {
                let i = rest % outShape[k]
                rest /= outShape[k]
                offset += i * inStrides[perm[k]]
            }
            out += source[(offset * w)..<((offset + 1) * w)]
        }
        return out
    }

    static let transposeCases: [([Int], [Int])] = [
        ([7], [0]),
        ([17, 63], [1, 0]),
        ([1, 257], [1, 0]),
        ([63, 17], [0, 1]),
        ([2, 3, 4], [2, 0, 1]),
        ([2, 3, 4], [1, 0, 2]),
        ([7, 1, 17], [2, 1, 0]),
        ([5, 7, 9], [0, 2, 1]),
        ([2, 3, 17, 7], [0, 2, 3, 1]),   // NCHW → NHWC
        ([2, 7, 17, 3], [0, 3, 1, 2]),   // NHWC → NCHW
        ([2, 17, 3, 7], [0, 2, 1, 3]),   // attention heads
        ([2, 3, 5, 7], [0, 1, 3, 2]),    // last two axes
        ([2, 3, 5, 7], [3, 0, 2, 1]),
        ([3, 5, 7, 2], [3, 2, 1, 0]),
        ([1, 3, 1, 5], [2, 3, 0, 1]),
        ([2, 3, 2, 3, 2], [4, 2, 0, 3, 1]),
        ([2, 1, 3, 2, 2, 3], [5, 1, 3, 0, 4, 2]),
        ([0, 3, 4], [2, 1, 0]),
    ]

    @Test(arguments: transposeCases)
    func transposeMatchesNaiveIndexMapping(shape: [Int], perm: [Int]) throws {
        for (k, type) in [DataType.uint8, .float16, .float, .int64].enumerated() {
            let x = Self.randomTensor(type, shape, seed: UInt64(k + shape.reduce(1, *)))
            let y = try Self.run1("Transpose", [x], ["perm": .ints(perm)])
            #expect(y.shape == perm.map { shape[$0] } && y.dataType == type)
            #expect(Self.bytes(y) == Self.naiveTranspose(x, perm), "\(type) \(shape) perm \(perm)")
        }
    }

    @Test(arguments: [([512, 384], [1, 0]), ([4, 64, 56, 56], [0, 2, 3, 1]), ([2, 128, 12, 64], [0, 2, 1, 3]), ([3, 257, 131], [2, 0, 1])])
    func largeTransposeUsesThreads(shape: [Int], perm: [Int]) throws {
        let x = Self.randomTensor(.float, shape, seed: 9)
        let y = try Self.run("Transpose", [x], ["perm": .ints(perm)], threads: 2)[0]
        #expect(Self.bytes(y) == Self.naiveTranspose(x, perm), "\(shape) perm \(perm)")
    }

    @Test func transposeDefaultsToReversedAxesAndChecksPerm() throws {
        let x = Self.f([2, 3], [1, 2, 3, 4, 5, 6])
        let y = try Self.run1("Transpose", [x])
        #expect(y.shape == [3, 2])
        #expect(try Self.floats(y) == [1, 4, 2, 5, 3, 6])
        let z = Self.randomTensor(.int32, [2, 3, 4], seed: 5)
        #expect(Self.bytes(try Self.run1("Transpose", [z])) == Self.naiveTranspose(z, [2, 1, 0]))
        #expect(try Self.run1("Transpose", [Tensor(scalar: Float(2))]).shape == [])
        #expect(throws: OnyxError.self) { try Self.run("Transpose", [x], ["perm": .ints([0, 0])]) }
        #expect(throws: OnyxError.self) { try Self.run("Transpose", [x], ["perm": .ints([0, 2])]) }
        let wrongRank = Self.message { _ = try Self.run("Transpose", [x], ["perm": .ints([0, 2, 1])]) }
        #expect(wrongRank.contains("perm [0,2,1] has 3 axes; the input [2,3] has 2"), "\(wrongRank)")
    }

    // MARK: - Gather

    @Test func gatherAlongAxes() throws {
        let data = Self.f([3, 2], [1, 2, 3, 4, 5, 6])
        let rows = try Self.run1("Gather", [data, Self.i64([2], [2, 0])])
        #expect(rows.shape == [2, 2])
        #expect(try Self.floats(rows) == [5, 6, 1, 2])
        // Negative indices count from the end.
        #expect(try Self.floats(Self.run1("Gather", [data, Self.i64([2], [-1, -3])])) == [5, 6, 1, 2])
        // Axis 1 with int32 indices.
        let column = try Self.run1("Gather", [data, Self.i32([1], [1])], ["axis": .int(1)])
        #expect(column.shape == [3, 1])
        #expect(try Self.floats(column) == [2, 4, 6])
        // Axis -1 with 2-D indices.
        let grid = try Self.run1("Gather", [data, Self.i64([2, 2], [1, 0, 0, 1])], ["axis": .int(-1)])
        #expect(grid.shape == [3, 2, 2])
        #expect(try Self.floats(grid) == [2, 1, 1, 2, 4, 3, 3, 4, 6, 5, 5, 6])
        // A scalar index drops the axis.
        let scalar = try Self.run1("Gather", [data, Tensor(scalar: Int64(1))])
        #expect(scalar.shape == [2])
        #expect(try Self.floats(scalar) == [3, 4])
        let element = try Self.run1("Gather", [Self.i64([4], [10, 20, 30, 40]), Tensor(scalar: Int32(-2))])
        #expect(element.shape == [])
        #expect(try Self.ints(element) == [30])
        // No indices: an empty axis.
        #expect(try Self.run1("Gather", [data, Self.i64([0], [])], ["axis": .int(1)]).shape == [3, 0])
        // Middle axis of a rank-3 tensor, one-byte elements.
        let cube = try Tensor(shape: [2, 3, 2], scalars: (0..<12).map { UInt8($0) })
        let mid = try Self.run1("Gather", [cube, Self.i64([2], [2, 2])], ["axis": .int(1)])
        #expect(mid.shape == [2, 2, 2])
        #expect(try mid.scalars(as: UInt8.self) == [4, 5, 4, 5, 10, 11, 10, 11])
    }

    @Test(arguments: byteTypes)
    func gatherMovesEveryDataType(type: DataType) throws {
        let data = Self.randomTensor(type, [4, 3], seed: 11)
        let w = type.byteWidth, source = Self.bytes(data)
        let rows = try Self.run1("Gather", [data, Self.i64([3], [3, -4, 1])])
        #expect(Self.bytes(rows) == Array(source[(9 * w)..<(12 * w)] + source[0..<(3 * w)] + source[(3 * w)..<(6 * w)]))
        let columns = try Self.run1("Gather", [data, Self.i32([1], [2])], ["axis": .int(1)])
        var expected: [UInt8] = []
        for r in 0..<4 { expected += source[((r * 3 + 2) * w)..<((r * 3 + 3) * w)] }
        #expect(Self.bytes(columns) == expected)
    }

    @Test func gatherEmbeddingRowsOnTwoThreads() throws {
        let table = Self.randomTensor(.float, [1000, 64], seed: 13)
        let ids = (0..<4096).map { Int64(($0 * 7919) % 1000) }
        let y = try Self.run("Gather", [table, Self.i64([64, 64], ids)], threads: 2)[0]
        #expect(y.shape == [64, 64, 64])
        let source = Self.bytes(table), out = Self.bytes(y)
        for (i, id) in ids.enumerated() {
            let row = Int(id) * 256
            #expect(out[(i * 256)..<((i + 1) * 256)] == source[row..<(row + 256)])
        }
    }

    @Test func gatherRejectsOutOfRangeIndices() throws {
        let data = Self.f([3, 2], [1, 2, 3, 4, 5, 6])
        // Constant indices fail when the node is planned.
        let planned = Self.message { _ = try Self.run("Gather", [data, Self.i64([2], [0, 3])]) }
        #expect(planned.contains("Gather: index 3 is out of range for axis 0 of extent 3"), "\(planned)")
        #expect(throws: OnyxError.self) { try Self.run("Gather", [data, Self.i64([1], [-4])]) }
        #expect(throws: OnyxError.self) { try Self.run("Gather", [data, Self.i32([1], [2])], ["axis": .int(1)]) }
        // Indices that arrive with a run fail at run time with an error, not a crash.
        let kernel = try Self.kernel("Gather", ["axis": .int(1)])
        let ok = try Self.runWithoutConstants(kernel, [data, Self.i64([1], [-1])])[0]
        #expect(try Self.floats(ok) == [2, 4, 6])
        let error = Self.message { _ = try Self.runWithoutConstants(kernel, [data, Self.i64([2], [1, Int64.max])]) }
        #expect(error.contains("Gather: index \(Int64.max) is out of range for axis 1 of extent 2"), "\(error)")
        #expect(throws: OnyxError.self) { try Self.runWithoutConstants(kernel, [data, Self.i32([1], [Int32.min])]) }
        // Other errors: float indices, scalar data, bad axis.
        #expect(throws: OnyxError.self) { try Self.run("Gather", [data, Self.f([1], [0])]) }
        #expect(throws: OnyxError.self) { try Self.run("Gather", [Tensor(scalar: Float(1)), Self.i64([1], [0])]) }
        #expect(throws: OnyxError.self) { try Self.run("Gather", [data, Self.i64([1], [0])], ["axis": .int(2)]) }
    }
}
