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
    @usableFromInline package var maskShape: [Int]?

    @usableFromInline package var totalLength: Int { pastLength + newLength }
    package var presentKeyCount: Int { batch * keyValueHeads * totalLength * headSize }
    package var presentValueCount: Int { batch * keyValueHeads * totalLength * valueHeadSize }
    package var maskCount: Int { maskShape?.reduce(1, *) ?? 0 }

    package init(
        batch: Int, queryHeads: Int, keyValueHeads: Int, queryLength: Int, newLength: Int, pastLength: Int,
        headSize: Int, valueHeadSize: Int, packedHeads: Bool, maskShape: [Int]?
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

/// `c[m × n] = a[m × k] · op(b)`: `b` is n × k (ld k) when `transposed`, else k × n (ld n).
@usableFromInline package typealias AttentionProduct<S> = (
    _ a: UnsafePointer<S>, _ lda: Int, _ b: UnsafePointer<S>, _ transposed: Bool,
    _ m: Int, _ n: Int, _ k: Int, _ c: UnsafeMutablePointer<S>, _ ldc: Int
) -> Void

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
    /// Valid key steps per batch entry (external cache).
    @usableFromInline package var nonpadLengths: [Int]?

    /// Scalars of scratch `run` needs (the present buffers and mask bias are the caller's).
    @inlinable package static func scratchCount(_ g: AttentionGeometry) -> Int {
        g.queryLength * g.totalLength + 64
    }

    /// - Parameters:
    ///   - mask: attn_mask as an additive bias of `geometry.maskShape` (0 or −∞ for booleans).
    ///   - presentKey, presentValue: `[batch, kv heads, total, head size]` buffers to fill.
    ///   - scratch: ``scratchCount(_:)`` scalars.
    @inlinable package func run(
        q: UnsafePointer<S>, k: UnsafePointer<S>, v: UnsafePointer<S>,
        pastKey: UnsafePointer<S>?, pastValue: UnsafePointer<S>?, mask: UnsafePointer<S>?,
        presentKey: UnsafeMutablePointer<S>, presentValue: UnsafeMutablePointer<S>,
        y: UnsafeMutablePointer<S>, qk: UnsafeMutablePointer<S>?, scratch: UnsafeMutablePointer<S>,
        product: AttentionProduct<S>
    ) {
        let g = geometry
        let (total, past, fresh) = (g.totalLength, g.pastLength, g.newLength)
        // present = concat(past, new) along the sequence, per (batch, kv head).
        for (source, pastSource, present, width) in [
            (k, pastKey, presentKey, g.headSize), (v, pastValue, presentValue, g.valueHeadSize),
        ] {
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

        let scores = scratch
        let minusInfinity = -S.infinity
        let group = g.queryHeads / g.keyValueHeads
        let maskStrides: [Int] = g.maskShape.map { shape in
            var strides = [Int](repeating: 0, count: 4)
            var running = 1
            for axis in (0..<4).reversed() {
                strides[axis] = shape[axis] == 1 && axis < 3 ? 0 : running
                running *= shape[axis]
            }
            return strides
        } ?? [0, 0, 0, 0]
        let maskKeys = g.maskShape?[3] ?? 0

        for b in 0..<g.batch {
            let offset = pastKey != nil ? past : nonpadLengths.map { $0[b] - g.queryLength } ?? 0
            for h in 0..<g.queryHeads {
                let kvHead = b * g.keyValueHeads + h / group
                let (query, ldq) = g.packedHeads
                    ? (q + b * g.queryLength * g.queryHeads * g.headSize + h * g.headSize, g.queryHeads * g.headSize)
                    : (q + (b * g.queryHeads + h) * g.queryLength * g.headSize, g.headSize)
                product(query, ldq, UnsafePointer(presentKey + kvHead * total * g.headSize), true,
                        g.queryLength, total, g.headSize, scores, total)
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
                                ? mask[(b * maskStrides[0] + h * maskStrides[1] + i * maskStrides[2]) + j * maskStrides[3]]
                                : minusInfinity
                        }
                        let position = i + offset
                        if isCausal && j > position { bias += minusInfinity }
                        if leftWindow >= 0 && position - j > leftWindow { bias += minusInfinity }
                        if rightWindow >= 0 && j - position > rightWindow { bias += minusInfinity }
                        if let nonpadLengths, j >= nonpadLengths[b] { bias += minusInfinity }
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
                product(UnsafePointer(scores), total, UnsafePointer(presentValue + kvHead * total * g.valueHeadSize), false,
                        g.queryLength, g.valueHeadSize, total, out, ldy)
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
        outputMode: Int, nonpadLengths: [Int]?
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
