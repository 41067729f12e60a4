internal import CKernels
import OnyxCore

/// B of an integer matrix product packed for one kernel variant (`onyx_qgemm_pack_b`), with the
/// per-column terms its zero points add (`onyx_kernels.h`): the product reads it as is.
///
/// Constant weights are packed once when a session is created; a B known only in a run is
/// packed into the kernel's workspace.
package struct PackedIntegerMatrix: @unchecked Sendable {
    package let k: Int
    package let n: Int
    package let isa: KernelISA
    package let panels: UnsafeRawPointer
    /// B's zero point per column as a B' (int8) value.
    package let columnZero: UnsafePointer<Int32>
    /// `k · columnZero[j] − Σ_p B'[p][j]`.
    package let columnTerm: UnsafePointer<Int32>
    /// Whether every zero point is 0 (symmetric weights): A's row sums are then not needed.
    package let zeroPointsAreZero: Bool
    /// Owns the memory when packed ahead of time.
    package let owner: TensorStorage?

    /// Bytes of a packing of a K × N matrix: the panels, then the two column arrays.
    package static func byteCount(k: Int, n: Int, isa: KernelISA) -> Int {
        roundedUp(onyx_qgemm_packed_b_bytes(isa.cValue, k, n)) + 2 * n * 4
    }

    private static func roundedUp(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }

    /// Packs B into `memory` (``byteCount(k:n:isa:)`` bytes, 4-byte aligned).
    ///
    /// - Parameters:
    ///   - b: K × N row-major bytes with leading dimension `ld`, or N × K when `transposed`.
    ///   - signed: B is int8 (else uint8).
    ///   - zeroPoint: B's zero point of column `j`, in B's own type.
    package init(
        _ b: UnsafeRawPointer, signed: Bool, k: Int, n: Int, ld: Int, transposed: Bool = false, isa: KernelISA,
        into memory: UnsafeMutableRawPointer, owner: TensorStorage? = nil, zeroPoint: (Int) -> Int32
    ) {
        let panelBytes = Self.roundedUp(onyx_qgemm_packed_b_bytes(isa.cValue, k, n))
        let zero = (memory + panelBytes).assumingMemoryBound(to: Int32.self)
        let term = zero + n
        // The column sums first, into the term array.
        onyx_qgemm_pack_b(isa.cValue, b, signed ? 1 : 0, ld, transposed ? 1 : 0, k, n, memory, term)
        var allZero = true
        for j in 0..<n {
            let z = signed ? zeroPoint(j) : zeroPoint(j) &- 128
            zero[j] = z
            term[j] = Int32(truncatingIfNeeded: k) &* z &- term[j]
            allZero = allZero && z == 0
        }
        self.k = k
        self.n = n
        self.isa = isa
        panels = UnsafeRawPointer(memory)
        columnZero = UnsafePointer(zero)
        columnTerm = UnsafePointer(term)
        zeroPointsAreZero = allZero
        self.owner = owner
    }

    /// B packed ahead of time into its own storage.
    package static func prepack(
        _ b: UnsafeRawPointer, signed: Bool, k: Int, n: Int, ld: Int, transposed: Bool = false, isa: KernelISA,
        zeroPoint: (Int) -> Int32
    ) -> PackedIntegerMatrix {
        let storage = TensorStorage(uninitializedByteCount: byteCount(k: k, n: n, isa: isa))
        return PackedIntegerMatrix(b, signed: signed, k: k, n: n, ld: ld, transposed: transposed, isa: isa,
                                   into: storage.bytes, owner: storage, zeroPoint: zeroPoint)
    }

    /// The same packing without the owner, for a run while the kernel keeps the owner alive.
    package var borrowed: PackedIntegerMatrix {
        PackedIntegerMatrix(k: k, n: n, isa: isa, panels: panels, columnZero: columnZero, columnTerm: columnTerm,
                            zeroPointsAreZero: zeroPointsAreZero, owner: nil)
    }

    private init(
        k: Int, n: Int, isa: KernelISA, panels: UnsafeRawPointer, columnZero: UnsafePointer<Int32>,
        columnTerm: UnsafePointer<Int32>, zeroPointsAreZero: Bool, owner: TensorStorage?
    ) {
        self.k = k
        self.n = n
        self.isa = isa
        self.panels = panels
        self.columnZero = columnZero
        self.columnTerm = columnTerm
        self.zeroPointsAreZero = zeroPointsAreZero
        self.owner = owner
    }
}

