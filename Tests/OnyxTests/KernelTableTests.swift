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

    /// The doc's cell for kernel `index` in column `position`: ✓, or → the ISA whose kernel runs.
    static func cell(_ index: Int, _ position: Int) -> String {
        if onyx_kernel_is_native(columns[position].isa, index) == 1 { return "✓" }
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

    /// Every variant's logistic agrees with `1 / (1 + e^−x)` in double, to a few ulp, across the
    /// range, at the clamp edges, for ±∞ and NaN, and over every tail length of the vector loop.
    @Test(arguments: KernelISA.supported)
    func sigmoidMatchesTheDefinition(_ isa: KernelISA) {
        var inputs: [Float] = stride(from: -100, through: 100, by: 0.37).map { Float($0) }
        inputs += [0, -0, 1e-7, -1e-7, 87, -87, 88, -88, 89, -89, 200, -200, .infinity, -.infinity, .nan]
        for count in [inputs.count, 1, 7, 8, 9, 15, 16, 17] {
            let x = Array(inputs.prefix(count))
            var y = [Float](repeating: -1, count: count)
            VectorKernels.sigmoid(x, &y, count: count, isa: isa)
            for (input, output) in zip(x, y) {
                if input.isNaN {
                    #expect(output.isNaN, "\(isa): sigmoid(nan) = \(output)")
                    continue
                }
                let exact = 1 / (1 + Foundation.exp(-Double(input)))
                #expect(abs(Double(output) - exact) <= 4e-7 * exact + 1e-37, "\(isa): sigmoid(\(input)) = \(output), not \(exact)")
            }
        }
    }

    /// Every variant's fused activations (`activate_f32`, the same code the NCHWc kernels and GEMM
    /// epilogues apply) agree with their definitions in double: across the range, at the logistic's
    /// clamp edges, for ±∞ (where defined) and NaN, and over every tail length of the vector loop.
    @Test(arguments: KernelISA.supported)
    func activationsMatchTheirDefinitions(_ isa: KernelISA) {
        func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }
        let cases: [(FusedActivation, (Double) -> Double)] = [
            (.clip(min: -1.5, max: 6), { min(max($0, -1.5), 6) }),
            (.relu, { max($0, 0) }),
            (.sigmoid, sigmoid),
            (.silu, { $0 * sigmoid($0) }),
            (.hardSigmoid(alpha: 0.2, beta: 0.5), { min(max(0.2 * $0 + 0.5, 0), 1) }),
            (.hardSwish, { $0 * min(max($0 / 6 + 0.5, 0), 1) }),
            (.leakyRelu(alpha: 0.1), { $0 < 0 ? 0.1 * $0 : $0 }),
        ]
        var inputs: [Float] = stride(from: -100, through: 100, by: 0.37).map { Float($0) }
        inputs += [0, -0, 1e-7, -1e-7, -3, 3, 87, -87, 88, -88, 89, -89, 200, -200, .infinity, -.infinity, .nan]
        for (activation, exact) in cases {
            for count in [inputs.count, 1, 7, 8, 9, 15, 16, 17] {
                let x = Array(inputs.prefix(count))
                var y = [Float](repeating: -1, count: count)
                activation.apply(x, &y, count: count, isa: isa)
                for (input, output) in zip(x, y) {
                    if input.isNaN {
                        #expect(output.isNaN, "\(isa) \(activation)(nan) = \(output)")
                        continue
                    }
                    // x · sigmoid(x) at x = −∞ is NaN by the definition (−∞ · 0); the kernel's clamped logistic gives −∞.
                    if input == -.infinity && activation == .silu { continue }
                    let want = exact(Double(input))
                    if want.isNaN {
                        #expect(output.isNaN, "\(isa) \(activation)(\(input)) = \(output), not nan")
                    } else if want.isInfinite {
                        #expect(Double(output) == want, "\(isa) \(activation)(\(input)) = \(output), not \(want)")
                    } else {
                        // Absolute 1e-35: the logistic's clamp at -87 leaves x · sigmoid(x) ~1e-37 where it underflows.
                        #expect(abs(Double(output) - want) <= 4e-7 * abs(want) + 1e-35,
                                "\(isa) \(activation)(\(input)) = \(output), not \(want)")
                    }
                }
            }
        }
        // In place, as the epilogues run it.
        var values: [Float] = [-2, -1, 0, 1, 2]
        FusedActivation.silu.apply(&values, count: values.count, isa: isa)
        #expect(abs(values[4] - Float(2 * sigmoid(2))) < 1e-6 && values[2] == 0)
    }
}
