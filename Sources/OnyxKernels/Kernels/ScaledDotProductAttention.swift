/// The extents of one ONNX Attention run, after 3-D inputs are read as heads.
@usableFromInline package struct AttentionGeometry: Equatable {
    @usableFromInline package var batch: Int
    @usableFromInline package var queryHeads: Int
    @usableFromInline package var keyValueHeads: Int
    @usableFromInline package var queryLength: Int
    /// Key/value steps in K and V (without the past).
    @usableFromInline package var newLength: Int
    @usableFromInline package var pastLength: Int
    @usableFromInline package var headSize: Int
    @usableFromInline package var valueHeadSize: Int
    /// Q, K, V (and Y) are `[batch, sequence, heads · head size]`.
    @usableFromInline package var packedHeads: Bool
    /// attn_mask's shape right-aligned to `[batch, heads, query, key]`, if given.
    @usableFromInline package var maskShape: AttentionMaskShape?

    @usableFromInline package var totalLength: Int { pastLength + newLength }
    package var presentKeyCount: Int { batch * keyValueHeads * totalLength * headSize }
    package var presentValueCount: Int { batch * keyValueHeads * totalLength * valueHeadSize }
    package var maskCount: Int { maskShape?.count ?? 0 }

    package init(
        batch: Int, queryHeads: Int, keyValueHeads: Int, queryLength: Int, newLength: Int, pastLength: Int,
        headSize: Int, valueHeadSize: Int, packedHeads: Bool, maskShape: AttentionMaskShape?
    ) {
        self.batch = batch
        self.queryHeads = queryHeads
        self.keyValueHeads = keyValueHeads
        self.queryLength = queryLength
        self.newLength = newLength
        self.pastLength = pastLength
        self.headSize = headSize
        self.valueHeadSize = valueHeadSize
        self.packedHeads = packedHeads
        self.maskShape = maskShape
    }
}

/// attn_mask's extents right-aligned to `[batch, heads, query, key]`; an extent of 1 on the
/// first three axes broadcasts.
@usableFromInline package struct AttentionMaskShape: Equatable {
    @usableFromInline package var batch: Int
    @usableFromInline package var heads: Int
    @usableFromInline package var queries: Int
    @usableFromInline package var keys: Int

    /// `shape` (rank 1 to 4) with leading 1s up to rank 4.
    package init(aligning shape: [Int]) {
        precondition((1...4).contains(shape.count), "a mask has rank 1 to 4")
        func extent(_ axis: Int) -> Int {
            let index = axis - (4 - shape.count)
            return index >= 0 ? shape[index] : 1
        }
        (batch, heads, queries, keys) = (extent(0), extent(1), extent(2), extent(3))
    }

    package var count: Int { batch * heads * queries * keys }

    /// Element strides of the batch, head and query axes (0 where broadcast); keys have stride 1.
    @inlinable package var strides: (batch: Int, head: Int, query: Int) {
        (batch == 1 ? 0 : heads * queries * keys, heads == 1 ? 0 : queries * keys, queries == 1 ? 0 : keys)
    }

    package var description: String { "[\(batch), \(heads), \(queries), \(keys)]" }
}

/// `c[m × n] = a[m × k] · op(b)`: `b` is n × k (ld k) when `transposed`, else k × n (ld n). A
/// value rather than a closure, so a run builds nothing on the heap.
@usableFromInline package protocol AttentionProduct {
    associatedtype Scalar: RecurrentScalar
    func multiply(
        _ a: UnsafePointer<Scalar>, lda: Int, _ b: UnsafePointer<Scalar>, transposed: Bool,
        m: Int, n: Int, k: Int, into c: UnsafeMutablePointer<Scalar>, ldc: Int)
}

/// The float product through the SGEMM driver: `b` packed per call into `panels`, `a` into
/// `strips` when it has more than one row.
@usableFromInline package struct PackedAttentionProduct: AttentionProduct {
    package var isa: KernelISA
    package var strips: UnsafeMutablePointer<Float>
    package var panels: UnsafeMutablePointer<Float>
    package var pool: ComputePool

    package init(isa: KernelISA, strips: UnsafeMutablePointer<Float>, panels: UnsafeMutablePointer<Float>, pool: ComputePool) {
        self.isa = isa
        self.strips = strips
        self.panels = panels
        self.pool = pool
    }

    @usableFromInline package func multiply(
        _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, transposed: Bool,
        m: Int, n: Int, k: Int, into c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let (mr, nr) = (Gemm.mr(isa), Gemm.nr(isa))
        Gemm.packB(b, k: k, n: n, ld: transposed ? k : n, transposed: transposed, nr: nr, into: panels)
        let packedB = PackedPanels(extent: n, depth: k, width: nr, base: UnsafePointer(panels), owner: nil)
        if m == 1 {
            Gemm.multiplyRow(isa: isa, n: n, k: k, a: a, b: packedB, c: c, accumulate: false, epilogue: .none, pool: pool)
            return
        }
        Gemm.packA(a, m: m, k: k, ld: lda, transposed: false, mr: mr, isa: isa, into: strips)
        let packedA = PackedPanels(extent: m, depth: k, width: mr, base: UnsafePointer(strips), owner: nil)
        Gemm.multiply(isa: isa, m: m, n: n, k: k, a: packedA, b: packedB, c: c, ldc: ldc,
                      accumulate: false, epilogue: .none, pool: pool)
    }
}

