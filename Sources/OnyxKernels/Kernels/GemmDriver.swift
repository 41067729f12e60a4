internal import CKernels
import OnyxCore

/// A matrix packed for the SGEMM micro-kernel: `B` in NR-wide column panels, or `A` in MR-tall
/// row strips, each k-major and zero-padded to a whole panel.
///
/// Weights are packed once when a session is created; activations are packed per run into the
/// kernel's workspace.
@usableFromInline package struct PackedPanels: @unchecked Sendable {
    /// Rows of `A` (for strips) or columns of `B` (for panels) covered.
    @usableFromInline package let extent: Int
    @usableFromInline package let depth: Int
    /// MR (strips) or NR (panels).
    @usableFromInline package let width: Int
    @usableFromInline package let base: UnsafePointer<Float>
    /// Owns `base` when the panels were packed ahead of time.
    package let owner: TensorStorage?

    package var panelCount: Int { (extent + width - 1) / width }
    @usableFromInline package var panelStride: Int { depth * width }

    package static func floatCount(extent: Int, depth: Int, width: Int) -> Int {
        (extent + width - 1) / width * width * depth
    }

    @inlinable @inline(__always)
    package func panel(_ index: Int) -> UnsafePointer<Float> { base + index * panelStride }

    /// The same panels without the owner, for a run's duration while the owner is kept alive
    /// elsewhere (by the kernel): copying it costs no reference counting.
    @inlinable @inline(__always)
    package var borrowed: PackedPanels { PackedPanels(extent: extent, depth: depth, width: width, base: base, owner: nil) }

    @usableFromInline package init(
        extent: Int, depth: Int, width: Int, base: UnsafePointer<Float>, owner: TensorStorage?
    ) {
        self.extent = extent
        self.depth = depth
        self.width = width
        self.base = base
        self.owner = owner
    }
}

