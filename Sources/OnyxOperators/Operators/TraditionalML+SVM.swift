import OnyxCore
import OnyxIR
import OnyxKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Kernel function

/// The kernel function of SVMClassifier and SVMRegressor (`kernel_type`, `kernel_params`).
struct SupportVectorKernel: Sendable {
    enum Function: Sendable { case linear, polynomial, radialBasis, sigmoid }

    let function: Function
    let gamma: Double
    let coef0: Double
    let degree: Double

    init(_ context: NodeContext) throws {
        let name = try context.string("kernel_type", default: "LINEAR")
        switch name {
        case "LINEAR": function = .linear
        case "POLY": function = .polynomial
        case "RBF": function = .radialBasis
        case "SIGMOID": function = .sigmoid
        default: throw context.attributeError("kernel_type '\(name)' is not LINEAR, POLY, RBF or SIGMOID")
        }
        let parameters = try context.floats("kernel_params") ?? []
        guard parameters.isEmpty || parameters.count == 3 else {
            throw context.attributeError("kernel_params must hold gamma, coef0 and degree, got \(parameters.count) values")
        }
        (gamma, coef0, degree) = parameters.isEmpty ? (0, 0, 0) : (Double(parameters[0]), Double(parameters[1]), Double(parameters[2]))
    }

    /// K(x, v) for two vectors of `count` features.
    @inline(__always)
    func callAsFunction(_ x: UnsafePointer<Float>, _ v: UnsafePointer<Float>, count: Int) -> Double {
        if function == .radialBasis {
            var sum = 0.0
            for f in 0..<count {
                let d = Double(x[f]) - Double(v[f])
                sum += d * d
            }
            return exp(-gamma * sum)
        }
        var dot = 0.0
        for f in 0..<count { dot += Double(x[f]) * Double(v[f]) }
        switch function {
        case .linear, .radialBasis: return dot
        case .polynomial: return pow(gamma * dot + coef0, degree)
        case .sigmoid: return tanh(gamma * dot + coef0)
        }
    }
}

/// The positive count of vectors in a support-vector attribute holding `total` floats for `vectors` vectors.
private func featureCount(_ context: NodeContext, supportVectors total: Int, vectors: Int) throws -> Int {
    guard total > 0, total % vectors == 0 else {
        throw context.attributeError("support_vectors has \(total) values, not a positive multiple of the \(vectors) support vectors")
    }
    return total / vectors
}

// MARK: - SVMClassifier

