import Foundation
import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// The building blocks of recent language-model exports: SwiGLU, TensorScatter (KV-cache
    /// updates), CausalConvWithState and LinearAttention (recurrent-state decoders).
    package static let transformerOperators: [OperatorRegistration] = [
        OperatorRegistration("SwiGLU", versions: 28...Int.max) { context in
            SwiGLUKernel(alpha: try context.float("alpha", default: 1))
        },
        OperatorRegistration("TensorScatter", versions: 24...Int.max) { context in
            let mode = try context.string("mode", default: "linear")
            guard mode == "linear" || mode == "circular" else {
                throw context.attributeError("mode must be 'linear' or 'circular', not '\(mode)'")
            }
            return TensorScatterKernel(circular: mode == "circular", axis: try context.int("axis", default: -2))
        },
        OperatorRegistration("CausalConvWithState", versions: 27...Int.max) { context in
            let activation = try context.string("activation", default: "none")
            guard ["none", "silu", "swish"].contains(activation) else {
                throw context.attributeError("activation must be 'none', 'silu' or 'swish', not '\(activation)'")
            }
            return CausalConvWithStateKernel(silu: activation != "none")
        },
        OperatorRegistration("LinearAttention", versions: 27...Int.max) { context in try LinearAttentionKernel(context) },
        OperatorRegistration("FlexAttention", domain: "ai.onnx.preview", versions: 1...Int.max) { context in
            try FlexAttentionKernel(context)
        },
    ]
}

/// These operators compute in float32 whatever their element type, as the reference does:
/// every other tensor is staged to float32 in the workspace (``Float32Staging``).
private enum FloatScratch {
    static let types: [DataType] = [.float, .float16, .double]

    static func check(_ input: PlannedInput, _ op: String, _ name: String) throws {
        guard types.contains(input.dataType) else {
            throw OnyxError.unsupportedDataType("\(op): \(name) must be float, float16 or double, got \(input.dataType)")
        }
    }

    /// Every type but float32 is converted.
    static func widens(_ type: DataType) -> Bool { true }

    /// Workspace bytes for the float32 copies of the first `inputLimit` inputs and the outputs.
    static func stagingBytes(_ inputs: [TensorDescriptor?], inputLimit: Int = .max, _ outputs: [TensorDescriptor]) -> Int {
        Float32Staging.byteCount(inputs: inputs, inputLimit: inputLimit, outputs: outputs, widens: widens)
    }
}

/// SwiGLU: `Y = A · sigmoid(alpha · A) · B`, inputs of one shape.
package struct SwiGLUKernel: Kernel {
    package let alpha: Float

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 2, let a = inputs[0], let b = inputs[1] else {
            throw OnyxError.invalidModel("SwiGLU takes two inputs (A, B)")
        }
        try FloatScratch.check(a, "SwiGLU", "A")
        guard a.descriptor == b.descriptor else {
            throw OnyxError.shapeMismatch("SwiGLU: A is \(a.descriptor) and B is \(b.descriptor); they must be equal")
        }
        return [a.descriptor]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        FloatScratch.stagingBytes(inputs, outputs)
    }

    package func run(_ context: borrowing KernelContext) throws {
        let count = context.output(0).elementCount, alpha = self.alpha
        Float32Staging.run(
            inputs: context.inputs, inputCount: 2, outputs: context.outputs, outputCount: 1,
            workspace: context.workspace, widens: FloatScratch.widens
        ) { widened, results, _ in
            let a = widened[0]!, b = widened[1]!, y = results[0]!
            for i in 0..<count { y[i] = a[i] / (1 + exp(-alpha * a[i])) * b[i] }
        }
    }
}

