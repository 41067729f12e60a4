import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Slice, Split, Expand, Tile, Range, ConstantOfShape, Size, Pad, DepthToSpace, SpaceToDepth,
/// Trilu, EyeLike, CenterCropPad, ReverseSequence on hand-checked cases.
@Suite struct DataMovementTests {
    // MARK: - Helpers

    /// Runs `op` and returns all its outputs.
    static func run(
        _ op: String, opset: Int = 18, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], outputs: Int = 1
    ) throws -> [Tensor] {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs)
    }

    static func f(_ shape: [Int], _ values: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: values) }
    static func i64(_ values: [Int], shape: [Int]? = nil) -> Tensor {
        try! Tensor(shape: shape ?? [values.count], scalars: values.map { Int64($0) })
    }
    static func iota(_ shape: [Int]) -> Tensor { f(shape, (0..<shape.reduce(1, *)).map(Float.init)) }

    static func message(_ body: () throws -> Void) -> String? {
        do { try body() } catch let error as OnyxError { return error.message } catch { return "\(error)" }
        return nil
    }

    // MARK: - Slice

    @Test func sliceStepsAndClamping() throws {
        let x = Self.iota([3, 4])
        // Rows 0..<2, columns 3, 1 (negative step, end clamped).
        let y = try Self.run("Slice", [x, Self.i64([0, 3]), Self.i64([2, -1000]), Self.i64([0, 1]), Self.i64([1, -2])])[0]
        #expect(y.shape == [2, 2])
        #expect(try y.scalars(as: Float.self) == [3, 1, 7, 5])
        // INT_MAX end, negative axis.
        let z = try Self.run("Slice", [x, Self.i64([1]), Self.i64([Int(Int64.max)]), Self.i64([-1])])[0]
        #expect(z.shape == [3, 3])
        #expect(try z.scalars(as: Float.self) == [1, 2, 3, 5, 6, 7, 9, 10, 11])
        // Start beyond the end: empty.
        let e = try Self.run("Slice", [x, Self.i64([5]), Self.i64([9]), Self.i64([0])])[0]
        #expect(e.shape == [0, 4])
    }

    /// Slices of awkward shapes and steps against a naive index walk, at three element widths.
    @Test(arguments: [
        ([7, 17, 3], [1, -2, 0], [6, -16, 3], [2, -3, 1]),
        ([1, 63, 1], [0, 62, 0], [1, 0, 1], [1, -1, 1]),
        ([17, 7], [-100, 2], [100, 7], [4, 1]),
        ([257], [3], [250], [7]),
    ])
    func sliceMatchesNaiveWalk(shape: [Int], starts: [Int], ends: [Int], steps: [Int]) throws {
        let count = shape.reduce(1, *)
        let values = (0..<count).map { Int64($0 * 31 % 1009) }
        // Per axis, the input coordinates the slice visits (Python's slice semantics).
        let picks: [[Int]] = (0..<shape.count).map { d in
            let dim = shape[d], step = steps[d]
            var s = starts[d] < 0 ? starts[d] + dim : starts[d], e = ends[d] < 0 ? ends[d] + dim : ends[d]
            var result: [Int] = []
            if step > 0 {
                s = min(max(s, 0), dim); e = min(max(e, 0), dim)
                while s < e { result.append(s); s += step }
            } else {
                s = min(max(s, 0), dim - 1); e = min(max(e, -1), dim - 1)
                while s > e { result.append(s); s += step }
            }
            return result
        }
        var expected: [Int64] = []
        func walk(_ d: Int, _ offset: Int) {
            if d == shape.count { expected.append(values[offset]); return }
            for i in picks[d] { walk(d + 1, offset * shape[d] + i) }
        }
        walk(0, 0)
        let args = [Self.i64(starts), Self.i64(ends), Self.i64(Array(0..<shape.count)), Self.i64(steps)]
        let wide = try Self.run("Slice", [try Tensor(shape: shape, scalars: values)] + args)[0]
        #expect(wide.shape == picks.map(\.count))
        #expect(try wide.scalars(as: Int64.self) == expected)
        let narrow = try Self.run("Slice", [try Tensor(shape: shape, scalars: values.map { Int8(truncatingIfNeeded: $0) })] + args)[0]
        #expect(try narrow.scalars(as: Int8.self) == expected.map { Int8(truncatingIfNeeded: $0) })
        let floats = try Self.run("Slice", [try Tensor(shape: shape, scalars: values.map { Float($0) })] + args)[0]
        #expect(try floats.scalars(as: Float.self) == expected.map { Float($0) })
    }

    @Test func sliceAttributeFormAndInt8() throws {
        let x = try Tensor(shape: [2, 3], scalars: [Int8](1...6))
        let y = try Self.run("Slice", opset: 9, [x], ["starts": .ints([1]), "ends": .ints([3]), "axes": .ints([1])])[0]
        #expect(y.shape == [2, 2])
        #expect(try y.scalars(as: Int8.self) == [2, 3, 5, 6])
    }

    @Test func sliceErrors() {
        let x = Self.iota([3, 4])
        #expect(Self.message { _ = try Self.run("Slice", [x, Self.i64([0]), Self.i64([1]), Self.i64([2])]) }
            == "Slice: axis 2 is out of range for rank 2 (expected -2...1)")
        #expect(Self.message { _ = try Self.run("Slice", [x, Self.i64([0]), Self.i64([1]), Self.i64([0]), Self.i64([0])]) }
            == "Slice: step 0 on axis 0")
    }

    // MARK: - Split

    @Test func splitForms() throws {
        let x = Self.iota([5])
        let even = try Self.run("Split", opset: 18, [Self.iota([6])], ["num_outputs": .int(3)], outputs: 3)
        #expect(even.map(\.shape) == [[2], [2], [2]])
        let uneven = try Self.run("Split", opset: 18, [x], ["num_outputs": .int(2)], outputs: 2)
        #expect(uneven.map(\.shape) == [[3], [2]])
        #expect(try uneven[1].scalars(as: Float.self) == [3, 4])
        let sized = try Self.run("Split", opset: 13, [x, Self.i64([1, 4])], outputs: 2)
        #expect(try sized[1].scalars(as: Float.self) == [1, 2, 3, 4])
        let attribute = try Self.run("Split", opset: 11, [Self.iota([2, 3])], ["axis": .int(1), "split": .ints([2, 1])], outputs: 2)
        #expect(try attribute[0].scalars(as: Float.self) == [0, 1, 3, 4])
        #expect(try attribute[1].scalars(as: Float.self) == [2, 5])
        #expect(Self.message { _ = try Self.run("Split", opset: 13, [x, Self.i64([1, 2])], outputs: 2) }
            == "Split: sizes [1,2] do not add up to the axis extent 5")
    }

    // MARK: - Expand, Tile

    @Test func expandAndTile() throws {
        let x = try Tensor(shape: [3, 1], scalars: [Int32(1), 2, 3])
        let y = try Self.run("Expand", [x, Self.i64([2, 1, 2])])[0]
        #expect(y.shape == [2, 3, 2])
        #expect(try y.scalars(as: Int32.self) == [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3])
        #expect(Self.message { _ = try Self.run("Expand", [x, Self.i64([2, 4])]) }
            == "Expand: shapes [3, 1] and [2, 4] are not broadcastable")

        let t = try Self.run("Tile", [Self.f([2, 2], [1, 2, 3, 4]), Self.i64([2, 3])])[0]
        #expect(t.shape == [4, 6])
        #expect(try t.scalars(as: Float.self) == [1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4])
        // Opset < 6: one count along one axis, on bool.
        let flags = try Tensor(shape: [1, 2], scalars: [true, false])
        let legacy = try Self.run("Tile", opset: 5, [flags, Self.i64([3], shape: []), Self.i64([0], shape: [])])[0]
        #expect(legacy.shape == [3, 2])
        #expect(try legacy.scalars(as: Bool.self) == [true, false, true, false, true, false])
        #expect(Self.message { _ = try Self.run("Tile", [Self.iota([2]), Self.i64([2, 3])]) }
            == "Tile: repeats [2,3] has 2 values; the input has rank 1")
    }

    // MARK: - Range, ConstantOfShape, Size

    @Test func rangeAndConstants() throws {
        let r = try Self.run("Range", [Tensor(scalar: Int32(10)), Tensor(scalar: Int32(4)), Tensor(scalar: Int32(-2))])[0]
        #expect(try r.scalars(as: Int32.self) == [10, 8, 6])
        let f = try Self.run("Range", [Tensor(scalar: Float(1)), Tensor(scalar: Float(2)), Tensor(scalar: Float(0.25))])[0]
        #expect(try f.scalars(as: Float.self) == [1, 1.25, 1.5, 1.75])
        #expect(Self.message { _ = try Self.run("Range", [Tensor(scalar: Int64(0)), Tensor(scalar: Int64(4)), Tensor(scalar: Int64(0))]) }
            == "Range: delta is 0")

        let c = try Self.run("ConstantOfShape", [Self.i64([2, 2])], ["value": .tensor(try Tensor(shape: [1], scalars: [Int64(7)]))])[0]
        #expect(try c.scalars(as: Int64.self) == [7, 7, 7, 7])
        let zero = try Self.run("ConstantOfShape", [Self.i64([3])])[0]
        #expect(zero.dataType == .float && zero.shape == [3])

        let s = try Self.run("Size", [Self.iota([3, 5])])[0]
        #expect(try s.scalars(as: Int64.self) == [15])
    }

    // MARK: - Pad

    @Test func padModes() throws {
        let x = Self.f([1, 3], [1, 2, 3])
        let pads = Self.i64([0, 2, 0, 2])
        func pad(_ mode: String) throws -> [Float] {
            try Self.run("Pad", opset: 19, [x, pads], ["mode": .string(mode)])[0].scalars(as: Float.self)
        }
        #expect(try pad("constant") == [0, 0, 1, 2, 3, 0, 0])
        #expect(try pad("reflect") == [3, 2, 1, 2, 3, 2, 1])
        #expect(try pad("edge") == [1, 1, 1, 2, 3, 3, 3])
        #expect(try pad("wrap") == [2, 3, 1, 2, 3, 1, 2])
        // Pads wider than the axis repeat the reflection / wrap (as NumPy does); 2-D, int16.
        let wide = Self.i64([5, 4])
        #expect(try Self.run("Pad", [Self.f([3], [1, 2, 3]), wide], ["mode": .string("reflect")])[0].scalars(as: Float.self)
            == [2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3])
        #expect(try Self.run("Pad", opset: 19, [Self.f([3], [1, 2, 3]), wide], ["mode": .string("wrap")])[0].scalars(as: Float.self)
            == [2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1])
        let square = try Tensor(shape: [2, 2], scalars: [Int16(1), 2, 3, 4])
        let reflected = try Self.run("Pad", [square, Self.i64([1, 3, 2, 0])], ["mode": .string("reflect")])[0]
        #expect(reflected.shape == [5, 5])
        #expect(try reflected.scalars(as: Int16.self)
            == [4, 3, 4, 3, 4, 2, 1, 2, 1, 2, 4, 3, 4, 3, 4, 2, 1, 2, 1, 2, 4, 3, 4, 3, 4])
        // Constant value, negative pads crop, axes input.
        let cropped = try Self.run("Pad", [x, Self.i64([-1, 1]), Self.f([], [9]), Self.i64([1])])[0]
        #expect(try cropped.scalars(as: Float.self) == [2, 3, 9])
        // Opset 2: pads and value attributes, on int32.
        let legacy = try Self.run(
            "Pad", opset: 2, [try Tensor(shape: [2], scalars: [Int32(4), 5])], ["pads": .ints([1, 0]), "value": .float(-1)])[0]
        #expect(try legacy.scalars(as: Int32.self) == [-1, 4, 5])
        #expect(Self.message { _ = try Self.run("Pad", [x, Self.i64([1, 1])]) }
            == "Pad: pads has 2 values; expected 4 (two per padded axis)")
        #expect(Self.message { _ = try Self.run("Pad", [x, pads], ["mode": .string("mirror")]) }
            == "Pad node 'n': mode 'mirror' is not constant, reflect, edge or wrap")
    }

    // MARK: - DepthToSpace, SpaceToDepth

    @Test func depthAndSpace() throws {
        let x = Self.iota([1, 8, 1, 1])
        let dcr = try Self.run("DepthToSpace", [x], ["blocksize": .int(2)])[0]
        #expect(dcr.shape == [1, 2, 2, 2])
        #expect(try dcr.scalars(as: Float.self) == [0, 2, 4, 6, 1, 3, 5, 7])
        let crd = try Self.run("DepthToSpace", [x], ["blocksize": .int(2), "mode": .string("CRD")])[0]
        #expect(try crd.scalars(as: Float.self) == [0, 1, 2, 3, 4, 5, 6, 7])
        // SpaceToDepth undoes DepthToSpace (DCR).
        let back = try Self.run("SpaceToDepth", [dcr], ["blocksize": .int(2)])[0]
        #expect(back.shape == [1, 8, 1, 1])
        #expect(try back.scalars(as: Float.self) == (0..<8).map(Float.init))
        #expect(Self.message { _ = try Self.run("DepthToSpace", [Self.iota([1, 3, 1, 1])], ["blocksize": .int(2)]) }
            == "DepthToSpace: channels 3 must be a multiple of blocksize² 4")
    }

    // MARK: - Trilu, EyeLike

    @Test func triluAndEyeLike() throws {
        let x = Self.iota([3, 3])
        #expect(try Self.run("Trilu", [x])[0].scalars(as: Float.self) == [0, 1, 2, 0, 4, 5, 0, 0, 8])
        #expect(try Self.run("Trilu", [x, Self.i64([-1], shape: [])], ["upper": .int(0)])[0].scalars(as: Float.self)
            == [0, 0, 0, 3, 0, 0, 6, 7, 0])
        let eye = try Self.run("EyeLike", [Self.iota([2, 3])], ["k": .int(1), "dtype": .int(Int(DataType.int32.rawValue))])[0]
        #expect(eye.dataType == .int32)
        #expect(try eye.scalars(as: Int32.self) == [0, 1, 0, 0, 0, 1])
        #expect(Self.message { _ = try Self.run("Trilu", [Self.iota([3])]) }
            == "Trilu: the input must have rank 2 or more, found shape [3]")
    }

    // MARK: - CenterCropPad, ReverseSequence

    @Test func centerCropPadAndReverseSequence() throws {
        let x = Self.iota([3, 2])
        let y = try Self.run("CenterCropPad", [x, Self.i64([1, 4])])[0]
        #expect(y.shape == [1, 4])
        #expect(try y.scalars(as: Float.self) == [0, 2, 3, 0])

        let seq = try Tensor(shape: [3, 2], scalars: [UInt8](1...6))  // time × batch
        let r = try Self.run("ReverseSequence", [seq, Self.i64([3, 2])])[0]
        #expect(try r.scalars(as: UInt8.self) == [5, 4, 3, 2, 1, 6])
        #expect(Self.message { _ = try Self.run("ReverseSequence", [seq, Self.i64([4, 1])]) }
            == "ReverseSequence: sequence_lens[0] = 4 is out of range 0...3")
    }
}