/// Integer matrix products `(A − a_zero) × (B − b_zero)` of 8-bit operands on the CKernels qgemm
/// kernels: exact int32 results, or float ones scaled per column with a bias.
package enum IntegerGemm {
    /// Where the product goes.
    package enum Output {
        /// The int32 product, rows `ldc` apart.
        case int32(UnsafeMutablePointer<Int32>, ldc: Int)
        /// `activation(float(C) · scale[j] + bias[j])` (bias and activation may be nil): a clamp as
        /// the kernel stores, any other activation over each finished block of rows.
        case float(UnsafeMutablePointer<Float>, ldc: Int, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                   activation: FusedActivation?)
    }

    /// Scratch bytes of ``multiply(m:a:signed:lda:zeroPoint:b:output:workspace:pool:)`` for M rows of depth K.
    package static func workspaceByteCount(m: Int, k: Int, isa: KernelISA) -> Int {
        (onyx_qgemm_packed_a_bytes(isa.cValue, m, k) + 63) / 64 * 64 + 2 * m * 4
    }

    /// Two multiply-adds per product element below which one thread does the work: under ~4 M
    /// integer operations the hand-off to a second thread does not pay.
    static let parallelWork = 1 << 22

    /// `output = (A − a_zero) × (B − b_zero)` for M rows of A.
    ///
    /// - Parameters:
    ///   - a: Row `i` of A is the K bytes at `a + i · lda`.
    ///   - signed: A is int8 (else uint8).
    ///   - zeroPoint: A's zero point of row `i`, in A's own type; `rowZeroPoints` if given instead.
    ///   - workspace: ``workspaceByteCount(m:k:isa:)`` bytes, 64-byte aligned.
    package static func multiply(
        m: Int, a: UnsafeRawPointer, signed: Bool, lda: Int, zeroPoint: (Int) -> Int32,
        b: PackedIntegerMatrix, output: Output, workspace: UnsafeMutableRawPointer, pool: ComputePool
    ) {
        let isa = b.isa, k = b.k, n = b.n
        guard m > 0, n > 0 else { return }
        let packedBytes = (onyx_qgemm_packed_a_bytes(isa.cValue, m, k) + 63) / 64 * 64
        let rowZero = (workspace + packedBytes).assumingMemoryBound(to: Int32.self)
        let rowSums = b.zeroPointsAreZero ? nil : rowZero + m
        for i in 0..<m { rowZero[i] = signed ? zeroPoint(i) &+ 128 : zeroPoint(i) }

        let operand: UnsafeRawPointer, stride: Int
        if !signed && lda == k && onyx_qgemm_reads_a_in_place(isa.cValue, k) != 0 {
            (operand, stride) = (a, k)
            if let rowSums { onyx_qgemm_row_sums(a.assumingMemoryBound(to: UInt8.self), lda, m, k, rowSums) }
        } else {
            onyx_qgemm_pack_a(isa.cValue, a, signed ? 1 : 0, lda, m, k, workspace, rowSums)
            (operand, stride) = (UnsafeRawPointer(workspace), onyx_qgemm_a_stride(isa.cValue, k))
        }

        var out = onyx_qgemm_output()
        out.row_zero = UnsafePointer(rowZero)
        out.row_sums = rowSums.map { UnsafePointer($0) }
        out.col_zero = b.columnZero
        out.col_comp = b.columnTerm
        switch output {
        case .int32(let c, let ldc):
            out.c = c
            out.ldc = ldc
        case .float(let y, let ldc, let scale, let bias, let activation):
            out.y = y
            out.ldc = ldc
            out.col_scale = scale
            out.bias = bias
            if let clip = activation?.clipBounds {
                out.apply_clip = 1
                out.clip_min = clip.min
                out.clip_max = clip.max
            }
        }
        // An activation other than a clamp, over the columns of the panels just stored.
        var other: onyx_activation?
        if case .float(_, _, _, _, let activation?) = output, activation.clipBounds == nil { other = activation.c }
        let nr = onyx_qgemm_nr(isa.cValue)
        let panels = (n + nr - 1) / nr
        let cIsa = isa.cValue
        withUnsafePointer(to: &out) { out in
            func compute(_ range: Range<Int>) {
                onyx_qgemm(cIsa, m, n, k, operand, stride, b.panels, range.lowerBound, range.upperBound, out)
                guard var activation = other, let y = out.pointee.y else { return }
                let j0 = range.lowerBound * nr, width = min(range.upperBound * nr, n) - j0
                for i in 0..<m {
                    let row = y + i * out.pointee.ldc + j0
                    onyx_activate_f32(cIsa, &activation, row, row, width)
                }
            }
            if 2 * m * n * k < parallelWork || panels < 2 || pool.threadCount == 1 {
                compute(0..<panels)
            } else {
                pool.parallelRanges(panels, rangesPerThread: 1) { compute($0) }
            }
        }
    }

    /// Register-tile sizes of a variant's integer kernel.
    package static func mr(_ isa: KernelISA) -> Int { onyx_qgemm_mr(isa.cValue) }
    package static func nr(_ isa: KernelISA) -> Int { onyx_qgemm_nr(isa.cValue) }

    /// `y = saturate(round_half_even(x / scale) + zeroPoint)` into uint8 (a NaN quotient gives the
    /// zero point): QuantizeLinear's per-tensor loop on the CKernels kernel.
    package static func quantize(
        _ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutablePointer<UInt8>, scale: Float, zeroPoint: Int32,
        isa: KernelISA
    ) {
        onyx_quantize_u8(isa.cValue, x, y, count, scale, zeroPoint)
    }

    /// DynamicQuantizeLinear of `count` floats into uint8: the scale and zero point that map
    /// `[min(0, min x), max(0, max x)]` onto 0…255, and `y = saturate(round_half_even(x / scale) + zero)`.
    ///
    /// - Returns: The scale and the zero point.
    @discardableResult
    package static func quantizeDynamically(
        _ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutablePointer<UInt8>, isa: KernelISA
    ) -> (scale: Float, zeroPoint: UInt8) {
        var low: Float = 0, high: Float = 0
        onyx_min_max_f32(isa.cValue, x, count, &low, &high)
        // Float arithmetic in the order of the specification's reference.
        let scale = (high == low ? 1 : high - low) / 255
        let initial = 0 - low / scale
        let zeroPoint = initial.isNaN ? 0 : Swift.min(Swift.max(initial, 0), 255).rounded(.toNearestOrEven)
        onyx_quantize_u8(isa.cValue, x, y, count, scale, Int32(zeroPoint))
        return (scale, UInt8(zeroPoint))
    }
}
