import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// NonZero, TopK, ArgMax/ArgMin, CumSum/CumProd, GatherElements, GatherND, Scatter family,
/// OneHot, Compress and Unique on hand-checked cases.
@Suite struct IndexingTests {
    static func run(
        _ op: String, opset: Int = 18, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], outputs: Int = 1
    ) throws -> [Tensor] {
        try DataMovementTests.run(op, opset: opset, inputs, attributes, outputs: outputs)
    }

    static func f(_ shape: [Int], _ values: [Float]) -> Tensor { DataMovementTests.f(shape, values) }
    static func i64(_ values: [Int], shape: [Int]? = nil) -> Tensor { DataMovementTests.i64(values, shape: shape) }
    static func message(_ body: () throws -> Void) -> String? { DataMovementTests.message(body) }

    // MARK: - NonZero, TopK, ArgMax

    @Test func nonZero() throws {
        let x = try Tensor(shape: [2, 2], scalars: [true, false, true, true])
        let y = try Self.run("NonZero", [x])[0]
        #expect(y.shape == [2, 3])
        #expect(try y.scalars(as: Int64.self) == [0, 1, 1, 0, 0, 1])
        let z = try Self.run("NonZero", [Self.f([3], [-0.0, 2, 0])])[0]
        #expect(try z.scalars(as: Int64.self) == [1])
    }

    @Test func topK() throws {
        let x = Self.f([2, 4], [1, 3, 3, 2, 5, 4, 6, 4])
        let out = try Self.run("TopK", opset: 11, [x, Self.i64([2])], outputs: 2)
        #expect(try out[0].scalars(as: Float.self) == [3, 3, 6, 5])
        #expect(try out[1].scalars(as: Int64.self) == [1, 2, 2, 0])  // ties: lower index first
        let smallest = try Self.run("TopK", opset: 11, [x, Self.i64([3])], ["largest": .int(0)], outputs: 2)
        #expect(try smallest[1].scalars(as: Int64.self) == [0, 3, 1, 1, 3, 0])
        // Long axis, small k (the heap path): ties and NaN.
        var long = [Float](repeating: 0, count: 40)
        long[7] = 5; long[30] = 5; long[12] = .nan; long[3] = -1
        let heap = try Self.run("TopK", opset: 11, [Self.f([40], long), Self.i64([3])], outputs: 2)
        #expect(try heap[1].scalars(as: Int64.self) == [12, 7, 30])
        let low = try Self.run("TopK", opset: 11, [Self.f([40], long), Self.i64([2])], ["largest": .int(0)], outputs: 2)
        #expect(try low[1].scalars(as: Int64.self) == [3, 0])
        let legacy = try Self.run("TopK", opset: 1, [try Tensor(shape: [3], scalars: [Int32(7), 9, 8])], ["k": .int(1)], outputs: 2)
        #expect(try legacy[0].scalars(as: Int32.self) == [9])
        #expect(Self.message { _ = try Self.run("TopK", opset: 11, [x, Self.i64([5])], outputs: 2) }
            == "TopK: k = 5 is out of range for axis 1 of extent 4 (expected 0...4)")
    }

    @Test func argMaxArgMin() throws {
        let x = try Tensor(shape: [2, 3], scalars: [Int64(2), 7, 7, 1, 1, 0])
        #expect(try Self.run("ArgMax", [x], ["axis": .int(1)])[0].scalars(as: Int64.self) == [1, 0])
        let last = try Self.run("ArgMax", [x], ["axis": .int(1), "select_last_index": .int(1), "keepdims": .int(0)])[0]
        #expect(last.shape == [2])
        #expect(try last.scalars(as: Int64.self) == [2, 1])
        #expect(try Self.run("ArgMin", [x], ["axis": .int(0)])[0].scalars(as: Int64.self) == [1, 1, 1])
        #expect(Self.message { _ = try Self.run("ArgMax", [x], ["axis": .int(2)]) }
            == "ArgMax: axis 2 is out of range for rank 2 (expected -2...1)")
    }

    // MARK: - CumSum, CumProd

    @Test func cumulative() throws {
        let x = try Tensor(shape: [4], scalars: [Int32(1), 2, 3, 4])
        let axis = Self.i64([0], shape: [])
        #expect(try Self.run("CumSum", [x, axis])[0].scalars(as: Int32.self) == [1, 3, 6, 10])
        #expect(try Self.run("CumSum", [x, axis], ["exclusive": .int(1), "reverse": .int(1)])[0].scalars(as: Int32.self)
            == [9, 7, 4, 0])
        #expect(try Self.run("CumProd", opset: 26, [Self.f([4], [1, 2, 3, 4]), axis], ["exclusive": .int(1)])[0]
            .scalars(as: Float.self) == [1, 1, 2, 6])
        #expect(Self.message { _ = try Self.run("CumSum", [x, Self.i64([1], shape: [])]) }
            == "CumSum: axis 1 is out of range for rank 1 (expected -1...0)")
    }

    // MARK: - Gather family

    @Test func gatherElementsAndND() throws {
        let data = Self.f([2, 2], [1, 2, 3, 4])
        let y = try Self.run("GatherElements", [data, Self.i64([0, 0, 1, -2], shape: [2, 2])], ["axis": .int(1)])[0]
        #expect(try y.scalars(as: Float.self) == [1, 1, 4, 3])
        #expect(Self.message { _ = try Self.run("GatherElements", [data, Self.i64([0, 2], shape: [1, 2])], ["axis": .int(1)]) }
            == "GatherElements: index 2 is out of range for axis 1 of extent 2 (expected -2...1)")

        let nd = try Self.run("GatherND", [data, Self.i64([1, 0, 0, 1], shape: [2, 2])])[0]
        #expect(try nd.scalars(as: Float.self) == [3, 2])
        let rows = try Self.run("GatherND", [try Tensor(shape: [2, 2], scalars: [Int32(1), 2, 3, 4]), Self.i64([1], shape: [1, 1])])[0]
        #expect(rows.shape == [1, 2])
        #expect(try rows.scalars(as: Int32.self) == [3, 4])
        let batched = try Self.run("GatherND", [data, Self.i64([1, 0], shape: [2, 1])], ["batch_dims": .int(1)])[0]
        #expect(try batched.scalars(as: Float.self) == [2, 3])
        #expect(Self.message { _ = try Self.run("GatherND", [data, Self.i64([0, -3], shape: [1, 2])]) }
            == "GatherND: index -3 is out of range for axis 1 of extent 2 (expected -2...1)")
    }

    // MARK: - Scatter family

    @Test func scatter() throws {
        let data = Self.f([1, 5], [1, 2, 3, 4, 5])
        let indices = Self.i64([1, 3, 1], shape: [1, 3])
        let updates = Self.f([1, 3], [10, 20, 30])
        let none = try Self.run("ScatterElements", opset: 11, [data, Self.i64([1, 3], shape: [1, 2]), Self.f([1, 2], [10, 20])], ["axis": .int(1)])[0]
        #expect(try none.scalars(as: Float.self) == [1, 10, 3, 20, 5])
        let add = try Self.run("ScatterElements", [data, indices, updates], ["axis": .int(1), "reduction": .string("add")])[0]
        #expect(try add.scalars(as: Float.self) == [1, 42, 3, 24, 5])
        let max = try Self.run("ScatterElements", [data, indices, updates], ["axis": .int(1), "reduction": .string("max")])[0]
        #expect(try max.scalars(as: Float.self) == [1, 30, 3, 20, 5])
        let old = try Self.run("Scatter", opset: 9, [data, Self.i64([4], shape: [1, 1]), Self.f([1, 1], [0])], ["axis": .int(1)])[0]
        #expect(try old.scalars(as: Float.self) == [1, 2, 3, 4, 0])
        #expect(Self.message { _ = try Self.run("ScatterElements", opset: 16, [data, indices, updates], ["reduction": .string("max")]) }
            == "ScatterElements node 'n': reduction 'max' is not supported at opset 16; expected none, add, mul")

        let nd = try Self.run(
            "ScatterND", [try Tensor(shape: [4], scalars: [Int64(1), 2, 3, 4]), Self.i64([3, 1, 3], shape: [3, 1]),
                          try Tensor(shape: [3], scalars: [Int64(10), 20, 30])], ["reduction": .string("mul")])[0]
        #expect(try nd.scalars(as: Int64.self) == [1, 40, 3, 1200])
        #expect(Self.message { _ = try Self.run("ScatterND", [data, Self.i64([0, 5], shape: [1, 2]), Self.f([1], [0])]) }
            == "ScatterND: index 5 is out of range for axis 1 of extent 5 (expected -5...4)")
    }

    // MARK: - OneHot, Compress, Unique

    @Test func oneHot() throws {
        let y = try Self.run("OneHot", opset: 11, [Self.i64([0, -1, 5]), Tensor(scalar: Float(3)), Self.f([2], [0, 1])])[0]
        #expect(y.shape == [3, 3])
        #expect(try y.scalars(as: Float.self) == [1, 0, 0, 0, 0, 1, 0, 0, 0])
        let columns = try Self.run("OneHot", [Self.i64([1, 0]), Self.i64([2], shape: []), try Tensor(shape: [2], scalars: [Int32(-1), 7])],
                                   ["axis": .int(0)])[0]
        #expect(try columns.scalars(as: Int32.self) == [-1, 7, 7, -1])
        #expect(Self.message { _ = try Self.run("OneHot", [Self.i64([1]), Self.i64([2], shape: []), Self.f([3], [0, 1, 2])]) }
            == "OneHot: values must have shape [2] (off, on), found [3]")
    }

    @Test func compress() throws {
        let x = Self.f([3, 2], [1, 2, 3, 4, 5, 6])
        let rows = try Self.run("Compress", [x, try Tensor(shape: [3], scalars: [false, true, true])], ["axis": .int(0)])[0]
        #expect(try rows.scalars(as: Float.self) == [3, 4, 5, 6])
        let flat = try Self.run("Compress", [x, try Tensor(shape: [3], scalars: [false, true, true])])[0]
        #expect(try flat.scalars(as: Float.self) == [2, 3])
        #expect(Self.message { _ = try Self.run("Compress", [x, try Tensor(shape: [4], scalars: [true, true, true, true])], ["axis": .int(0)]) }
            == "Compress: condition has 4 values but the axis has 3 elements")
    }

    @Test func unique() throws {
        let x = try Tensor(shape: [6], scalars: [Int16(2), 1, 1, 3, 4, 3])
        let sorted = try Self.run("Unique", [x], outputs: 4)
        #expect(try sorted[0].scalars(as: Int16.self) == [1, 2, 3, 4])
        #expect(try sorted[1].scalars(as: Int64.self) == [1, 0, 3, 4])
        #expect(try sorted[2].scalars(as: Int64.self) == [1, 0, 0, 2, 3, 2])
        #expect(try sorted[3].scalars(as: Int64.self) == [2, 1, 2, 1])
        let unsorted = try Self.run("Unique", [x], ["sorted": .int(0)], outputs: 4)
        #expect(try unsorted[0].scalars(as: Int16.self) == [2, 1, 3, 4])
        #expect(try unsorted[2].scalars(as: Int64.self) == [0, 1, 1, 2, 3, 2])
        let rows = try Self.run("Unique", [Self.f([3, 2], [1, 0, 0, 1, 1, 0])], ["axis": .int(0)], outputs: 4)
        #expect(rows[0].shape == [2, 2])
        #expect(try rows[0].scalars(as: Float.self) == [0, 1, 1, 0])
        #expect(try rows[3].scalars(as: Int64.self) == [1, 2])
        #expect(Self.message { _ = try Self.run("Unique", [x], ["axis": .int(1)], outputs: 4) }
            == "Unique: axis 1 is out of range for rank 1 (expected -1...0)")
    }
}
