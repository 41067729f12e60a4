import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// Attention and the loss functions.
    package static let attentionOperators: [OperatorRegistration] = [
        OperatorRegistration("Attention", versions: 23...23) { context in try AttentionKernel(context) },
        OperatorRegistration("Attention", versions: 24...24) { context in try AttentionKernel(context) },
        OperatorRegistration("Attention", versions: 25...Int.max) { context in try AttentionKernel(context) },
        OperatorRegistration("RotaryEmbedding", versions: 23...Int.max) { context in try RotaryEmbeddingKernel(context) },
        OperatorRegistration("SoftmaxCrossEntropyLoss", versions: 12...12) { context in
            try LossKernel(context, softmax: true)
        },
        OperatorRegistration("SoftmaxCrossEntropyLoss", versions: 13...Int.max) { context in
            try LossKernel(context, softmax: true)
        },
        OperatorRegistration("NegativeLogLikelihoodLoss", versions: 12...12) { context in
            try LossKernel(context, softmax: false)
        },
        OperatorRegistration("NegativeLogLikelihoodLoss", versions: 13...21) { context in
            try LossKernel(context, softmax: false)
        },
        OperatorRegistration("NegativeLogLikelihoodLoss", versions: 22...Int.max) { context in
            try LossKernel(context, softmax: false)
        },
    ]
}

// MARK: - Attention

