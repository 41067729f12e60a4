import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Einsum against a naive index-loop reference: matrix and batched products (the SGEMM path),
/// permuted outputs, diagonals, traces, ellipsis broadcasting, implicit outputs, three
/// operands, integer types and malformed equations.
@Suite struct EinsumTests {
    static func run(_ equation: String, _ inputs: [Tensor], isa: KernelISA = .preferred) throws -> Tensor {
        let node = Node(name: "n", opType: "Einsum", inputs: inputs.indices.map { "x\($0)" }, outputs: ["y"],
                        attributes: ["equation": .string(equation)])
        return try OperatorRegistry.evaluate(node, opset: 12, inputs: inputs, isa: isa)[0]
    }

    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(($0 * 7919 + seed * 104729) % 23 - 11) / 4 }
    }

    static func tensor(_ shape: [Int], seed: Int) -> Tensor {
        try! Tensor(shape: shape, scalars: values(shape.reduce(1, *), seed: seed))
    }

    static func expectClose(_ actual: Tensor, _ expected: [Float], _ label: String) throws {
        let values = try actual.scalars(as: Float.self)
        #expect(values.count == expected.count, "\(label): count \(values.count) vs \(expected.count)")
        for (a, e) in zip(values, expected) where abs(a - e) > 1e-4 * (1 + abs(e)) {
            Issue.record("\(label): \(a) vs \(e)")
            return
        }
    }

    @Test func matrixProductUsesEveryVariant() throws {
        let (m, k, n) = (7, 17, 5)
        let a = Self.values(m * k, seed: 1), b = Self.values(k * n, seed: 2)
        var expected = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for p in 0..<k { expected[i * n + j] += a[i * k + p] * b[p * n + j] } } }
        for isa in KernelISA.supported {
            let y = try Self.run("ij,jk->ik", [try Tensor(shape: [m, k], scalars: a), try Tensor(shape: [k, n], scalars: b)], isa: isa)
            #expect(y.shape == [m, n])
            try Self.expectClose(y, expected, "ij,jk->ik \(isa)")
            // Implicit output: the same product.
            try Self.expectClose(try Self.run("ij,jk", [try Tensor(shape: [m, k], scalars: a), try Tensor(shape: [k, n], scalars: b)]),
                                 expected, "implicit")
        }
    }

    @Test func batchedProductWithPermutedOutput() throws {
        let (batch, m, k, n) = (3, 4, 6, 5)
        let a = Self.tensor([batch, m, k], seed: 3), b = Self.tensor([batch, k, n], seed: 4)
        let av = try a.scalars(as: Float.self), bv = try b.scalars(as: Float.self)
        var bik = [Float](repeating: 0, count: batch * m * n)
        for q in 0..<batch { for i in 0..<m { for j in 0..<n { for p in 0..<k {
            bik[(q * m + i) * n + j] += av[(q * m + i) * k + p] * bv[(q * k + p) * n + j]
        } } } }
        try Self.expectClose(try Self.run("bij,bjk->bik", [a, b]), bik, "bij,bjk->bik")
        // Output as k, b, i.
        var kbi = [Float](repeating: 0, count: bik.count)
        for q in 0..<batch { for i in 0..<m { for j in 0..<n { kbi[(j * batch + q) * m + i] = bik[(q * m + i) * n + j] } } }
        let permuted = try Self.run("bij,bjk->kbi", [a, b])
        #expect(permuted.shape == [n, batch, m])
        try Self.expectClose(permuted, kbi, "bij,bjk->kbi")
        // The B operand stored transposed: "bij,bkj->bik".
        var bt = [Float](repeating: 0, count: bv.count)
        for q in 0..<batch { for p in 0..<k { for j in 0..<n { bt[(q * n + j) * k + p] = bv[(q * k + p) * n + j] } } }
        try Self.expectClose(try Self.run("bij,bkj->bik", [a, try Tensor(shape: [batch, n, k], scalars: bt)]), bik, "bij,bkj->bik")
    }

    @Test func diagonalsTracesAndSums() throws {
        let x = try Tensor(shape: [3, 3], scalars: (0..<9).map { Float($0) })
        #expect(try Self.run("ii->i", [x]).scalars(as: Float.self) == [0, 4, 8])
        #expect(try Self.run("ii", [x]).scalars(as: Float.self) == [12])
        #expect(try Self.run("ij->j", [x]).scalars(as: Float.self) == [9, 12, 15])
        #expect(try Self.run("ij->ji", [x]).scalars(as: Float.self) == [0, 3, 6, 1, 4, 7, 2, 5, 8])
        #expect(try Self.run("ij->", [x]).scalars(as: Float.self) == [36])
        let batch = try Tensor(shape: [2, 2, 2], scalars: (0..<8).map { Float($0) })
        #expect(try Self.run("...ii->...i", [batch]).scalars(as: Float.self) == [0, 3, 4, 7])
        let vector = try Tensor(shape: [3], scalars: [Float(1), 2, 3])
        #expect(try Self.run("i,i", [vector, vector]).scalars(as: Float.self) == [14])
        #expect(try Self.run("i,j->ij", [vector, vector]).shape == [3, 3])
    }

    @Test func ellipsisBroadcastAndThreeOperands() throws {
        // [2, 1, 3, 4] × [5, 4, 2] broadcast over the leading axes to [2, 5, 3, 2].
        let a = Self.tensor([2, 1, 3, 4], seed: 5), b = Self.tensor([5, 4, 2], seed: 6)
        let av = try a.scalars(as: Float.self), bv = try b.scalars(as: Float.self)
        var expected = [Float](repeating: 0, count: 2 * 5 * 3 * 2)
        for p in 0..<2 { for q in 0..<5 { for i in 0..<3 { for j in 0..<2 { for k in 0..<4 {
            expected[((p * 5 + q) * 3 + i) * 2 + j] += av[(p * 3 + i) * 4 + k] * bv[(q * 4 + k) * 2 + j]
        } } } } }
        let y = try Self.run("...ij,...jk->...ik", [a, b])
        #expect(y.shape == [2, 5, 3, 2])
        try Self.expectClose(y, expected, "ellipsis")

        let m1 = Self.tensor([2, 3], seed: 7), m2 = Self.tensor([3, 4], seed: 8), m3 = Self.tensor([4, 2], seed: 9)
        let v1 = try m1.scalars(as: Float.self), v2 = try m2.scalars(as: Float.self), v3 = try m3.scalars(as: Float.self)
        var chain = [Float](repeating: 0, count: 4)
        for i in 0..<2 { for l in 0..<2 { for j in 0..<3 { for k in 0..<4 {
            chain[i * 2 + l] += v1[i * 3 + j] * v2[j * 4 + k] * v3[k * 2 + l]
        } } } }
        try Self.expectClose(try Self.run("ij,jk,kl->il", [m1, m2, m3]), chain, "three operands")
    }

    @Test func integerAndDoubleTypes() throws {
        let a = try Tensor(shape: [2, 2], scalars: [Int32(1), 2, 3, 4])
        let y = try Self.run("ij,jk->ik", [a, a])
        #expect(y.dataType == .int32)
        #expect(try y.scalars(as: Int32.self) == [7, 10, 15, 22])
        let d = try Tensor(shape: [2, 2], scalars: [1.5, 2, 3, 4])
        #expect(try Self.run("ij->ji", [d]).scalars(as: Double.self) == [1.5, 3, 2, 4])
        let bytes = try Tensor(shape: [2], scalars: [UInt8(200), 100])
        #expect(try Self.run("i,i", [bytes, bytes]).scalars(as: UInt8.self) == [UInt8(truncatingIfNeeded: 200 * 200 + 100 * 100)])
    }

    @Test func rejectsMalformedEquations() throws {
        let x = try Tensor(shape: [2, 2], scalars: [Float](repeating: 1, count: 4))
        let symbol = #expect(throws: OnyxError.self) { try Self.run("i1->i", [x]) }
        #expect(symbol?.code == .invalidAttribute)
        #expect(symbol?.message == "Einsum node 'n': '1' in 'i1->i' is not a letter or '...'")
        let count = #expect(throws: OnyxError.self) { try Self.run("ij,jk->ik", [x]) }
        #expect(count?.code == .invalidModel)
        let rank = #expect(throws: OnyxError.self) { try Self.run("ijk->i", [x]) }
        #expect(rank?.message == "Einsum: an operand of shape [2, 2] does not fit its term of 3 letters")
        let y = try Tensor(shape: [3, 2], scalars: [Float](repeating: 1, count: 6))
        let extent = #expect(throws: OnyxError.self) { try Self.run("ij,ij->ij", [x, y]) }
        #expect(extent?.code == .shapeMismatch)
        let unknown = #expect(throws: OnyxError.self) { try Self.run("ij->k", [x]) }
        #expect(unknown?.code == .invalidAttribute)
    }
}
