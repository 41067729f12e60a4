#if canImport(Glibc)
import Glibc
#endif

extension OperatorRegistry {
    static let normalizationOperators: [OperatorRegistration] = [
        OperatorRegistration("BatchNormalization") { context in
            if try context.int("training_mode", default: 0) != 0 {
                throw context.attributeError("training_mode = 1 is not supported; export the model in eval mode")
            }
            if context.opset < 7, try context.int("is_test", default: 1) == 0 {
                throw context.attributeError("is_test = 0 (training) is not supported")
            }
            if context.opset < 9, try context.int("spatial", default: 1) == 0 {
                throw context.attributeError("spatial = 0 is not supported")
            }
            let extraOutputs = context.node.outputs.dropFirst().filter { !$0.isEmpty }
            if !extraOutputs.isEmpty {
                throw context.attributeError("the running-statistics outputs exist only in training mode")
            }
            return BatchNormalizationKernel(epsilon: try context.float("epsilon", default: 1e-5))
        },
        OperatorRegistration("Softmax", versions: 1...12) { context in
            SoftmaxKernel(axis: try context.int("axis", default: 1), coerceTo2D: true)
        },
        OperatorRegistration("Softmax", versions: 13...Int.max) { context in
            SoftmaxKernel(axis: try context.int("axis", default: -1), coerceTo2D: false)
        },
    ]
}

/// Inference-mode BatchNormalization: `y = scale · (x − mean) / sqrt(var + ε) + B` per channel.
struct BatchNormalizationKernel: Kernel {
    let epsilon: Float

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 5, let x = inputs[0] else { throw OnyxError.invalidModel("BatchNormalization takes X, scale, B, mean, var") }
        guard x.dataType == .float else { throw OnyxError.unsupportedDataType("BatchNormalization supports float, got \(x.dataType)") }
        guard x.shape.count >= 2 else { throw OnyxError.shapeMismatch("BatchNormalization: input \(x.shape) has no channel axis") }
        let channels = x.shape[1]
        for (i, name) in ["scale", "B", "mean", "var"].enumerated() {
            guard let p = inputs[i + 1], p.dataType == .float, p.shape == [channels] else {
                throw OnyxError.shapeMismatch("BatchNormalization: \(name) must be float [\(channels)], got \(inputs[i + 1]?.descriptor.description ?? "nothing")")
            }
        }
        return [x.descriptor]
    }

    var aliasing: KernelAliasing { .inPlace(input: 0) }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let channels = x.shape[1], batch = x.shape[0]
        let area = x.shape[2...].reduce(1, *)
        let scale = context.input(1)!.pointer(as: Float.self), shift = context.input(2)!.pointer(as: Float.self)
        let mean = context.input(3)!.pointer(as: Float.self), variance = context.input(4)!.pointer(as: Float.self)
        let input = x.pointer(as: Float.self), output = y.pointer(as: Float.self)
        for n in 0..<batch {
            for c in 0..<channels {
                let factor = scale[c] / (variance[c] + epsilon).squareRoot()
                let offset = shift[c] - mean[c] * factor
                let base = (n * channels + c) * area
                for i in 0..<area { output[base + i] = input[base + i] * factor + offset }
            }
        }
    }
}

/// Softmax along an axis (opset ≥ 13), or over the flattened trailing axes (opset < 13).
struct SoftmaxKernel: Kernel {
    let axis: Int
    let coerceTo2D: Bool

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("Softmax takes one input") }
        guard x.dataType == .float else { throw OnyxError.unsupportedDataType("Softmax supports float, got \(x.dataType)") }
        _ = try normalizedAxis(axis, rank: x.shape.count, op: "Softmax")
        return [x.descriptor]
    }

    var aliasing: KernelAliasing { .inPlace(input: 0) }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let a = try normalizedAxis(axis, rank: x.rank, op: "Softmax")
        let outer = x.shape[0..<a].reduce(1, *)
        let (extent, inner) = coerceTo2D
            ? (x.shape[a...].reduce(1, *), 1)
            : (x.shape[a], x.shape[(a + 1)...].reduce(1, *))
        let input = x.pointer(as: Float.self), output = y.pointer(as: Float.self)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * extent * inner + i
                var peak = -Float.infinity
                for e in 0..<extent { peak = max(peak, input[base + e * inner]) }
                var sum: Float = 0
                for e in 0..<extent {
                    let v = expf(input[base + e * inner] - peak)
                    output[base + e * inner] = v
                    sum += v
                }
                let scale = 1 / sum
                for e in 0..<extent { output[base + e * inner] *= scale }
            }
        }
    }
}