/// TensorScatter: the cache with `update` written along `axis` at each batch entry's write
/// index (wrapping around in circular mode).
package struct TensorScatterKernel: Kernel {
    package let circular: Bool
    package let axis: Int

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 2, let cache = inputs[0], let update = inputs[1] else {
            throw OnyxError.invalidModel("TensorScatter takes past_cache and update")
        }
        let a = try normalizedAxis(axis, rank: cache.shape.count, op: "TensorScatter")
        guard a > 0, update.dataType == cache.dataType, update.shape.count == cache.shape.count,
              zip(update.shape, cache.shape).enumerated().allSatisfy({ $0.offset == a ? $0.element.0 <= $0.element.1 : $0.element.0 == $0.element.1 })
        else {
            throw OnyxError.shapeMismatch(
                "TensorScatter: update \(update.descriptor) does not fit past_cache \(cache.descriptor) along axis \(axis)")
        }
        if inputs.count > 2, let indices = inputs[2], indices.dataType != .int64 || indices.shape != [cache.shape[0]] {
            throw OnyxError.shapeMismatch("TensorScatter: write_indices must be int64 of shape [\(cache.shape[0])], got \(indices.descriptor)")
        }
        return [cache.descriptor]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let cache = context.input(0)!, update = context.input(1)!, out = context.output(0)
        if out.data != cache.data { out.data.copyMemory(from: cache.data, byteCount: cache.byteCount) }
        let a = try normalizedAxis(axis, rank: cache.rank, op: "TensorScatter")
        let width = cache.dataType.byteWidth
        let inner = cache.shape[(a + 1)...].reduce(1, *) * width
        let capacity = cache.shape[a], length = update.shape[a]
        let perBatch = cache.shape[1..<a].reduce(1, *)
        let indices = context.input(2).map { UnsafePointer($0.pointer(as: Int64.self)) }
        for batch in 0..<cache.shape[0] {
            let start = Int(indices?[batch] ?? 0)
            guard start >= 0, circular || start + length <= capacity else {
                throw OnyxError.invalidInput(
                    "TensorScatter: write index \(start) with \(length) updates overruns the cache length \(capacity)")
            }
            for row in 0..<perBatch {
                let prefix = batch * perBatch + row
                for s in 0..<length {
                    let target = circular ? (start + s) % capacity : start + s
                    (out.data + (prefix * capacity + target) * inner)
                        .copyMemory(from: update.data + (prefix * length + s) * inner, byteCount: inner)
                }
            }
        }
    }
}

/// CausalConvWithState: a depthwise causal 1-D convolution over `[past_state, input]`, with an
/// optional SiLU, returning the last `k − 1` positions as the next state.
package struct CausalConvWithStateKernel: Kernel {
    package let silu: Bool

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 2, let x = inputs[0], let w = inputs[1] else {
            throw OnyxError.invalidModel("CausalConvWithState takes input and weight")
        }
        try FloatScratch.check(x, "CausalConvWithState", "input")
        guard x.shape.count == 3, w.shape.count == 3, w.shape[0] == x.shape[1], w.shape[1] == 1, w.shape[2] >= 1 else {
            throw OnyxError.shapeMismatch(
                "CausalConvWithState: input must be [batch, channels, length] and weight [channels, 1, k]; got \(x.descriptor) and \(w.descriptor)")
        }
        let (batch, channels, k) = (x.shape[0], x.shape[1], w.shape[2])
        if inputs.count > 2, let bias = inputs[2], bias.shape != [channels] {
            throw OnyxError.shapeMismatch("CausalConvWithState: bias must be [\(channels)], got \(bias.descriptor)")
        }
        if inputs.count > 3, let past = inputs[3], past.shape != [batch, channels, k - 1] {
            throw OnyxError.shapeMismatch("CausalConvWithState: past_state must be [\(batch), \(channels), \(k - 1)], got \(past.descriptor)")
        }
        return [x.descriptor, TensorDescriptor(x.dataType, [batch, channels, k - 1])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let x = inputs[0], let w = inputs[1] else { return 0 }
        // The float32 copies, then one padded row.
        return FloatScratch.stagingBytes(inputs, inputLimit: 4, outputs) + (x.shape[2] + w.shape[2] - 1) * MemoryLayout<Float>.stride
    }

    package func run(_ context: borrowing KernelContext) throws {
        let xv = context.input(0)!, wv = context.input(1)!
        let (batch, channels, length, k) = (xv.shape[0], xv.shape[1], xv.shape[2], wv.shape[2])
        let silu = self.silu
        Float32Staging.run(
            inputs: context.inputs, inputCount: 4, outputs: context.outputs, outputCount: 2,
            workspace: context.workspace, widens: FloatScratch.widens
        ) { widened, results, rest in
            let x = widened[0]!, w = widened[1]!, bias = widened[2], past = widened[3]
            let y = results[0]!, state = results[1]
            let padded = length + k - 1
            let row = rest!.bindMemory(to: Float.self, capacity: padded)
            for b in 0..<batch {
                for c in 0..<channels {
                    let plane = b * channels + c
                    for i in 0..<(k - 1) { row[i] = past?[plane * (k - 1) + i] ?? 0 }
                    for i in 0..<length { row[k - 1 + i] = x[plane * length + i] }
                    for t in 0..<length {
                        var sum = bias?[c] ?? 0
                        for j in 0..<k { sum += w[c * k + j] * row[t + j] }
                        y[plane * length + t] = silu ? sum / (1 + exp(-sum)) : sum
                    }
                    if let state {
                        for i in 0..<(k - 1) { state[plane * (k - 1) + i] = row[padded - (k - 1) + i] }
                    }
                }
            }
        }
    }
}

