import CKernels
import Foundation
import Testing
@testable import OnyxKernels

/// The C kernel tables (`Sources/CKernels/dispatch.c`): every entry set for every ISA, and the
/// coverage table in docs/architecture.md as the tables say.
@Suite struct KernelTableTests {
    /// The ISAs in the columns of the coverage table, best first.
    static let columns: [(isa: onyx_isa, name: String)] = [
        (ONYX_ISA_AVX512, "AVX-512"), (ONYX_ISA_AVX2, "AVX2"), (ONYX_ISA_PORTABLE, "portable"),
    ]

    static func name(_ index: Int) -> String { String(cString: onyx_kernel_name(index)) }

    @Test func everyEntryIsSet() {
        let count = onyx_kernel_count()
        #expect(count > 0)
        #expect(onyx_kernel_name(count) == nil)
        for index in 0..<count {
            for (isa, column) in Self.columns {
                #expect(onyx_kernel_entry(isa, index) != nil, "\(Self.name(index)) \(column)")
            }
            #expect(onyx_kernel_is_native(ONYX_ISA_PORTABLE, index) == 1, "\(Self.name(index))")
            // An entry is inherited exactly when it is the lower ISA's.
            for (isa, lower) in [(ONYX_ISA_AVX512, ONYX_ISA_AVX2), (ONYX_ISA_AVX2, ONYX_ISA_PORTABLE)] {
                let inherited = onyx_kernel_entry(isa, index) == onyx_kernel_entry(lower, index)
                #expect((onyx_kernel_is_native(isa, index) == 1) == !inherited, "\(Self.name(index))")
            }
        }
    }

    /// `ONYX_VNNI=0` (tools/test.sh runs the int8 suites once more with it) masks VNNI: the AVX-512
    /// table is then the one a CPU with AVX-512 but without VNNI gets, whose integer GEMM is AVX2's.
    @Test func maskedVNNIGivesTheTableOfACPUWithoutIt() throws {
        let qgemm = try #require((0..<onyx_kernel_count()).first { Self.name($0) == "qgemm" })
        if ProcessInfo.processInfo.environment["ONYX_VNNI"] == "0" {
            #expect(onyx_cpu_has_avx512_vnni() == 0)
        }
        if onyx_cpu_has_avx512_vnni() == 0 {
            #expect(onyx_kernel_entry(ONYX_ISA_AVX512, qgemm) == onyx_kernel_entry(ONYX_ISA_AVX2, qgemm))
        } else {
            #expect(onyx_kernel_is_native(ONYX_ISA_AVX512, qgemm) == 1)
        }
    }

    /// The doc's cell for kernel `index` in column `position`: ✓, or → the ISA whose kernel runs.
    static func cell(_ index: Int, _ position: Int) -> String {
        if onyx_kernel_is_native(columns[position].isa, index) == 1 { return "✓" }
        // The doc shows a VNNI CPU: AVX-512 without VNNI takes AVX2's integer GEMM.
        if name(index) == "qgemm", columns[position].isa == ONYX_ISA_AVX512, onyx_cpu_has_avx512_vnni() == 0 { return "✓" }
        // ... and with VBMI: AVX-512 without it takes the portable table lookup.
        if name(index) == "lookup_u8", columns[position].isa == ONYX_ISA_AVX512, onyx_cpu_has_avx512_vbmi() == 0 { return "✓" }
        let source = columns[(position + 1)...].first { onyx_kernel_is_native($0.isa, index) == 1 }
        return "→ \(source?.name ?? "?")"
    }

