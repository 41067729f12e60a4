import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Adam, Adagrad and Momentum (ai.onnx.preview.training) against the update rules worked by hand.
@Suite struct TrainingOperatorTests {
    static let domain = "ai.onnx.preview.training"

    static func run(_ op: String, _ inputs: [Tensor], _ attributes: [String: Attribute], outputs: Int) throws -> [Tensor] {
        let node = Node(name: "n", opType: op, domain: domain, inputs: inputs.indices.map { "x\($0)" },
                        outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: 1, inputs: inputs)
    }

    static func f(_ values: [Float]) -> Tensor { try! Tensor(shape: [values.count], scalars: values) }
    static let rate = Tensor(scalar: Float(0.1))
    static let first = Tensor(scalar: Int64(0))

    static func values(_ t: Tensor) throws -> [Double] {
        t.dataType == .double ? try t.scalars(as: Double.self) : try t.scalars(as: Float.self).map(Double.init)
    }

    static func close(_ a: [Double], _ b: [Double]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) }
    }

    @Test func adagradStep() throws {
        // r = 0.1; H = 0 + 2² = 4; X = 1 − 0.1·2/√4 = 0.9.
        let y = try Self.run("Adagrad", [Self.rate, Self.first, Self.f([1]), Self.f([2]), Self.f([0])],
                             ["epsilon": .float(0)], outputs: 2)
        #expect(Self.close(try Self.values(y[0]), [0.9]))
        #expect(try y[1].scalars(as: Float.self) == [4])
        // decay_factor divides the rate by 1 + T·decay; norm_coefficient adds norm·X to the gradient.
        let later = try Self.run("Adagrad", [Self.rate, Tensor(scalar: Int64(1)), Self.f([1]), Self.f([1.5]), Self.f([0])],
                                 ["epsilon": .float(0), "decay_factor": .float(1), "norm_coefficient": .float(0.5)], outputs: 2)
        #expect(Self.close(try Self.values(later[0]), [1 - 0.05]))
    }

    @Test func momentumStandardAndNesterov() throws {
        let inputs = [Self.rate, Self.first, Self.f([1]), Self.f([2]), Self.f([1])]
        var attributes: [String: Attribute] = ["alpha": .float(0.9), "beta": .float(0.1), "norm_coefficient": .float(0),
                                               "mode": .string("standard")]
        // T = 0 uses beta 1: V = 0.9·1 + 2 = 2.9; X = 1 − 0.1·2.9.
        let standard = try Self.run("Momentum", inputs, attributes, outputs: 2)
        #expect(Self.close(try Self.values(standard[0]), [0.71]))
        #expect(Self.close(try Self.values(standard[1]), [2.9]))
        attributes["mode"] = .string("nesterov")
        let nesterov = try Self.run("Momentum", inputs, attributes, outputs: 2)
        #expect(Self.close(try Self.values(nesterov[0]), [1 - 0.1 * (2 + 0.9 * 2.9)]))
        // T > 0 uses beta: V = 0.9 + 0.1·2 = 1.1.
        attributes["mode"] = .string("standard")
        let later = try Self.run("Momentum", [Self.rate, Tensor(scalar: Int64(3)), Self.f([1]), Self.f([2]), Self.f([1])], attributes, outputs: 2)
        #expect(Self.close(try Self.values(later[1]), [1.1]))
    }

    @Test func adamOnTwoDoubleTensors() throws {
        func d(_ v: [Double]) -> Tensor { try! Tensor(shape: [v.count], scalars: v) }
        // T = 0: no bias correction. V = 0.5·2 = 1, H = 0.5·4 = 2, X = 1 − 0.1·1/√2.
        let inputs = [Tensor(scalar: 0.1), Self.first, d([1]), d([3, 3]), d([2]), d([0, 0]), d([0]), d([0, 0]), d([0]), d([0, 0])]
        let y = try Self.run("Adam", inputs, ["alpha": .float(0.5), "beta": .float(0.5), "epsilon": .float(0)], outputs: 6)
        #expect(y.map(\.shape) == [[1], [2], [1], [2], [1], [2]])
        #expect(Self.close(try Self.values(y[0]), [1 - 0.1 / 2.0.squareRoot()]))
        #expect(Self.close(try Self.values(y[2]), [1]))
        #expect(Self.close(try Self.values(y[4]), [2]))
        // T = 1 corrects: rate·√(1 − β)/(1 − α) = 0.1·√0.5/0.5.
        var later = inputs
        later[1] = Tensor(scalar: Int64(1))
        let z = try Self.run("Adam", later, ["alpha": .float(0.5), "beta": .float(0.5), "epsilon": .float(0)], outputs: 6)
        #expect(Self.close(try Self.values(z[0]), [1 - 0.1 * 0.5.squareRoot() / 0.5 / 2.0.squareRoot()]))
    }

    @Test func optimizerErrors() throws {
        let count = #expect(throws: OnyxError.self) {
            try Self.run("Adagrad", [Self.rate, Self.first, Self.f([1]), Self.f([2])], [:], outputs: 2)
        }
        #expect(count?.code == .invalidModel)
        #expect(count?.message == "Adagrad: expected R, T and 3 inputs per tensor (X, G, H), got 4 inputs")
        let shape = #expect(throws: OnyxError.self) {
            try Self.run("Adagrad", [Self.rate, Self.first, Self.f([1]), Self.f([2, 3]), Self.f([0])], [:], outputs: 2)
        }
        #expect(shape?.code == .shapeMismatch)
        #expect(shape?.message == "Adagrad: G1 is float[2]; expected float[1] like X1")
        let mode = #expect(throws: OnyxError.self) {
            try Self.run("Momentum", [Self.rate, Self.first, Self.f([1]), Self.f([2]), Self.f([0])],
                         ["alpha": .float(0.9), "beta": .float(0.1), "norm_coefficient": .float(0), "mode": .string("heavy")], outputs: 2)
        }
        #expect(mode?.message == "Momentum node 'n': mode 'heavy' is not standard or nesterov")
        let step = #expect(throws: OnyxError.self) {
            try Self.run("Adagrad", [Self.rate, Tensor(scalar: Int32(0)), Self.f([1]), Self.f([2]), Self.f([0])], [:], outputs: 2)
        }
        #expect(step?.message == "Adagrad: T must be an int64 scalar, got int32[]")
    }
}
