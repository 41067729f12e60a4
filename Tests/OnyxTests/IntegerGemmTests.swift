import Testing
@testable import OnyxCore
@testable import OnyxKernels

/// The integer GEMM kernels (`Sources/CKernels/qgemm*.c`) on every ISA this CPU runs, against a
/// naive wrapping-int32 reference, on shapes that are not multiples of any tile or K group.
@Suite struct IntegerGemmTests {
    struct Shape: CustomTestStringConvertible, Sendable {
        var m, n, k: Int
        var testDescription: String { "\(m)×\(n)×\(k)" }
    }

    static let shapes: [Shape] = [
        Shape(m: 1, n: 1, k: 1), Shape(m: 1, n: 17, k: 7), Shape(m: 3, n: 33, k: 5), Shape(m: 7, n: 63, k: 17),
        Shape(m: 9, n: 16, k: 64), Shape(m: 17, n: 65, k: 63), Shape(m: 8, n: 32, k: 257), Shape(m: 1, n: 257, k: 130),
        Shape(m: 2, n: 40, k: 33), Shape(m: 33, n: 7, k: 1),
    ]

    /// How the operands and zero points are drawn.
    enum Case: String, CaseIterable, Sendable {
        case unsignedBySigned, signedBySigned, unsignedByUnsigned, signedByUnsigned
        var aSigned: Bool { self == .signedBySigned || self == .signedByUnsigned }
        var bSigned: Bool { self == .unsignedBySigned || self == .signedBySigned }
    }

    /// A deterministic stream of bytes covering the whole range (extremes included).
    struct Bytes {
        var state: UInt64
        mutating func next() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
    }

    static func value(_ byte: UInt8, signed: Bool) -> Int32 { signed ? Int32(Int8(bitPattern: byte)) : Int32(byte) }

    /// Zero points: none, one per tensor, or one per row of A / column of B.
    enum Zeros: CaseIterable, Sendable { case zero, perTensor, perLine }

