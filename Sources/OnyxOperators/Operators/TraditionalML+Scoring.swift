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

// What the ai.onnx.ml classifiers and regressors share: `post_transform`, the two-column scores of
// a binary model with one score, class labels, and the reading of their attributes and inputs.
// The arithmetic follows onnxruntime's CPU kernels, which skl2onnx's exports are checked against.

// MARK: - post_transform

/// `post_transform`: how raw scores become the output scores.
package enum ScoreTransform: Sendable, Equatable {
    case none, softmax, logistic, softmaxZero, probit

    /// The transform of a legacy operator's `post_transform` string attribute (default NONE).
    package init(_ context: NodeContext) throws {
        let name = try context.string("post_transform", default: "NONE")
        switch name {
        case "NONE": self = .none
        case "SOFTMAX": self = .softmax
        case "LOGISTIC": self = .logistic
        case "SOFTMAX_ZERO": self = .softmaxZero
        case "PROBIT": self = .probit
        default: throw context.attributeError("post_transform '\(name)' is not NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO or PROBIT")
        }
    }

    /// The transform of TreeEnsemble (opset 5)'s integer `post_transform`.
    package init?(code: Int) {
        switch code {
        case 0: self = .none
        case 1: self = .softmax
        case 2: self = .logistic
        case 3: self = .softmaxZero
        case 4: self = .probit
        default: return nil
        }
    }

    /// Transforms one row of two or more scores in place.
    package func apply(_ scores: UnsafeMutablePointer<Double>, count: Int) {
        switch self {
        case .none: break
        case .logistic:
            for i in 0..<count { scores[i] = Self.logistic(scores[i]) }
        case .probit:
            for i in 0..<count { scores[i] = Self.probit(scores[i]) }
        case .softmax:
            var top = -Double.greatestFiniteMagnitude
            for i in 0..<count { top = Swift.max(top, scores[i]) }
            var total = 0.0
            for i in 0..<count {
                scores[i] = exp(scores[i] - top)
                total += scores[i]
            }
            for i in 0..<count { scores[i] /= total }
        case .softmaxZero:
            // Scores of (nearly) zero stay zero; with none left every score is zero.
            var top = -Double.greatestFiniteMagnitude
            for i in 0..<count where !Self.isZero(scores[i]) { top = Swift.max(top, scores[i]) }
            var total = 0.0
            for i in 0..<count {
                scores[i] = Self.isZero(scores[i]) ? 0 : exp(scores[i] - top)
                total += scores[i]
            }
            if total > 0 {
                for i in 0..<count { scores[i] /= total }
            }
        }
    }

    /// The transform of a single score (a one-target regressor): onnxruntime applies only PROBIT there.
    package func applySingle(_ score: Double) -> Double {
        self == .probit ? Self.probit(score) : score
    }

    private static func isZero(_ value: Double) -> Bool { value > -1e-7 && value < 1e-7 }

    package static func logistic(_ value: Double) -> Double {
        let v = 1 / (1 + exp(-Swift.abs(value)))
        return value < 0 ? 1 - v : v
    }

    /// √2 · erf⁻¹(2v − 1), with erf⁻¹ by Winitzki's approximation (a = 0.147), as onnxruntime computes it.
    package static func probit(_ value: Double) -> Double {
        let x = 2 * Float(value) - 1
        let sign: Float = x < 0 ? -1 : 1
        let ln = logf((1 - x) * (1 + x))
        let a: Float = 0.147
        let v = 2 / (3.14159 * a) + 0.5 * ln
        let inverse = sign * sqrtf(-v + sqrtf(v * v - ln / a))
        return Double(Float(2).squareRoot() * inverse)
    }
}

/// How a binary classifier that computes one score `s` fills its two score columns (onnxruntime's
/// `add_second_class`).
package enum BinaryScores: Sendable {
    /// `[1 − s, s]`: the score is the positive class's probability.
    case complement
    /// `[−s, s]`: the score is a margin.
    case margin
    /// `[s, 0]`: onnxruntime writes only the first column.
    case firstOnly

    /// The two columns for score `s`. Under LOGISTIC, complement and margin give
    /// `[logistic(−s), logistic(s)]`; under PROBIT every case gives `[probit(s), 0]` (onnxruntime
    /// transforms the one score and leaves the second column unwritten); other transforms do not apply.
    package func columns(_ s: Double, _ transform: ScoreTransform) -> (Double, Double) {
        if transform == .probit { return (ScoreTransform.probit(s), 0) }
        if transform == .logistic && self != .firstOnly { return (ScoreTransform.logistic(-s), ScoreTransform.logistic(s)) }
        switch self {
        case .complement: return (1 - s, s)
        case .margin: return (-s, s)
        case .firstOnly: return (s, 0)
        }
    }
}

// MARK: - Class labels

