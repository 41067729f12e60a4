import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// ReduceMean with axes as an attribute (opset < 18) and as an input (opset 18+), against a
/// naive Double reference.
@Suite struct ReductionTests {
    // MARK: - Helpers

    static func run(_ opset: Int, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], threads: Int = 1) throws -> Tensor {
        let node = Node(
            name: "n", opType: "ReduceMean", inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: ["y"], attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs, threads: threads)[0]
    }

    static func axes(_ values: [Int]) -> Tensor { try! Tensor(shape: [values.count], scalars: values.map(Int64.init)) }

    static func values(_ count: Int) -> [Float] { (0..<count).map { Float(($0 * 7919) % 31) / 4 - 3 } }

    /// The mean over `axes` (all if empty), in Double; the shape keeps reduced axes as 1 when `keepDims`.
    static func reference(_ x: [Float], shape: [Int], axes: [Int], keepDims: Bool) -> (shape: [Int], values: [Float]) {
        let rank = shape.count
        let reduced = Set(axes.isEmpty ? Array(0..<rank) : axes.map { $0 < 0 ? $0 + rank : $0 })
        let outShape = shape.enumerated().map { reduced.contains($0.offset) ? 1 : $0.element }
        var sums = [Double](repeating: 0, count: outShape.reduce(1, *))
        for linear in 0..<x.count {
            var rest = linear, out = 0, step = 1
            for axis in (0..<rank).reversed() {
                let i = rest % shape[axis]
                rest /= shape[axis]
                if !reduced.contains(axis) { out += i * step }
                step *= outShape[axis]
            }
            sums[out] += Double(x[linear])
        }
        let divisor = Double(x.count / max(sums.count, 1))
        let shapeOut = keepDims ? outShape : shape.enumerated().filter { !reduced.contains($0.offset) }.map(\.element)
        return (shapeOut, sums.map { Float($0 / divisor) })
    }

    static func expectClose(_ a: [Float], _ b: [Float], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.count == b.count, sourceLocation: sourceLocation)
        guard a.count == b.count else { return }
        for (x, y) in zip(a, b) where !(abs(x - y) <= 1e-5 * (1 + abs(y))) {
            Issue.record("\(a.prefix(12)) vs \(b.prefix(12))", sourceLocation: sourceLocation)
            return
        }
    }

    // MARK: - Against the reference

    static let cases: [([Int], [Int])] = [
        ([2, 3, 4], [1]), ([2, 3, 4], [0, 2]), ([2, 3, 4], [-1]), ([2, 3, 4], [0, 1, 2]), ([2, 3, 4], [0]),
        ([2, 3, 4], []),                        // no axes: all
        ([1, 7, 1, 17], [0, 2]),                // only extent-1 axes: a copy
        ([1, 7, 1, 17], [1, 2]),
        ([3, 1, 63, 1, 5], [0, 2, 4]),          // alternating kept and reduced groups
        ([3, 1, 63, 1, 5], [1, 3, -1]),
        ([2, 16, 7, 7], [2, 3]),                // global average pooling
        ([4, 9, 257], [-1]),                    // layer-norm style last axis
        ([257, 3], [0]),
        ([5], [0]), ([6, 1], [1]),
    ]

    @Test(arguments: cases)
    func axesAttributeBeforeOpset18(_ c: ([Int], [Int])) throws {
        let (shape, axes) = c
        let values = Self.values(shape.reduce(1, *))
        let x = try Tensor(shape: shape, scalars: values)
        for keepDims in [true, false] {
            var attributes: [String: Attribute] = ["keepdims": .int(keepDims ? 1 : 0)]
            if !axes.isEmpty { attributes["axes"] = .ints(axes) }
            let y = try Self.run(13, [x], attributes)
            let expected = Self.reference(values, shape: shape, axes: axes, keepDims: keepDims)
            #expect(y.shape == expected.shape, "\(shape) \(axes) keepdims \(keepDims)")
            Self.expectClose(try y.scalars(as: Float.self), expected.values)
        }
    }

    @Test(arguments: cases)
    func axesInputFromOpset18(_ c: ([Int], [Int])) throws {
        let (shape, axes) = c
        let values = Self.values(shape.reduce(1, *))
        let x = try Tensor(shape: shape, scalars: values)
        for keepDims in [true, false] {
            let y = try Self.run(18, [x, axes.isEmpty ? nil : Self.axes(axes)], ["keepdims": .int(keepDims ? 1 : 0)])
            let expected = Self.reference(values, shape: shape, axes: axes, keepDims: keepDims)
            #expect(y.shape == expected.shape, "\(shape) \(axes) keepdims \(keepDims)")
            Self.expectClose(try y.scalars(as: Float.self), expected.values)
        }
    }

    @Test func handComputed() throws {
        let x = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float])
        let rows = try Self.run(13, [x], ["axes": .ints([1])])
        #expect(rows.shape == [2, 1])
        #expect(try rows.scalars(as: Float.self) == [2, 5])
        let columns = try Self.run(18, [x, Self.axes([0])], ["keepdims": .int(0)])
        #expect(columns.shape == [3])
        #expect(try columns.scalars(as: Float.self) == [2.5, 3.5, 4.5])
        let all = try Self.run(11, [x], ["keepdims": .int(0)])
        #expect(all.shape == [])
        #expect(try all.scalars(as: Float.self) == [3.5])
        // int32 axes are read too.
        let int32 = try Self.run(18, [x, try Tensor(shape: [1], scalars: [Int32(-1)])])
        #expect(try int32.scalars(as: Float.self) == [2, 5])
    }

    @Test func noopWithEmptyAxes() throws {
        let x = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float])
        let empty = try Tensor(shape: [0], scalars: [Int64]())
        // Absent or empty axes: identity with noop_with_empty_axes, all axes without.
        for axes in [nil, empty] {
            let same = try Self.run(18, [x, axes], ["noop_with_empty_axes": .int(1)])
            #expect(same.shape == [2, 3])
            #expect(try same.scalars(as: Float.self) == [1, 2, 3, 4, 5, 6])
            let reduced = try Self.run(18, [x, axes])
            #expect(reduced.shape == [1, 1])
            #expect(try reduced.scalars(as: Float.self) == [3.5])
        }
        // Given axes win over the flag.
        let given = try Self.run(18, [x, Self.axes([1])], ["noop_with_empty_axes": .int(1), "keepdims": .int(0)])
        #expect(try given.scalars(as: Float.self) == [2, 5])
    }

    @Test func largeReductionsSplitAcrossThreads() throws {
        for (shape, axes) in [([64, 3, 2000], [1, 2]), ([8, 1000, 40], [1]), ([400, 700], [-1]), ([2, 100, 700], [0])] {
            let values = Self.values(shape.reduce(1, *))
            let x = try Tensor(shape: shape, scalars: values)
            let y = try Self.run(18, [x, Self.axes(axes)], threads: 2)
            let expected = Self.reference(values, shape: shape, axes: axes, keepDims: true)
            #expect(y.shape == expected.shape)
            Self.expectClose(try y.scalars(as: Float.self), expected.values)
        }
    }

    @Test func emptyInputs() throws {
        // Reducing an empty axis gives NaN (the mean of nothing); keeping it gives an empty result.
        let x = try Tensor(shape: [2, 0], scalars: [Float]())
        let overEmpty = try Self.run(13, [x], ["axes": .ints([1])])
        #expect(overEmpty.shape == [2, 1])
        #expect(try overEmpty.scalars(as: Float.self).allSatisfy(\.isNaN))
        let keepingEmpty = try Self.run(13, [x], ["axes": .ints([0])])
        #expect(keepingEmpty.shape == [1, 0])
    }

    // MARK: - Errors

    @Test func errors() throws {
        let x = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float])
        let range = #expect(throws: OnyxError.self) { try Self.run(13, [x], ["axes": .ints([2])]) }
        #expect(range?.code == .invalidAttribute)
        #expect(range?.message.contains("axis 2 is out of range") == true)
        let duplicate = #expect(throws: OnyxError.self) { try Self.run(18, [x, Self.axes([1, -1])]) }
        #expect(duplicate?.code == .invalidAttribute)
        #expect(duplicate?.message.contains("more than once") == true)
        let type = #expect(throws: OnyxError.self) { try Self.run(18, [try Tensor(shape: [2], scalars: [true, false])]) }
        #expect(type?.code == .unsupportedDataType)
        #expect(type?.message.contains("ReduceMean does not support bool") == true)
        let axesType = #expect(throws: OnyxError.self) { try Self.run(18, [x, try Tensor(shape: [1], scalars: [Float(1)])]) }
        #expect(axesType?.code == .unsupportedDataType)
        let twoInputs = #expect(throws: OnyxError.self) { try Self.run(13, [x, Self.axes([0])]) }
        #expect(twoInputs?.code == .invalidModel)
        // Axes that only the run knows: the kernel asks the session to plan with values.
        let kernel = try #require(OperatorRegistry.registration(domain: "", opType: "ReduceMean", opset: 18)).make(
            NodeContext(node: Node(name: "n", opType: "ReduceMean", inputs: ["x", "axes"], outputs: ["y"]), opset: 18,
                        constantInputs: [nil, nil], isa: .preferred))
        let planned = [PlannedInput(descriptor: TensorDescriptor(.float, [2, 3]), constant: nil),
                       PlannedInput(descriptor: TensorDescriptor(.int64, [1]), constant: nil)]
        let dynamic = #expect(throws: NeedsInputValues.self) { try kernel.outputDescriptors(for: planned) }
        #expect(dynamic?.description.contains("axes input must be known") == true)
    }

    // MARK: - The rest of the family

    static func reduce(
        _ op: String, opset: Int = 18, _ x: Tensor, axes: [Int]? = nil, _ attributes: [String: Attribute] = [:]
    ) throws -> Tensor {
        var inputs: [Tensor?] = [x]
        var attributes = attributes
        if let axes {
            if opset >= (op == "ReduceSum" ? 13 : 18) { inputs.append(Self.axes(axes)) } else { attributes["axes"] = .ints(axes) }
        }
        let node = Node(
            name: "n", opType: op, inputs: inputs.indices.map { "x\($0)" }, outputs: ["y"], attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs)[0]
    }

    /// `[[1, -2, 3], [-4, 5, -6]]` reduced along axis 1, checked by hand.
    static let familyCases: [(String, [Double])] = [
        ("ReduceSum", [2, -5]), ("ReduceMean", [0.666_666_667, -1.666_666_667]), ("ReduceProd", [-6, 120]),
        ("ReduceMax", [3, 5]), ("ReduceMin", [-2, -6]), ("ReduceL1", [6, 15]), ("ReduceL2", [3.741_657_387, 8.774_964_387]),
        ("ReduceSumSquare", [14, 77]), ("ReduceLogSumExp", [3.132_845_234, 5.000_140_102]),
    ]

    @Test(arguments: familyCases)
    func handCheckedFamily(_ c: (String, [Double])) throws {
        let x = try Tensor(shape: [2, 3], scalars: [1, -2, 3, -4, 5, -6] as [Float])
        for opset in [13, 18] {
            let y = try Self.reduce(c.0, opset: opset, x, axes: [1], ["keepdims": .int(0)])
            #expect(y.shape == [2], "\(c.0) opset \(opset)")
            Self.expectClose(try y.scalars(as: Float.self), c.1.map(Float.init))
        }
        // Double and float16 agree.
        let double = try Self.reduce(c.0, Tensor(shape: [2, 3], scalars: [1, -2, 3, -4, 5, -6] as [Double]), axes: [-1])
        #expect(double.shape == [2, 1])
        Self.expectClose(try double.scalars(as: Double.self).map(Float.init), c.1.map(Float.init))
        let half = try Self.reduce(c.0, Tensor(shape: [2, 3], scalars: [1, -2, 3, -4, 5, -6] as [Float16]), axes: [1])
        for (a, b) in zip(try half.scalars(as: Float16.self), c.1) { #expect(abs(Double(a) - b) <= 0.01 * (1 + abs(b)), "\(c.0)") }
    }

    @Test func logSumOfPositiveValues() throws {
        let x = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Float])
        let y = try Self.reduce("ReduceLogSum", x, axes: [0])
        Self.expectClose(try y.scalars(as: Float.self), [log(4), log(6)])
        // Large values do not overflow ReduceLogSumExp.
        let big = try Self.reduce("ReduceLogSumExp", Tensor(shape: [2], scalars: [1000, 1000] as [Float]))
        Self.expectClose(try big.scalars(as: Float.self), [1000 + log(2)])
    }

    @Test func integerReductions() throws {
        let x = try Tensor(shape: [2, 3], scalars: [1, -2, 3, -4, 5, -7] as [Int32])
        #expect(try Self.reduce("ReduceSum", x, axes: [1], ["keepdims": .int(0)]).scalars(as: Int32.self) == [2, -6])
        // Integer means truncate toward zero.
        #expect(try Self.reduce("ReduceMean", x, axes: [1]).scalars(as: Int32.self) == [0, -2])
        #expect(try Self.reduce("ReduceProd", x, axes: [0]).scalars(as: Int32.self) == [-4, -10, -21])
        #expect(try Self.reduce("ReduceMax", x).scalars(as: Int32.self) == [5])
        #expect(try Self.reduce("ReduceL1", x).scalars(as: Int32.self) == [22])
        #expect(try Self.reduce("ReduceL2", x, axes: [0]).scalars(as: Int32.self) == [4, 5, 7])
        let bytes = try Tensor(shape: [4], scalars: [3, 250, 7, 0] as [UInt8])
        #expect(try Self.reduce("ReduceMin", bytes).scalars(as: UInt8.self) == [0])
        #expect(try Self.reduce("ReduceMax", bytes).scalars(as: UInt8.self) == [250])
        let int64 = try Tensor(shape: [2], scalars: [Int64.max, 1])
        #expect(try Self.reduce("ReduceSum", int64).scalars(as: Int64.self) == [Int64.min])  // wraps
        let flags = try Tensor(shape: [2, 2], scalars: [true, false, false, false])
        #expect(try Self.reduce("ReduceMax", opset: 20, flags, axes: [1], ["keepdims": .int(0)]).scalars(as: Bool.self) == [true, false])
        #expect(try Self.reduce("ReduceMin", opset: 20, flags, axes: [0], ["keepdims": .int(0)]).scalars(as: Bool.self) == [false, false])
    }

    /// Reducing an empty set gives the operation's identity, as onnx.reference defines it.
    @Test func emptySets() throws {
        let x = try Tensor(shape: [2, 0, 3], scalars: [Float]())
        let expected: [(String, Float)] = [
            ("ReduceSum", 0), ("ReduceProd", 1), ("ReduceMax", -.infinity), ("ReduceMin", .infinity), ("ReduceL1", 0),
            ("ReduceL2", 0), ("ReduceSumSquare", 0), ("ReduceLogSum", -.infinity), ("ReduceLogSumExp", -.infinity),
        ]
        for (op, value) in expected {
            let y = try Self.reduce(op, x, axes: [1])
            #expect(y.shape == [2, 1, 3], "\(op)")
            #expect(try y.scalars(as: Float.self) == [Float](repeating: value, count: 6), "\(op)")
        }
        let integers = try Tensor(shape: [0, 2], scalars: [Int64]())
        #expect(try Self.reduce("ReduceMax", integers, axes: [0]).scalars(as: Int64.self) == [.min, .min])
        let flags = try Tensor(shape: [0], scalars: [Bool]())
        #expect(try Self.reduce("ReduceMin", opset: 20, flags).scalars(as: Bool.self) == [true])
        // Keeping the empty axis gives an empty result.
        #expect(try Self.reduce("ReduceSum", x, axes: [2]).shape == [2, 0, 1])
    }

    /// noop_with_empty_axes reduces nothing: each element is mapped and finished alone.
    @Test func noopMapsEachElement() throws {
        let x = try Tensor(shape: [3], scalars: [-2, 0.5, 3] as [Float])
        let attributes: [String: Attribute] = ["noop_with_empty_axes": .int(1)]
        #expect(try Self.reduce("ReduceSumSquare", x, attributes).scalars(as: Float.self) == [4, 0.25, 9])
        #expect(try Self.reduce("ReduceL1", x, attributes).scalars(as: Float.self) == [2, 0.5, 3])
        #expect(try Self.reduce("ReduceSum", x, attributes).scalars(as: Float.self) == [-2, 0.5, 3])
    }

    @Test func familyErrors() throws {
        let x = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float])
        let range = #expect(throws: OnyxError.self) { try Self.reduce("ReduceMax", x, axes: [-3]) }
        #expect(range?.message.contains("ReduceMax: axis -3 is out of range") == true)
        let type = #expect(throws: OnyxError.self) { try Self.reduce("ReduceSum", try Tensor(shape: [2], scalars: [1, 2] as [Int8])) }
        #expect(type?.code == .unsupportedDataType)
        #expect(type?.message.contains("ReduceSum does not support int8") == true)
        // ReduceSum takes its axes as an input from opset 13, the others from 18.
        let old = #expect(throws: OnyxError.self) {
            try OperatorRegistry.evaluate(
                Node(name: "n", opType: "ReduceProd", inputs: ["x", "a"], outputs: ["y"]), opset: 17, inputs: [x, Self.axes([0])])
        }
        #expect(old?.code == .invalidModel)
    }
}
