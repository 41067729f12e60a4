import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// The ai.onnx.preview.training optimizers (Adam, Adagrad, Momentum).
    package static let trainingOperators: [OperatorRegistration] = [
        OperatorRegistration("Adam", domain: "ai.onnx.preview.training", versions: 1...Int.max) { context in
            OptimizerKernel(rule: .adam(
                alpha: Double(try context.float("alpha", default: 0.9)),
                beta: Double(try context.float("beta", default: 0.999)),
                epsilon: Double(try context.float("epsilon", default: 1e-6)),
                normCoefficient: Double(try context.float("norm_coefficient", default: 0)),
                normCoefficientPost: Double(try context.float("norm_coefficient_post", default: 0))))
        },
        OperatorRegistration("Adagrad", domain: "ai.onnx.preview.training", versions: 1...Int.max) { context in
            OptimizerKernel(rule: .adagrad(
                decayFactor: Double(try context.float("decay_factor", default: 0)),
                epsilon: Double(try context.float("epsilon", default: 1e-6)),
                normCoefficient: Double(try context.float("norm_coefficient", default: 0))))
        },
        OperatorRegistration("Momentum", domain: "ai.onnx.preview.training", versions: 1...Int.max) { context in
            func required(_ name: String) throws -> Double {
                guard let value = try context.float(name) else { throw context.attributeError("missing attribute '\(name)'") }
                return Double(value)
            }
            guard let mode = try context.string("mode") else { throw context.attributeError("missing attribute 'mode'") }
            guard mode == "standard" || mode == "nesterov" else {
                throw context.attributeError("mode '\(mode)' is not standard or nesterov")
            }
            return OptimizerKernel(rule: .momentum(
                alpha: try required("alpha"), beta: try required("beta"),
                normCoefficient: try required("norm_coefficient"), nesterov: mode == "nesterov"))
        },
    ]
}