    @Test func documentedCoverageMatchesTheTables() throws {
        #if arch(x86_64) || arch(i386)
        let doc = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../docs/architecture.md")
        let text = try String(contentsOf: doc, encoding: .utf8)
        let section = try #require(text.components(separatedBy: "### C kernel coverage").dropFirst().first)
        let rows = section.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .drop { !$0.hasPrefix("|") }.prefix { $0.hasPrefix("|") }.dropFirst(2)
        let documented = rows.map { row in
            row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let expected = (0..<onyx_kernel_count()).map { index in
            ["`\(Self.name(index))`"] + Self.columns.indices.map { Self.cell(index, $0) }
        }
        #expect(documented == expected)
        #endif
    }

    /// Inputs across the range, at the logistic's clamp edges, ±∞ and NaN.
    static let activationInputs: [Float] = stride(from: -100, through: 100, by: 0.37).map { Float($0) }
        + [0, -0, 1e-7, -1e-7, -3, 3, 87, -87, 88, -88, 89, -89, 200, -200, .infinity, -.infinity, .nan]

    /// Runs `kernel` on prefixes of ``activationInputs`` (every tail length of the vector loops)
    /// and checks each result against `exact` in double: NaN and ±∞ exactly, else within `relative`
    /// and `absolute` (the logistic's clamp at −87 leaves values ~1e-38 where the
    /// definition underflows). `skip`: inputs whose definition the kernel does not follow.
    static func expectMatches(
        _ label: String, absolute: Double, relative: Double = 4e-7, skip: (Float) -> Bool = { _ in false },
        kernel: (_ x: [Float], _ y: inout [Float]) -> Void, exact: (Double) -> Double
    ) {
        for count in [activationInputs.count, 1, 7, 8, 9, 15, 16, 17] {
            let x = Array(activationInputs.prefix(count))
            var y = [Float](repeating: -1, count: count)
            kernel(x, &y)
            for (input, output) in zip(x, y) where !skip(input) {
                let want = input.isNaN ? .nan : exact(Double(input))
                if want.isNaN {
                    #expect(output.isNaN, "\(label)(\(input)) = \(output), not nan")
                } else if want.isInfinite {
                    #expect(Double(output) == want, "\(label)(\(input)) = \(output), not \(want)")
                } else {
                    #expect(abs(Double(output) - want) <= relative * abs(want) + absolute, "\(label)(\(input)) = \(output), not \(want)")
                }
            }
        }
    }

    static func logistic(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }

    /// Every variant's logistic agrees with `1 / (1 + e^−x)` to a few ulp.
    @Test(arguments: KernelISA.supported)
    func sigmoidMatchesTheDefinition(_ isa: KernelISA) {
        Self.expectMatches("\(isa) sigmoid", absolute: 1e-37,
                           kernel: { FusedActivation.sigmoid.apply($0, &$1, count: $0.count, isa: isa) }, exact: Self.logistic)
    }

    /// Every variant's fused activations (`activate_f32`, the same code the NCHWc kernels and GEMM
    /// epilogues apply) agree with their definitions.
    @Test(arguments: KernelISA.supported)
    func activationsMatchTheirDefinitions(_ isa: KernelISA) {
        let sigmoid = Self.logistic
        let cases: [(FusedActivation, (Double) -> Double)] = [
            (.clip(min: -1.5, max: 6), { min(max($0, -1.5), 6) }),
            (.relu, { max($0, 0) }),
            (.sigmoid, sigmoid),
            (.silu, { $0 * sigmoid($0) }),
            (.hardSigmoid(alpha: 0.2, beta: 0.5), { min(max(0.2 * $0 + 0.5, 0), 1) }),
            (.hardSwish, { $0 * min(max($0 / 6 + 0.5, 0), 1) }),
            (.leakyRelu(alpha: 0.1), { $0 < 0 ? 0.1 * $0 : $0 }),
            (.gelu, { 0.5 * $0 * Foundation.erfc(-$0 / 2.0.squareRoot()) }),
            (.geluTanh, { $0 * sigmoid(2 * 0.797_884_560_802_865_4 * ($0 + 0.044715 * $0 * $0 * $0)) }),
        ]
        for (activation, exact) in cases {
            // x · sigmoid(x) at x = −∞ is NaN by the definition (−∞ · 0); the kernel's clamped logistic gives −∞
            // (as for the tanh GELU, x · sigmoid(2y)). The erf GELU gives NaN there, as its reference formula does.
            // In the GELUs' left tails the exponent's own rounding sets the relative error: a²·6e-8 for
            // erfc(a) (FastMath.erfcLarge), |2y|·6e-8 for sigmoid(2y); a few 1e-6 at x = -9.
            let relative = [.gelu, .geluTanh].contains(activation) ? 2e-5 : 4e-7
            Self.expectMatches("\(isa) \(activation)", absolute: 1e-35, relative: relative,
                               skip: { $0 == -.infinity && [.silu, .geluTanh].contains(activation) },
                               kernel: { activation.apply($0, &$1, count: $0.count, isa: isa) }, exact: exact)
        }
        // In place, as the epilogues run it.
        var values: [Float] = [-2, -1, 0, 1, 2]
        FusedActivation.silu.apply(&values, count: values.count, isa: isa)
        #expect(abs(values[4] - Float(2 * sigmoid(2))) < 1e-6 && values[2] == 0)
    }

    /// Every variant's `sgemm_pack_a` writes exactly the strips the definition gives: strip
    /// heights 4–32 (in chunks of 8 in the vector form), row and column tails, both layouts, a scale, and
    /// zeros (not the NaN the buffer held) in the padding rows.
    @Test(arguments: KernelISA.supported)
    func packingAMatchesTheDefinition(_ isa: KernelISA) {
        for mr in [4, 6, 8, 12, 16, 32] {  // 16 and 32: B's panels, packed the same way
            for (m, k) in [(1, 1), (5, 7), (8, 8), (13, 9), (17, 31), (6, 16), (40, 10)] {
                for transposed in [false, true] {
                    let scale: Float = transposed ? -0.5 : 1
                    let ld = (transposed ? m : k) + 3  // the stored rows are longer than op(A)'s extent
                    let stored = (0..<(transposed ? k : m) * ld).map { Float($0 % 97) - 48.5 }
                    let strips = (m + mr - 1) / mr
                    var packed = [Float](repeating: .nan, count: strips * k * mr)
                    onyx_sgemm_pack_a(isa.cValue, stored, ld, transposed ? 1 : 0, m, k, scale, mr, &packed)
                    var expected = [Float](repeating: 0, count: packed.count)
                    for i in 0..<m {
                        for p in 0..<k {
                            let value = transposed ? stored[p * ld + i] : stored[i * ld + p]
                            expected[(i / mr) * k * mr + p * mr + i % mr] = scale * value
                        }
                    }
                    #expect(packed == expected, "\(isa) mr \(mr) \(m)×\(k) transposed \(transposed)")
                }
            }
        }
    }

    /// Every variant's row softmax against the definition in Double: row lengths around the vector
    /// widths, a −∞ mask (exactly 0), far-below-the-peak logits (0), a NaN row, and in place.
    @Test(arguments: KernelISA.supported)
    func softmaxRowsMatchTheDefinition(_ isa: KernelISA) {
        for n in [1, 7, 8, 9, 16, 17, 33, 197] {
            let rows = 3
            var x = (0..<rows * n).map { Float(($0 * 37) % 101) / 7 - 6 }
            if n > 1 { x[n / 2] = -.infinity }  // (a row of one masked logit is NaN by the definition)
            if n > 2 { x[n + 1] = -200 }
            var y = [Float](repeating: 0, count: x.count)
            onyx_softmax_f32(isa.cValue, x, &y, rows, n, 0)
            for r in 0..<rows {
                let row = x[(r * n)..<((r + 1) * n)].map(Double.init)
                let peak = row.max()!
                let sum = row.reduce(0) { $0 + Foundation.exp($1 - peak) }
                for i in 0..<n {
                    let expected = Foundation.exp(row[i] - peak) / sum
                    #expect(abs(Double(y[r * n + i]) - expected) <= 1e-6 * expected + 1e-30, "\(isa) n \(n) [\(r), \(i)]")
                }
            }
            #expect((n == 1 || y[n / 2] == 0) && (n <= 2 || y[n + 1] == 0), "\(isa) n \(n): masked and far-below logits give 0")
            var inPlace = x
            inPlace.withUnsafeMutableBufferPointer { onyx_softmax_f32(isa.cValue, $0.baseAddress, $0.baseAddress, rows, n, 0) }
            #expect(inPlace == y, "\(isa) n \(n) in place")
        }
        var withNaN: [Float] = [1, 2, .nan, 4, 5, 6, 7, 8, 9, 10]
        withNaN.withUnsafeMutableBufferPointer { onyx_softmax_f32(isa.cValue, $0.baseAddress, $0.baseAddress, 1, 10, 0) }
        #expect(withNaN.allSatisfy { $0.isNaN }, "\(isa): a NaN makes its row NaN")
    }

    /// With `zero_nan_rows`, every variant writes zeros for exactly the rows it would make NaN (a NaN
    /// logit, every logit −∞, a +∞ logit) and the same values as without for the others: rows of
    /// lengths around the vector widths, in place and not.
    @Test(arguments: KernelISA.supported)
    func softmaxZeroesNaNRows(_ isa: KernelISA) {
        for n in [1, 5, 8, 15, 16, 17, 31, 32, 33, 128, 197] {
            let rows = 5
            var x = (0..<rows * n).map { Float(($0 * 29) % 83) / 9 - 4 }
            for i in 0..<n { x[n + i] = -.infinity }  // row 1: fully masked
            x[2 * n + n / 2] = .nan                    // row 2: a NaN
            x[3 * n + n - 1] = .infinity               // row 3: +∞
            if n > 1 { x[4 * n] = -.infinity }         // row 4: partly masked (finite)
            var plain = [Float](repeating: 0, count: x.count), zeroed = plain
            onyx_softmax_f32(isa.cValue, x, &plain, rows, n, 0)
            onyx_softmax_f32(isa.cValue, x, &zeroed, rows, n, 1)
            for r in 0..<rows {
                let row = r * n..<(r + 1) * n
                let nanRow = plain[row].contains { $0.isNaN }
                #expect(nanRow == (1...3).contains(r), "\(isa) n \(n) row \(r): NaN rows are the masked, NaN and +∞ ones")
                #expect(zeroed[row].elementsEqual(plain[row].map { $0.isNaN ? 0 : $0 }), "\(isa) n \(n) row \(r)")
            }
            var inPlace = x
            inPlace.withUnsafeMutableBufferPointer { onyx_softmax_f32(isa.cValue, $0.baseAddress, $0.baseAddress, rows, n, 1) }
            #expect(inPlace == zeroed, "\(isa) n \(n) in place")
        }
    }

    /// Every variant's layer normalisation against the definition in Double, with and without a
    /// bias, the statistics outputs, row lengths around the vector widths, and in place.
    @Test(arguments: KernelISA.supported)
    func layerNormRowsMatchTheDefinition(_ isa: KernelISA) {
        for n in [1, 7, 8, 15, 16, 17, 40, 771] {
            let rows = 3
            let x = (0..<rows * n).map { Float(($0 * 53) % 97) / 9 - 5 + Float($0 / n) * 100 }
            let scale = (0..<n).map { 0.5 + Float($0 % 5) / 4 }, bias = (0..<n).map { Float($0 % 3) - 1 }
            for withBias in [false, true] {
                var y = [Float](repeating: 0, count: x.count), mean = [Float](repeating: 0, count: rows)
                var inverse = [Float](repeating: 0, count: rows)
                onyx_layer_norm_f32(isa.cValue, x, &y, rows, n, 1e-5, scale, withBias ? bias : nil, &mean, &inverse)
                for r in 0..<rows {
                    let row = x[(r * n)..<((r + 1) * n)].map(Double.init)
                    let m = row.reduce(0, +) / Double(n)
                    let v = row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(n)
                    let inv = 1 / (v + 1e-5).squareRoot()
                    #expect(abs(Double(mean[r]) - m) <= 1e-5 * abs(m) + 1e-6 && abs(Double(inverse[r]) - inv) <= 1e-4 * inv,
                            "\(isa) n \(n) row \(r) statistics")
                    for i in 0..<n {
                        let expected = (row[i] - m) * inv * Double(scale[i]) + (withBias ? Double(bias[i]) : 0)
                        #expect(abs(Double(y[r * n + i]) - expected) <= 1e-3 * abs(expected) + 1e-3, "\(isa) n \(n) [\(r), \(i)]")
                    }
                }
                var inPlace = x
                inPlace.withUnsafeMutableBufferPointer {
                    onyx_layer_norm_f32(isa.cValue, $0.baseAddress, $0.baseAddress, rows, n, 1e-5, scale, withBias ? bias : nil, nil, nil)
                }
                #expect(inPlace == y, "\(isa) n \(n) in place")
            }
        }
    }
}