/// The product by plain loops (double precision).
@usableFromInline package struct NaiveAttentionProduct<Scalar: RecurrentScalar>: AttentionProduct {
    @inlinable package init() {}

    @inlinable package func multiply(
        _ a: UnsafePointer<Scalar>, lda: Int, _ b: UnsafePointer<Scalar>, transposed: Bool,
        m: Int, n: Int, k: Int, into c: UnsafeMutablePointer<Scalar>, ldc: Int
    ) {
        for i in 0..<m {
            let row = a + i * lda
            for j in 0..<n {
                var sum: Scalar = 0
                if transposed {
                    let column = b + j * k
                    for p in 0..<k { sum += row[p] * column[p] }
                } else {
                    for p in 0..<k { sum += row[p] * b[p * n + j] }
                }
                c[i * ldc + j] = sum
            }
        }
    }
}

/// Scaled dot-product attention over every (batch, query head), as ONNX Attention (opsets
/// 23–25) defines it: GQA head sharing, past/present caches, a boolean or additive mask,
/// bottom-right causal masking, sliding windows, `nonpad_kv_seqlen`, softcap, and
/// fully-masked query rows giving zeros.
@usableFromInline package struct ScaledDotProductAttention<S: RecurrentScalar> {
    @usableFromInline package var geometry: AttentionGeometry
    @usableFromInline package var scale: S
    @usableFromInline package var softcap: S
    @usableFromInline package var isCausal: Bool
    @usableFromInline package var leftWindow: Int
    @usableFromInline package var rightWindow: Int
    /// qk_matmul_output_mode: 0/1 scores (after softcap), 2 scores plus bias, 3 probabilities.
    @usableFromInline package var outputMode: Int
    /// Valid key steps per batch entry (external cache), checked by the caller to lie in
    /// `0...totalLength`.
    @usableFromInline package var nonpadLengths: UnsafePointer<Int64>?

    /// Scalars of scratch `run` needs (the present buffers and mask bias are the caller's).
    @inlinable package static func scratchCount(_ g: AttentionGeometry) -> Int {
        g.queryLength * g.totalLength + 64
    }

    /// - Parameters:
    ///   - mask: attn_mask as an additive bias of `geometry.maskShape` (0 or −∞ for booleans).
    ///   - presentKey, presentValue: `[batch, kv heads, total, head size]` buffers to fill.
    ///   - scratch: ``scratchCount(_:)`` scalars.
    @inlinable package func run<P: AttentionProduct>(
        q: UnsafePointer<S>, k: UnsafePointer<S>, v: UnsafePointer<S>,
        pastKey: UnsafePointer<S>?, pastValue: UnsafePointer<S>?, mask: UnsafePointer<S>?,
        presentKey: UnsafeMutablePointer<S>, presentValue: UnsafeMutablePointer<S>,
        y: UnsafeMutablePointer<S>, qk: UnsafeMutablePointer<S>?, scratch: UnsafeMutablePointer<S>,
        product: P
    ) where P.Scalar == S {
        let g = geometry
        let (total, past, fresh) = (g.totalLength, g.pastLength, g.newLength)
        // present = concat(past, new) along the sequence, per (batch, kv head).
        func concatenate(_ source: UnsafePointer<S>, _ pastSource: UnsafePointer<S>?, into present: UnsafeMutablePointer<S>, width: Int) {
            for b in 0..<g.batch {
                for h in 0..<g.keyValueHeads {
                    let head = b * g.keyValueHeads + h
                    let target = present + head * total * width
                    if let pastSource, past > 0 { target.update(from: pastSource + head * past * width, count: past * width) }
                    for s in 0..<fresh {
                        let row = g.packedHeads
                            ? source + (b * fresh + s) * g.keyValueHeads * width + h * width
                            : source + (head * fresh + s) * width
                        (target + (past + s) * width).update(from: row, count: width)
                    }
                }
            }
        }
        concatenate(k, pastKey, into: presentKey, width: g.headSize)
        concatenate(v, pastValue, into: presentValue, width: g.valueHeadSize)

        let scores = scratch
        let minusInfinity = -S.infinity
        let group = g.queryHeads / g.keyValueHeads
        let maskStrides = g.maskShape?.strides ?? (batch: 0, head: 0, query: 0)
        let maskKeys = g.maskShape?.keys ?? 0

        for b in 0..<g.batch {
            let offset = pastKey != nil ? past : nonpadLengths.map { Int($0[b]) - g.queryLength } ?? 0
            for h in 0..<g.queryHeads {
                let kvHead = b * g.keyValueHeads + h / group
                let (query, ldq) = g.packedHeads
                    ? (q + b * g.queryLength * g.queryHeads * g.headSize + h * g.headSize, g.queryHeads * g.headSize)
                    : (q + (b * g.queryHeads + h) * g.queryLength * g.headSize, g.headSize)
                product.multiply(query, lda: ldq, UnsafePointer(presentKey + kvHead * total * g.headSize), transposed: true,
                                 m: g.queryLength, n: total, k: g.headSize, into: scores, ldc: total)
                let qkHead = qk.map { $0 + (b * g.queryHeads + h) * g.queryLength * total }
                for i in 0..<g.queryLength {
                    let row = scores + i * total
                    var fullyMasked = true
                    for j in 0..<total {
                        var x = row[j] * scale
                        if softcap > 0 { x = softcap * S.hyperbolicTangent(x / softcap) }
                        if outputMode <= 1 { qkHead?[i * total + j] = x }
                        var bias: S = 0
                        if let mask {
                            bias += j < maskKeys
                                ? mask[b * maskStrides.batch + h * maskStrides.head + i * maskStrides.query + j]
                                : minusInfinity
                        }
                        let position = i + offset
                        if isCausal && j > position { bias += minusInfinity }
                        if leftWindow >= 0 && position - j > leftWindow { bias += minusInfinity }
                        if rightWindow >= 0 && j - position > rightWindow { bias += minusInfinity }
                        if let nonpadLengths, j >= Int(nonpadLengths[b]) { bias += minusInfinity }
                        if bias != minusInfinity { fullyMasked = false }
                        x += bias
                        if outputMode == 2 { qkHead?[i * total + j] = x }
                        row[j] = x
                    }
                    Self.softmax(row, count: total, zeroed: fullyMasked)
                    if outputMode == 3 { qkHead?.advanced(by: i * total).update(from: row, count: total) }
                }
                let (out, ldy) = g.packedHeads
                    ? (y + b * g.queryLength * g.queryHeads * g.valueHeadSize + h * g.valueHeadSize, g.queryHeads * g.valueHeadSize)
                    : (y + (b * g.queryHeads + h) * g.queryLength * g.valueHeadSize, g.valueHeadSize)
                product.multiply(UnsafePointer(scores), lda: total, UnsafePointer(presentValue + kvHead * total * g.valueHeadSize),
                                 transposed: false, m: g.queryLength, n: g.valueHeadSize, k: total, into: out, ldc: ldy)
            }
        }
    }

    /// Softmax of one row in place; a row whose bias is −∞ everywhere (or whose maximum is −∞)
    /// becomes zeros.
    @inlinable package static func softmax(_ row: UnsafeMutablePointer<S>, count: Int, zeroed: Bool) {
        var peak = -S.infinity
        var sawNaN = false
        for j in 0..<count {
            if row[j] > peak { peak = row[j] }
            if row[j].isNaN { sawNaN = true }
        }
        if zeroed || (peak == -S.infinity && !sawNaN) {
            row.update(repeating: 0, count: count)
            return
        }
        var sum: S = 0
        for j in 0..<count {
            let e = S.exponential(row[j] - peak)
            row[j] = e
            sum += e
        }
        let inverse = 1 / sum
        for j in 0..<count { row[j] *= inverse }
    }

    @inlinable package init(
        geometry: AttentionGeometry, scale: S, softcap: S, isCausal: Bool, leftWindow: Int, rightWindow: Int,
        outputMode: Int, nonpadLengths: UnsafePointer<Int64>?
    ) {
        self.geometry = geometry
        self.scale = scale
        self.softcap = softcap
        self.isCausal = isCausal
        self.leftWindow = leftWindow
        self.rightWindow = rightWindow
        self.outputMode = outputMode
        self.nonpadLengths = nonpadLengths
    }
}
