import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// ConvTranspose against a naive scatter reference on awkward shapes (strides, pads,
/// dilations, groups, output_padding, output_shape, auto_pad; 1-D to 3-D), with packed and
/// per-run weights on every micro-kernel variant, and double/float16 data.
@Suite struct ConvTransposeTests {
    static func run(
        _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], constant: Bool = true,
        isa: KernelISA = .preferred, threads: Int = 1
    ) throws -> Tensor {
        let node = Node(
            name: "n", opType: "ConvTranspose", inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: ["y"], attributes: attributes)
        let registration = try #require(OperatorRegistry.registration(domain: "", opType: "ConvTranspose", opset: 22))
        let kernel = try registration.make(
            NodeContext(node: node, opset: 22, constantInputs: constant ? inputs : inputs.map { _ in nil }, isa: isa))
        return try kernel.evaluate(inputs: inputs, pool: ComputePool(threadCount: threads))[0]
    }

    static func values(_ count: Int, seed: Int) -> [Float] {
        var state = UInt64(truncatingIfNeeded: seed &* 2654435761 &+ 7)
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(state >> 41) % 2001 - 1000) / 1000
        }
    }

    /// Naive scatter: `y[n, m, i·s + k·d − pad] += x[n, c, i] · w[c, m, k]`, for any rank.
    static func reference(
        x: [Float], xShape: [Int], w: [Float], wShape: [Int], bias: [Float]?, group: Int,
        strides: [Int], dilations: [Int], padBegin: [Int], output: [Int]
    ) -> [Double] {
        let rank = xShape.count - 2
        let (batch, channels) = (xShape[0], xShape[1])
        let filtersPerGroup = wShape[1], filters = filtersPerGroup * group
        let channelsPerGroup = channels / group
        let inputArea = xShape[2...].reduce(1, *), kernelArea = wShape[2...].reduce(1, *), outputArea = output.reduce(1, *)
        func unravel(_ index: Int, _ shape: [Int]) -> [Int] {
            var rest = index
            return shape.reversed().map { e -> Int in defer { rest /= e }; return rest % e }.reversed()
        }
        var y = [Double](repeating: 0, count: batch * filters * outputArea)
        for n in 0..<batch {
            for m in 0..<filters { for o in 0..<outputArea { y[(n * filters + m) * outputArea + o] = Double(bias?[m] ?? 0) } }
            for c in 0..<channels {
                let g = c / channelsPerGroup
                for i in 0..<inputArea {
                    let ii = unravel(i, Array(xShape[2...]))
                    for k in 0..<kernelArea {
                        let kk = unravel(k, Array(wShape[2...]))
                        var o = 0
                        var inside = true
                        for axis in 0..<rank {
                            let position = ii[axis] * strides[axis] + kk[axis] * dilations[axis] - padBegin[axis]
                            if position < 0 || position >= output[axis] { inside = false }
                            o = o * output[axis] + position
                        }
                        guard inside else { continue }
                        for mm in 0..<filtersPerGroup {
                            let m = g * filtersPerGroup + mm
                            y[(n * filters + m) * outputArea + o] +=
                                Double(x[(n * channels + c) * inputArea + i]) * Double(w[(c * filtersPerGroup + mm) * kernelArea + k])
                        }
                    }
                }
            }
        }
        return y
    }

    static func expectClose(_ actual: Tensor, _ expected: [Double], tolerance: Double = 1e-4, _ label: String) throws {
        let values: [Double] = switch actual.dataType {
        case .double: try actual.scalars(as: Double.self)
        case .float16: try actual.scalars(as: Float16.self).map { Double($0) }
        default: try actual.scalars(as: Float.self).map { Double($0) }
        }
        #expect(values.count == expected.count, "\(label): \(values.count) values, expected \(expected.count)")
        let worst = zip(values, expected).map { abs($0 - $1) - tolerance * (1 + abs($1)) }.max() ?? 0
        #expect(worst <= 0, "\(label): off by \(worst) beyond tolerance")
    }

    @Test func handChecked1D() throws {
        // [1, 2] scattered by [1, 1]: [1, 1+2, 2].
        let x = try Tensor(shape: [1, 1, 2], scalars: [Float(1), 2])
        let w = try Tensor(shape: [1, 1, 2], scalars: [Float(1), 1])
        let y = try Self.run([x, w])
        #expect(y.shape == [1, 1, 3])
        #expect(try y.scalars(as: Float.self) == [1, 3, 2])
        // Stride 2 with a bias spreads the taps apart.
        let b = try Tensor(shape: [1], scalars: [Float(10)])
        let strided = try Self.run([x, w, b], ["strides": .ints([2])])
        #expect(try strided.scalars(as: Float.self) == [11, 11, 12, 12])
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var x: [Int], w: [Int], group = 1
        var strides: [Int]? = nil, dilations: [Int]? = nil, pads: [Int]? = nil
        var outputPadding: [Int]? = nil, outputShape: [Int]? = nil, autoPad: String? = nil
        /// Expected begin pads and output extents.
        var padBegin: [Int], output: [Int]
        var testDescription: String { "x\(x) w\(w) g\(group) s\(strides ?? []) d\(dilations ?? []) p\(pads ?? []) op\(outputPadding ?? []) os\(outputShape ?? []) \(autoPad ?? "")" }
    }

    static let cases: [Case] = [
        Case(x: [1, 1, 7], w: [1, 2, 3], padBegin: [0], output: [9]),
        Case(x: [2, 3, 5, 7], w: [3, 4, 3, 2], strides: [2, 3], pads: [1, 0, 0, 1], padBegin: [1, 0], output: [10, 19]),
        Case(x: [1, 4, 6, 5], w: [4, 3, 3, 3], group: 2, strides: [2, 1], dilations: [2, 2], padBegin: [0, 0], output: [15, 9]),
        Case(x: [1, 2, 4, 4], w: [2, 1, 3, 3], strides: [3, 2], outputPadding: [1, 1], padBegin: [0, 0], output: [13, 10]),
        Case(x: [1, 1, 3, 3], w: [1, 2, 3, 3], strides: [3, 2], outputShape: [10, 8], padBegin: [0, 0], output: [10, 8]),
        Case(x: [1, 2, 3, 3], w: [2, 2, 3, 3], strides: [2, 2], autoPad: "SAME_UPPER", padBegin: [0, 0], output: [6, 6]),
        Case(x: [1, 2, 3, 3], w: [2, 2, 2, 2], strides: [2, 2], autoPad: "SAME_LOWER", padBegin: [0, 0], output: [6, 6]),
        Case(x: [1, 17, 3, 4], w: [17, 17, 1, 1], group: 17, padBegin: [0, 0], output: [3, 4]),
        Case(x: [1, 2, 3, 4, 2], w: [2, 3, 2, 3, 2], strides: [1, 2, 1], pads: [0, 1, 0, 1, 0, 0], padBegin: [0, 1, 0], output: [3, 8, 3]),
        Case(x: [2, 63, 1, 1], w: [63, 7, 2, 2], padBegin: [0, 0], output: [2, 2]),
        // Maps large enough that col2im splits a filter's plane by rows between the threads: one
        // filter (a segmentation head's last layer), and overlapping taps with pads.
        Case(x: [1, 3, 128, 128], w: [3, 1, 2, 2], strides: [2, 2], padBegin: [0, 0], output: [256, 256]),
        Case(x: [1, 2, 100, 90], w: [2, 2, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], padBegin: [1, 1], output: [199, 179]),
    ]

    @Test(arguments: cases)
    func matchesReference(_ c: Case) throws {
        let rank = c.x.count - 2
        let xs = Self.values(c.x.reduce(1, *), seed: 1), ws = Self.values(c.w.reduce(1, *), seed: 2)
        let filters = c.w[1] * c.group
        let bs = Self.values(filters, seed: 3)
        var attributes: [String: Attribute] = ["group": .int(c.group)]
        if let v = c.strides { attributes["strides"] = .ints(v) }
        if let v = c.dilations { attributes["dilations"] = .ints(v) }
        if let v = c.pads { attributes["pads"] = .ints(v) }
        if let v = c.outputPadding { attributes["output_padding"] = .ints(v) }
        if let v = c.outputShape { attributes["output_shape"] = .ints(v) }
        if let v = c.autoPad { attributes["auto_pad"] = .string(v) }
        let expected = Self.reference(
            x: xs, xShape: c.x, w: ws, wShape: c.w, bias: bs, group: c.group,
            strides: c.strides ?? Array(repeating: 1, count: rank), dilations: c.dilations ?? Array(repeating: 1, count: rank),
            padBegin: c.padBegin, output: c.output)
        let inputs = [try Tensor(shape: c.x, scalars: xs), try Tensor(shape: c.w, scalars: ws), try Tensor(shape: [filters], scalars: bs)]
        for isa in KernelISA.supported {
            for constant in [true, false] {
                let y = try Self.run(inputs, attributes, constant: constant, isa: isa, threads: 2)
                #expect(y.shape == [c.x[0], filters] + c.output)
                try Self.expectClose(y, expected, "\(c.testDescription) \(isa) \(constant)")
            }
        }
        let doubles = try inputs.map { try Tensor(shape: $0.shape, scalars: try $0.scalars(as: Float.self).map { Double($0) }) }
        try Self.expectClose(try Self.run(doubles, attributes), expected, tolerance: 1e-9, "double")
        let halves = try inputs.map { try Tensor(shape: $0.shape, scalars: try $0.scalars(as: Float.self).map { Float16($0) }) }
        let half = try Self.run(halves, attributes)
        #expect(half.dataType == .float16)
        try Self.expectClose(half, expected, tolerance: 1e-2, "float16")
    }

    @Test func rejectsBadInputs() throws {
        let x = try Tensor(shape: [1, 3, 2, 2], scalars: [Float](repeating: 1, count: 12))
        let w = try Tensor(shape: [3, 1, 2, 2], scalars: [Float](repeating: 1, count: 12))
        let groups = #expect(throws: OnyxError.self) { try Self.run([x, w], ["group": .int(2)]) }
        #expect(groups?.code == .shapeMismatch)
        #expect(groups?.message == "ConvTranspose: 3 channels do not divide into 2 groups")
        let strides = #expect(throws: OnyxError.self) { try Self.run([x, w], ["strides": .ints([1])]) }
        #expect(strides?.code == .invalidAttribute)
        let ints = try Tensor(shape: [1, 3, 2, 2], scalars: [Int32](repeating: 1, count: 12))
        let type = #expect(throws: OnyxError.self) { try Self.run([ints, w]) }
        #expect(type?.message == "ConvTranspose supports float, double and float16, got int32")
        let pad = #expect(throws: OnyxError.self) { try Self.run([x, w], ["auto_pad": .string("FULL")]) }
        #expect(pad?.message == "ConvTranspose node 'n': auto_pad 'FULL' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    }
}