/// A classifier's class labels. Kernels choose each row's label as an index into them and
/// ``write(_:to:)`` turns the chosen indices into the label output.
package enum ClassLabels: Sendable {
    case ints([Int64])
    case strings([String])

    /// The labels given by `intsName` or `stringsName`, or `nil` if the node gives neither.
    package static func read(_ context: NodeContext, ints intsName: String, strings stringsName: String) throws -> ClassLabels? {
        if let strings = try attributeStrings(context, stringsName), !strings.isEmpty {
            if let ints = try context.ints(intsName), !ints.isEmpty {
                throw context.attributeError("give \(intsName) or \(stringsName), not both")
            }
            return .strings(strings)
        }
        guard let ints = try context.ints(intsName) else { return nil }
        return .ints(ints.map(Int64.init))
    }

    package var count: Int {
        switch self {
        case .ints(let labels): labels.count
        case .strings(let labels): labels.count
        }
    }

    /// The element type of the label output.
    package var dataType: DataType {
        switch self {
        case .ints: .int64
        case .strings: .string
        }
    }

    /// Writes the label of each chosen class index (`indices[row]`) to the label output; string
    /// labels go through the run's string table.
    package func write(_ indices: UnsafePointer<Int32>, to output: TensorView, _ context: borrowing KernelContext) throws {
        switch self {
        case .ints(let labels):
            let y = output.pointer(as: Int64.self)
            labels.withUnsafeBufferPointer { labels in
                for row in 0..<output.elementCount { y[row] = labels[Int(indices[row])] }
            }
        case .strings(let labels):
            let table = try context.stringTable()
            let handles = labels.map(table.intern)
            let y = output.pointer(as: Int64.self)
            for row in 0..<output.elementCount { y[row] = handles[Int(indices[row])] }
        }
    }
}

// MARK: - Attributes

/// A string-list attribute (a single string counts as a list of one).
func attributeStrings(_ context: NodeContext, _ name: String) throws -> [String]? {
    switch context.attribute(name) {
    case nil: return nil
    case .strings(let v): return v
    case .string(let v): return [v]
    case let other?: throw context.attributeError("attribute '\(name)' must be strings, found \(other.kindName)")
    }
}

/// A list of reals from a `floats` attribute, or from its `<name>_as_tensor` double tensor, which
/// takes precedence (opset 3 of the tree ensembles).
func realList(_ context: NodeContext, _ name: String, tensor tensorName: String? = nil) throws -> [Double]? {
    if let tensorName, let tensor = try context.tensor(tensorName) {
        guard let values = visionRealValues(tensor), tensor.dataType == .double || tensor.dataType == .float else {
            throw context.attributeError("attribute '\(tensorName)' must be a double or float tensor, found \(tensor.dataType)")
        }
        return values
    }
    return try context.floats(name).map { $0.map(Double.init) }
}

// MARK: - Inputs

/// The rows and features of a classifier or regressor input: `[N, C]`, or `[C]` as one row.
struct FeatureRows {
    let rows: Int
    let features: Int

    /// - Throws: `shapeMismatch` naming the operator unless the shape has rank 1 or 2.
    init(_ shape: [Int], op: String) throws {
        switch shape.count {
        case 1: (rows, features) = (1, shape[0])
        case 2: (rows, features) = (shape[0], shape[1])
        default: throw OnyxError.shapeMismatch("\(op): X must be [N, C] or [C], got \(shapeText(shape))")
        }
    }
}

/// The planned input 0 of a classifier or regressor, checked to be float, double, int64 or int32.
func numericFeatures(_ inputs: [PlannedInput?], op: String) throws -> (input: PlannedInput, shape: FeatureRows) {
    guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("\(op): missing input 0 (X)") }
    guard [.float, .double, .int64, .int32].contains(x.dataType) else {
        throw OnyxError.unsupportedDataType("\(op): X must be float, double, int64 or int32, found \(x.dataType)")
    }
    return (x, try FeatureRows(x.shape, op: op))
}

/// Reads element `index` of a float, double, int64 or int32 buffer as a Float (the classifiers
/// and regressors compute in float, as onnxruntime does).
@inline(__always)
func featureValue(_ data: UnsafeRawPointer, _ dataType: DataType, _ index: Int) -> Float {
    switch dataType {
    case .float: data.assumingMemoryBound(to: Float.self)[index]
    case .double: Float(data.assumingMemoryBound(to: Double.self)[index])
    case .int64: Float(data.assumingMemoryBound(to: Int64.self)[index])
    default: Float(data.assumingMemoryBound(to: Int32.self)[index])
    }
}

/// Copies X into a float buffer, converting double and integer elements.
func copyFeatures(_ x: TensorView, to target: UnsafeMutablePointer<Float>) {
    let count = x.elementCount
    if x.dataType == .float {
        target.update(from: x.pointer(as: Float.self), count: count)
        return
    }
    for i in 0..<count { target[i] = featureValue(x.data, x.dataType, i) }
}