/// Single-precision matrix products on packed operands, blocked over K and split over threads.
@usableFromInline package enum Gemm {
    /// Depth of one K block: a B panel block of KC × NR floats stays in L1 while A strips stream by.
    package static let kc = 256
    /// Bytes of C one group of panels covers: the group's K blocks all land in L2.
    package static let slabBytes = 256 << 10

    /// Packs `op(B)` (K × N) into NR-wide panels at `destination`, multiplied by `scale`: the
    /// strips of `op(B)ᵀ` with MR = NR (`onyx_sgemm_pack_a`; packing is exact on every variant, so
    /// the best this CPU runs does it).
    ///
    /// - Parameters:
    ///   - b: The matrix as stored: K × N row-major, or N × K when `transposed`.
    ///   - ld: Leading dimension of the stored matrix.
    package static func packB(
        _ b: UnsafePointer<Float>, k: Int, n: Int, ld: Int, transposed: Bool, scale: Float = 1,
        nr: Int, into destination: UnsafeMutablePointer<Float>
    ) {
        onyx_sgemm_pack_a(KernelISA.preferred.cValue, b, ld, transposed ? 0 : 1, n, k, scale, nr, destination)
    }

    /// Packs `op(A)` (M × K) into MR-tall strips at `destination`, multiplied by `scale`
    /// (`onyx_sgemm_pack_a`: the strips' rows transposed eight columns at a time in registers).
    ///
    /// - Parameters:
    ///   - a: The matrix as stored: M × K row-major, or K × M when `transposed`.
    ///   - ld: Leading dimension of the stored matrix.
    package static func packA(
        _ a: UnsafePointer<Float>, m: Int, k: Int, ld: Int, transposed: Bool, scale: Float = 1,
        mr: Int, isa: KernelISA, into destination: UnsafeMutablePointer<Float>
    ) {
        onyx_sgemm_pack_a(isa.cValue, a, ld, transposed ? 1 : 0, m, k, scale, mr, destination)
    }

    /// What the micro-kernel applies as it stores the last K block.
    @usableFromInline package struct Epilogue {
        package var biasRow: UnsafePointer<Float>?
        package var biasColumn: UnsafePointer<Float>?
        package var activation: FusedActivation?

        package static var none: Epilogue { Epilogue() }

        package var isTrivial: Bool { biasRow == nil && biasColumn == nil && activation == nil }

        func c(rowOffset: Int, columnOffset: Int) -> onyx_epilogue {
            // A clamp joins the micro-kernel's stores; any other activation runs over the stored tile.
            let clip = activation?.clipBounds
            let other = clip == nil ? activation?.c : nil
            return onyx_epilogue(
                bias_row: biasRow.map { $0 + rowOffset },
                bias_col: biasColumn.map { $0 + columnOffset },
                clip_min: clip?.min ?? 0, clip_max: clip?.max ?? 0, apply_clip: clip == nil ? 0 : 1,
                activation: other ?? onyx_activation(kind: ONYX_ACTIVATION_NONE, alpha: 0, beta: 0))
        }

        package init(
            biasRow: UnsafePointer<Float>? = nil, biasColumn: UnsafePointer<Float>? = nil, activation: FusedActivation? = nil
        ) {
            self.biasRow = biasRow
            self.biasColumn = biasColumn
            self.activation = activation
        }
    }

    /// `C (=|+=) A × B` then the epilogue, for packed A strips and B panels.
    ///
    /// - Parameters:
    ///   - c: M × N output with leading dimension `ldc`.
    ///   - accumulate: Add to C's current contents instead of overwriting them.
    package static func multiply(
        isa: KernelISA, m: Int, n: Int, k: Int,
        a: PackedPanels, b: PackedPanels, c: UnsafeMutablePointer<Float>, ldc: Int,
        accumulate: Bool, epilogue: Epilogue, pool: ComputePool
    ) {
        multiply(isa: isa, m: m, n: n, k: k, a: a, b: .packed(b), c: c, ldc: ldc,
                 accumulate: accumulate, epilogue: epilogue, pool: pool)
    }

    /// Where the micro-kernel reads `B`.
    @usableFromInline package enum Operand {
        /// Packed NR-wide panels.
        case packed(PackedPanels)
        /// Read in place: row `p` of B is the N floats at `base + rowOffsets[p]` (convolution input
        /// planes, one row per kernel tap), so nothing is copied.
        case rows(base: UnsafePointer<Float>, rowOffsets: UnsafePointer<Int>)
    }

    /// Floating-point operations below which a product runs on one thread: under ~1 MFLOP (~5 µs
    /// here) it finishes before the hand-off to a second thread pays.
    package static let parallelWork = 1 << 20

    /// `C (=|+=) A × B` then the epilogue, for packed A strips and B packed or read in place.
    ///
    /// - Parameter transposingOutput: Store element (i, j) of the product at `c[j * ldc + i]` (the
    ///   transposed tile of ``transposedMR(_:)``-tall strips; B must be packed).
    package static func multiply(
        isa: KernelISA, m: Int, n: Int, k: Int,
        a: PackedPanels, b: Operand, c: UnsafeMutablePointer<Float>, ldc: Int,
        accumulate: Bool, epilogue: Epilogue, pool: ComputePool, transposingOutput: Bool = false
    ) {
        let mr = a.width
        let nr: Int
        switch b {
        case .packed(let panels): nr = panels.width
        case .rows: nr = Gemm.nr(isa)
        }
        let strips = a.panelCount, panels = (n + nr - 1) / nr
        let work = 2 * m * n * k
        let threads = work < parallelWork ? 1 : pool.threadCount

        func compute(panelRange: Range<Int>, stripRange: Range<Int>) {
            // A transposed store is a scatter: done once, over all of K, rather than per K block.
            let blockDepth = transposingOutput ? k : kc
            // Panels in groups whose C columns (every strip's rows) stay in L2 across the K blocks, so
            // a wide C (an LM head's 128 × 50257) is not read and written again per K block.
            let group = max(1, slabBytes / (stripRange.count * mr * nr * MemoryLayout<Float>.size))
            for first in stride(from: panelRange.lowerBound, to: panelRange.upperBound, by: group) {
                let panelGroup = first..<min(first + group, panelRange.upperBound)
                var p0 = 0
                repeat {
                    let depth = min(blockDepth, k - p0)
                    let last = p0 + depth >= k
                    for panel in panelGroup {
                        let j0 = panel * nr
                        let width = min(nr, n - j0)
                        // The B block read after this one: the next panel, the group's first at the
                        // next depth, or the next group's first.
                        let next: (panel: Int, p0: Int)? =
                            panel + 1 < panelGroup.upperBound ? (panel + 1, p0)
                            : !last ? (panelGroup.lowerBound, p0 + depth)
                            : panelGroup.upperBound < panelRange.upperBound ? (panelGroup.upperBound, 0) : nil
                        let nextFloats = next.map { min(blockDepth, k - $0.p0) * nr } ?? 0
                        for strip in stripRange {
                            let i0 = strip * mr
                            var ep = epilogue.c(rowOffset: i0, columnOffset: j0)
                            let useEpilogue = last && !epilogue.isTrivial
                            let aBlock = a.panel(strip) + p0 * mr
                            let cBlock = transposingOutput ? c + j0 * ldc + i0 : c + i0 * ldc + j0
                            let rows = min(mr, m - i0), add: Int32 = (accumulate || p0 > 0) ? 1 : 0
                            withUnsafePointer(to: &ep) { ep in
                                switch b {
                                case .packed(let b) where transposingOutput:
                                    onyx_sgemm_tile_transposed(
                                        isa.cValue, depth, aBlock, b.panel(panel) + p0 * nr, cBlock, ldc,
                                        rows, width, add, useEpilogue ? ep : nil)
                                case .packed(let b):
                                    // The first strips bring the next block into L2, one line per k step
                                    // each (16 floats), while this panel still has the others to compute.
                                    let line = (strip - stripRange.lowerBound) * depth * 16
                                    let prefetch = next.flatMap { next in
                                        line + depth * 16 <= nextFloats ? b.panel(next.panel) + next.p0 * nr + line : nil
                                    }
                                    onyx_sgemm_tile(
                                        isa.cValue, depth, aBlock, b.panel(panel) + p0 * nr, prefetch, cBlock, ldc,
                                        rows, width, add, useEpilogue ? ep : nil)
                                case .rows(let base, let rowOffsets):
                                    onyx_sgemm_tile_rows(
                                        isa.cValue, depth, aBlock, base + j0, rowOffsets + p0, cBlock, ldc,
                                        rows, width, add, useEpilogue ? ep : nil)
                                }
                            }
                        }
                    }
                    p0 += depth
                } while p0 < k
            }
        }

        if threads == 1 {
            compute(panelRange: 0..<panels, stripRange: 0..<strips)
        } else if strips < threads * 2 || n >= m {
            // Each thread streams all of A (M × K) and its share of B: split the wider side, so the
            // side every thread reads whole is the smaller one. One range per thread for the same
            // reason: each range streams the shared side again.
            pool.parallelRanges(panels, rangesPerThread: 1) { compute(panelRange: $0, stripRange: 0..<strips) }
        } else {
            pool.parallelRanges(strips, rangesPerThread: 1) { compute(panelRange: 0..<panels, stripRange: $0) }
        }
    }

    /// `c (=|+=) a × B` then the epilogue, for one row `a` of length K and packed B panels.
    package static func multiplyRow(
        isa: KernelISA, n: Int, k: Int, a: UnsafePointer<Float>, b: PackedPanels, c: UnsafeMutablePointer<Float>,
        accumulate: Bool, epilogue: Epilogue, pool: ComputePool
    ) {
        let nr = b.width
        let panels = b.panelCount
        func compute(_ range: Range<Int>) {
            for panel in range {
                let j0 = panel * nr
                var ep = epilogue.c(rowOffset: 0, columnOffset: j0)
                withUnsafePointer(to: &ep) { ep in
                    onyx_sgemv_panel(isa.cValue, k, a, b.panel(panel), c + j0, min(nr, n - j0),
                                     accumulate ? 1 : 0, epilogue.isTrivial ? nil : ep)
                }
            }
        }
        // A row product streams the weights once; a second thread pays off from about 128 KB of them.
        if n * k < 1 << 15 || panels < 2 {
            compute(0..<panels)
        } else {
            pool.parallelRanges(panels) { compute($0) }
        }
    }

    /// `C (=|+=) A × B` one row of A at a time (``multiplyRow``), for A read in place, row-major with
    /// K columns, and C with N columns: products that ``prefersRows(m:n:k:)``.
    package static func multiplyRows(
        isa: KernelISA, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: PackedPanels, c: UnsafeMutablePointer<Float>,
        accumulate: Bool, epilogue: Epilogue, pool: ComputePool
    ) {
        for i in 0..<m {
            multiplyRow(isa: isa, n: n, k: k, a: a + i * k, b: b, c: c + i * n, accumulate: accumulate,
                        epilogue: epilogue, pool: pool)
        }
    }

    /// Whether a product of `m` rows is better done one row at a time (each row streams B, which
    /// for a batch of 2–4 and B within L2 costs less than packing A and a mostly empty tile).
    @inlinable @inline(__always)
    package static func prefersRows(m: Int, n: Int, k: Int) -> Bool {
        m == 1 || (m <= 4 && n * k <= 1 << 17)
    }

    package static func mr(_ isa: KernelISA) -> Int { onyx_sgemm_mr(isa.cValue) }

    /// Strip height of the transposed tile, or 0 where the variant has none.
    package static func transposedMR(_ isa: KernelISA) -> Int { onyx_sgemm_transposed_mr(isa.cValue) }
    package static func nr(_ isa: KernelISA) -> Int { onyx_sgemm_nr(isa.cValue) }

    /// B packed ahead of time into its own storage.
    package static func prepackB(
        _ b: UnsafePointer<Float>, k: Int, n: Int, ld: Int, transposed: Bool, scale: Float = 1, isa: KernelISA
    ) -> PackedPanels {
        let nr = nr(isa)
        let storage = TensorStorage(uninitializedByteCount: PackedPanels.floatCount(extent: n, depth: k, width: nr) * 4)
        let base = storage.bytes.assumingMemoryBound(to: Float.self)
        packB(b, k: k, n: n, ld: ld, transposed: transposed, scale: scale, nr: nr, into: base)
        return PackedPanels(extent: n, depth: k, width: nr, base: base, owner: storage)
    }

    /// A packed ahead of time into its own storage.
    package static func prepackA(
        _ a: UnsafePointer<Float>, m: Int, k: Int, ld: Int, transposed: Bool, scale: Float = 1, isa: KernelISA
    ) -> PackedPanels {
        let mr = mr(isa)
        let storage = TensorStorage(uninitializedByteCount: PackedPanels.floatCount(extent: m, depth: k, width: mr) * 4)
        let base = storage.bytes.assumingMemoryBound(to: Float.self)
        packA(a, m: m, k: k, ld: ld, transposed: transposed, scale: scale, mr: mr, isa: isa, into: base)
        return PackedPanels(extent: m, depth: k, width: mr, base: base, owner: storage)
    }
}
