import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// MaxPool, AveragePool and the global pools against values computed by onnxruntime 1.32
/// (pasted below) and a naive reference on awkward shapes.
@Suite struct PoolingTests {
    // MARK: - Helpers

    static func run(
        _ op: String, opset: Int = 19, _ x: Tensor, _ attributes: [String: Attribute] = [:], outputs: Int = 1, threads: Int = 1
    ) throws -> [Tensor] {
        let node = Node(name: "n", opType: op, inputs: ["x"], outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: [x], threads: threads)
    }

    static func floats(_ t: Tensor) throws -> [Float] { try t.scalars(as: Float.self) }

    static func expectClose(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-5, _ comment: Comment? = nil) {
        #expect(a.count == b.count, comment)
        guard a.count == b.count else { return }
        for (x, y) in zip(a, b) where !(abs(x - y) <= tolerance * (1 + abs(y))) {
            Issue.record("\(a) vs \(b) \(comment?.description ?? "")")
            return
        }
    }

    /// The 1×1×5×7 input of the onnxruntime cases.
    static let grid: Tensor = try! Tensor(shape: [1, 1, 5, 7], scalars: (1...35).map { Float(($0 * 7) % 11 - 5) })
    /// The 1×2×9 input of the 1-D onnxruntime cases.
    static let line: Tensor = try! Tensor(shape: [1, 2, 9], scalars: (0..<18).map { Float(($0 * 5) % 9 - 4) })

    // MARK: - Against onnxruntime

    struct Case: Sendable, CustomTestStringConvertible {
        var op: String
        var attributes: [String: Attribute]
        var shape: [Int]
        var expected: [Float]
        var testDescription: String { "\(op) \(attributes.keys.sorted())" }
    }