/// LinearAttention: a recurrent state `S` (d_k × d_v per KV head) updated token by token by
/// the linear, gated, delta or gated-delta rule; each output token is `scale · qᵀS`.
package struct LinearAttentionKernel: Kernel {
    package let queryHeads: Int
    package let kvHeads: Int
    package let scale: Float
    package let gated: Bool
    package let delta: Bool

    package init(_ context: NodeContext) throws {
        guard let q = try context.int("q_num_heads"), let kv = try context.int("kv_num_heads"),
              q > 0, kv > 0, q % kv == 0 else {
            throw context.attributeError("q_num_heads and kv_num_heads are required, and q_num_heads must be a positive multiple of kv_num_heads")
        }
        let rule = try context.string("update_rule", default: "gated_delta")
        guard ["linear", "gated", "delta", "gated_delta"].contains(rule) else {
            throw context.attributeError("update_rule must be linear, gated, delta or gated_delta, not '\(rule)'")
        }
        queryHeads = q
        kvHeads = kv
        scale = try context.float("scale", default: 0)
        gated = rule.hasPrefix("gated")
        delta = rule.hasSuffix("delta")
        guard context.hasInput(4) == gated else {
            throw context.attributeError("update_rule '\(rule)' \(gated ? "requires" : "forbids") the decay input")
        }
        guard context.hasInput(5) == delta else {
            throw context.attributeError("update_rule '\(rule)' \(delta ? "requires" : "forbids") the beta input")
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 3, let q = inputs[0], let k = inputs[1], let v = inputs[2] else {
            throw OnyxError.invalidModel("LinearAttention takes query, key and value")
        }
        try FloatScratch.check(q, "LinearAttention", "query")
        guard q.shape.count == 3, k.shape.count == 3, v.shape.count == 3,
              q.shape[2] % queryHeads == 0, k.shape[2] % kvHeads == 0, v.shape[2] % kvHeads == 0,
              k.shape[2] / kvHeads == q.shape[2] / queryHeads,
              k.shape[0] == q.shape[0], v.shape[0] == q.shape[0], k.shape[1] == q.shape[1], v.shape[1] == q.shape[1]
        else {
            throw OnyxError.shapeMismatch(
                "LinearAttention: query \(q.descriptor), key \(k.descriptor), value \(v.descriptor) do not match \(queryHeads) query and \(kvHeads) KV heads")
        }
        let (batch, tokens) = (q.shape[0], q.shape[1])
        let dk = q.shape[2] / queryHeads, dv = v.shape[2] / kvHeads
        let stateShape = [batch, kvHeads, dk, dv]
        if inputs.count > 3, let past = inputs[3], past.shape != stateShape {
            throw OnyxError.shapeMismatch("LinearAttention: past_state must be \(stateShape), got \(past.descriptor)")
        }
        if inputs.count > 4, let decay = inputs[4],
           decay.shape != [batch, tokens, kvHeads] && decay.shape != [batch, tokens, kvHeads * dk] {
            throw OnyxError.shapeMismatch("LinearAttention: decay must be [\(batch), \(tokens), \(kvHeads) or \(kvHeads * dk)], got \(decay.descriptor)")
        }
        if inputs.count > 5, let beta = inputs[5], beta.shape != [batch, tokens, kvHeads] && beta.shape != [batch, tokens, 1] {
            throw OnyxError.shapeMismatch("LinearAttention: beta must be [\(batch), \(tokens), \(kvHeads) or 1], got \(beta.descriptor)")
        }
        let stateType = inputs.count > 3 ? inputs[3]?.dataType ?? q.dataType : q.dataType
        return [TensorDescriptor(q.dataType, [batch, tokens, queryHeads * dv]), TensorDescriptor(stateType, stateShape)]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let q = inputs[0], let v = inputs[2] else { return 0 }
        let dk = q.shape[2] / queryHeads, dv = v.shape[2] / kvHeads
        // The float32 copies, the state when the node leaves present_state out, one update row.
        var layout = WorkspaceLayout()
        _ = layout.reserve(floats: q.shape[0] * kvHeads * dk * dv)
        _ = layout.reserve(floats: dv)
        return FloatScratch.stagingBytes(inputs, inputLimit: 6, outputs) + layout.byteCount
    }

    package func run(_ context: borrowing KernelContext) throws {
        let qv = context.input(0)!, vv = context.input(2)!
        let decayWidth = context.input(4)?.shape[2] ?? 1, betaWidth = context.input(5)?.shape[2] ?? 1
        let (batch, tokens) = (qv.shape[0], qv.shape[1])
        let (queryHeads, kvHeads) = (self.queryHeads, self.kvHeads)
        let dk = qv.shape[2] / queryHeads, dv = vv.shape[2] / kvHeads
        let group = queryHeads / kvHeads
        let factor = scale == 0 ? 1 / Float(dk).squareRoot() : scale
        Float32Staging.run(
            inputs: context.inputs, inputCount: 6, outputs: context.outputs, outputCount: 2,
            workspace: context.workspace, widens: FloatScratch.widens
        ) { widened, results, rest in
            let q = widened[0]!, k = widened[1]!, v = widened[2]!, decay = widened[4], beta = widened[5]
            let out = results[0]!
            var layout = WorkspaceLayout()
            let stateCount = batch * kvHeads * dk * dv
            let ownState = (rest! + layout.reserve(floats: stateCount)).assumingMemoryBound(to: Float.self)
            let update = (rest! + layout.reserve(floats: dv)).assumingMemoryBound(to: Float.self)
            // The state is updated in present_state itself when the node has it.
            let state = results[1] ?? ownState
            if let past = widened[3] {
                state.update(from: past, count: stateCount)
            } else {
                state.update(repeating: 0, count: stateCount)
            }
            for b in 0..<batch {
                for t in 0..<tokens {
                    let token = b * tokens + t
                    for h in 0..<kvHeads {
                        let s = ((b * kvHeads) + h) * dk * dv
                        let keyBase = token * kvHeads * dk + h * dk
                        if let decay {
                            for i in 0..<dk {
                                let g = exp(decay[token * decayWidth + (decayWidth == kvHeads ? h : h * dk + i)])
                                for j in 0..<dv { state[s + i * dv + j] *= g }
                            }
                        }
                        for j in 0..<dv { update[j] = v[token * kvHeads * dv + h * dv + j] }
                        if let beta {
                            let rate = beta[token * betaWidth + (betaWidth == 1 ? 0 : h)]
                            for j in 0..<dv {
                                var retrieved: Float = 0
                                for i in 0..<dk { retrieved += state[s + i * dv + j] * k[keyBase + i] }
                                update[j] = rate * (update[j] - retrieved)
                            }
                        }
                        for i in 0..<dk {
                            for j in 0..<dv { state[s + i * dv + j] += k[keyBase + i] * update[j] }
                        }
                        for qh in (h * group)..<((h + 1) * group) {
                            let queryBase = token * queryHeads * dk + qh * dk
                            for j in 0..<dv {
                                var sum: Float = 0
                                for i in 0..<dk { sum += q[queryBase + i] * state[s + i * dv + j] }
                                out[token * queryHeads * dv + qh * dv + j] = factor * sum
                            }
                        }
                    }
                }
            }
        }
    }
}

/// FlexAttention (ai.onnx.preview): scaled dot-product attention whose scores and
/// probabilities may each pass through a subgraph (`score_mod`, `prob_mod`) before and after
/// the softmax. Query heads share K/V heads in contiguous groups.
package struct FlexAttentionKernel: Kernel {
    package let scale: Float
    package let scoreModifier: Subgraph?
    package let probabilityModifier: Subgraph?
    /// Values the modifier subgraphs read from the enclosing graph, passed after Q, K, V.
    package let implicitNames: [String]

    package init(_ context: NodeContext) throws {
        scale = try context.float("scale", default: 0)
        func modifier(_ name: String) throws -> Subgraph? {
            guard case .graph(let graph)? = context.attribute(name) else { return nil }
            guard graph.inputs.count == 1, graph.outputs.count == 1 else {
                throw context.attributeError("subgraph '\(name)' must take one tensor and return one")
            }
            return try Subgraph(graph, attribute: name, context: context)
        }
        scoreModifier = try modifier("score_mod")
        probabilityModifier = try modifier("prob_mod")
        implicitNames = context.node.implicitInputs
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 3, let q = inputs[0], let k = inputs[1], let v = inputs[2] else {
            throw OnyxError.invalidModel("FlexAttention takes Q, K and V")
        }
        try FloatScratch.check(q, "FlexAttention", "Q")
        guard q.shape.count == 4, k.shape.count == 4, v.shape.count == 4,
              k.shape[0] == q.shape[0], v.shape[0] == q.shape[0], k.shape[1] == v.shape[1], k.shape[1] > 0,
              q.shape[1] % k.shape[1] == 0, k.shape[3] == q.shape[3], v.shape[2] == k.shape[2],
              k.dataType == q.dataType, v.dataType == q.dataType
        else {
            throw OnyxError.shapeMismatch(
                "FlexAttention: Q \(q.descriptor), K \(k.descriptor), V \(v.descriptor) are not [batch, heads, sequence, size] tensors that match")
        }
        return [TensorDescriptor(q.dataType, [q.shape[0], q.shape[1], q.shape[2], v.shape[3]])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let q = inputs[0], let k = inputs[1] else { return 0 }
        // The float32 copies of Q, K, V and Y, then the scores.
        return FloatScratch.stagingBytes(inputs, inputLimit: 3, outputs)
            + q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * MemoryLayout<Float>.stride
    }

    package func run(_ context: borrowing KernelContext) throws {
        let qv = context.input(0)!, kv = context.input(1)!, vv = context.input(2)!
        let (batch, heads, queries, size) = (qv.shape[0], qv.shape[1], qv.shape[2], qv.shape[3])
        let (kvHeads, keys, valueSize) = (kv.shape[1], kv.shape[2], vv.shape[3])
        let group = heads / kvHeads
        let factor = scale == 0 ? 1 / Float(size).squareRoot() : scale
        var outer: [String: Tensor] = [:]
        if scoreModifier != nil || probabilityModifier != nil {
            for (offset, name) in implicitNames.enumerated() {
                if let view = context.input(3 + offset) {
                    outer[name] = try Tensor(dataType: view.dataType, shape: view.shape,
                                             bytes: UnsafeRawBufferPointer(start: view.data, count: view.byteCount))
                }
            }
        }
        // The modifiers see scores in float32, or double for double inputs.
        let precision: DataType = qv.dataType == .double ? .double : .float
        let scoreCount = batch * heads * queries * keys
        /// Replaces the scores by the modifier's result (a subgraph run, which allocates).
        func modify(_ scores: UnsafeMutablePointer<Float>, by modifier: Subgraph?) throws {
            guard let modifier else { return }
            let scoreShape = [batch, heads, queries, keys]
            let input = try Tensor(shape: scoreShape, scalars: Array(UnsafeBufferPointer(start: scores, count: scoreCount)))
            let result = try modifier.run([precision == .double ? input.converted(to: .double) : input], outer: outer, strings: StringTable())[0]
            guard result.shape == scoreShape else {
                throw OnyxError.shapeMismatch("FlexAttention: a modifier returned \(result.shape), expected \(scoreShape)")
            }
            let values = try result.converted(to: .float).scalars(as: Float.self)
            scores.update(from: values, count: scoreCount)
        }
        try Float32Staging.run(
            inputs: context.inputs, inputCount: 3, outputs: context.outputs, outputCount: 1,
            workspace: context.workspace, widens: FloatScratch.widens
        ) { widened, results, rest in
            let q = widened[0]!, k = widened[1]!, v = widened[2]!, out = results[0]!
            let scores = rest!.bindMemory(to: Float.self, capacity: scoreCount)
            for b in 0..<batch {
                for h in 0..<heads {
                    let kvHead = h / group
                    for i in 0..<queries {
                        let queryBase = ((b * heads + h) * queries + i) * size
                        for j in 0..<keys {
                            let keyBase = ((b * kvHeads + kvHead) * keys + j) * size
                            var dot: Float = 0
                            for d in 0..<size { dot += q[queryBase + d] * k[keyBase + d] }
                            scores[((b * heads + h) * queries + i) * keys + j] = dot * factor
                        }
                    }
                }
            }
            try modify(scores, by: scoreModifier)
            let probabilities = scores
            for row in 0..<(batch * heads * queries) {
                let base = row * keys
                var top: Float = 0
                if keys > 0 {
                    top = probabilities[base]
                    for j in 1..<keys where probabilities[base + j] > top { top = probabilities[base + j] }
                }
                var total: Float = 0
                for j in 0..<keys {
                    let e = top == -.infinity ? 0 : exp(probabilities[base + j] - top)
                    probabilities[base + j] = e
                    total += e
                }
                for j in 0..<keys { probabilities[base + j] = total > 0 ? probabilities[base + j] / total : 0 }
            }
            try modify(probabilities, by: probabilityModifier)
            out.update(repeating: 0, count: batch * heads * queries * valueSize)
            for b in 0..<batch {
                for h in 0..<heads {
                    let kvHead = h / group
                    for i in 0..<queries {
                        let row = ((b * heads + h) * queries + i)
                        for j in 0..<keys {
                            let p = probabilities[row * keys + j]
                            let valueBase = ((b * kvHeads + kvHead) * keys + j) * valueSize
                            for d in 0..<valueSize { out[row * valueSize + d] += p * v[valueBase + d] }
                        }
                    }
                }
            }
        }
    }
}
