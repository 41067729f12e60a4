extension OperatorRegistry {
    static let normalizationOperators: [OperatorRegistration] = [
        OperatorRegistration("BatchNormalization") { context in
            let epsilon = try context.float("epsilon", default: 1e-5)
            guard epsilon.isFinite, epsilon >= 0 else {
                throw context.attributeError("epsilon must be finite and ≥ 0, found \(epsilon)")
            }
            // Which statistics Y uses: opset 14+ says so in training_mode, opset 7–13 by the
            // outputs (extra outputs mean training), opset 1–6 in is_test (default 0: training).
            let batchStatistics: Bool
            switch context.opset {
            case 14...: batchStatistics = try context.int("training_mode", default: 0) != 0
            case 7..<14: batchStatistics = false
            default: batchStatistics = try context.int("is_test", default: 0) == 0
            }
            let extraOutputs = context.node.outputs.dropFirst().filter { !$0.isEmpty }.count
            let runningOutputs = context.opset >= 14 && batchStatistics && extraOutputs > 0
            if extraOutputs > 0 && !runningOutputs {
                throw context.attributeError(
                    context.opset >= 14
                        ? "running_mean and running_var are outputs of training mode only (training_mode = 0 here)"
                        : "the training outputs mean, var, saved_mean and saved_var are not supported; only Y is. Export the model in eval mode")
            }
            let spatial = context.opset < 9 ? try context.int("spatial", default: 1) != 0 : true
            return BatchNormalizationKernel(
                epsilon: epsilon, spatial: spatial, batchStatistics: batchStatistics,
                runningOutputs: runningOutputs, momentum: try context.float("momentum", default: 0.9))
        },
        OperatorRegistration("LayerNormalization", versions: 17...Int.max) { context in
            let epsilon = try context.float("epsilon", default: 1e-5)
            guard epsilon.isFinite, epsilon >= 0 else {
                throw context.attributeError("epsilon must be finite and ≥ 0, found \(epsilon)")
            }
            return LayerNormalizationKernel(axis: try context.int("axis", default: -1), epsilon: epsilon)
        },
        OperatorRegistration("Softmax", versions: 1...12) { context in
            SoftmaxKernel(axis: try context.int("axis", default: 1), coercesTo2D: true)
        },
        OperatorRegistration("Softmax", versions: 13...Int.max) { context in
            SoftmaxKernel(axis: try context.int("axis", default: -1), coercesTo2D: false)
        },
    ]
}

/// BatchNormalization, float32: `Y = scale · (X − mean) / √(var + ε) + B` per channel.
///
/// In inference mode the statistics are the `mean` and `var` inputs. In training mode
/// (`training_mode = 1`, or `is_test = 0` before opset 7) Y uses the batch's own mean and
/// variance, as the specification defines; from opset 14 the optional running_mean and
/// running_var outputs are computed too, while the older training outputs (mean, var,
/// saved_mean, saved_var) are refused when the node is made. Before opset 9, `spatial = 0`
/// gives every element of `C×D1×…` its own parameters.
struct BatchNormalizationKernel: Kernel {
    let epsilon: Float
    let spatial: Bool
    let batchStatistics: Bool
    /// Training mode, opset 14+: outputs 1 and 2 are running_mean and running_var.
    let runningOutputs: Bool
    let momentum: Float