/// ONNX Attention (opsets 23–25): scaled dot-product attention on 3-D (`[batch, sequence,
/// heads · head size]`) or 4-D (`[batch, heads, sequence, head size]`) Q, K, V, with grouped
/// KV heads, past/present caches, boolean or additive masks, `is_causal`, `scale`, `softcap`,
/// `nonpad_kv_seqlen` (opset 24), sliding windows (opset 25) and `qk_matmul_output`.
///
/// Float32 runs both products on the SGEMM driver; float16 computes in float32 and double in
/// double (`softmax_precision` is met or exceeded by that).
package struct AttentionKernel: Kernel {
    package let isCausal: Bool
    package let queryHeads: Int?
    package let keyValueHeads: Int?
    package let outputMode: Int
    package let scale: Float?
    package let softcap: Float
    package let leftWindow: Int
    package let rightWindow: Int
    package let isa: KernelISA

    package init(_ context: NodeContext) throws {
        isCausal = try context.int("is_causal", default: 0) != 0
        queryHeads = try context.int("q_num_heads")
        keyValueHeads = try context.int("kv_num_heads")
        for (name, value) in [("q_num_heads", queryHeads), ("kv_num_heads", keyValueHeads)] {
            if let value, value < 1 { throw context.attributeError("\(name) must be ≥ 1, got \(value)") }
        }
        outputMode = try context.int("qk_matmul_output_mode", default: 0)
        guard (0...3).contains(outputMode) else {
            throw context.attributeError("qk_matmul_output_mode must be 0, 1, 2 or 3, got \(outputMode)")
        }
        scale = try context.float("scale")
        softcap = try context.float("softcap", default: 0)
        guard softcap >= 0 else { throw context.attributeError("softcap must be ≥ 0, got \(softcap)") }
        leftWindow = context.opset >= 25 ? try context.int("left_window_size", default: -1) : -1
        rightWindow = context.opset >= 25 ? try context.int("right_window_size", default: -1) : -1
        guard leftWindow >= -1, rightWindow >= -1 else {
            throw context.attributeError("left_window_size and right_window_size must be ≥ -1, got \(leftWindow) and \(rightWindow)")
        }
        let maxInputs = context.opset >= 24 ? 7 : 6
        guard (3...maxInputs).contains(context.inputCount) else {
            throw OnyxError.invalidModel("Attention node '\(context.node.name)' takes 3 to \(maxInputs) inputs, got \(context.inputCount)")
        }
        isa = context.isa
    }

    private static let inputNames = ["Q", "K", "V", "attn_mask", "past_key", "past_value", "nonpad_kv_seqlen"]

    /// The run's extents, after checking every input against Q.
    ///
    /// - Parameter descriptor: Input `index`'s descriptor, if present, for `index < count`.
    ///   Taken as a function (and shapes compared without array literals) so a run allocates
    ///   nothing.
    package func geometry(count: Int, _ descriptor: (Int) -> TensorDescriptor?) throws -> AttentionGeometry {
        func input(_ i: Int) -> TensorDescriptor? { i < count ? descriptor(i) : nil }
        guard let q = input(0), let k = input(1), let v = input(2) else {
            throw OnyxError.invalidModel("Attention needs inputs Q, K and V")
        }
        switch q.dataType {
        case .float, .double, .float16: break
        default: throw OnyxError.unsupportedDataType("Attention supports float, double and float16, got \(q.dataType)")
        }
        for i in 1...5 where i != 3 {
            if let other = input(i), other.dataType != q.dataType {
                throw OnyxError.unsupportedDataType("Attention: \(Self.inputNames[i]) is \(other.dataType) but Q is \(q.dataType)")
            }
        }
        guard q.rank == k.rank, k.rank == v.rank, q.rank == 3 || q.rank == 4 else {
            throw OnyxError.shapeMismatch("Attention: Q, K and V must all be 3-D or all 4-D, got \(q.shape), \(k.shape) and \(v.shape)")
        }
        var g: AttentionGeometry
        if q.rank == 3 {
            guard let queryHeads, let keyValueHeads else {
                throw OnyxError.invalidAttribute("Attention: 3-D inputs need the q_num_heads and kv_num_heads attributes")
            }
            guard q.shape[2] % queryHeads == 0, k.shape[2] % keyValueHeads == 0, v.shape[2] % keyValueHeads == 0 else {
                throw OnyxError.shapeMismatch(
                    "Attention: hidden sizes of Q \(q.shape), K \(k.shape), V \(v.shape) do not divide into \(queryHeads) and \(keyValueHeads) heads")
            }
            g = AttentionGeometry(
                batch: q.shape[0], queryHeads: queryHeads, keyValueHeads: keyValueHeads, queryLength: q.shape[1],
                newLength: k.shape[1], pastLength: 0, headSize: q.shape[2] / queryHeads,
                valueHeadSize: v.shape[2] / keyValueHeads, packedHeads: true, maskShape: nil)
            guard k.shape[2] / keyValueHeads == g.headSize, v.shape[1] == k.shape[1] else {
                throw OnyxError.shapeMismatch("Attention: K \(k.shape) and V \(v.shape) do not fit Q \(q.shape)")
            }
        } else {
            g = AttentionGeometry(
                batch: q.shape[0], queryHeads: q.shape[1], keyValueHeads: k.shape[1], queryLength: q.shape[2],
                newLength: k.shape[2], pastLength: 0, headSize: q.shape[3], valueHeadSize: v.shape[3],
                packedHeads: false, maskShape: nil)
            guard k.shape[3] == g.headSize, v.shape[1] == k.shape[1], v.shape[2] == k.shape[2] else {
                throw OnyxError.shapeMismatch("Attention: K \(k.shape) and V \(v.shape) do not fit Q \(q.shape)")
            }
            if let queryHeads, queryHeads != g.queryHeads {
                throw OnyxError.shapeMismatch("Attention: q_num_heads is \(queryHeads) but Q has shape \(q.shape)")
            }
            if let keyValueHeads, keyValueHeads != g.keyValueHeads {
                throw OnyxError.shapeMismatch("Attention: kv_num_heads is \(keyValueHeads) but K has shape \(k.shape)")
            }
        }
        guard k.shape[0] == g.batch, v.shape[0] == g.batch else {
            throw OnyxError.shapeMismatch("Attention: Q, K and V have different batch sizes: \(q.shape), \(k.shape), \(v.shape)")
        }
        guard g.queryHeads % g.keyValueHeads == 0 else {
            throw OnyxError.shapeMismatch("Attention: \(g.queryHeads) query heads are not a multiple of \(g.keyValueHeads) key/value heads")
        }
        switch (input(4), input(5)) {
        case (nil, nil): break
        case let (pastKey?, pastValue?):
            guard pastKey.rank == 4, pastKey.shape[0] == g.batch, pastKey.shape[1] == g.keyValueHeads,
                  pastKey.shape[3] == g.headSize,
                  pastValue.rank == 4, pastValue.shape[0] == g.batch, pastValue.shape[1] == g.keyValueHeads,
                  pastValue.shape[2] == pastKey.shape[2], pastValue.shape[3] == g.valueHeadSize else {
                throw OnyxError.shapeMismatch(
                    "Attention: past_key \(pastKey.shape) and past_value \(pastValue.shape) do not fit [batch, kv heads, past, head size]")
            }
            g.pastLength = pastKey.shape[2]
        default:
            throw OnyxError.invalidModel("Attention: past_key and past_value must be given together")
        }
        if let lengths = input(6) {
            guard lengths.dataType == .int64, lengths.rank == 1, lengths.shape[0] == g.batch else {
                throw OnyxError.shapeMismatch("Attention: nonpad_kv_seqlen must be int64[\(g.batch)], got \(lengths)")
            }
            guard input(4) == nil else {
                throw OnyxError.invalidModel("Attention: nonpad_kv_seqlen cannot be combined with past_key and past_value")
            }
        }
        if let mask = input(3) {
            guard mask.dataType == .bool || mask.dataType == q.dataType else {
                throw OnyxError.unsupportedDataType("Attention: attn_mask must be bool or \(q.dataType), got \(mask.dataType)")
            }
            guard (1...4).contains(mask.rank) else {
                throw OnyxError.shapeMismatch("Attention: attn_mask must have rank 1 to 4, got \(mask.shape)")
            }
            let aligned = AttentionMaskShape(aligning: mask.shape)
            guard aligned.batch == 1 || aligned.batch == g.batch, aligned.heads == 1 || aligned.heads == g.queryHeads,
                  aligned.queries == 1 || aligned.queries == g.queryLength, aligned.keys <= g.totalLength else {
                throw OnyxError.shapeMismatch(
                    "Attention: attn_mask \(mask.shape) does not broadcast to \([g.batch, g.queryHeads, g.queryLength, g.totalLength])")
            }
            g.maskShape = aligned
        }
        return g
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let g = try geometry(count: inputs.count) { inputs[$0]?.descriptor }
        let type = inputs[0]!.dataType
        let y = g.packedHeads
            ? [g.batch, g.queryLength, g.queryHeads * g.valueHeadSize] : [g.batch, g.queryHeads, g.queryLength, g.valueHeadSize]
        return [
            TensorDescriptor(type, y),
            TensorDescriptor(type, [g.batch, g.keyValueHeads, g.totalLength, g.headSize]),
            TensorDescriptor(type, [g.batch, g.keyValueHeads, g.totalLength, g.valueHeadSize]),
            TensorDescriptor(type, [g.batch, g.queryHeads, g.queryLength, g.totalLength]),
        ]
    }

    private func packingFloats(_ g: AttentionGeometry) -> (strips: Int, panels: Int) {
        let strips = PackedPanels.floatCount(extent: max(g.queryLength, 1), depth: max(g.headSize, g.totalLength), width: Gemm.mr(isa))
        let panels = max(PackedPanels.floatCount(extent: g.totalLength, depth: g.headSize, width: Gemm.nr(isa)),
                         PackedPanels.floatCount(extent: g.valueHeadSize, depth: g.totalLength, width: Gemm.nr(isa)))
        return ((strips + 15) / 16 * 16, (panels + 15) / 16 * 16)
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let g = try? geometry(count: inputs.count, { inputs[$0] }), let type = inputs[0]?.dataType else { return 0 }
        // Present key, present value and mask bias (each rounded up to 16), then the attention scratch.
        let scalars = g.presentKeyCount + g.presentValueCount + g.maskCount + 48
            + (ScaledDotProductAttention<Float>.scratchCount(g) + 15) / 16 * 16
        if type == .double { return scalars * 8 + 64 }
        let (strips, panels) = packingFloats(g)
        return Float32Staging.byteCount(inputs: inputs, inputLimit: 7, outputs: outputs, widens: Self.widens)
            + (scalars + strips + panels) * 4 + 64
    }

    /// float16 tensors are computed in float32.
    private static func widens(_ type: DataType) -> Bool { type == .float16 }

    package func run(_ context: borrowing KernelContext) throws {
        let inputs = context.inputs
        let g = try geometry(count: inputs.count) { inputs[$0].map { TensorDescriptor($0.dataType, $0.shape) } }
        guard let workspace = context.workspace else { throw OnyxError.internalError("Attention: no workspace") }
        let nonpad = context.input(6).map { UnsafePointer($0.pointer(as: Int64.self)) }
        if let nonpad {
            for b in 0..<g.batch where nonpad[b] < 0 || nonpad[b] > Int64(g.totalLength) {
                throw OnyxError.invalidInput("Attention: nonpad_kv_seqlen[\(b)] = \(nonpad[b]) is outside 0...\(g.totalLength)")
            }
        }
        let pool = context.pool, mask = context.input(3)
        let type = context.input(0)!.dataType
        switch type {
        case .float, .float16:
            Float32Staging.run(
                inputs: context.inputs, inputCount: 7, outputs: context.outputs, outputCount: 4, workspace: workspace, widens: Self.widens
            ) { widened, results, rest in
                runFloat(g, nonpad: nonpad, inputs: widened, mask: mask, outputs: results, workspace: rest!, pool: pool)
            }
        case .double:
            let problem = attention(Double.self, g, nonpad: nonpad)
            let scratch = workspace.assumingMemoryBound(to: Double.self)
            func output(_ i: Int) -> UnsafeMutablePointer<Double>? { context.optionalOutput(i)?.pointer(as: Double.self) }
            let (presentKey, presentValue, maskBuffer, rest) = layout(scratch, g, presentKey: output(1), presentValue: output(2))
            let maskBias = convertMask(mask, widened: mask.map { UnsafePointer($0.pointer(as: Double.self)) }, into: maskBuffer)
            func input(_ i: Int) -> UnsafePointer<Double>? { context.input(i).map { UnsafePointer($0.pointer(as: Double.self)) } }
            problem.run(
                q: input(0)!, k: input(1)!, v: input(2)!, pastKey: input(4), pastValue: input(5), mask: maskBias,
                presentKey: presentKey, presentValue: presentValue, y: output(0)!,
                qk: output(3), scratch: rest, product: NaiveAttentionProduct<Double>())
        default:
            throw OnyxError.unsupportedDataType("Attention supports float, double and float16, got \(type)")
        }
    }

    private func attention<S: RecurrentScalar>(
        _: S.Type, _ g: AttentionGeometry, nonpad: UnsafePointer<Int64>?
    ) -> ScaledDotProductAttention<S> {
        ScaledDotProductAttention<S>(
            geometry: g, scale: scale.map { S($0) } ?? 1 / S(g.headSize).squareRoot(), softcap: S(softcap), isCausal: isCausal,
            leftWindow: leftWindow, rightWindow: rightWindow, outputMode: outputMode, nonpadLengths: nonpad)
    }

    /// Splits scratch into present key, present value, mask bias and the attention scratch;
    /// the present buffers are the outputs themselves when the node has them.
    private func layout<S>(
        _ scratch: UnsafeMutablePointer<S>, _ g: AttentionGeometry,
        presentKey presentKeyOutput: UnsafeMutablePointer<S>?, presentValue presentValueOutput: UnsafeMutablePointer<S>?
    ) -> (UnsafeMutablePointer<S>, UnsafeMutablePointer<S>, UnsafeMutablePointer<S>, UnsafeMutablePointer<S>) {
        var cursor = scratch
        let presentKey = presentKeyOutput ?? cursor
        cursor += (g.presentKeyCount + 15) / 16 * 16
        let presentValue = presentValueOutput ?? cursor
        cursor += (g.presentValueCount + 15) / 16 * 16
        let mask = cursor
        cursor += (g.maskCount + 15) / 16 * 16
        return (presentKey, presentValue, mask, cursor)
    }

    /// attn_mask as an additive bias: booleans become 0 (attend) or −∞.
    private func convertMask<S: RecurrentScalar>(
        _ view: TensorView?, widened: UnsafePointer<S>?, into bias: UnsafeMutablePointer<S>
    ) -> UnsafePointer<S>? {
        guard let view else { return nil }
        if view.dataType == .bool {
            let flags = view.pointer(as: Bool.self)
            for i in 0..<view.elementCount { bias[i] = flags[i] ? 0 : -S.infinity }
            return UnsafePointer(bias)
        }
        return widened
    }

    private func runFloat(
        _ g: AttentionGeometry, nonpad: UnsafePointer<Int64>?, inputs: UnsafeBufferPointer<UnsafePointer<Float>?>, mask: TensorView?,
        outputs: UnsafeBufferPointer<UnsafeMutablePointer<Float>?>, workspace: UnsafeMutableRawPointer, pool: ComputePool
    ) {
        guard let q = inputs[0], let k = inputs[1], let v = inputs[2], let y = outputs[0] else { return }
        let scratch = workspace.assumingMemoryBound(to: Float.self)
        let (presentKey, presentValue, maskBuffer, rest) = layout(scratch, g, presentKey: outputs[1], presentValue: outputs[2])
        let (stripCount, _) = packingFloats(g)
        let strips = rest + (ScaledDotProductAttention<Float>.scratchCount(g) + 15) / 16 * 16
        let panels = strips + stripCount
        let product = PackedAttentionProduct(isa: isa, strips: strips, panels: panels, pool: pool)
        attention(Float.self, g, nonpad: nonpad).run(
            q: q, k: k, v: v, pastKey: inputs[4], pastValue: inputs[5],
            mask: convertMask(mask, widened: inputs[3], into: maskBuffer),
            presentKey: presentKey, presentValue: presentValue, y: y, qk: outputs[3], scratch: rest, product: product)
    }
}

