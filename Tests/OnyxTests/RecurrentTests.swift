import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// RNN, GRU and LSTM against a naive double-precision reference, on packed (constant) and
/// per-run weights, every micro-kernel variant, both layouts, and float16/double data.
@Suite struct RecurrentTests {
    // MARK: - Helpers

    /// Runs `op` with the given inputs; `constant` decides whether the kernel sees them as
    /// session constants (weights packed at creation) or only at run time.
    static func run(
        _ op: String, opset: Int = 22, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], outputs: Int = 3,
        constant: Bool = true, isa: KernelISA = .preferred, threads: Int = 1
    ) throws -> [Tensor] {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        let registration = try #require(OperatorRegistry.registration(domain: "", opType: op, opset: opset))
        let kernel = try registration.make(
            NodeContext(node: node, opset: opset, constantInputs: constant ? inputs : inputs.map { _ in nil }, isa: isa))
        return try kernel.evaluate(inputs: inputs, pool: ComputePool(threadCount: threads))
    }

    static func values(_ count: Int, seed: Int, scale: Double = 0.5) -> [Double] {
        var state = UInt64(truncatingIfNeeded: seed &* 2654435761 &+ 12345)
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(Int(state >> 41) % 2001 - 1000) / 1000 * scale
        }
    }

    static func floats(_ shape: [Int], _ values: [Double]) -> Tensor {
        try! Tensor(shape: shape, scalars: values.map { Float($0) })
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

    static func sigmoid(_ x: Double) -> Double { 1 / (1 + Double.exponential(-x)) }
    static func tanh(_ x: Double) -> Double { Double.hyperbolicTangent(x) }

    /// A naive LSTM / GRU / RNN, layout 0, outputs Y, Y_h (and Y_c).
    struct Reference {
        var cell: String
        var hidden: Int
        var directions: Int
        var reverse = false
        var linearBeforeReset = false

        func run(x: [Double], shape: (t: Int, b: Int, i: Int), w: [Double], r: [Double], bias: [Double]?,
                 lengths: [Int]?, h0: [Double]?, c0: [Double]?, p: [Double]?) -> (y: [Double], h: [Double], c: [Double]) {
            let (steps, batch, input) = shape
            let gates = cell == "LSTM" ? 4 : cell == "GRU" ? 3 : 1
            let g = gates * hidden
            var y = [Double](repeating: 0, count: steps * directions * batch * hidden)
            var hOut = [Double](repeating: 0, count: directions * batch * hidden)
            var cOut = hOut
            for d in 0..<directions {
                let backward = d == 1 || reverse
                for b in 0..<batch {
                    var h = (0..<hidden).map { h0?[(d * batch + b) * hidden + $0] ?? 0 }
                    var c = (0..<hidden).map { c0?[(d * batch + b) * hidden + $0] ?? 0 }
                    let length = lengths?[b] ?? steps
                    for s in 0..<length {
                        let t = backward ? length - 1 - s : s
                        func xw(_ row: Int) -> Double {
                            var sum = bias?[d * 2 * g + row] ?? 0
                            for k in 0..<input { sum += x[(t * batch + b) * input + k] * w[(d * g + row) * input + k] }
                            return sum
                        }
                        func hr(_ row: Int, _ state: [Double]) -> Double {
                            var sum = 0.0
                            for k in 0..<hidden { sum += state[k] * r[(d * g + row) * hidden + k] }
                            return sum
                        }
                        func rb(_ row: Int) -> Double { bias?[d * 2 * g + g + row] ?? 0 }
                        var next = [Double](repeating: 0, count: hidden)
                        switch cell {
                        case "LSTM":
                            var newC = c
                            for j in 0..<hidden {
                                let peep = { (k: Int, state: Double) in (p?[d * 3 * hidden + k * hidden + j] ?? 0) * state }
                                let i = sigmoid(xw(j) + hr(j, h) + rb(j) + peep(0, c[j]))
                                let f = sigmoid(xw(2 * hidden + j) + hr(2 * hidden + j, h) + rb(2 * hidden + j) + peep(2, c[j]))
                                let cc = RecurrentTests.tanh(xw(3 * hidden + j) + hr(3 * hidden + j, h) + rb(3 * hidden + j))
                                newC[j] = f * c[j] + i * cc
                                let o = sigmoid(xw(hidden + j) + hr(hidden + j, h) + rb(hidden + j) + peep(1, newC[j]))
                                next[j] = o * RecurrentTests.tanh(newC[j])
                            }
                            c = newC
                        case "GRU":
                            let z = (0..<hidden).map { sigmoid(xw($0) + hr($0, h) + rb($0)) }
                            let rr = (0..<hidden).map { sigmoid(xw(hidden + $0) + hr(hidden + $0, h) + rb(hidden + $0)) }
                            let rh = (0..<hidden).map { rr[$0] * h[$0] }
                            for j in 0..<hidden {
                                let row = 2 * hidden + j
                                let candidate = linearBeforeReset
                                    ? RecurrentTests.tanh(xw(row) + rr[j] * (hr(row, h) + rb(row)))
                                    : RecurrentTests.tanh(xw(row) + hr(row, rh) + rb(row))
                                next[j] = (1 - z[j]) * candidate + z[j] * h[j]
                            }
                        default:
                            for j in 0..<hidden { next[j] = RecurrentTests.tanh(xw(j) + hr(j, h) + rb(j)) }
                        }
                        h = next
                        for j in 0..<hidden { y[((t * directions + d) * batch + b) * hidden + j] = h[j] }
                    }
                    for j in 0..<hidden {
                        hOut[(d * batch + b) * hidden + j] = h[j]
                        cOut[(d * batch + b) * hidden + j] = c[j]
                    }
                }
            }
            return (y, hOut, cOut)
        }
    }

    // MARK: - Hand-checked

    @Test func rnnSingleStepIsTanh() throws {
        let x = try Tensor(shape: [1, 1, 1], scalars: [Float(1)])
        let w = try Tensor(shape: [1, 1, 1], scalars: [Float(0.5)])
        let r = try Tensor(shape: [1, 1, 1], scalars: [Float(2)])
        let b = try Tensor(shape: [1, 2], scalars: [Float(0.25), Float(0.25)])
        let out = try Self.run("RNN", [x, w, r, b], ["hidden_size": .int(1)], outputs: 2)
        #expect(out[0].shape == [1, 1, 1, 1])
        try Self.expectClose(out[0], [Self.tanh(1)], "Y")
        try Self.expectClose(out[1], [Self.tanh(1)], "Y_h")
    }

    // MARK: - Against the reference

    struct Case: CustomTestStringConvertible, Sendable {
        var cell: String
        var direction: String
        var steps: Int, batch: Int, input: Int, hidden: Int
        var extras: Bool
        var testDescription: String { "\(cell) \(direction) T\(steps) B\(batch) I\(input) H\(hidden)\(extras ? " +extras" : "")" }
    }

    static let cases: [Case] = [
        Case(cell: "LSTM", direction: "forward", steps: 3, batch: 1, input: 2, hidden: 3, extras: false),
        Case(cell: "LSTM", direction: "bidirectional", steps: 5, batch: 3, input: 7, hidden: 17, extras: true),
        Case(cell: "LSTM", direction: "reverse", steps: 4, batch: 2, input: 5, hidden: 9, extras: true),
        Case(cell: "GRU", direction: "forward", steps: 3, batch: 2, input: 4, hidden: 5, extras: false),
        Case(cell: "GRU", direction: "bidirectional", steps: 6, batch: 3, input: 7, hidden: 17, extras: true),
        Case(cell: "RNN", direction: "reverse", steps: 7, batch: 2, input: 3, hidden: 63, extras: true),
        Case(cell: "RNN", direction: "bidirectional", steps: 2, batch: 1, input: 1, hidden: 1, extras: false),
    ]

    @Test(arguments: cases)
    func matchesReference(_ c: Case) throws {
        let gates = c.cell == "LSTM" ? 4 : c.cell == "GRU" ? 3 : 1
        let directions = c.direction == "bidirectional" ? 2 : 1
        let x = Self.values(c.steps * c.batch * c.input, seed: 1, scale: 1)
        let w = Self.values(directions * gates * c.hidden * c.input, seed: 2)
        let r = Self.values(directions * gates * c.hidden * c.hidden, seed: 3)
        let bias = c.extras ? Self.values(directions * 2 * gates * c.hidden, seed: 4) : nil
        let lengths = c.extras ? (0..<c.batch).map { max(1, c.steps - $0) } : nil
        let h0 = c.extras ? Self.values(directions * c.batch * c.hidden, seed: 5) : nil
        let c0 = c.extras && gates == 4 ? Self.values(directions * c.batch * c.hidden, seed: 6) : nil
        let p = c.extras && gates == 4 ? Self.values(directions * 3 * c.hidden, seed: 7) : nil
        for linear in c.cell == "GRU" ? [false, true] : [false] {
            let reference = Reference(cell: c.cell, hidden: c.hidden, directions: directions, reverse: c.direction == "reverse",
                                      linearBeforeReset: linear)
            let expected = reference.run(x: x, shape: (c.steps, c.batch, c.input), w: w, r: r, bias: bias, lengths: lengths,
                                         h0: h0, c0: c0, p: p)
            var inputs: [Tensor?] = [
                Self.floats([c.steps, c.batch, c.input], x), Self.floats([directions, gates * c.hidden, c.input], w),
                Self.floats([directions, gates * c.hidden, c.hidden], r), bias.map { Self.floats([directions, 2 * gates * c.hidden], $0) },
                try lengths.map { try Tensor(shape: [c.batch], scalars: $0.map { Int32($0) }) },
                h0.map { Self.floats([directions, c.batch, c.hidden], $0) },
            ]
            if gates == 4 {
                inputs += [c0.map { Self.floats([directions, c.batch, c.hidden], $0) }, p.map { Self.floats([directions, 3 * c.hidden], $0) }]
            }
            while inputs.last! == nil { inputs.removeLast() }
            var attributes: [String: Attribute] = ["hidden_size": .int(c.hidden), "direction": .string(c.direction)]
            if linear { attributes["linear_before_reset"] = .int(1) }
            let outputs = gates == 4 ? 3 : 2
            for isa in KernelISA.supported {
                for constant in [true, false] {
                    let label = "\(c.testDescription) lbr\(linear) \(isa) \(constant ? "packed" : "per-run")"
                    let out = try Self.run(c.cell, inputs, attributes, outputs: outputs, constant: constant, isa: isa, threads: 2)
                    try Self.expectClose(out[0], expected.y, label + " Y")
                    try Self.expectClose(out[1], expected.h, label + " Y_h")
                    if gates == 4 { try Self.expectClose(out[2], expected.c, label + " Y_c") }
                }
            }
            // Double and float16 data follow the same reference.
            let doubles = inputs.map { t -> Tensor? in
                guard let t, t.dataType == .float else { return t }
                return try! Tensor(shape: t.shape, scalars: try! t.scalars(as: Float.self).map { Double($0) })
            }
            let outD = try Self.run(c.cell, doubles, attributes, outputs: outputs)
            try Self.expectClose(outD[0], expected.y, tolerance: 1e-6, "double Y")
            let halves = inputs.map { t -> Tensor? in
                guard let t, t.dataType == .float else { return t }
                return try! Tensor(shape: t.shape, scalars: try! t.scalars(as: Float.self).map { Float16($0) })
            }
            let outH = try Self.run(c.cell, halves, attributes, outputs: outputs)
            #expect(outH[0].dataType == .float16)
            try Self.expectClose(outH[0], expected.y, tolerance: 2e-2, "float16 Y")
        }
    }

    @Test func batchFirstLayoutMatchesSequenceFirst() throws {
        let (steps, batch, input, hidden) = (4, 3, 5, 6)
        let x = Self.values(steps * batch * input, seed: 11, scale: 1)
        let w = Self.floats([2, 4 * hidden, input], Self.values(8 * hidden * input, seed: 12))
        let r = Self.floats([2, 4 * hidden, hidden], Self.values(8 * hidden * hidden, seed: 13))
        let attributes: [String: Attribute] = ["hidden_size": .int(hidden), "direction": .string("bidirectional")]
        let sequenceFirst = try Self.run("LSTM", opset: 14, [Self.floats([steps, batch, input], x), w, r], attributes)
        // X transposed to [batch, steps, input].
        var xt = [Double](repeating: 0, count: x.count)
        for t in 0..<steps { for b in 0..<batch { for k in 0..<input { xt[(b * steps + t) * input + k] = x[(t * batch + b) * input + k] } } }
        var layout = attributes
        layout["layout"] = .int(1)
        let batchFirst = try Self.run("LSTM", opset: 14, [Self.floats([batch, steps, input], xt), w, r], layout)
        #expect(batchFirst[0].shape == [batch, steps, 2, hidden])
        #expect(batchFirst[1].shape == [batch, 2, hidden])
        let y = try sequenceFirst[0].scalars(as: Float.self), yt = try batchFirst[0].scalars(as: Float.self)
        for t in 0..<steps {
            for d in 0..<2 {
                for b in 0..<batch {
                    for j in 0..<hidden {
                        #expect(abs(y[((t * 2 + d) * batch + b) * hidden + j] - yt[((b * steps + t) * 2 + d) * hidden + j]) < 1e-6)
                    }
                }
            }
        }
    }

    @Test func activationsAndClipAttributes() throws {
        // RNN with Affine(alpha 2, beta 1): H = 2·(x·w) + 1 for one step and a zero R.
        let x = try Tensor(shape: [1, 1, 1], scalars: [Float(3)])
        let w = try Tensor(shape: [1, 1, 1], scalars: [Float(0.5)])
        let r = try Tensor(shape: [1, 1, 1], scalars: [Float(0)])
        let affine = try Self.run("RNN", [x, w, r], [
            "activations": .strings(["Affine"]), "activation_alpha": .floats([2]), "activation_beta": .floats([1]),
        ], outputs: 2)
        try Self.expectClose(affine[0], [4], "Affine")
        // clip bounds the activation's input: tanh(min(1.5, 0.5)).
        let clipped = try Self.run("RNN", [x, w, r], ["clip": .float(0.5)], outputs: 2)
        try Self.expectClose(clipped[0], [Self.tanh(0.5)], "clip")
    }

    // MARK: - Errors

    @Test func rejectsBadInputs() throws {
        let x = Self.floats([2, 1, 3], Self.values(6, seed: 1))
        let w = Self.floats([1, 4, 3], Self.values(12, seed: 2))
        let r = Self.floats([1, 4, 1], Self.values(4, seed: 3))
        let direction = #expect(throws: OnyxError.self) { try Self.run("LSTM", [x, w, r], ["direction": .string("sideways")]) }
        #expect(direction?.code == .invalidAttribute)
        #expect(direction?.message == "LSTM node 'n': direction 'sideways' is not forward, reverse or bidirectional")
        let shape = #expect(throws: OnyxError.self) { try Self.run("GRU", [x, w, r], outputs: 2) }
        #expect(shape?.message == "GRU: W must have shape [1, 3, 3], got [1, 4, 3]")
        let lengths = try Tensor(shape: [1], scalars: [Int32(5)])
        let tooLong = #expect(throws: OnyxError.self) { try Self.run("LSTM", [x, w, r, nil, lengths]) }
        #expect(tooLong?.code == .invalidInput)
        #expect(tooLong?.message == "LSTM: sequence_lens[0] = 5 is outside 0...2")
        let ints = try Tensor(shape: [2, 1, 3], scalars: [Int32](repeating: 1, count: 6))
        let type = #expect(throws: OnyxError.self) { try Self.run("LSTM", [ints, w, r]) }
        #expect(type?.message == "LSTM supports float, double and float16, got int32")
        let activation = #expect(throws: OnyxError.self) { try Self.run("RNN", [x, w, r], ["activations": .strings(["Swish"])]) }
        #expect(activation?.code == .invalidAttribute)
        #expect(activation?.message.hasPrefix("RNN node 'n': unknown activation 'Swish'; supported: Relu, Tanh") == true)
    }
}