    /// `(batch, features, area)`: parameters apply per feature to runs of `area` elements.
    private func layout(_ shape: [Int]) -> (batch: Int, features: Int, area: Int) {
        spatial
            ? (shape[0], shape[1], shape[2...].reduce(1, *))
            : (shape[0], shape[1...].reduce(1, *), 1)
    }

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 5, let x = inputs[0] else {
            throw OnyxError.invalidModel("BatchNormalization takes X, scale, B, mean and var; got \(inputs.compactMap { $0 }.count) inputs")
        }
        guard x.dataType == .float else {
            throw OnyxError.unsupportedDataType("BatchNormalization supports float, got \(x.dataType)")
        }
        guard x.shape.count >= 2 else {
            throw OnyxError.shapeMismatch("BatchNormalization: input of shape \(x.shape) has no channel axis")
        }
        let features = layout(x.shape).features
        let expected = spatial ? "[\(x.shape[1])]" : "\(Array(x.shape[1...])) (spatial = 0)"
        for (i, name) in ["scale", "B", "mean", "var"].enumerated() {
            guard let p = inputs[i + 1] else {
                throw OnyxError.invalidModel("BatchNormalization: input \(name) is missing")
            }
            let fits = spatial ? p.shape == [features] : p.descriptor.elementCount == features
            guard p.dataType == .float, fits else {
                throw OnyxError.shapeMismatch("BatchNormalization: \(name) must be float\(expected), got \(p.descriptor)")
            }
        }
        if runningOutputs {
            return [x.descriptor, TensorDescriptor(.float, [features]), TensorDescriptor(.float, [features])]
        }
        return [x.descriptor]
    }

    var aliasing: KernelAliasing { .inPlace(input: 0) }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let (batch, features, area) = layout(x.shape)
        func parameter(_ index: Int) -> UnsafePointer<Float> { UnsafePointer(context.input(index)!.pointer(as: Float.self)) }
        let input = UnsafePointer(x.pointer(as: Float.self)), output = y.pointer(as: Float.self)
        if batchStatistics {
            NormalizationLoops.batchNormalizationWithBatchStatistics(
                input, output, batch: batch, features: features, area: area,
                scale: parameter(1), bias: parameter(2), epsilon: epsilon,
                running: runningStatistics(context), pool: context.pool)
        } else {
            NormalizationLoops.batchNormalization(
                input, output, batch: batch, features: features, area: area,
                scale: parameter(1), bias: parameter(2), mean: parameter(3), variance: parameter(4),
                epsilon: epsilon, pool: context.pool)
        }
    }

    private func runningStatistics(_ context: borrowing KernelContext) -> (
        mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, momentum: Float,
        runningMean: UnsafeMutablePointer<Float>?, runningVariance: UnsafeMutablePointer<Float>?
    )? {
        guard runningOutputs else { return nil }
        return (UnsafePointer(context.input(3)!.pointer(as: Float.self)), UnsafePointer(context.input(4)!.pointer(as: Float.self)),
                momentum, context.optionalOutput(1)?.pointer(as: Float.self), context.optionalOutput(2)?.pointer(as: Float.self))
    }
}

/// Softmax, float32. From opset 13 it normalises along `axis` (default −1). Before, it
/// flattens the input to 2-D at `axis` (default 1) and normalises each row of the trailing
/// axes together.
struct SoftmaxKernel: Kernel {
    let axis: Int
    let coercesTo2D: Bool

    /// `(outer, extent, inner)`: `outer · inner` lines of `extent` elements, `inner` apart.
    private func layout(_ shape: [Int]) throws -> (outer: Int, extent: Int, inner: Int) {
        guard !shape.isEmpty else {
            throw OnyxError.shapeMismatch("Softmax: the input is a scalar; it needs at least one axis")
        }
        let a = try normalizedAxis(axis, rank: shape.count, op: "Softmax")
        let outer = shape[..<a].reduce(1, *)
        return coercesTo2D
            ? (outer, shape[a...].reduce(1, *), 1)
            : (outer, shape[a], shape[(a + 1)...].reduce(1, *))
    }

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else {
            throw OnyxError.invalidModel("Softmax takes one input, got \(inputs.compactMap { $0 }.count)")
        }
        guard x.dataType == .float else {
            throw OnyxError.unsupportedDataType("Softmax supports float, got \(x.dataType)")
        }
        _ = try layout(x.shape)
        return [x.descriptor]
    }

    var aliasing: KernelAliasing { .inPlace(input: 0) }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let (outer, extent, inner) = try layout(x.shape)
        let input = UnsafePointer(x.pointer(as: Float.self)), output = y.pointer(as: Float.self)
        if inner == 1 {
            NormalizationLoops.softmax(input, output, rows: outer, length: extent, pool: context.pool)
        } else {
            NormalizationLoops.softmax(input, output, outer: outer, extent: extent, inner: inner, pool: context.pool)
        }
    }
}