    static func reference(
        m: Int, n: Int, k: Int, a: [UInt8], aSigned: Bool, b: [UInt8], bSigned: Bool, za: [Int32], zb: [Int32]
    ) -> [Int32] {
        var c = [Int32](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s: Int32 = 0
                for p in 0..<k {
                    s &+= (value(a[i * k + p], signed: aSigned) &- za[i]) &* (value(b[p * n + j], signed: bSigned) &- zb[j])
                }
                c[i * n + j] = s
            }
        }
        return c
    }

    @Test(arguments: KernelISA.supported, shapes)
    func integerProductIsExact(isa: KernelISA, shape: Shape) throws {
        let (m, n, k) = (shape.m, shape.n, shape.k)
        let pool = ComputePool(threadCount: 2)
        var bytes = Bytes(state: UInt64(m * 1000 + n * 10 + k))
        for kase in Case.allCases {
            for zeros in Zeros.allCases {
                var a = (0..<(m * k)).map { _ in bytes.next() }
                let b = (0..<(k * n)).map { _ in bytes.next() }
                if m > 1 { a[0] = kase.aSigned ? 0x80 : 0xFF }  // the extremes
                let zero: (Int) -> Int32 = { i in
                    switch zeros {
                    case .zero: 0
                    case .perTensor: 3
                    case .perLine: Int32(i % 7) - 3
                    }
                }
                let za = (0..<m).map { i in kase.aSigned ? zero(i) : abs(zero(i)) }
                let zb = (0..<n).map { j in kase.bSigned ? zero(j + 1) : abs(zero(j + 1)) * 40 }
                let want = Self.reference(m: m, n: n, k: k, a: a, aSigned: kase.aSigned, b: b, bSigned: kase.bSigned,
                                          za: za, zb: zb)
                let packed = b.withUnsafeBytes {
                    PackedIntegerMatrix.prepack($0.baseAddress!, signed: kase.bSigned, k: k, n: n, ld: n, isa: isa) { zb[$0] }
                }
                // Transposed B (N × K) packs to the same panels.
                var bt = [UInt8](repeating: 0, count: k * n)
                for p in 0..<k { for j in 0..<n { bt[j * k + p] = b[p * n + j] } }
                let packedT = bt.withUnsafeBytes {
                    PackedIntegerMatrix.prepack($0.baseAddress!, signed: kase.bSigned, k: k, n: n, ld: k, transposed: true,
                                                isa: isa) { zb[$0] }
                }
                let workspace = UnsafeMutableRawPointer.allocate(
                    byteCount: IntegerGemm.workspaceByteCount(m: m, k: k, isa: isa), alignment: 64)
                defer { workspace.deallocate() }
                for b in [packed, packedT] {
                    var c = [Int32](repeating: -7, count: m * n)
                    a.withUnsafeBytes { a in
                        c.withUnsafeMutableBufferPointer { c in
                            IntegerGemm.multiply(m: m, a: a.baseAddress!, signed: kase.aSigned, lda: k, zeroPoint: { za[$0] },
                                                 b: b, output: .int32(c.baseAddress!, ldc: n), workspace: workspace, pool: pool)
                        }
                    }
                    #expect(c == want, "\(isa) \(shape.testDescription) \(kase) \(zeros)")
                }

                // The float output: float(C) · scale[j] + bias[j], then a clamp.
                let scale = (0..<n).map { Float($0 % 5 + 1) * 0.0173 }
                let bias = (0..<n).map { Float($0 % 3) - 1.25 }
                var y = [Float](repeating: .nan, count: m * n)
                a.withUnsafeBytes { a in
                    y.withUnsafeMutableBufferPointer { y in
                        IntegerGemm.multiply(m: m, a: a.baseAddress!, signed: kase.aSigned, lda: k, zeroPoint: { za[$0] },
                                             b: packed, output: .float(y.baseAddress!, ldc: n, scale: scale, bias: bias, activation: .clip(min: 0, max: .infinity)),
                                             workspace: workspace, pool: pool)
                    }
                }
                let wantY = (0..<(m * n)).map { index in
                    var v = Float(want[index]) * scale[index % n]
                    v += bias[index % n]
                    return max(v, 0)
                }
                #expect(y == wantY, "\(isa) \(shape.testDescription) \(kase) \(zeros) float")
            }
        }
    }

    /// DynamicQuantizeLinear's kernels: rounding half to even, saturation, NaN to the zero point,
    /// every vector tail.
    @Test(arguments: KernelISA.supported)
    func dynamicQuantizationRoundsHalfToEven(isa: KernelISA) {
        for count in [1, 7, 8, 9, 31, 100] {
            var x = (0..<count).map { Float($0) * 0.5 - 10 }
            if count > 3 { x[1] = .nan; x[2] = 1e30; x[3] = -1e30 }
            var y = [UInt8](repeating: 0, count: count)
            let (scale, zero) = IntegerGemm.quantizeDynamically(x, count: count, into: &y, isa: isa)
            var low: Float = 0, high: Float = 0
            for v in x where !v.isNaN { low = min(low, v); high = max(high, v) }
            #expect(scale == (high == low ? 1 : high - low) / 255)
            for i in 0..<count {
                let q = x[i] / scale
                let v = q.isNaN ? Float(zero) : q.rounded(.toNearestOrEven) + Float(zero)
                #expect(y[i] == UInt8(min(max(v, 0), 255)), "\(isa) x[\(i)] = \(x[i])")
            }
        }
        // Exact halves: scale 1 (x in [0, 255]) puts 0.5, 1.5, 2.5 on ties.
        var y = [UInt8](repeating: 0, count: 5)
        let (scale, zero) = IntegerGemm.quantizeDynamically([0.5, 1.5, 2.5, 3.5, 255], count: 5, into: &y, isa: isa)
        #expect(scale == 1 && zero == 0)
        #expect(y == [0, 2, 2, 4, 255])
    }
}
