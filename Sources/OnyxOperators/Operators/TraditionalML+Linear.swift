import OnyxCore
import OnyxIR
import OnyxKernels

// MARK: - Shared

/// A dense linear map `scores = X · coefficientsᵀ + intercepts`, computed per row in double.
struct LinearScores: Sendable {
    /// `[outputs, features]`, row-major.
    let coefficients: [Float]
    /// One per output (zeros when the node gives none).
    let intercepts: [Float]
    let outputs: Int
    let features: Int

    /// Scores of rows `range` of X (`[rows, features]`) into `scores` (`[rows, outputs]`).
    func score(_ x: UnsafePointer<Float>, rows range: Range<Int>, into scores: UnsafeMutablePointer<Double>) {
        coefficients.withUnsafeBufferPointer { w in
            intercepts.withUnsafeBufferPointer { b in
                for r in range {
                    let row = x + r * features
                    for o in 0..<outputs {
                        let weights = w.baseAddress! + o * features
                        var sum = Double(b[o])
                        for f in 0..<features { sum += Double(row[f]) * Double(weights[f]) }
                        scores[r * outputs + o] = sum
                    }
                }
            }
        }
    }
}

/// X as float: the input itself, or its elements converted into `scratch`.
func floatFeatures(_ x: TensorView, scratch: UnsafeMutableRawPointer?) -> UnsafePointer<Float> {
    if x.dataType == .float { return UnsafePointer(x.pointer(as: Float.self)) }
    let target = scratch!.assumingMemoryBound(to: Float.self)
    copyFeatures(x, to: target)
    return UnsafePointer(target)
}

/// Carves a kernel workspace into 64-byte aligned regions.
struct WorkspaceCarving {
    private(set) var byteCount = 0

    /// Reserves `count` elements of `T` and returns their byte offset.
    mutating func reserve<T>(_: T.Type, _ count: Int) -> Int {
        let offset = byteCount
        byteCount += (count * MemoryLayout<T>.stride + 63) & ~63
        return offset
    }
}

// MARK: - LinearClassifier

/// LinearClassifier (ai.onnx.ml 1): one score per class `X · coefficientsᵀ + intercepts`, the label
/// of the largest, and `post_transform`. One score needs two labels: the label is the second when
/// the score is positive, and the scores output has two columns, `[1 − s, s]` (or
/// `[logistic(−s), logistic(s)]` under LOGISTIC), as onnxruntime does.
package struct LinearClassifierKernel: Kernel {
    let linear: LinearScores
    let labels: ClassLabels
    let transform: ScoreTransform
    /// Score columns: the class count, or 2 for one score with two labels.
    let columns: Int

    package init(_ context: NodeContext) throws {
        guard let coefficients = try context.floats("coefficients"), !coefficients.isEmpty else {
            throw context.attributeError("missing attribute 'coefficients'")
        }
        _ = try context.int("multi_class", default: 0)
        transform = try ScoreTransform(context)
        let given = try ClassLabels.read(context, ints: "classlabels_ints", strings: "classlabels_strings")
        let intercepts = try context.floats("intercepts")
        let classes = intercepts?.count ?? given?.count ?? 0
        guard classes >= 1 else { throw context.attributeError("needs 'intercepts' or class labels to count the classes") }
        guard coefficients.count % classes == 0 else {
            throw context.attributeError("coefficients has \(coefficients.count) values, not a multiple of the \(classes) classes")
        }
        if classes == 1 {
            guard let given, given.count == 2 else {
                throw context.attributeError("one score (one intercept) needs two class labels, got \(given?.count ?? 0)")
            }
            labels = given
            columns = 2
        } else {
            guard let given, given.count == classes else {
                throw context.attributeError("has \(classes) classes (intercepts) but \(given?.count ?? 0) class labels")
            }
            labels = given
            columns = classes
        }
        linear = LinearScores(coefficients: coefficients, intercepts: intercepts ?? Array(repeating: 0, count: classes),
                              outputs: classes, features: coefficients.count / classes)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let (_, x) = try numericFeatures(inputs, op: "LinearClassifier")
        guard x.features == linear.features else {
            throw OnyxError.shapeMismatch("LinearClassifier: X has \(x.features) features; the coefficients expect \(linear.features)")
        }
        return [TensorDescriptor(labels.dataType, [x.rows]), TensorDescriptor(.float, [x.rows, columns])]
    }

    /// The workspace: X as float (unless it is float), the raw scores, the chosen class indices.
    private func carving(rows: Int, converting: Bool) -> (WorkspaceCarving, features: Int, scores: Int, chosen: Int) {
        var carving = WorkspaceCarving()
        let features = carving.reserve(Float.self, converting ? rows * linear.features : 0)
        let scores = carving.reserve(Double.self, rows * linear.outputs)
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
        let features = floatFeatures(x, scratch: context.workspace! + featuresOffset)
        let scores = (context.workspace! + scoresOffset).assumingMemoryBound(to: Double.self)
        let chosen = (context.workspace! + chosenOffset).assumingMemoryBound(to: Int32.self)
        let z = context.optionalOutput(1)?.pointer(as: Float.self)
        let classes = linear.outputs
        context.pool.parallelRanges(rows, minimumChunk: 64) { range in
            linear.score(features, rows: range, into: scores)
            for r in range {
                let s = scores + r * classes
                if classes == 1 {
                    chosen[r] = s[0] > 0 ? 1 : 0
                    guard let z else { continue }
                    let (negative, positive) = BinaryScores.complement.columns(s[0], transform)
                    z[r * 2] = Float(negative)
                    z[r * 2 + 1] = Float(positive)
                    continue
                }
                var best = 0
                for c in 1..<classes where s[c] > s[best] { best = c }
                chosen[r] = Int32(best)
                guard let z else { continue }
                transform.apply(s, count: classes)
                for c in 0..<classes { z[r * classes + c] = Float(s[c]) }
            }
        }
        if let y = context.optionalOutput(0) { try labels.write(chosen, to: y, context) }
    }
}