/// LayerNormalization (opset 17), float32: each row over axes `axis…` is normalised to zero mean
/// and unit variance, then scaled and shifted: `Y = (X − mean) / √(var + ε) · Scale + B`, with
/// `Scale` and `B` broadcast over the normalised axes. The optional Mean and InvStdDev outputs
/// have X's leading axes and 1 for each normalised axis.
struct LayerNormalizationKernel: Kernel {
    let axis: Int
    let epsilon: Float

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 2, let x = inputs[0], let scale = inputs[1] else {
            throw OnyxError.invalidModel("LayerNormalization takes X and Scale")
        }
        guard x.dataType == .float, scale.dataType == .float else {
            throw OnyxError.unsupportedDataType("LayerNormalization supports float, got \(x.dataType) and \(scale.dataType)")
        }
        let a = try normalizedAxis(axis, rank: x.shape.count, op: "LayerNormalization")
        let normalized = Array(x.shape[a...])
        for (name, input) in [("Scale", scale), ("B", inputs.count > 2 ? inputs[2] : nil)] {
            guard let input else { continue }
            guard input.dataType == .float,
                  try Broadcasting.shape(input.shape, normalized, op: "LayerNormalization") == normalized,
                  input.shape.count <= normalized.count else {
                throw OnyxError.shapeMismatch("LayerNormalization: \(name) \(input.shape) does not broadcast to the normalised axes \(normalized)")
            }
        }
        let statistics = Array(x.shape[..<a]) + Array(repeating: 1, count: x.shape.count - a)
        return [x.descriptor, TensorDescriptor(.float, statistics), TensorDescriptor(.float, statistics)]
    }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let a = try normalizedAxis(axis, rank: x.rank, op: "LayerNormalization")
        let rows = x.shape[..<a].reduce(1, *)
        let width = x.shape[a...].reduce(1, *)
        // Scale and B as full rows (they usually are; otherwise expand once per run).
        let scale = expandedRow(context.input(1)!, width: width, normalized: Array(x.shape[a...]))
        let bias = context.input(2).map { expandedRow($0, width: width, normalized: Array(x.shape[a...])) }
        defer {
            if scale.owned { scale.pointer.deallocate() }
            if let bias, bias.owned { bias.pointer.deallocate() }
        }
        let input = x.pointer(as: Float.self), output = y.pointer(as: Float.self)
        let meanOut = context.optionalOutput(1)?.pointer(as: Float.self)
        let inverseOut = context.optionalOutput(2)?.pointer(as: Float.self)
        let epsilon = self.epsilon
        context.pool.parallelRanges(rows, minimumChunk: max(1, (1 << 15) / max(width, 1))) { range in
            for r in range {
                let row = input + r * width, out = output + r * width
                var sum: Float = 0
                for i in 0..<width { sum += row[i] }
                let mean = sum / Float(width)
                var squares: Float = 0
                for i in 0..<width {
                    let d = row[i] - mean
                    squares += d * d
                }
                let inverse = 1 / (squares / Float(width) + epsilon).squareRoot()
                let s = scale.pointer
                if let b = bias?.pointer {
                    for i in 0..<width { out[i] = (row[i] - mean) * inverse * s[i] + b[i] }
                } else {
                    for i in 0..<width { out[i] = (row[i] - mean) * inverse * s[i] }
                }
                meanOut?[r] = mean
                inverseOut?[r] = inverse
            }
        }
    }

    /// `view` broadcast to a full row of `width` elements; borrowed when it already is one.
    private func expandedRow(_ view: TensorView, width: Int, normalized: [Int]) -> (pointer: UnsafeMutablePointer<Float>, owned: Bool) {
        if view.elementCount == width { return (view.pointer(as: Float.self), false) }
        let row = UnsafeMutablePointer<Float>.allocate(capacity: width)
        let strides = Broadcasting.strides(of: view.shape, in: normalized)
        let source = view.pointer(as: Float.self)
        for i in 0..<width {
            var rest = i, offset = 0
            for axis in stride(from: normalized.count - 1, through: 0, by: -1) {
                offset += (rest % normalized[axis]) * strides[axis]
                rest /= normalized[axis]
            }
            row[i] = source[offset]
        }
        return (row, true)
    }
}
