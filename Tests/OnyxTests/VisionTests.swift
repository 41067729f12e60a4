import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// GridSample, AffineGrid, Col2Im, DeformConv, RoiAlign and NonMaxSuppression on hand-checked values.
@Suite struct VisionTests {
    static func run(
        _ op: String, opset: Int, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], outputs: Int = 1
    ) throws -> [Tensor] {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs)
    }

    static func f(_ shape: [Int], _ values: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: values) }
    static func i64(_ shape: [Int], _ values: [Int64]) -> Tensor { try! Tensor(shape: shape, scalars: values) }

    static func close(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-5) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(1, abs($1)) }
    }

    // MARK: - GridSample

    @Test func gridSampleBilinearCornersAndCentre() throws {
        let x = Self.f([1, 1, 2, 2], [1, 2, 3, 4])
        // (x, y) pairs: top-left, bottom-right, centre.
        let grid = Self.f([1, 1, 3, 2], [-1, -1, 1, 1, 0, 0])
        let aligned = try Self.run("GridSample", opset: 22, [x, grid], ["align_corners": .int(1)])[0]
        #expect(aligned.shape == [1, 1, 1, 3])
        #expect(try aligned.scalars(as: Float.self) == [1, 4, 2.5])
        // Without align_corners the corners of the grid are the pixels' outer edges: half zero padding.
        let unaligned = try Self.run("GridSample", opset: 22, [x, grid])[0]
        #expect(Self.close(try unaligned.scalars(as: Float.self), [0.25, 1, 2.5]))
        // Opset 16 spells the mode "bilinear".
        let old = try Self.run("GridSample", opset: 16, [x, grid], ["align_corners": .int(1), "mode": .string("bilinear")])[0]
        #expect(try old.scalars(as: Float.self) == [1, 4, 2.5])
    }

    @Test func gridSamplePaddingModes1D() throws {
        // Opset 20 is N-d: one spatial axis of [10, 20, 30]; normalised 1.5 is position 2.5 when aligned.
        let x = Self.f([1, 1, 3], [10, 20, 30])
        let grid = Self.f([1, 2, 1], [1.5, -0.5])
        func sample(_ padding: String) throws -> [Float] {
            try Self.run("GridSample", opset: 20, [x, grid], ["align_corners": .int(1), "padding_mode": .string(padding)])[0]
                .scalars(as: Float.self)
        }
        #expect(try sample("zeros") == [15, 15])
        #expect(try sample("border") == [30, 15])
        #expect(try sample("reflection") == [25, 15])
    }

    @Test func gridSampleNearestOnIntegersAndDouble() throws {
        let x = try Tensor(shape: [1, 1, 2, 2], scalars: [5, -7, 9, 100] as [Int32])
        let grid = Self.f([1, 2, 1, 2], [1, -1, -1, 1])
        let y = try Self.run("GridSample", opset: 20, [x, grid], ["align_corners": .int(1), "mode": .string("nearest")])[0]
        #expect(y.dataType == .int32)
        #expect(try y.scalars(as: Int32.self) == [-7, 9])
        let xd = try Tensor(shape: [1, 1, 2, 2], scalars: [1, 2, 3, 4] as [Double])
        let gd = try Tensor(shape: [1, 1, 1, 2], scalars: [0, 0] as [Double])
        let cubic = try Self.run("GridSample", opset: 20, [xd, gd], ["align_corners": .int(1), "mode": .string("cubic"),
                                                                     "padding_mode": .string("border")])[0]
        #expect(abs(try cubic.scalars(as: Double.self)[0] - 2.5) < 1e-12)
    }

    /// Bilinear, zeros padding, align_corners 0, straight from the definition.
    static func naiveBilinear(_ x: [Float], _ h: Int, _ w: Int, _ gx: Float, _ gy: Float) -> Float {
        let px = ((gx + 1) * Float(w) - 1) / 2, py = ((gy + 1) * Float(h) - 1) / 2
        let x0 = Int(px.rounded(.down)), y0 = Int(py.rounded(.down))
        let fx = px - Float(x0), fy = py - Float(y0)
        func at(_ i: Int, _ j: Int) -> Float { i >= 0 && i < h && j >= 0 && j < w ? x[i * w + j] : 0 }
        return (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1))
    }

    @Test(arguments: [(17, 63, 33, 65), (1, 7, 1, 257), (7, 1, 63, 1)])
    func gridSampleMatchesNaiveBilinearOnAnyThreadCount(_ sizes: (Int, Int, Int, Int)) throws {
        let (h, w, oh, ow) = sizes
        let channels = 3
        let values = (0..<(channels * h * w)).map { Float(($0 * 7919) % 23) - 11 }
        let grid = (0..<(oh * ow * 2)).map { Float(($0 * 104729) % 41) / 16 - 1.25 }
        let inputs = [Self.f([1, channels, h, w], values), Self.f([1, oh, ow, 2], grid)]
        let node = Node(name: "n", opType: "GridSample", inputs: ["x", "g"], outputs: ["y"])
        let one = try OperatorRegistry.evaluate(node, opset: 20, inputs: inputs, threads: 1)[0].scalars(as: Float.self)
        let many = try OperatorRegistry.evaluate(node, opset: 20, inputs: inputs, threads: 4)[0].scalars(as: Float.self)
        #expect(one == many)
        var expected: [Float] = []
        for c in 0..<channels {
            let plane = Array(values[(c * h * w)..<((c + 1) * h * w)])
            for p in 0..<(oh * ow) { expected.append(Self.naiveBilinear(plane, h, w, grid[2 * p], grid[2 * p + 1])) }
        }
        #expect(Self.close(one, expected, 1e-4))
    }

    @Test func gridSampleErrors() throws {
        let x = Self.f([1, 1, 2, 2], [1, 2, 3, 4])
        let badGrid = #expect(throws: OnyxError.self) { try Self.run("GridSample", opset: 20, [x, Self.f([1, 1, 1, 3], [0, 0, 0])]) }
        #expect(badGrid?.code == .shapeMismatch)
        #expect(badGrid?.message == "GridSample: grid [1,1,1,3] must be [N, D1…D2, 2] for X [1,1,2,2]")
        let renamed = #expect(throws: OnyxError.self) {
            try Self.run("GridSample", opset: 20, [x, Self.f([1, 1, 1, 2], [0, 0])], ["mode": .string("bilinear")])
        }
        #expect(renamed?.code == .invalidAttribute)
        #expect(renamed?.message == "GridSample node 'n': mode 'bilinear' is not one of cubic, linear, nearest")
        let volumetricOld = #expect(throws: OnyxError.self) {
            try Self.run("GridSample", opset: 16, [Self.f([1, 1, 1, 1, 1], [1]), Self.f([1, 1, 1, 1, 3], [0, 0, 0])])
        }
        #expect(volumetricOld?.message == "GridSample (opset < 20): X must be 4-D, got [1,1,1,1,1]")
        let intGrid = #expect(throws: OnyxError.self) {
            try Self.run("GridSample", opset: 20, [x, Self.i64([1, 1, 1, 2], [0, 0])])
        }
        #expect(intGrid?.code == .unsupportedDataType)
    }

    // MARK: - AffineGrid

    @Test func affineGridIdentityAndShift() throws {
        let identity = Self.f([1, 2, 3], [1, 0, 0, 0, 1, 0])
        let size = Self.i64([4], [1, 1, 2, 2])
        let aligned = try Self.run("AffineGrid", opset: 20, [identity, size], ["align_corners": .int(1)])[0]
        #expect(aligned.shape == [1, 2, 2, 2])
        #expect(try aligned.scalars(as: Float.self) == [-1, -1, 1, -1, -1, 1, 1, 1])
        let shifted = Self.f([1, 2, 3], [1, 0, 0.5, 0, 1, 0])
        let centres = try Self.run("AffineGrid", opset: 20, [shifted, size])[0]
        #expect(try centres.scalars(as: Float.self) == [0, -0.5, 1, -0.5, 0, 0.5, 1, 0.5])
        let double = try Self.run("AffineGrid", opset: 20, [try Tensor(shape: [1, 3, 4], scalars: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0] as [Double]),
                                                            Self.i64([5], [1, 1, 1, 1, 2])])[0]
        #expect(try double.scalars(as: Double.self) == [-0.5, 0, 0, 0.5, 0, 0])
    }

    @Test func affineGridErrors() throws {
        let error = #expect(throws: OnyxError.self) {
            try Self.run("AffineGrid", opset: 20, [Self.f([1, 2, 3], [1, 0, 0, 0, 1, 0]), Self.i64([5], [1, 1, 2, 2, 2])])
        }
        #expect(error?.message == "AffineGrid: theta [1,2,3] must be [1, 3, 4] for size [1,1,2,2,2]")
    }

    // MARK: - Col2Im

    @Test func col2ImSumsOverlappingBlocks() throws {
        // A 1×3 image from 1×2 blocks at stride 1: columns [1, 2] (left tap) and [3, 4] (right tap).
        let cols = Self.f([1, 2, 2], [1, 2, 3, 4])
        let y = try Self.run("Col2Im", opset: 18, [cols, Self.i64([2], [1, 3]), Self.i64([2], [1, 2])])[0]
        #expect(y.shape == [1, 1, 1, 3])
        #expect(try y.scalars(as: Float.self) == [1, 5, 4])
        let ints = try Tensor(shape: [1, 2, 2], scalars: [1, 2, 3, 4] as [Int32])
        let yi = try Self.run("Col2Im", opset: 18, [ints, Self.i64([2], [1, 3]), Self.i64([2], [1, 2])])[0]
        #expect(try yi.scalars(as: Int32.self) == [1, 5, 4])
        // Strides 2 with padding 1 on the right: blocks at 0 and 2, the second half-outside.
        let strided = try Self.run("Col2Im", opset: 18, [cols, Self.i64([2], [1, 3]), Self.i64([2], [1, 2])],
                                   ["strides": .ints([1, 2]), "pads": .ints([0, 0, 0, 1])])[0]
        #expect(try strided.scalars(as: Float.self) == [1, 3, 2])
    }

    @Test func col2ImErrors() throws {
        let error = #expect(throws: OnyxError.self) {
            try Self.run("Col2Im", opset: 18, [Self.f([1, 2, 3], [1, 2, 3, 4, 5, 6]), Self.i64([2], [1, 3]), Self.i64([2], [1, 2])])
        }
        #expect(error?.code == .shapeMismatch)
        #expect(error?.message == "Col2Im: input axis 2 is 3 but the image has [1,2] = 2 blocks")
        let badStride = #expect(throws: OnyxError.self) {
            try Self.run("Col2Im", opset: 18, [Self.f([1, 2, 2], [1, 2, 3, 4]), Self.i64([2], [1, 3]), Self.i64([2], [1, 2])],
                         ["strides": .ints([0, 1])])
        }
        #expect(badStride?.code == .invalidAttribute)
        let huge = #expect(throws: OnyxError.self) {
            try Self.run("Col2Im", opset: 18, [Self.f([1, 2, 2], [1, 2, 3, 4]), Self.i64([2], [1, 1 << 40]), Self.i64([2], [1, 1 << 40])])
        }
        #expect(huge?.code == .limitExceeded)
    }

    // MARK: - DeformConv

    @Test func deformConvWithZeroOffsetIsConvolution() throws {
        let x = Self.f([1, 1, 3, 3], (1...9).map(Float.init))
        let w = Self.f([1, 1, 2, 2], [1, 1, 1, 1])
        let offset = Self.f([1, 8, 2, 2], Array(repeating: 0, count: 32))
        let y = try Self.run("DeformConv", opset: 22, [x, w, offset])[0]
        #expect(y.shape == [1, 1, 2, 2])
        #expect(try y.scalars(as: Float.self) == [12, 16, 24, 28])
        // Shifting every tap down by one row reads the next row (and zeros below the image); a mask halves it; B adds 1.
        var shift = [Float](repeating: 0, count: 32)
        for tap in 0..<4 { for p in 0..<4 { shift[tap * 8 + p] = 1 } }
        let mask = Self.f([1, 4, 2, 2], Array(repeating: 0.5, count: 16))
        let moved = try Self.run("DeformConv", opset: 22, [x, w, Self.f([1, 8, 2, 2], shift), Self.f([1], [1]), mask])[0]
        #expect(try moved.scalars(as: Float.self) == [13, 15, 8.5, 9.5])
        let xd = try Tensor(shape: [1, 1, 3, 3], scalars: (1...9).map(Double.init))
        let yd = try Self.run("DeformConv", opset: 19, [xd, try Tensor(shape: [1, 1, 2, 2], scalars: [1, 1, 1, 1] as [Double]),
                                                        try Tensor(shape: [1, 8, 2, 2], scalars: [Double](repeating: 0, count: 32))])[0]
        #expect(try yd.scalars(as: Double.self) == [12, 16, 24, 28])
    }

    @Test func deformConvErrors() throws {
        let x = Self.f([1, 1, 3, 3], (1...9).map(Float.init))
        let error = #expect(throws: OnyxError.self) {
            try Self.run("DeformConv", opset: 22, [x, Self.f([1, 1, 2, 2], [1, 1, 1, 1]), Self.f([1, 4, 2, 2], Array(repeating: 0, count: 16))])
        }
        #expect(error?.code == .shapeMismatch)
        #expect(error?.message == "DeformConv: offset [1,4,2,2] must be [1,8,2,2]")
    }

    // MARK: - RoiAlign

    @Test func roiAlignAveragesAndMaxes() throws {
        // A ramp image: X[h, w] = w. The average over a region is its centre column.
        let x = Self.f([1, 1, 4, 4], (0..<16).map { Float($0 % 4) })
        let rois = Self.f([1, 4], [0, 0, 2, 2])
        let y = try Self.run("RoiAlign", opset: 16, [x, rois, Self.i64([1], [0])],
                             ["output_height": .int(1), "output_width": .int(2), "sampling_ratio": .int(1),
                              "coordinate_transformation_mode": .string("output_half_pixel")])[0]
        #expect(y.shape == [1, 1, 1, 2])
        #expect(try y.scalars(as: Float.self) == [0.5, 1.5])
        // half_pixel shifts the region by half a pixel.
        let shifted = try Self.run("RoiAlign", opset: 16, [x, rois, Self.i64([1], [0])],
                                   ["output_height": .int(1), "output_width": .int(2), "sampling_ratio": .int(1)])[0]
        #expect(try shifted.scalars(as: Float.self) == [0, 1])
        let half = try Tensor(shape: [1, 1, 4, 4], scalars: (0..<16).map { Float16(Float($0 % 4)) })
        let yh = try Self.run("RoiAlign", opset: 10, [half, try Tensor(shape: [1, 4], scalars: [0, 0, 2, 2] as [Float16]),
                                                     Self.i64([1], [0])],
                              ["output_height": .int(1), "output_width": .int(2), "sampling_ratio": .int(1), "mode": .string("max")])[0]
        // Max mode takes the largest weighted corner, as onnxruntime does: 0.5·X[1,1] and 0.5·X[1,2].
        #expect(try yh.scalars(as: Float16.self) == [0.5, 1])
    }

    @Test func roiAlignErrors() throws {
        let x = Self.f([1, 1, 2, 2], [1, 2, 3, 4])
        let error = #expect(throws: OnyxError.self) {
            try Self.run("RoiAlign", opset: 16, [x, Self.f([1, 4], [0, 0, 1, 1]), Self.i64([1], [3])])
        }
        #expect(error?.code == .invalidInput)
        #expect(error?.message == "RoiAlign: batch index 3 of roi 0 is out of range for 1 images")
        let mode = #expect(throws: OnyxError.self) {
            try Self.run("RoiAlign", opset: 16, [x, Self.f([1, 4], [0, 0, 1, 1]), Self.i64([1], [0])], ["mode": .string("sum")])
        }
        #expect(mode?.message == "RoiAlign node 'n': mode 'sum' is not avg or max")
    }

    // MARK: - NonMaxSuppression

    @Test func nonMaxSuppressionKeepsBestOfOverlaps() throws {
        // Boxes 0 and 1 overlap (IoU 0.81); box 2 is apart. Scores favour box 1.
        let boxes = Self.f([1, 3, 4], [0, 0, 1, 1, 0, 0.1, 1, 1.1, 5, 5, 6, 6])
        let scores = Self.f([1, 1, 3], [0.8, 0.9, 0.5])
        let inputs: [Tensor?] = [boxes, scores, Self.i64([1], [3]), Self.f([1], [0.5]), Self.f([1], [0])]
        let y = try Self.run("NonMaxSuppression", opset: 11, inputs)[0]
        #expect(y.shape == [2, 3])
        #expect(try y.scalars(as: Int64.self) == [0, 0, 1, 0, 0, 2])
        // A limit of one box per class keeps only the best.
        let limited = try Self.run("NonMaxSuppression", opset: 10, [boxes, scores, Self.i64([1], [1])])[0]
        #expect(try limited.scalars(as: Int64.self) == [0, 0, 1])
        // Center-point format: the same boxes as (x, y, w, h).
        let centred = Self.f([1, 3, 4], [0.5, 0.5, 1, 1, 0.6, 0.5, 1, 1, 5.5, 5.5, 1, 1])
        let yc = try Self.run("NonMaxSuppression", opset: 11, [centred, scores, Self.i64([1], [3]), Self.f([1], [0.5])],
                              ["center_point_box": .int(1)])[0]
        #expect(try yc.scalars(as: Int64.self) == [0, 0, 1, 0, 0, 2])
        let nan = try Self.run("NonMaxSuppression", opset: 11, [boxes, scores, Self.i64([1], [3]), Self.f([1], [.nan])])[0]
        #expect(nan.shape == [3, 3])
        let none = try Self.run("NonMaxSuppression", opset: 11, [boxes, scores])[0]
        #expect(none.shape == [0, 3])
    }

    @Test func nonMaxSuppressionErrors() throws {
        let error = #expect(throws: OnyxError.self) {
            try Self.run("NonMaxSuppression", opset: 11, [Self.f([1, 1, 3], [0, 0, 1]), Self.f([1, 1, 1], [1])])
        }
        #expect(error?.code == .shapeMismatch)
        #expect(error?.message == "NonMaxSuppression: boxes [1,1,3] must be [B, N, 4] and scores [1,1,1] [B, C, N]")
        let format = #expect(throws: OnyxError.self) {
            try Self.run("NonMaxSuppression", opset: 11, [Self.f([1, 1, 4], [0, 0, 1, 1]), Self.f([1, 1, 1], [1])],
                         ["center_point_box": .int(2)])
        }
        #expect(format?.code == .invalidAttribute)
    }
}
