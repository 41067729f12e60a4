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