    static let gridCases: [Case] = [
        Case(op: "MaxPool", attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])],
             shape: [1, 1, 3, 4], expected: [3, 5, 4, 5, 3, 5, 5, 5, 2, 5, 5, 4]),
        Case(op: "MaxPool", attributes: ["kernel_shape": .ints([2, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)],
             shape: [1, 1, 3, 3], expected: [5, 5, 5, 4, 5, 4, 3, 3, 2]),
        Case(op: "MaxPool", attributes: ["kernel_shape": .ints([2, 2]), "dilations": .ints([2, 2]), "pads": .ints([1, 0, 0, 1])],
             shape: [1, 1, 4, 6], expected: [-1, 3, 2, -2, 5, -2, 5, 1, 5, 4, 0, 4, -1, 5, 2, 5, 5, -2, 4, 0, 4, 3, -1, 3]),
        Case(op: "MaxPool", attributes: ["kernel_shape": .ints([3, 2]), "strides": .ints([2, 3]), "auto_pad": .string("SAME_UPPER")],
             shape: [1, 1, 3, 3], expected: [3, 2, 5, 3, 5, 5, 2, 5, 4]),
        Case(op: "MaxPool", attributes: ["kernel_shape": .ints([3, 2]), "strides": .ints([2, 3]), "auto_pad": .string("SAME_LOWER")],
             shape: [1, 1, 3, 3], expected: [2, 5, 5, 1, 5, 5, 0, 5, 4]),
        Case(op: "AveragePool", attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])],
             shape: [1, 1, 3, 4], expected: [-0.25, 0.166667, -0.5, 1.75, -1, 0.333333, -0.333333, 1, -1.75, 0.5, -0.166667, 0.25]),
        Case(op: "AveragePool",
             attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(1)],
             shape: [1, 1, 3, 4],
             expected: [-0.111111, 0.111111, -0.333333, 0.777778, -0.666667, 0.333333, -0.333333, 0.666667, -0.777778, 0.333333, -0.111111, 0.111111]),
        Case(op: "AveragePool",
             attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(1),
                          "ceil_mode": .int(1)],
             shape: [1, 1, 3, 4],
             expected: [-0.111111, 0.111111, -0.333333, 0.777778, -0.666667, 0.333333, -0.333333, 0.666667, -0.777778, 0.333333, -0.111111, 0.111111]),
        Case(op: "AveragePool", attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "ceil_mode": .int(1)],
             shape: [1, 1, 3, 4], expected: [-0.25, 0, 0.25, 2.5, -1.25, 1.75, -0.75, 1.5, -2, 1, -1.5, -2]),
        // The ceil_mode overhang is not padding: count_include_pad does not count it.
        Case(op: "AveragePool", attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "ceil_mode": .int(1), "count_include_pad": .int(1)],
             shape: [1, 1, 3, 4], expected: [-0.25, 0, 0.25, 2.5, -1.25, 1.75, -0.75, 1.5, -2, 1, -1.5, -2]),
        Case(op: "AveragePool",
             attributes: ["kernel_shape": .ints([2, 2]), "dilations": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(1)],
             shape: [1, 1, 5, 7],
             expected: [0.75, -1.25, -0.5, 0.25, -1.75, 1.75, -0.5, -1.25, 3, -1, 0.5, 2, -2, 1.75, 1.25, -3, 1.25, 0, -1.25, 3, -1.25,
                        -1.75, 2, -2, -0.5, 1, -3, 1.25, 0.5, -1.75, 1.75, -0.25, 0.5, 1.25, -0.75]),
        Case(op: "AveragePool", attributes: ["kernel_shape": .ints([2, 2]), "dilations": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])],
             shape: [1, 1, 5, 7],
             expected: [3, -2.5, -1, 0.5, -3.5, 3.5, -2, -2.5, 3, -1, 0.5, 2, -2, 3.5, 2.5, -3, 1.25, 0, -1.25, 3, -2.5,
                        -3.5, 2, -2, -0.5, 1, -3, 2.5, 2, -3.5, 3.5, -0.5, 1, 2.5, -3]),
        Case(op: "AveragePool", attributes: ["kernel_shape": .ints([3, 2]), "strides": .ints([2, 3]), "auto_pad": .string("SAME_UPPER")],
             shape: [1, 1, 3, 3], expected: [-0.25, -1.25, 2.5, -1, -0.166667, 2.666667, -1.75, 0, 1]),
        Case(op: "AveragePool",
             attributes: ["kernel_shape": .ints([3, 2]), "strides": .ints([2, 3]), "auto_pad": .string("SAME_LOWER"), "count_include_pad": .int(1)],
             shape: [1, 1, 3, 3], expected: [-0.333333, 0, 1.166667, -1.333333, 0.166667, 1, -0.833333, 0.833333, 0.166667]),
        Case(op: "AveragePool", attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([1, 2]), "auto_pad": .string("VALID")],
             shape: [1, 1, 3, 3], expected: [0.555556, -0.111111, 0.444444, -0.555556, 0, 0.555556, -0.444444, 0.111111, -0.555556]),
    ]

    @Test(arguments: gridCases)
    func matchesOnnxRuntime2D(_ c: Case) throws {
        let y = try Self.run(c.op, Self.grid, c.attributes)[0]
        #expect(y.shape == c.shape)
        Self.expectClose(try Self.floats(y), c.expected, 1e-5)
    }

    static let lineCases: [Case] = [
        Case(op: "MaxPool", attributes: ["kernel_shape": .ints([3]), "strides": .ints([2]), "pads": .ints([1, 1])],
             shape: [1, 2, 5], expected: [1, 2, 3, 4, 4, 1, 2, 3, 4, 4]),
        Case(op: "AveragePool",
             attributes: ["kernel_shape": .ints([4]), "strides": .ints([3]), "pads": .ints([2, 1]), "ceil_mode": .int(1), "count_include_pad": .int(1)],
             shape: [1, 2, 4], expected: [-0.75, -0.5, 1, 1.333333, -0.75, -0.5, 1, 1.333333]),
        Case(op: "MaxPool", attributes: ["kernel_shape": .ints([2]), "dilations": .ints([3])],
             shape: [1, 2, 6], expected: [2, 1, 3, 2, 4, 3, 2, 1, 3, 2, 4, 3]),
    ]

    @Test(arguments: lineCases)
    func matchesOnnxRuntime1D(_ c: Case) throws {
        let y = try Self.run(c.op, Self.line, c.attributes)[0]
        #expect(y.shape == c.shape)
        Self.expectClose(try Self.floats(y), c.expected, 1e-5)
    }

    /// auto_pad with ceil_mode: onnxruntime applies ceil_mode to VALID windows too (the
    /// specification's VALID formula would give 2×2 here); Onyx follows onnxruntime.
    @Test func autoPadWithCeilMode() throws {
        let x = try Tensor(shape: [1, 1, 5, 5], scalars: (0..<25).map(Float.init))
        let expected: [String: ([Float], [Float])] = [
            "VALID": ([6, 8, 9, 16, 18, 19, 21, 23, 24], [3, 5, 6.5, 13, 15, 16.5, 20.5, 22.5, 24]),
            "SAME_UPPER": ([6, 8, 9, 16, 18, 19, 21, 23, 24], [3, 5, 6.5, 13, 15, 16.5, 20.5, 22.5, 24]),
            "SAME_LOWER": ([0, 2, 4, 10, 12, 14, 20, 22, 24], [0, 1.5, 3.5, 7.5, 9, 11, 17.5, 19, 21]),
        ]
        for (autoPad, (maxValues, averageValues)) in expected {
            let attributes: [String: Attribute] = [
                "kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "auto_pad": .string(autoPad), "ceil_mode": .int(1),
            ]
            let maximum = try Self.run("MaxPool", x, attributes)[0]
            #expect(maximum.shape == [1, 1, 3, 3], "\(autoPad)")
            #expect(try Self.floats(maximum) == maxValues, "\(autoPad)")
            #expect(try Self.floats(Self.run("AveragePool", x, attributes)[0]) == averageValues, "\(autoPad)")
        }
    }

    @Test func maxPoolIndices() throws {
        let attributes: [String: Attribute] = ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]
        let rowMajor = try Self.run("MaxPool", opset: 12, Self.grid, attributes, outputs: 2)
        #expect(rowMajor[0].shape == [1, 1, 3, 4])
        #expect(try Self.floats(rowMajor[0]) == [2, 5, 1, 4, 1, 4, 2, 5, 0, 3, 5, 4])
        #expect(rowMajor[1].dataType == .int64)
        #expect(try rowMajor[1].scalars(as: Int64.self) == [0, 2, 3, 5, 14, 16, 11, 13, 28, 30, 24, 27])
        var columnAttributes = attributes
        columnAttributes["storage_order"] = .int(1)
        let columnMajor = try Self.run("MaxPool", opset: 12, Self.grid, columnAttributes, outputs: 2)
        #expect(try columnMajor[1].scalars(as: Int64.self) == [0, 10, 15, 25, 2, 12, 21, 31, 4, 14, 18, 33])
        // Two channels: indices count across the whole N×C×H×W tensor.
        let values = try Self.floats(Self.grid)
        let twoChannels = try Tensor(shape: [1, 2, 5, 7], scalars: values + values.map { -$0 })
        let both = try Self.run("MaxPool", opset: 12, twoChannels, ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2])], outputs: 2)
        #expect(try Self.floats(both[0]) == [5, 5, 5, 4, 5, 4, 4, 5, 4, 5, 5, 5])
        #expect(try both[1].scalars(as: Int64.self) == [2, 2, 13, 16, 24, 27, 42, 45, 53, 56, 67, 67])
        // storage_order alone (no Indices output) is accepted and changes nothing.
        let plain = try Self.run("MaxPool", opset: 12, Self.grid, columnAttributes)
        #expect(try Self.floats(plain[0]) == Self.floats(rowMajor[0]))
    }

    // MARK: - Against a naive reference

    /// Straightforward pooling over explicit pads: every window tap checked against the input
    /// bounds; the average divides by the in-input taps, or with `includePad` by the taps
    /// inside the padded extent.
    static func reference(
        _ x: [Float], planes: Int, height: Int, width: Int, kernel: (Int, Int), stride: (Int, Int), dilation: (Int, Int),
        pads: (top: Int, left: Int, bottom: Int, right: Int), output: (Int, Int), max: Bool, includePad: Bool
    ) -> [Float] {
        var y: [Float] = []
        for p in 0..<planes {
            for oy in 0..<output.0 {
                for ox in 0..<output.1 {
                    var best = -Float.infinity, sum: Float = 0, count = 0, padded = 0
                    for ky in 0..<kernel.0 {
                        for kx in 0..<kernel.1 {
                            let iy = oy * stride.0 + ky * dilation.0 - pads.top
                            let ix = ox * stride.1 + kx * dilation.1 - pads.left
                            if iy >= -pads.top && iy < height + pads.bottom && ix >= -pads.left && ix < width + pads.right { padded += 1 }
                            guard iy >= 0 && iy < height && ix >= 0 && ix < width else { continue }
                            let v = x[(p * height + iy) * width + ix]
                            best = Swift.max(best, v)
                            sum += v
                            count += 1
                        }
                    }
                    y.append(max ? best : sum / Float(includePad ? padded : count))
                }
            }
        }
        return y
    }

    struct Geometry: Sendable, CustomTestStringConvertible {
        var size: (Int, Int)
        var kernel: (Int, Int)
        var stride: (Int, Int) = (1, 1)
        var dilation: (Int, Int) = (1, 1)
        var pads: (Int, Int, Int, Int) = (0, 0, 0, 0)
        var ceil = false
        var testDescription: String { "\(size) k\(kernel) s\(stride) d\(dilation) p\(pads) ceil \(ceil)" }

        func outputExtent(_ input: Int, _ k: Int, _ s: Int, _ d: Int, _ begin: Int, _ end: Int) -> Int {
            let span = input + begin + end - ((k - 1) * d + 1)
            var n = (ceil ? Int((Double(span) / Double(s)).rounded(.up)) : span / s) + 1
            if ceil && (n - 1) * s >= input + begin { n -= 1 }
            return n
        }
    }

    static let geometries: [Geometry] = [
        Geometry(size: (1, 1), kernel: (1, 1)),
        Geometry(size: (7, 7), kernel: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)),
        Geometry(size: (17, 13), kernel: (3, 3), stride: (2, 2), ceil: true),
        Geometry(size: (17, 13), kernel: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1), ceil: true),
        Geometry(size: (16, 16), kernel: (2, 2), stride: (2, 2)),
        // The one-pass 2×2 kernel: odd extents (last row and column unread), rows past 16 outputs.
        Geometry(size: (7, 69), kernel: (2, 2), stride: (2, 2)),
        Geometry(size: (5, 33), kernel: (2, 2), stride: (2, 2), ceil: true),
        Geometry(size: (9, 11), kernel: (3, 2), stride: (1, 3), dilation: (2, 3), pads: (2, 0, 1, 3)),
        Geometry(size: (8, 63), kernel: (5, 4), stride: (3, 2), dilation: (1, 2), pads: (2, 1, 2, 3), ceil: true),
        Geometry(size: (1, 257), kernel: (1, 7), stride: (1, 4), pads: (0, 3, 0, 3), ceil: true),
        Geometry(size: (4, 4), kernel: (4, 4)),
    ]

    @Test(arguments: geometries)
    func matchesNaiveReference(_ g: Geometry) throws {
        let planes = 3
        let (h, w) = g.size
        let values = (0..<(planes * h * w)).map { Float(($0 * 37) % 101) / 10 - 5 }
        let x = try Tensor(shape: [1, planes, h, w], scalars: values)
        let output = (g.outputExtent(h, g.kernel.0, g.stride.0, g.dilation.0, g.pads.0, g.pads.2),
                      g.outputExtent(w, g.kernel.1, g.stride.1, g.dilation.1, g.pads.1, g.pads.3))
        let attributes: [String: Attribute] = [
            "kernel_shape": .ints([g.kernel.0, g.kernel.1]), "strides": .ints([g.stride.0, g.stride.1]),
            "dilations": .ints([g.dilation.0, g.dilation.1]), "pads": .ints([g.pads.0, g.pads.1, g.pads.2, g.pads.3]),
            "ceil_mode": .int(g.ceil ? 1 : 0),
        ]
        func expected(max: Bool, includePad: Bool) -> [Float] {
            Self.reference(values, planes: planes, height: h, width: w, kernel: g.kernel, stride: g.stride, dilation: g.dilation,
                           pads: g.pads, output: output, max: max, includePad: includePad)
        }
        let maxPool = try Self.run("MaxPool", x, attributes)[0]
        #expect(maxPool.shape == [1, planes, output.0, output.1])
        #expect(try Self.floats(maxPool) == expected(max: true, includePad: false))
        Self.expectClose(try Self.floats(Self.run("AveragePool", x, attributes)[0]), expected(max: false, includePad: false))
        var including = attributes
        including["count_include_pad"] = .int(1)
        Self.expectClose(try Self.floats(Self.run("AveragePool", x, including)[0]), expected(max: false, includePad: true))
        // A 1×W input through the 1-D form gives the same rows.
        if h == 1 {
            let oneD: [String: Attribute] = [
                "kernel_shape": .ints([g.kernel.1]), "strides": .ints([g.stride.1]), "dilations": .ints([g.dilation.1]),
                "pads": .ints([g.pads.1, g.pads.3]), "ceil_mode": .int(g.ceil ? 1 : 0),
            ]
            let line = try Self.run("MaxPool", try x.reshaped([1, planes, w]), oneD)[0]
            #expect(line.shape == [1, planes, output.1])
            #expect(try Self.floats(line) == expected(max: true, includePad: false))
        }
    }

    @Test func largePoolsSplitAcrossThreads() throws {
        // Above ComputePool.parallelWorkThreshold: 32 planes × 33·33 outputs × 9 taps.
        let count = 2 * 16 * 65 * 65
        let values: [Float] = (0..<count).map { i in Float((i * 31) % 97 - 48) }
        let x = try Tensor(shape: [2, 16, 65, 65], scalars: values)
        let attributes: [String: Attribute] = ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]
        for op in ["MaxPool", "AveragePool"] {
            let one = try Self.run(op, x, attributes)[0], two = try Self.run(op, x, attributes, threads: 2)[0]
            #expect(try Self.floats(one) == Self.floats(two))
            let reference = Self.reference(values, planes: 32, height: 65, width: 65, kernel: (3, 3), stride: (2, 2), dilation: (1, 1),
                                           pads: (1, 1, 1, 1), output: (33, 33), max: op == "MaxPool", includePad: false)
            Self.expectClose(try Self.floats(two), reference)
        }
        let planeCount = 2 * 64 * 48 * 48
        let planeValues: [Float] = (0..<planeCount).map { (i: Int) -> Float in Float((i * 31) % 97 - 48) }
        let global = try Self.run("GlobalAveragePool", try Tensor(shape: [2, 64, 48, 48], scalars: planeValues), threads: 2)[0]
        #expect(global.shape == [2, 64, 1, 1])
        let means: [Float] = (0..<128).map { (p: Int) -> Float in
            planeValues[(p * 2304)..<((p + 1) * 2304)].reduce(Float(0), +) / Float(2304)
        }
        Self.expectClose(try Self.floats(global), means, 1e-5)
    }

    // MARK: - Global pools

    @Test func globalPools() throws {
        let x = try Tensor(shape: [2, 3, 2, 2], scalars: (0..<24).map(Float.init))
        let average = try Self.run("GlobalAveragePool", x)[0]
        #expect(average.shape == [2, 3, 1, 1])
        #expect(try Self.floats(average) == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5])
        let maximum = try Self.run("GlobalMaxPool", x)[0]
        #expect(try Self.floats(maximum) == [3, 7, 11, 15, 19, 23])
        // 1-D and 3-D spatial inputs keep one axis of 1 per spatial axis.
        let odd = try Tensor(shape: [1, 2, 17], scalars: (0..<34).map { Float($0 % 5) })
        let oddMean = try Self.run("GlobalAveragePool", odd)[0]
        #expect(oddMean.shape == [1, 2, 1])
        Self.expectClose(try Self.floats(oddMean), [Float(31) / 17, Float(35) / 17])
        let cube = try Self.run("GlobalMaxPool", try Tensor(shape: [1, 1, 2, 2, 2], scalars: [1, -1, 7, 2, 0, 3, -5, 4] as [Float]))[0]
        #expect(cube.shape == [1, 1, 1, 1, 1])
        #expect(try Self.floats(cube) == [7])
        #expect(throws: OnyxError.self) { try Self.run("GlobalAveragePool", try Tensor(shape: [2, 3], scalars: [Float](repeating: 0, count: 6))) }
    }

    // MARK: - Errors

    @Test func attributeErrors() throws {
        let x = Self.grid
        func expectError(_ op: String, _ attributes: [String: Attribute], _ code: OnyxError.Code, _ fragment: String,
                         sourceLocation: SourceLocation = #_sourceLocation) {
            let error = #expect(throws: OnyxError.self, sourceLocation: sourceLocation) { try Self.run(op, x, attributes) }
            #expect(error?.code == code, sourceLocation: sourceLocation)
            #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "")", sourceLocation: sourceLocation)
        }
        expectError("MaxPool", [:], .invalidAttribute, "missing 'kernel_shape'")
        expectError("AveragePool", ["kernel_shape": .ints([2, 2, 2])], .shapeMismatch, "needs rank 5")
        expectError("MaxPool", ["kernel_shape": .ints([2, 2]), "strides": .ints([2])], .invalidAttribute, "'strides' has 1 values")
        expectError("MaxPool", ["kernel_shape": .ints([2, 2]), "pads": .ints([1, 1])], .invalidAttribute, "'pads' has 2 values")
        expectError("MaxPool", ["kernel_shape": .ints([2, 2]), "pads": .ints([0, -1, 0, 0])], .invalidAttribute, "pads")
        expectError("MaxPool", ["kernel_shape": .ints([0, 2])], .invalidAttribute, "kernel_shape")
        expectError("AveragePool", ["kernel_shape": .ints([2, 2]), "strides": .ints([0, 1])], .invalidAttribute, "strides")
        expectError("AveragePool", ["kernel_shape": .ints([2, 2]), "auto_pad": .string("SAME")], .invalidAttribute, "auto_pad 'SAME'")
        expectError("MaxPool", ["kernel_shape": .ints([2, 2]), "storage_order": .int(2)], .invalidAttribute, "storage_order")
        expectError("MaxPool", ["kernel_shape": .string("3")], .invalidAttribute, "must be ints")
        // Shape errors: rank against kernel, window larger than the padded input.
        expectError("MaxPool", ["kernel_shape": .ints([3])], .shapeMismatch, "needs rank 3")
        expectError("AveragePool", ["kernel_shape": .ints([6, 2])], .shapeMismatch, "does not fit")
        expectError("MaxPool", ["kernel_shape": .ints([2, 2]), "dilations": .ints([5, 1])], .shapeMismatch, "does not fit")
        let integers = try Tensor(shape: [1, 1, 2, 2], scalars: [1, 2, 3, 4] as [Int64])
        let averageOfBytes = #expect(throws: OnyxError.self) {
            try Self.run("AveragePool", try Tensor(shape: [1, 1, 2, 2], scalars: [1, 2, 3, 4] as [UInt8]), ["kernel_shape": .ints([2, 2])])
        }
        #expect(averageOfBytes?.message.contains("AveragePool does not support uint8") == true)
        let type = #expect(throws: OnyxError.self) { try Self.run("MaxPool", integers, ["kernel_shape": .ints([2, 2])]) }
        #expect(type?.code == .unsupportedDataType)
    }

    // MARK: - N-d windows, other types, LpPool, MaxUnpool

    /// A naive N-d pool: max, average (count_include_pad off) or Lp over each window's input elements.
    static func naivePool(_ x: [Double], spatial: [Int], kernel: [Int], strides: [Int], pads: [Int], kind: String) -> (shape: [Int], values: [Double]) {
        let rank = spatial.count
        let output: [Int] = (0..<rank).map { (a: Int) -> Int in
            let span: Int = spatial[a] + pads[a] + pads[a + rank] - kernel[a]
            return span / strides[a] + 1
        }
        var values: [Double] = []
        let total = output.reduce(1, *)
        for flat in 0..<total {
            var o = [Int](repeating: 0, count: rank), rest = flat
            for a in (0..<rank).reversed() { o[a] = rest % output[a]; rest /= output[a] }
            var taken: [Double] = []
            let windows = kernel.reduce(1, *)
            for k in 0..<windows {
                var kk = [Int](repeating: 0, count: rank), r = k
                for a in (0..<rank).reversed() { kk[a] = r % kernel[a]; r /= kernel[a] }
                let position: [Int] = (0..<rank).map { (a: Int) -> Int in o[a] * strides[a] - pads[a] + kk[a] }
                guard (0..<rank).allSatisfy({ position[$0] >= 0 && position[$0] < spatial[$0] }) else { continue }
                var index = 0
                for a in 0..<rank { index = index * spatial[a] + position[a] }
                taken.append(x[index])
            }
            switch kind {
            case "max": values.append(taken.max() ?? -.infinity)
            case "average": values.append(taken.reduce(0, +) / Double(taken.count))
            default: values.append(taken.map { $0 * $0 }.reduce(0, +).squareRoot())
            }
        }
        return (output, values)
    }

    @Test(arguments: ["MaxPool", "AveragePool", "LpPool"])
    func threeDimensionalWindows(_ op: String) throws {
        let spatial = [4, 5, 3], kernel = [2, 3, 2], strides = [2, 1, 1], pads = [1, 0, 1, 0, 1, 0]
        let values = (0..<60).map { Double(($0 * 37) % 23) - 11 }
        let x = try Tensor(shape: [1, 1] + spatial, scalars: values.map(Float.init))
        let attributes: [String: Attribute] = ["kernel_shape": .ints(kernel), "strides": .ints(strides), "pads": .ints(pads)]
        let y = try Self.run(op, opset: 19, x, attributes)[0]
        let kind = op == "MaxPool" ? "max" : op == "AveragePool" ? "average" : "lp"
        let expected = Self.naivePool(values, spatial: spatial, kernel: kernel, strides: strides, pads: pads, kind: kind)
        #expect(y.shape == [1, 1] + expected.shape)
        Self.expectClose(try Self.floats(y), expected.values.map(Float.init), 1e-5)
        // Double gives the same.
        let double = try Self.run(op, opset: 19, try Tensor(shape: [1, 1] + spatial, scalars: values), attributes)[0]
        Self.expectClose(try double.scalars(as: Double.self).map(Float.init), expected.values.map(Float.init), 1e-5)
    }

    @Test func maxPoolOnBytesAndHalves() throws {
        let bytes = try Tensor(shape: [1, 1, 2, 3], scalars: [1, 200, 3, 4, 5, 255] as [UInt8])
        let y = try Self.run("MaxPool", opset: 12, bytes, ["kernel_shape": .ints([2, 2])])[0]
        #expect(try y.scalars(as: UInt8.self) == [200, 255])
        let signed = try Tensor(shape: [1, 1, 4], scalars: [-128, -5, 7, -1] as [Int8])
        #expect(try Self.run("MaxPool", opset: 12, signed, ["kernel_shape": .ints([2]), "strides": .ints([2])])[0]
            .scalars(as: Int8.self) == [-5, 7])
        let half = try Tensor(shape: [1, 1, 2, 2], scalars: [1, 2.5, -3, 0] as [Float16])
        let outputs = try Self.run("MaxPool", opset: 12, half, ["kernel_shape": .ints([2, 2])], outputs: 2)
        #expect(try outputs[0].scalars(as: Float16.self) == [2.5])
        #expect(try outputs[1].scalars(as: Int64.self) == [1])
    }

    @Test func lpPools() throws {
        let x = try Tensor(shape: [1, 1, 2, 2], scalars: [3, -4, 0, 12] as [Float])
        #expect(try Self.floats(Self.run("LpPool", opset: 18, x, ["kernel_shape": .ints([2, 2])])[0]) == [13])
        #expect(try Self.floats(Self.run("LpPool", opset: 18, x, ["kernel_shape": .ints([1, 2]), "p": .int(1)])[0]) == [7, 12])
        #expect(try Self.floats(Self.run("GlobalLpPool", opset: 2, x)[0]) == [13])
        let cube = try Self.run("GlobalLpPool", opset: 2, x, ["p": .int(3)])[0]
        Self.expectClose(try Self.floats(cube), [Float(pow(27.0 + 64 + 1728, 1.0 / 3))], 1e-5)
        #expect(try Self.run("GlobalMaxPool", try Tensor(shape: [1, 2, 2], scalars: [1, 5, -2, -3] as [Double]))[0]
            .scalars(as: Double.self) == [5, -2])
    }

    static func unpool(_ inputs: [Tensor?], _ attributes: [String: Attribute]) throws -> Tensor {
        let node = Node(name: "n", opType: "MaxUnpool", inputs: ["x", "i", "s"].prefix(inputs.count).map { $0 }, outputs: ["y"],
                        attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: 11, inputs: inputs)[0]
    }

    @Test func maxUnpoolInvertsMaxPool() throws {
        let x = try Tensor(shape: [1, 1, 2, 2], scalars: [5, 6, 7, 8] as [Float])
        let indices = try Tensor(shape: [1, 1, 2, 2], scalars: [5, 7, 13, 15] as [Int64])
        let attributes: [String: Attribute] = ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]
        let y = try Self.unpool([x, indices], attributes)
        #expect(y.shape == [1, 1, 4, 4])
        #expect(try Self.floats(y) == [0, 0, 0, 0, 0, 5, 0, 6, 0, 0, 0, 0, 0, 7, 0, 8])
        // A larger output_shape holds the inferred one in its leading corner.
        let larger = try Self.unpool([x, indices, try Tensor(shape: [4], scalars: [1, 1, 5, 5] as [Int64])], attributes)
        #expect(larger.shape == [1, 1, 5, 5])
        #expect(try Self.floats(larger) == [0, 0, 0, 0, 0, 0, 5, 0, 6, 0, 0, 0, 0, 0, 0, 0, 7, 0, 8, 0, 0, 0, 0, 0, 0])
        let bad = #expect(throws: OnyxError.self) {
            try Self.unpool([x, try Tensor(shape: [1, 1, 2, 2], scalars: [5, 7, 13, 16] as [Int64])], attributes)
        }
        #expect(bad?.message.contains("index 16 is out of range") == true)
        let small = #expect(throws: OnyxError.self) {
            try Self.unpool([x, indices, try Tensor(shape: [4], scalars: [1, 1, 3, 3] as [Int64])], attributes)
        }
        #expect(small?.code == .shapeMismatch)
    }
}