/// SVMClassifier (ai.onnx.ml 1): libsvm's one-against-one classifier over support vectors (with
/// Platt's probabilities when `prob_a`/`prob_b` are given), or a liblinear model (no support
/// vectors: one linear score per class), scored as onnxruntime does.
package struct SVMClassifierKernel: Kernel {
    let kernel: SupportVectorKernel
    let labels: ClassLabels
    let transform: ScoreTransform
    let classes: Int
    let features: Int
    /// `[classes − 1, vectors]` with support vectors; `[classes, features]` without.
    let coefficients: [Float]
    let rho: [Float]
    /// Support vectors, `[vectors, features]`; empty for a liblinear model.
    let supportVectors: [Float]
    /// The first support vector of each class, and one past the last.
    let classStarts: [Int]
    let probabilityA: [Float]
    let probabilityB: [Float]
    let weightsArePositive: Bool

    var vectorCount: Int { classStarts.last ?? 0 }
    var hasSupportVectors: Bool { vectorCount > 0 }
    var pairCount: Int { classes * (classes - 1) / 2 }
    var hasProbabilities: Bool { !probabilityA.isEmpty }

    /// Score columns: one per class, but without probabilities a support-vector model gives one
    /// per class pair (two for two classes).
    var columns: Int { hasSupportVectors && !hasProbabilities ? (classes == 2 ? 2 : pairCount) : classes }

    package init(_ context: NodeContext) throws {
        kernel = try SupportVectorKernel(context)
        transform = try ScoreTransform(context)
        guard let labels = try ClassLabels.read(context, ints: "classlabels_ints", strings: "classlabels_strings"), labels.count >= 2 else {
            throw context.attributeError("needs two or more class labels (classlabels_ints)")
        }
        self.labels = labels
        classes = labels.count
        guard let coefficients = try context.floats("coefficients"), !coefficients.isEmpty else {
            throw context.attributeError("missing attribute 'coefficients'")
        }
        self.coefficients = coefficients
        guard let rho = try context.floats("rho"), !rho.isEmpty else { throw context.attributeError("missing attribute 'rho'") }
        self.rho = rho
        probabilityA = try context.floats("prob_a") ?? []
        probabilityB = try context.floats("prob_b") ?? []
        let perClass = try context.ints("vectors_per_class") ?? []
        guard perClass.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }) else {
            throw context.attributeError("vectors_per_class \(shapeText(perClass)) must not be negative")
        }
        var starts = [0]
        for count in perClass { starts.append(starts.last! + count) }
        let vectors = starts.last!
        weightsArePositive = coefficients.allSatisfy { $0 >= 0 }
        if vectors > 0 {
            guard perClass.count == classes else {
                throw context.attributeError("vectors_per_class has \(perClass.count) entries for \(classes) classes")
            }
            classStarts = starts
            supportVectors = try context.floats("support_vectors") ?? []
            features = try featureCount(context, supportVectors: supportVectors.count, vectors: vectors)
            guard coefficients.count == (classes - 1) * vectors else {
                throw context.attributeError(
                    "coefficients has \(coefficients.count) values; \(classes) classes and \(vectors) support vectors need \((classes - 1) * vectors)")
            }
            let pairs = classes * (classes - 1) / 2
            guard rho.count == pairs else { throw context.attributeError("rho has \(rho.count) values for \(pairs) class pairs") }
            guard probabilityA.count == probabilityB.count, probabilityA.isEmpty || probabilityA.count == pairs else {
                throw context.attributeError(
                    "prob_a (\(probabilityA.count) values) and prob_b (\(probabilityB.count)) must both be empty or have one value per class pair (\(pairs))")
            }
        } else {
            classStarts = []
            supportVectors = []
            guard coefficients.count % classes == 0 else {
                throw context.attributeError("coefficients has \(coefficients.count) values, not a multiple of the \(classes) classes")
            }
            features = coefficients.count / classes
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let (_, x) = try numericFeatures(inputs, op: "SVMClassifier")
        guard x.features == features else {
            throw OnyxError.shapeMismatch("SVMClassifier: X has \(x.features) features; the model expects \(features)")
        }
        return [TensorDescriptor(labels.dataType, [x.rows]), TensorDescriptor(.float, [x.rows, columns])]
    }

    private func carving(rows: Int, converting: Bool) -> (WorkspaceCarving, features: Int, scores: Int, chosen: Int) {
        var carving = WorkspaceCarving()
        let features = carving.reserve(Float.self, converting ? rows * self.features : 0)
        let scores = carving.reserve(Float.self, rows * columns)
        let chosen = carving.reserve(Int32.self, rows)
        return (carving, features, scores, chosen)
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        carving(rows: outputs[0].shape[0], converting: inputs[0]?.dataType != .float).0.byteCount
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!
        let rows = x.rank == 1 ? 1 : x.shape[0]
        if rows == 0 { return }
        let (_, featuresOffset, scoresOffset, chosenOffset) = carving(rows: rows, converting: x.dataType != .float)
        let input = floatFeatures(x, scratch: context.workspace! + featuresOffset)
        let scores = (context.workspace! + scoresOffset).assumingMemoryBound(to: Float.self)
        let chosen = (context.workspace! + chosenOffset).assumingMemoryBound(to: Int32.self)
        // Per task: the kernel values, the pair scores, the votes and the class probabilities (with
        // support vectors; rho holds a value per pair, so the pairs are as many as the model holds).
        let scratchCount = hasSupportVectors ? vectorCount + pairCount + 2 * classes : classes
        context.pool.parallelRanges(rows, minimumChunk: 16) { range in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: scratchCount) { scratch in
                for r in range {
                    chosen[r] = Int32(classify(input + r * features, into: scores + r * columns, scratch: scratch.baseAddress!))
                }
            }
        }
        if let z = context.optionalOutput(1) { z.pointer(as: Float.self).update(from: scores, count: rows * columns) }
        if let y = context.optionalOutput(0) { try labels.write(chosen, to: y, context) }
    }

    /// Scores one row into `z` (`columns` values) and returns the index of its class.
    private func classify(_ x: UnsafePointer<Float>, into z: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Double>) -> Int {
        coefficients.withUnsafeBufferPointer { coefficients in
            let coefficients = coefficients.baseAddress!
            if !hasSupportVectors { return linearClassify(x, coefficients, z, scratch) }
            let vectors = vectorCount, pairs = pairCount
            let k = scratch, pairScores = scratch + vectors, votes = scratch + vectors + pairs
            supportVectors.withUnsafeBufferPointer { sv in
                for v in 0..<vectors { k[v] = kernel(x, sv.baseAddress! + v * features, count: features) }
            }
            for c in 0..<classes { votes[c] = 0 }
            // Pair (i, j): class i's vectors weighted by coefficient row j − 1, class j's by row i.
            var pair = 0
            for i in 0..<classes {
                for j in (i + 1)..<max(i + 1, classes) {
                    var sum = Double(rho[pair])
                    for v in classStarts[i]..<classStarts[i + 1] { sum += Double(coefficients[(j - 1) * vectors + v]) * k[v] }
                    for v in classStarts[j]..<classStarts[j + 1] { sum += Double(coefficients[i * vectors + v]) * k[v] }
                    pairScores[pair] = sum
                    votes[sum > 0 ? i : j] += 1
                    pair += 1
                }
            }
            var best = 0
            for c in 1..<classes where votes[c] > votes[best] { best = c }

            if hasProbabilities {
                let probabilities = votes + classes
                coupledProbabilities(pairScores, into: probabilities)
                transform.apply(probabilities, count: classes)
                for c in 0..<classes { z[c] = Float(probabilities[c]) }
            } else if classes == 2 {
                // onnxruntime writes the margin as [−s, s] without a transform, else as a probability.
                let (first, second) = (transform == .none ? BinaryScores.margin : .complement).columns(pairScores[0], transform)
                z[0] = Float(first)
                z[1] = Float(second)
            } else {
                transform.apply(pairScores, count: pairs)
                for p in 0..<pairs { z[p] = Float(pairScores[p]) }
            }
            return best
        }
    }

    /// A liblinear model: one score per class, `x · coefficients[c] + rho[0]`.
    private func linearClassify(
        _ x: UnsafePointer<Float>, _ coefficients: UnsafePointer<Float>, _ z: UnsafeMutablePointer<Float>,
        _ scores: UnsafeMutablePointer<Double>
    ) -> Int {
        for c in 0..<classes {
            var sum = Double(rho[0])
            for f in 0..<features { sum += Double(x[f]) * Double(coefficients[c * features + f]) }
            scores[c] = sum
        }
        var best = 0
        for c in 1..<classes where scores[c] > scores[best] { best = c }
        if classes == 2 {
            // onnxruntime's two-class rule: the positive label once the top score clears 0.5
            // (all weights positive) or 0 (mixed weights), else the top class.
            let top = scores[best]
            if (weightsArePositive && top >= 0.5) || (!weightsArePositive && top > 0) { best = 1 }
        }
        transform.apply(scores, count: classes)
        for c in 0..<classes { z[c] = Float(scores[c]) }
        return best
    }

    /// Platt's pairwise probabilities coupled into class probabilities (Wu, Lin and Weng 2004,
    /// method 2, as libsvm and onnxruntime compute it in float).
    private func coupledProbabilities(_ pairScores: UnsafePointer<Double>, into p: UnsafeMutablePointer<Double>) {
        let k = classes
        // r[i, j]: the probability that a row of class i or j is of class i.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: k * k * 2 + 2 * k) { buffer in
            let r = buffer.baseAddress!, q = r + k * k, qp = q + k * k, pf = qp + k
            var pair = 0
            for i in 0..<k {
                for j in (i + 1)..<max(i + 1, k) {
                    let val = 1 - Float(ScoreTransform.logistic(Double(Float(pairScores[pair]) * probabilityA[pair] + probabilityB[pair])))
                    let clamped = Swift.min(Swift.max(val, 1e-7), 1 - 1e-7)
                    r[i * k + j] = clamped
                    r[j * k + i] = 1 - clamped
                    pair += 1
                }
            }
            for i in 0..<k {
                pf[i] = 1 / Float(k)
                q[i * k + i] = 0
                for j in 0..<k where j != i {
                    q[i * k + i] += r[j * k + i] * r[j * k + i]
                    q[i * k + j] = -r[j * k + i] * r[i * k + j]
                }
            }
            let epsilon = 0.005 / Float(k)
            for _ in 0..<100 {
                var pqp: Float = 0
                for i in 0..<k {
                    qp[i] = 0
                    for j in 0..<k { qp[i] += q[i * k + j] * pf[j] }
                    pqp += pf[i] * qp[i]
                }
                var largest: Float = 0
                for i in 0..<k { largest = Swift.max(largest, Swift.abs(qp[i] - pqp)) }
                if largest < epsilon { break }
                for i in 0..<k {
                    let diff = (-qp[i] + pqp) / q[i * k + i]
                    pf[i] += diff
                    pqp = (pqp + diff * (diff * q[i * k + i] + 2 * qp[i])) / (1 + diff) / (1 + diff)
                    for j in 0..<k {
                        qp[j] = (qp[j] + diff * q[i * k + j]) / (1 + diff)
                        pf[j] /= 1 + diff
                    }
                }
            }
            for i in 0..<k { p[i] = Double(pf[i]) }
        }
    }
}

