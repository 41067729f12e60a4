import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Resize and Upsample: hand-checked interpolation, the attribute variants and the errors.
@Suite struct ResizeTests {
    static func run(
        _ op: String = "Resize", opset: Int = 19, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:]
    ) throws -> Tensor {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: ["y"], attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs)[0]
    }

    static func f(_ shape: [Int], _ values: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: values) }
    static func scales(_ values: [Float]) -> Tensor { try! Tensor(shape: [values.count], scalars: values) }
    static func sizes(_ values: [Int64]) -> Tensor { try! Tensor(shape: [values.count], scalars: values) }

    static func expectClose(_ a: [Float], _ b: [Float], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.count == b.count, sourceLocation: sourceLocation)
        for (x, y) in zip(a, b) where !(abs(x - y) <= 1e-5 * (1 + abs(y))) {
            Issue.record("\(a) vs \(b)", sourceLocation: sourceLocation)
            return
        }
    }

    static let square = f([1, 1, 2, 2], [1, 2, 3, 4])

    @Test func upsampleNearest() throws {
        let expected: [Float] = [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]
        let nine = try Self.run("Upsample", opset: 9, [Self.square, Self.scales([1, 1, 2, 2])])
        #expect(nine.shape == [1, 1, 4, 4])
        #expect(try nine.scalars(as: Float.self) == expected)
        let seven = try Self.run("Upsample", opset: 7, [Self.square], ["scales": .floats([1, 1, 2, 2])])
        #expect(try seven.scalars(as: Float.self) == expected)
        // Any element type moves.
        let bytes = try Self.run("Upsample", opset: 9, [try Tensor(shape: [1, 2], scalars: [7, 9] as [UInt8]), Self.scales([1, 2])])
        #expect(try bytes.scalars(as: UInt8.self) == [7, 7, 9, 9])
    }

    @Test func linearCoordinateModes() throws {
        let x = Self.f([1, 1, 1, 2], [1, 3])
        let cases: [(String, [Float])] = [
            ("half_pixel", [1, 1.5, 2.5, 3]),
            ("align_corners", [1, 5.0 / 3, 7.0 / 3, 3]),
            ("asymmetric", [1, 2, 3, 3]),
            ("pytorch_half_pixel", [1, 1.5, 2.5, 3]),
        ]
        for (mode, expected) in cases {
            let y = try Self.run(opset: 13, [x, nil, Self.scales([1, 1, 1, 2])],
                                 ["mode": .string("linear"), "coordinate_transformation_mode": .string(mode)])
            #expect(y.shape == [1, 1, 1, 4], "\(mode)")
            Self.expectClose(try y.scalars(as: Float.self), expected)
        }
    }

    @Test func nearestModesWithSizes() throws {
        let x = try Tensor(shape: [1, 3], scalars: [10, 20, 30] as [Int32])
        // half_pixel from 3 to 5: sources −0.2, 0.4, 1, 1.6, 2.2.
        let cases: [(String, [Int32])] = [
            ("round_prefer_floor", [10, 10, 20, 30, 30]), ("round_prefer_ceil", [10, 10, 20, 30, 30]),
            ("floor", [10, 10, 20, 20, 30]), ("ceil", [10, 20, 20, 30, 30]),
        ]
        for (mode, expected) in cases {
            let y = try Self.run(opset: 13, [x, nil, nil, Self.sizes([1, 5])], ["nearest_mode": .string(mode)])
            #expect(try y.scalars(as: Int32.self) == expected, "\(mode)")
        }
    }

    @Test func cubicKeepsConstantsAndInterpolates() throws {
        let constant = Self.f([1, 1, 3, 3], [Float](repeating: 2, count: 9))
        let y = try Self.run(opset: 11, [constant, Self.f([0], []), Self.scales([1, 1, 2, 2])], ["mode": .string("cubic")])
        #expect(y.shape == [1, 1, 6, 6])
        Self.expectClose(try y.scalars(as: Float.self), [Float](repeating: 2, count: 36))
        // Linear data stays linear inside the input with align_corners (the cubic kernel reproduces it).
        let ramp = Self.f([1, 4], [0, 1, 2, 3])
        let z = try Self.run(opset: 13, [ramp, nil, nil, Self.sizes([1, 7])],
                             ["mode": .string("cubic"), "coordinate_transformation_mode": .string("align_corners")])
        Self.expectClose(Array(try z.scalars(as: Float.self)[2...4]), [1, 1.5, 2])
    }

    @Test func cropAndResizeExtrapolates() throws {
        let x = Self.f([1, 1, 2, 2], [1, 2, 3, 4])
        let roi = Self.f([8], [0, 0, 0, 0, 1, 1, 1, 2])
        let y = try Self.run(opset: 13, [x, roi, nil, Self.sizes([1, 1, 2, 3])],
                             ["mode": .string("linear"), "coordinate_transformation_mode": .string("tf_crop_and_resize"),
                              "extrapolation_value": .float(-1)])
        // Width sources 0, 1, 2: the last lies outside the input.
        #expect(try y.scalars(as: Float.self) == [1, 2, -1, 3, 4, -1])
    }

    @Test func axesAndAspectPolicy() throws {
        let x = Self.f([1, 1, 2, 4], (0..<8).map(Float.init))
        let larger = try Self.run(opset: 18, [x, nil, nil, Self.sizes([4, 4])],
                                  ["axes": .ints([2, 3]), "keep_aspect_ratio_policy": .string("not_larger")])
        #expect(larger.shape == [1, 1, 2, 4])
        #expect(try larger.scalars(as: Float.self) == (0..<8).map(Float.init))
        let smaller = try Self.run(opset: 18, [x, nil, nil, Self.sizes([4, 4])],
                                   ["axes": .ints([-2, -1]), "keep_aspect_ratio_policy": .string("not_smaller")])
        #expect(smaller.shape == [1, 1, 4, 8])
        let onlyWidth = try Self.run(opset: 18, [x, nil, Self.scales([0.5])], ["axes": .ints([3])])
        #expect(onlyWidth.shape == [1, 1, 2, 2])
        #expect(try onlyWidth.scalars(as: Float.self) == [0, 2, 4, 6])
    }

    @Test func antialiasAveragesWhenShrinking() throws {
        let x = Self.f([1, 4], [0, 4, 8, 12])
        let y = try Self.run(opset: 18, [x, nil, Self.scales([1, 0.5])], ["mode": .string("linear"), "antialias": .int(1)])
        #expect(y.shape == [1, 2])
        // A triangle filter twice as wide: weights ¼, ¾, ¾, ¼ over the neighbours (clamped at the edges).
        // (0·¼ + 0·¾ + 4·¾ + 8·¼) / 2 and (4·¼ + 8·¾ + 12·¾ + 12·¼) / 2.
        Self.expectClose(try y.scalars(as: Float.self), [2.5, 9.5])
    }

    @Test func errors() throws {
        let both = #expect(throws: OnyxError.self) {
            try Self.run(opset: 13, [Self.square, nil, Self.scales([1, 1, 2, 2]), Self.sizes([1, 1, 4, 4])])
        }
        #expect(both?.message.contains("not both") == true)
        let count = #expect(throws: OnyxError.self) { try Self.run(opset: 13, [Self.square, nil, Self.scales([2, 2])]) }
        #expect(count?.code == .shapeMismatch)
        let mode = #expect(throws: OnyxError.self) { try Self.run(opset: 13, [Self.square, nil, Self.scales([1, 1, 2, 2])], ["mode": .string("area")]) }
        #expect(mode?.message.contains("mode 'area'") == true)
        let negative = #expect(throws: OnyxError.self) { try Self.run(opset: 13, [Self.square, nil, Self.scales([1, 1, -2, 2])]) }
        #expect(negative?.code == .invalidInput)
        let none = #expect(throws: OnyxError.self) { try Self.run(opset: 13, [Self.square]) }
        #expect(none?.message.contains("one of scales and sizes") == true)
        let flags = #expect(throws: OnyxError.self) {
            try Self.run(opset: 13, [try Tensor(shape: [2], scalars: [true, false]), nil, Self.scales([2])], ["mode": .string("linear")])
        }
        #expect(flags?.code == .unsupportedDataType)
    }
}