// MARK: - RotaryEmbedding

/// ONNX RotaryEmbedding (opset 23): rotates the first `rotary_embedding_dim` features of each
/// head by the cached cos/sin of the token's position (halves, or interleaved pairs), on 4-D
/// `[batch, heads, sequence, head size]` or 3-D `[batch, sequence, heads · head size]` input.
/// float32, and float16 computed in float32.
package struct RotaryEmbeddingKernel: Kernel {
    package let interleaved: Bool
    package let rotaryDimension: Int
    package let heads: Int?

    package init(_ context: NodeContext) throws {
        interleaved = try context.int("interleaved", default: 0) != 0
        rotaryDimension = try context.int("rotary_embedding_dim", default: 0)
        heads = try context.int("num_heads")
        guard rotaryDimension >= 0 else {
            throw context.attributeError("rotary_embedding_dim must be ≥ 0, got \(rotaryDimension)")
        }
        if let heads, heads < 1 { throw context.attributeError("num_heads must be ≥ 1, got \(heads)") }
        guard (3...4).contains(context.inputCount) else {
            throw OnyxError.invalidModel("RotaryEmbedding node '\(context.node.name)' takes 3 or 4 inputs, got \(context.inputCount)")
        }
    }

    /// `(batch, heads, sequence, head size, rotated features)`.
    package struct Layout {
        package var batch: Int, heads: Int, sequence: Int, headSize: Int, rotated: Int
        package var packedHeads: Bool
    }

    /// The run's layout, after checking the caches and positions against the input.
    ///
    /// - Parameter descriptor: Input `index`'s descriptor, if present, for `index < count`
    ///   (a function, so a run allocates nothing).
    package func layout(count: Int, _ descriptor: (Int) -> TensorDescriptor?) throws -> Layout {
        guard count >= 3, let x = descriptor(0), let cos = descriptor(1), let sin = descriptor(2) else {
            throw OnyxError.invalidModel("RotaryEmbedding needs input, cos_cache and sin_cache")
        }
        guard x.dataType == .float || x.dataType == .float16 else {
            throw OnyxError.unsupportedDataType("RotaryEmbedding supports float and float16, got \(x.dataType)")
        }
        guard cos.dataType == x.dataType, sin.dataType == x.dataType else {
            throw OnyxError.unsupportedDataType("RotaryEmbedding: cos_cache and sin_cache must be \(x.dataType)")
        }
        var l: Layout
        switch x.rank {
        case 4:
            l = Layout(batch: x.shape[0], heads: x.shape[1], sequence: x.shape[2], headSize: x.shape[3], rotated: 0, packedHeads: false)
        case 3:
            guard let heads, x.shape[2] % heads == 0 else {
                throw OnyxError.invalidAttribute(
                    "RotaryEmbedding: 3-D input \(x.shape) needs num_heads dividing its last axis, got \(heads.map(String.init) ?? "none")")
            }
            l = Layout(batch: x.shape[0], heads: heads, sequence: x.shape[1], headSize: x.shape[2] / heads, rotated: 0, packedHeads: true)
        default:
            throw OnyxError.shapeMismatch("RotaryEmbedding: input must be 3-D or 4-D, got \(x.shape)")
        }
        l.rotated = rotaryDimension == 0 ? l.headSize : rotaryDimension
        guard l.rotated <= l.headSize, l.rotated % 2 == 0 else {
            throw OnyxError.invalidAttribute("RotaryEmbedding: rotary_embedding_dim \(l.rotated) must be even and ≤ head size \(l.headSize)")
        }
        let half = l.rotated / 2
        if count > 3, let positions = descriptor(3) {
            guard positions.dataType == .int64, positions.rank == 2, positions.shape[0] == l.batch,
                  positions.shape[1] == l.sequence else {
                throw OnyxError.shapeMismatch("RotaryEmbedding: position_ids must be int64[\(l.batch), \(l.sequence)], got \(positions)")
            }
            guard cos.rank == 2, cos.shape[1] == half, sin.shape == cos.shape else {
                throw OnyxError.shapeMismatch("RotaryEmbedding: caches must be [max positions, \(half)], got \(cos.shape) and \(sin.shape)")
            }
        } else {
            guard cos.rank == 3, cos.shape[0] == l.batch, cos.shape[1] == l.sequence, cos.shape[2] == half,
                  sin.shape == cos.shape else {
                throw OnyxError.shapeMismatch(
                    "RotaryEmbedding: without position_ids the caches must be \([l.batch, l.sequence, half]), got \(cos.shape) and \(sin.shape)")
            }
        }
        return l
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        _ = try layout(count: inputs.count) { inputs[$0]?.descriptor }
        return [inputs[0]!.descriptor]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let l = try? layout(count: inputs.count, { inputs[$0] }) else { return 0 }
        // float32 copies of float16 tensors, then the cache row of each (batch, step).
        return Float32Staging.byteCount(inputs: inputs, inputLimit: 3, outputs: outputs, widens: Self.widens)
            + l.batch * l.sequence * MemoryLayout<Int>.stride
    }

    /// float16 tensors are computed in float32.
    private static func widens(_ type: DataType) -> Bool { type == .float16 }

    package func run(_ context: borrowing KernelContext) throws {
        let inputs = context.inputs
        let l = try layout(count: inputs.count) { inputs[$0].map { TensorDescriptor($0.dataType, $0.shape) } }
        guard let workspace = context.workspace else { throw OnyxError.internalError("RotaryEmbedding: no workspace") }
        let positions = context.input(3), limit = context.input(1)!.shape[0]
        try Float32Staging.run(
            inputs: context.inputs, inputCount: 3, outputs: context.outputs, outputCount: 1, workspace: workspace, widens: Self.widens
        ) { widened, results, rest in
            // Cache rows per (batch, step), checked before anything is written.
            let count = l.batch * l.sequence
            let rows = UnsafeMutableBufferPointer(start: rest!.bindMemory(to: Int.self, capacity: count), count: count)
            if let positions {
                let ids = positions.pointer(as: Int64.self)
                for i in 0..<count {
                    guard ids[i] >= 0, ids[i] < Int64(limit) else {
                        throw OnyxError.invalidInput("RotaryEmbedding: position id \(ids[i]) is outside 0..<\(limit)")
                    }
                    rows[i] = Int(ids[i])
                }
            } else {
                for i in 0..<count { rows[i] = i }
            }
            rotate(l, rows: UnsafeBufferPointer(rows), x: widened[0]!, cos: widened[1]!, sin: widened[2]!, y: results[0]!)
        }
    }

    private func rotate(
        _ l: Layout, rows: UnsafeBufferPointer<Int>, x: UnsafePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>
    ) {
        let half = l.rotated / 2
        for b in 0..<l.batch {
            for h in 0..<l.heads {
                for s in 0..<l.sequence {
                    let offset = l.packedHeads
                        ? ((b * l.sequence + s) * l.heads + h) * l.headSize : ((b * l.heads + h) * l.sequence + s) * l.headSize
                    let source = x + offset, target = y + offset
                    let row = rows[b * l.sequence + s] * half
                    let c = cos + row, sn = sin + row
                    for i in 0..<half {
                        let (first, second) = interleaved ? (2 * i, 2 * i + 1) : (i, half + i)
                        let x1 = source[first], x2 = source[second]
                        target[first] = c[i] * x1 - sn[i] * x2
                        target[second] = sn[i] * x1 + c[i] * x2
                    }
                    for i in l.rotated..<l.headSize { target[i] = source[i] }
                }
            }
        }
    }
}