// MARK: - SVMRegressor

/// SVMRegressor (ai.onnx.ml 1): `Σ coefficients[v] · K(x, support_vectors[v]) + rho[0]`, or a
/// linear model without support vectors; `one_class` maps the result to ±1. Like onnxruntime it
/// leaves `post_transform` unapplied.
package struct SVMRegressorKernel: Kernel {
    let kernel: SupportVectorKernel
    let coefficients: [Float]
    let supportVectors: [Float]
    let vectors: Int
    let features: Int
    let rho: Float
    let oneClass: Bool

    package init(_ context: NodeContext) throws {
        kernel = try SupportVectorKernel(context)
        _ = try ScoreTransform(context)
        guard let coefficients = try context.floats("coefficients"), !coefficients.isEmpty else {
            throw context.attributeError("missing attribute 'coefficients'")
        }
        self.coefficients = coefficients
        guard let rho = try context.floats("rho"), let first = rho.first else { throw context.attributeError("missing attribute 'rho'") }
        self.rho = first
        oneClass = try context.int("one_class", default: 0) != 0
        vectors = try context.int("n_supports", default: 0)
        guard vectors >= 0 else { throw context.attributeError("n_supports must not be negative, got \(vectors)") }
        if vectors > 0 {
            supportVectors = try context.floats("support_vectors") ?? []
            features = try featureCount(context, supportVectors: supportVectors.count, vectors: vectors)
            guard coefficients.count == vectors else {
                throw context.attributeError("coefficients has \(coefficients.count) values for \(vectors) support vectors")
            }
        } else {
            supportVectors = []
            features = coefficients.count
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let (_, x) = try numericFeatures(inputs, op: "SVMRegressor")
        guard x.features == features else {
            throw OnyxError.shapeMismatch("SVMRegressor: X has \(x.features) features; the model expects \(features)")
        }
        return [TensorDescriptor(.float, [x.rows, 1])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        inputs[0]?.dataType == .float ? 0 : outputs[0].shape[0] * features * MemoryLayout<Float>.stride
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0).pointer(as: Float.self)
        let rows = x.rank == 1 ? 1 : x.shape[0]
        if rows == 0 { return }
        let input = floatFeatures(x, scratch: context.workspace)
        context.pool.parallelRanges(rows, minimumChunk: 16) { range in
            coefficients.withUnsafeBufferPointer { coefficients in
                supportVectors.withUnsafeBufferPointer { sv in
                    for r in range {
                        let row = input + r * features
                        var sum = Double(rho)
                        if vectors > 0 {
                            for v in 0..<vectors { sum += Double(coefficients[v]) * kernel(row, sv.baseAddress! + v * features, count: features) }
                        } else {
                            for f in 0..<features { sum += Double(row[f]) * Double(coefficients[f]) }
                        }
                        y[r] = oneClass ? (sum > 0 ? 1 : -1) : Float(sum)
                    }
                }
            }
        }
    }
}
