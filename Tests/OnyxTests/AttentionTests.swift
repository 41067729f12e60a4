import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Attention against a naive reference (GQA, masks, causal, caches, softcap, 3-D inputs),
/// RotaryEmbedding, SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss on hand-checked values.
@Suite struct AttentionTests {
    static func run(
        _ op: String, opset: Int, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:], outputs: Int = 1,
        isa: KernelISA = .preferred
    ) throws -> [Tensor] {
        let node = Node(
            name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "x\($0.offset)" },
            outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        return try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs, isa: isa)
    }

    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(($0 * 7919 + seed * 104729) % 23 - 11) / 8 }
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

    /// Naive 4-D attention: Y[b, h, i] = Σ_j softmax_j(scale·q·k + bias) · v, with K/V of the
    /// concatenated past and new steps and head h reading KV head h / (Hq / Hkv).
    static func reference(
        q: [Float], k: [Float], v: [Float], batch: Int, heads: Int, kvHeads: Int, queries: Int, keys: Int,
        headSize: Int, valueSize: Int, causalOffset: Int?, mask: ((Int, Int, Int, Int) -> Double)?
    ) -> [Double] {
        var y = [Double](repeating: 0, count: batch * heads * queries * valueSize)
        let scale = 1 / Double(headSize).squareRoot()
        for b in 0..<batch {
            for h in 0..<heads {
                let kv = b * kvHeads + h / (heads / kvHeads)
                for i in 0..<queries {
                    var scores = [Double](repeating: 0, count: keys)
                    for j in 0..<keys {
                        var s = 0.0
                        for d in 0..<headSize {
                            s += Double(q[((b * heads + h) * queries + i) * headSize + d]) * Double(k[(kv * keys + j) * headSize + d])
                        }
                        scores[j] = s * scale + (mask?(b, h, i, j) ?? 0)
                        if let causalOffset, j > i + causalOffset { scores[j] = -.infinity }
                    }
                    let peak = scores.max()!
                    guard peak > -.infinity else { continue }
                    let e = scores.map { Double.exponential($0 - peak) }
                    let total = e.reduce(0, +)
                    for j in 0..<keys {
                        for d in 0..<valueSize {
                            y[((b * heads + h) * queries + i) * valueSize + d] += e[j] / total * Double(v[(kv * keys + j) * valueSize + d])
                        }
                    }
                }
            }
        }
        return y
    }

    // MARK: - Attention

    @Test func singleKeyReturnsItsValue() throws {
        let q = try Tensor(shape: [1, 1, 1, 2], scalars: [Float(1), 2])
        let k = try Tensor(shape: [1, 1, 1, 2], scalars: [Float(3), 4])
        let v = try Tensor(shape: [1, 1, 1, 3], scalars: [Float(5), 6, 7])
        let y = try Self.run("Attention", opset: 23, [q, k, v])[0]
        #expect(y.shape == [1, 1, 1, 3])
        #expect(try y.scalars(as: Float.self) == [5, 6, 7])
    }

    @Test func groupedHeadsWithMaskCausalAndCache() throws {
        let (batch, heads, kvHeads, queries, fresh, past, headSize, valueSize) = (2, 6, 3, 4, 5, 3, 8, 7)
        let keys = past + fresh
        let q = Self.values(batch * heads * queries * headSize, seed: 1)
        let k = Self.values(batch * kvHeads * fresh * headSize, seed: 2)
        let v = Self.values(batch * kvHeads * fresh * valueSize, seed: 3)
        let pk = Self.values(batch * kvHeads * past * headSize, seed: 4)
        let pv = Self.values(batch * kvHeads * past * valueSize, seed: 5)
        let mask = Self.values(queries * keys, seed: 6)
        // The reference reads K and V with the past prepended.
        func concat(_ pastValues: [Float], _ newValues: [Float], _ width: Int) -> [Float] {
            var result: [Float] = []
            for head in 0..<batch * kvHeads {
                let pastRange = (head * past * width)..<((head + 1) * past * width)
                let newRange = (head * fresh * width)..<((head + 1) * fresh * width)
                result += pastValues[pastRange]
                result += newValues[newRange]
            }
            return result
        }
        let fullK = concat(pk, k, headSize), fullV = concat(pv, v, valueSize)
        let inputs: [Tensor?] = [
            try Tensor(shape: [batch, heads, queries, headSize], scalars: q),
            try Tensor(shape: [batch, kvHeads, fresh, headSize], scalars: k),
            try Tensor(shape: [batch, kvHeads, fresh, valueSize], scalars: v),
            try Tensor(shape: [queries, keys], scalars: mask),
            try Tensor(shape: [batch, kvHeads, past, headSize], scalars: pk),
            try Tensor(shape: [batch, kvHeads, past, valueSize], scalars: pv),
        ]
        for causal in [false, true] {
            let expected = Self.reference(
                q: q, k: fullK, v: fullV, batch: batch, heads: heads, kvHeads: kvHeads, queries: queries, keys: keys,
                headSize: headSize, valueSize: valueSize, causalOffset: causal ? past : nil,
                mask: { _, _, i, j in Double(mask[i * keys + j]) })
            for isa in KernelISA.supported {
                let out = try Self.run("Attention", opset: 23, inputs, ["is_causal": .int(causal ? 1 : 0)], outputs: 3, isa: isa)
                try Self.expectClose(out[0], expected, "causal \(causal) \(isa)")
                #expect(out[1].shape == [batch, kvHeads, keys, headSize])
                #expect(try out[1].scalars(as: Float.self) == fullK)
                #expect(try out[2].scalars(as: Float.self) == fullV)
            }
            let doubles = inputs.map { t in t.map { try! Tensor(shape: $0.shape, scalars: try! $0.scalars(as: Float.self).map { Double($0) }) } }
            try Self.expectClose(try Self.run("Attention", opset: 23, doubles, ["is_causal": .int(causal ? 1 : 0)])[0], expected,
                                 tolerance: 1e-9, "double")
            let halves = inputs.map { t in t.map { try! Tensor(shape: $0.shape, scalars: try! $0.scalars(as: Float.self).map { Float16($0) }) } }
            try Self.expectClose(try Self.run("Attention", opset: 23, halves, ["is_causal": .int(causal ? 1 : 0)])[0], expected,
                                 tolerance: 1e-2, "float16")
        }
    }

    @Test func packedHeadsMatchFourDimensionalInputs() throws {
        let (batch, heads, queries, keys, headSize) = (2, 3, 4, 6, 8)
        let q4 = Self.values(batch * heads * queries * headSize, seed: 7)
        let k4 = Self.values(batch * heads * keys * headSize, seed: 8)
        let v4 = Self.values(batch * heads * keys * headSize, seed: 9)
        // [b, h, s, d] → [b, s, h·d].
        func pack(_ x: [Float], _ steps: Int) -> [Float] {
            var out = [Float](repeating: 0, count: x.count)
            for b in 0..<batch { for h in 0..<heads { for s in 0..<steps { for d in 0..<headSize {
                out[((b * steps + s) * heads + h) * headSize + d] = x[((b * heads + h) * steps + s) * headSize + d]
            } } } }
            return out
        }
        let four = try Self.run("Attention", opset: 23, [
            try Tensor(shape: [batch, heads, queries, headSize], scalars: q4),
            try Tensor(shape: [batch, heads, keys, headSize], scalars: k4),
            try Tensor(shape: [batch, heads, keys, headSize], scalars: v4),
        ], ["softcap": .float(2)])[0]
        let three = try Self.run("Attention", opset: 23, [
            try Tensor(shape: [batch, queries, heads * headSize], scalars: pack(q4, queries)),
            try Tensor(shape: [batch, keys, heads * headSize], scalars: pack(k4, keys)),
            try Tensor(shape: [batch, keys, heads * headSize], scalars: pack(v4, keys)),
        ], ["softcap": .float(2), "q_num_heads": .int(heads), "kv_num_heads": .int(heads)])[0]
        #expect(three.shape == [batch, queries, heads * headSize])
        let packed = pack(try four.scalars(as: Float.self), queries)
        let values = try three.scalars(as: Float.self)
        #expect(zip(values, packed).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    @Test func fullyMaskedRowsAreZeroAndModeThreeIsProbabilities() throws {
        let q = try Tensor(shape: [1, 1, 2, 2], scalars: [Float(1), 0, 0, 1])
        let k = try Tensor(shape: [1, 1, 2, 2], scalars: [Float(1), 0, 0, 1])
        let v = try Tensor(shape: [1, 1, 2, 1], scalars: [Float(2), 4])
        let mask = try Tensor(shape: [2, 2], scalars: [true, true, false, false])
        let out = try Self.run("Attention", opset: 24, [q, k, v, mask], ["qk_matmul_output_mode": .int(3), "scale": .float(0)],
                               outputs: 4)
        // Row 0 attends both keys equally (scale 0); row 1 is fully masked.
        #expect(try out[0].scalars(as: Float.self) == [3, 0])
        #expect(try out[3].scalars(as: Float.self) == [0.5, 0.5, 0, 0])
    }

    @Test func rejectsBadAttentionInputs() throws {
        let q = try Tensor(shape: [1, 4, 2, 2], scalars: [Float](repeating: 1, count: 16))
        let k = try Tensor(shape: [1, 3, 2, 2], scalars: [Float](repeating: 1, count: 12))
        let heads = #expect(throws: OnyxError.self) { try Self.run("Attention", opset: 23, [q, k, k]) }
        #expect(heads?.message == "Attention: 4 query heads are not a multiple of 3 key/value heads")
        let q3 = try Tensor(shape: [1, 2, 4], scalars: [Float](repeating: 1, count: 8))
        let missing = #expect(throws: OnyxError.self) { try Self.run("Attention", opset: 23, [q3, q3, q3]) }
        #expect(missing?.code == .invalidAttribute)
        let ints = try Tensor(shape: [1, 2, 4], scalars: [Int32](repeating: 1, count: 8))
        let type = #expect(throws: OnyxError.self) { try Self.run("Attention", opset: 23, [ints, ints, ints]) }
        #expect(type?.message == "Attention supports float, double and float16, got int32")
        let mode = #expect(throws: OnyxError.self) {
            try Self.run("Attention", opset: 23, [q, q, q], ["qk_matmul_output_mode": .int(4)])
        }
        #expect(mode?.code == .invalidAttribute)
    }

    // MARK: - RotaryEmbedding

    @Test func rotaryEmbeddingRotatesHalvesAndPairs() throws {
        // One head of 4 features, one step at position 1 where cos = 0, sin = 1: (x1, x2) → (−x2, x1).
        let x = try Tensor(shape: [1, 1, 1, 4], scalars: [Float(1), 2, 3, 4])
        let cos = try Tensor(shape: [2, 2], scalars: [Float(1), 1, 0, 0])
        let sin = try Tensor(shape: [2, 2], scalars: [Float(0), 0, 1, 1])
        let position = try Tensor(shape: [1, 1], scalars: [Int64(1)])
        let halves = try Self.run("RotaryEmbedding", opset: 23, [x, cos, sin, position])[0]
        #expect(try halves.scalars(as: Float.self) == [-3, -4, 1, 2])
        let pairs = try Self.run("RotaryEmbedding", opset: 23, [x, cos, sin, position], ["interleaved": .int(1)])[0]
        #expect(try pairs.scalars(as: Float.self) == [-2, 1, -4, 3])
        // rotary_embedding_dim 2 leaves the last two features alone.
        let partial = try Self.run("RotaryEmbedding", opset: 23, [x, try Tensor(shape: [2, 1], scalars: [Float(1), 0]),
                                                                  try Tensor(shape: [2, 1], scalars: [Float(0), 1]), position],
                                   ["rotary_embedding_dim": .int(2)])[0]
        #expect(try partial.scalars(as: Float.self) == [-2, 1, 3, 4])
        let half16 = try Self.run("RotaryEmbedding", opset: 23, [
            try Tensor(shape: [1, 1, 1, 4], scalars: [Float16(1), 2, 3, 4]),
            try Tensor(shape: [2, 2], scalars: [Float16(1), 1, 0, 0]), try Tensor(shape: [2, 2], scalars: [Float16(0), 0, 1, 1]),
            position,
        ])[0]
        #expect(try half16.scalars(as: Float16.self) == [-3, -4, 1, 2])
        let outside = try Tensor(shape: [1, 1], scalars: [Int64(2)])
        let error = #expect(throws: OnyxError.self) { try Self.run("RotaryEmbedding", opset: 23, [x, cos, sin, outside]) }
        #expect(error?.message == "RotaryEmbedding: position id 2 is outside 0..<2")
    }

    // MARK: - Losses

    @Test func negativeLogLikelihoodReductions() throws {
        // Scores [N = 2, C = 3]; labels 2 and 0.
        let scores = try Tensor(shape: [2, 3], scalars: [Float(-1), -2, -3, -4, -5, -6])
        let labels = try Tensor(shape: [2], scalars: [Int64(2), 0])
        let none = try Self.run("NegativeLogLikelihoodLoss", opset: 13, [scores, labels], ["reduction": .string("none")])[0]
        #expect(try none.scalars(as: Float.self) == [3, 4])
        let sum = try Self.run("NegativeLogLikelihoodLoss", opset: 13, [scores, labels], ["reduction": .string("sum")])[0]
        #expect(sum.shape == [])
        #expect(try sum.scalars(as: Float.self) == [7])
        let weights = try Tensor(shape: [3], scalars: [Float(1), 0, 3])
        let mean = try Self.run("NegativeLogLikelihoodLoss", opset: 13, [scores, labels, weights])[0]
        #expect(try mean.scalars(as: Float.self) == [(3 * 3 + 4) / 4])
        let ignored = try Self.run("NegativeLogLikelihoodLoss", opset: 22, [scores, labels], ["ignore_index": .int(0)])[0]
        #expect(try ignored.scalars(as: Float.self) == [3])
        let bad = try Tensor(shape: [2], scalars: [Int64(3), 0])
        let error = #expect(throws: OnyxError.self) { try Self.run("NegativeLogLikelihoodLoss", opset: 13, [scores, bad]) }
        #expect(error?.code == .invalidInput)
        #expect(error?.message == "NegativeLogLikelihoodLoss: label 3 is outside 0..<3 and is not ignore_index")
    }

    @Test func softmaxCrossEntropyWithLogProbabilities() throws {
        // Equal scores: every log-probability is −log 3.
        let scores = try Tensor(shape: [1, 3, 2], scalars: [Double](repeating: 0.5, count: 6))
        let labels = try Tensor(shape: [1, 2], scalars: [Int32(1), 2])
        let out = try Self.run("SoftmaxCrossEntropyLoss", opset: 13, [scores, labels], outputs: 2)
        let log3 = Double.logarithm(3)
        #expect(abs(try out[0].scalars(as: Double.self)[0] - log3) < 1e-12)
        #expect(out[1].shape == [1, 3, 2])
        #expect(try out[1].scalars(as: Double.self).allSatisfy { abs($0 + log3) < 1e-12 })
        let wrong = try Tensor(shape: [2], scalars: [Int32(1), 2])
        let error = #expect(throws: OnyxError.self) { try Self.run("SoftmaxCrossEntropyLoss", opset: 13, [scores, wrong]) }
        #expect(error?.code == .shapeMismatch)
        let reduction = #expect(throws: OnyxError.self) {
            try Self.run("SoftmaxCrossEntropyLoss", opset: 13, [scores, labels], ["reduction": .string("max")])
        }
        #expect(reduction?.message == "SoftmaxCrossEntropyLoss node 'n': reduction 'max' is not none, sum or mean")
    }
}