// MARK: - Losses

/// ONNX SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss (opset 12+): scores `[N, C, d…]`,
/// integer targets `[N, d…]`, optional class weights, `ignore_index`, and `reduction`
/// none / sum / mean (mean divides by the summed weights of the counted targets).
/// SoftmaxCrossEntropyLoss's optional second output is the log-probabilities. float, double and
/// float16, accumulated in double.
package struct LossKernel: Kernel {
    package enum Reduction: String { case none, sum, mean }

    package let softmax: Bool
    package let reduction: Reduction
    package let ignoreIndex: Int?

    package var op: String { softmax ? "SoftmaxCrossEntropyLoss" : "NegativeLogLikelihoodLoss" }

    package init(_ context: NodeContext, softmax: Bool) throws {
        self.softmax = softmax
        let name = try context.string("reduction", default: "mean")
        guard let reduction = Reduction(rawValue: name) else {
            throw context.attributeError("reduction '\(name)' is not none, sum or mean")
        }
        self.reduction = reduction
        ignoreIndex = try context.int("ignore_index")
        guard (2...3).contains(context.inputCount) else {
            throw OnyxError.invalidModel("\(context.node.opType) node '\(context.node.name)' takes 2 or 3 inputs, got \(context.inputCount)")
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 2, let scores = inputs[0], let target = inputs[1] else {
            throw OnyxError.invalidModel("\(op) needs scores and labels")
        }
        guard [.float, .double, .float16].contains(scores.dataType) else {
            throw OnyxError.unsupportedDataType("\(op) supports float, double and float16, got \(scores.dataType)")
        }
        guard target.dataType == .int64 || target.dataType == .int32 else {
            throw OnyxError.unsupportedDataType("\(op): labels must be int32 or int64, got \(target.dataType)")
        }
        guard scores.shape.count >= 2, target.shape == [scores.shape[0]] + scores.shape[2...] else {
            throw OnyxError.shapeMismatch("\(op): labels \(target.shape) do not fit scores \(scores.shape) ([N, C, d…] vs [N, d…])")
        }
        if inputs.count > 2, let weight = inputs[2] {
            guard weight.dataType == scores.dataType, weight.shape == [scores.shape[1]] else {
                throw OnyxError.shapeMismatch("\(op): weights must be \(scores.dataType)[\(scores.shape[1])], got \(weight)")
            }
        }
        let loss = TensorDescriptor(scores.dataType, reduction == .none ? target.shape : [])
        return softmax ? [loss, scores.descriptor] : [loss]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let scores = context.input(0)!, target = context.input(1)!
        let weight = context.input(2)
        let loss = context.output(0), logProbabilities = softmax ? context.optionalOutput(1) : nil
        let (batch, classes) = (scores.shape[0], scores.shape[1])
        let inner = scores.shape[2...].reduce(1, *)
        // Labels checked before any output is written.
        var labels = [Int](repeating: 0, count: target.elementCount)
        for i in 0..<labels.count {
            let label = target.dataType == .int64 ? Int(target.pointer(as: Int64.self)[i]) : Int(target.pointer(as: Int32.self)[i])
            guard label == ignoreIndex || (0..<classes).contains(label) else {
                throw OnyxError.invalidInput("\(op): label \(label) is outside 0..<\(classes) and is not ignore_index")
            }
            labels[i] = label
        }
        switch scores.dataType {
        case .float: compute(Float.self, scores, weight, labels, loss, logProbabilities, batch, classes, inner)
        case .double: compute(Double.self, scores, weight, labels, loss, logProbabilities, batch, classes, inner)
        case .float16: compute(Float16.self, scores, weight, labels, loss, logProbabilities, batch, classes, inner)
        default: throw OnyxError.unsupportedDataType("\(op) supports float, double and float16, got \(scores.dataType)")
        }
    }

    private func compute<T: BinaryFloatingPoint>(
        _: T.Type, _ scores: TensorView, _ weight: TensorView?, _ labels: [Int], _ loss: TensorView,
        _ logProbabilities: TensorView?, _ batch: Int, _ classes: Int, _ inner: Int
    ) {
        let x = scores.pointer(as: T.self)
        let weights = weight?.pointer(as: T.self)
        let out = loss.pointer(as: T.self)
        let logOut = logProbabilities?.pointer(as: T.self)
        var total = 0.0, weightTotal = 0.0
        for n in 0..<batch {
            let plane = x + n * classes * inner
            for d in 0..<inner {
                var logNormalizer = 0.0
                if softmax {
                    var peak = -Double.infinity
                    for c in 0..<classes { peak = max(peak, Double(plane[c * inner + d])) }
                    var sum = 0.0
                    for c in 0..<classes { sum += Double.exponential(Double(plane[c * inner + d]) - peak) }
                    logNormalizer = peak + Double.logarithm(sum)
                    if let logOut {
                        for c in 0..<classes {
                            logOut[(n * classes + c) * inner + d] = T(Double(plane[c * inner + d]) - logNormalizer)
                        }
                    }
                }
                let index = n * inner + d
                let label = labels[index]
                var value = 0.0
                if label != ignoreIndex {
                    let w = weights.map { Double($0[label]) } ?? 1
                    value = -w * (Double(plane[label * inner + d]) - logNormalizer)
                    weightTotal += w
                }
                if reduction == .none { out[index] = T(value) }
                total += value
            }
        }
        switch reduction {
        case .none: break
        case .sum: out[0] = T(total)
        case .mean: out[0] = T(total / weightTotal)
        }
    }
}