// MARK: - LinearRegressor

/// LinearRegressor (ai.onnx.ml 1): `X · coefficientsᵀ + intercepts` per target, then
/// `post_transform` (onnxruntime applies only PROBIT to a single target).
package struct LinearRegressorKernel: Kernel {
    let linear: LinearScores
    let transform: ScoreTransform

    package init(_ context: NodeContext) throws {
        guard let coefficients = try context.floats("coefficients"), !coefficients.isEmpty else {
            throw context.attributeError("missing attribute 'coefficients'")
        }
        let targets = try context.int("targets", default: 1)
        guard targets >= 1, coefficients.count % targets == 0 else {
            throw context.attributeError("coefficients has \(coefficients.count) values, not a multiple of targets (\(targets))")
        }
        let intercepts = try context.floats("intercepts") ?? []
        guard intercepts.isEmpty || intercepts.count == targets else {
            throw context.attributeError("intercepts has \(intercepts.count) values; targets is \(targets)")
        }
        transform = try ScoreTransform(context)
        linear = LinearScores(coefficients: coefficients, intercepts: intercepts.isEmpty ? Array(repeating: 0, count: targets) : intercepts,
                              outputs: targets, features: coefficients.count / targets)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let (_, x) = try numericFeatures(inputs, op: "LinearRegressor")
        guard x.features == linear.features else {
            throw OnyxError.shapeMismatch("LinearRegressor: X has \(x.features) features; the coefficients expect \(linear.features)")
        }
        return [TensorDescriptor(.float, [x.rows, linear.outputs])]
    }

    /// The workspace: X as float (unless it is float) and the raw scores.
    private func carving(rows: Int, converting: Bool) -> (WorkspaceCarving, features: Int, scores: Int) {
        var carving = WorkspaceCarving()
        let features = carving.reserve(Float.self, converting ? rows * linear.features : 0)
        let scores = carving.reserve(Double.self, rows * linear.outputs)
        return (carving, features, scores)
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        carving(rows: outputs[0].shape[0], converting: inputs[0]?.dataType != .float).0.byteCount
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0).pointer(as: Float.self)
        let rows = x.rank == 1 ? 1 : x.shape[0], targets = linear.outputs
        if rows == 0 { return }
        let (_, featuresOffset, scoresOffset) = carving(rows: rows, converting: x.dataType != .float)
        let features = floatFeatures(x, scratch: context.workspace! + featuresOffset)
        let scores = (context.workspace! + scoresOffset).assumingMemoryBound(to: Double.self)
        context.pool.parallelRanges(rows, minimumChunk: 64) { range in
            linear.score(features, rows: range, into: scores)
            for r in range {
                let s = scores + r * targets
                if targets == 1 {
                    s[0] = transform.applySingle(s[0])
                } else {
                    transform.apply(s, count: targets)
                }
                for t in 0..<targets { y[r * targets + t] = Float(s[t]) }
            }
        }
    }
}