/// One step of a training optimizer over any number of tensors.
///
/// Inputs are R (learning rate), T (update count), then the tensors X₁…Xₙ, their gradients
/// G₁…Gₙ and each per-tensor state (Adam: V and H; Adagrad: H; Momentum: V), each group in
/// order. Outputs are the new X₁…Xₙ, then each new state in the same order. Arithmetic runs in
/// Double.
package struct OptimizerKernel: Kernel {
    package enum Rule {
        case adam(alpha: Double, beta: Double, epsilon: Double, normCoefficient: Double, normCoefficientPost: Double)
        case adagrad(decayFactor: Double, epsilon: Double, normCoefficient: Double)
        case momentum(alpha: Double, beta: Double, normCoefficient: Double, nesterov: Bool)

        package var name: String {
            switch self {
            case .adam: "Adam"
            case .adagrad: "Adagrad"
            case .momentum: "Momentum"
            }
        }

        /// The state tensors each optimized tensor carries (and their names).
        package var states: [String] {
            switch self {
            case .adam: ["V", "H"]
            case .adagrad: ["H"]
            case .momentum: ["V"]
            }
        }
    }

    package let rule: Rule

    /// The number of optimized tensors, checked against the input count.
    private func tensorCount(_ inputCount: Int) throws -> Int {
        let perTensor = 2 + rule.states.count
        guard inputCount > 2, (inputCount - 2) % perTensor == 0 else {
            throw OnyxError.invalidModel(
                "\(rule.name): expected R, T and \(perTensor) inputs per tensor (X, G, \(rule.states.joined(separator: ", "))), got \(inputCount) inputs")
        }
        return (inputCount - 2) / perTensor
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let name = rule.name
        let n = try tensorCount(inputs.count)
        guard let r = inputs[0], let t = inputs[1] else { throw OnyxError.invalidModel("\(name): inputs R and T are required") }
        guard (r.dataType == .float || r.dataType == .double), r.descriptor.elementCount == 1 else {
            throw OnyxError.invalidInput("\(name): R must be a float or double scalar, got \(r.descriptor)")
        }
        guard t.dataType == .int64, t.descriptor.elementCount == 1 else {
            throw OnyxError.invalidInput("\(name): T must be an int64 scalar, got \(t.descriptor)")
        }
        let groups = ["X", "G"] + rule.states
        var xs: [TensorDescriptor] = []
        for i in 0..<n {
            guard let x = inputs[2 + i] else { throw OnyxError.invalidModel("\(name): input X\(i + 1) is missing") }
            guard x.dataType == .float || x.dataType == .double else {
                throw OnyxError.unsupportedDataType("\(name): X\(i + 1) must be float or double, found \(x.dataType)")
            }
            for (g, group) in groups.enumerated().dropFirst() {
                guard let other = inputs[2 + g * n + i] else { throw OnyxError.invalidModel("\(name): input \(group)\(i + 1) is missing") }
                guard other.descriptor == x.descriptor else {
                    throw OnyxError.shapeMismatch("\(name): \(group)\(i + 1) is \(other.descriptor); expected \(x.descriptor) like X\(i + 1)")
                }
            }
            xs.append(x.descriptor)
        }
        return Array(repeating: xs, count: 1 + rule.states.count).flatMap { $0 }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let n = try tensorCount(context.inputCount)
        let rView = context.input(0)!, tView = context.input(1)!
        guard let r = visionReadReal(rView.data, rView.dataType, 0) else {
            throw OnyxError.unsupportedDataType("\(rule.name): R must be float or double")
        }
        let t = tView.pointer(as: Int64.self).pointee
        let stateCount = rule.states.count
        for i in 0..<n {
            let x = context.input(2 + i)!, g = context.input(2 + n + i)!
            let states = (0..<stateCount).map { context.input(2 + (2 + $0) * n + i)! }
            // Outputs the node leaves out are not written.
            let newX = context.optionalOutput(i)
            let newStates = (0..<stateCount).map { context.optionalOutput((1 + $0) * n + i) }
            switch x.dataType {
            case .float: step(Float.self, r, t, x, g, states, newX, newStates)
            case .double: step(Double.self, r, t, x, g, states, newX, newStates)
            default: throw OnyxError.unsupportedDataType("\(rule.name) does not support \(x.dataType)")
            }
        }
    }

    private func step<T: VisionElement>(
        _: T.Type, _ r: Double, _ t: Int64, _ xv: TensorView, _ gv: TensorView, _ stateViews: [TensorView],
        _ newXView: TensorView?, _ newStateViews: [TensorView?]
    ) {
        let x = xv.pointer(as: T.self), g = gv.pointer(as: T.self), newX = newXView?.pointer(as: T.self)
        let states = stateViews.map { $0.pointer(as: T.self) }, newStates = newStateViews.map { $0?.pointer(as: T.self) }
        let count = xv.elementCount
        switch rule {
        case let .adam(alpha, beta, epsilon, norm, normPost):
            let (v, h, newV, newH) = (states[0], states[1], newStates[0], newStates[1])
            let steps = Double(t)
            let rate = t > 0 ? r * (1 - pow(beta, steps)).squareRoot() / (1 - pow(alpha, steps)) : r
            for k in 0..<count {
                let xk = x[k].real(Double.self)
                let gr = norm * xk + g[k].real(Double.self)
                let vk = alpha * v[k].real(Double.self) + (1 - alpha) * gr
                let hk = beta * h[k].real(Double.self) + (1 - beta) * gr * gr
                let updated = xk - rate * vk / (hk.squareRoot() + epsilon)
                newX?[k] = T.converting((1 - normPost) * updated)
                newV?[k] = T.converting(vk)
                newH?[k] = T.converting(hk)
            }
        case let .adagrad(decay, epsilon, norm):
            let (h, newH) = (states[0], newStates[0])
            let rate = r / (1 + Double(t) * decay)
            for k in 0..<count {
                let xk = x[k].real(Double.self)
                let gr = norm * xk + g[k].real(Double.self)
                let hk = h[k].real(Double.self) + gr * gr
                newX?[k] = T.converting(xk - rate * gr / (hk.squareRoot() + epsilon))
                newH?[k] = T.converting(hk)
            }
        case let .momentum(alpha, beta, norm, nesterov):
            let (v, newV) = (states[0], newStates[0])
            let betaAdjusted = t > 0 ? beta : 1
            for k in 0..<count {
                let xk = x[k].real(Double.self)
                let gr = norm * xk + g[k].real(Double.self)
                let vk = alpha * v[k].real(Double.self) + betaAdjusted * gr
                newX?[k] = T.converting(nesterov ? xk - r * (gr + alpha * vk) : xk - r * vk)
                newV?[k] = T.converting(vk)
            }
        }
    }
}

/// `base` to an integer-valued power (the update count), without Foundation.
private func pow(_ base: Double, _ exponent: Double) -> Double {
    guard exponent.isFinite, exponent >= 0, exponent < 1e9 else { return exponent < 0 ? 1 / pow(base, -exponent) : 0 }
    var result = 1.0, b = base, e = UInt64(exponent)
    while e > 0 {
        if e & 1 == 1 { result *= b }
        b *= b
        e >>= 1
    }
    return result
}
