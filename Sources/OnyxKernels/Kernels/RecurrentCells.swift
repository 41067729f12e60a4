import OnyxCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The element types the recurrent, attention and loss kernels compute in: Float (also for
/// float16 data) and Double.
@usableFromInline package protocol RecurrentScalar: BinaryFloatingPoint, TensorElement {
    static func exponential(_ x: Self) -> Self
    static func hyperbolicTangent(_ x: Self) -> Self
    static func logarithm(_ x: Self) -> Self
}

// `exponential` and `logarithm` come from ``WideFloat``.
extension Float: RecurrentScalar {
    /// `tanh(x) = 1 − 2 / (e²ˣ + 1)`, vectorisable; near 0 the absolute error stays around 1e-7.
    @inlinable @inline(__always) package static func hyperbolicTangent(_ x: Float) -> Float {
        1 - 2 / (NormalizationLoops.exp(2 * x) + 1)
    }
}

extension Double: RecurrentScalar {
    @inlinable @inline(__always) package static func hyperbolicTangent(_ x: Double) -> Double { tanh(x) }
}

/// An activation function of the ONNX recurrent operators (the `activations` attribute).
@usableFromInline package struct RecurrentActivation: Sendable, Equatable {
    @usableFromInline package enum Function: String, Sendable, CaseIterable {
        case relu = "Relu", tanh = "Tanh", sigmoid = "Sigmoid", affine = "Affine", leakyRelu = "LeakyRelu"
        case thresholdedRelu = "ThresholdedRelu", scaledTanh = "ScaledTanh", hardSigmoid = "HardSigmoid"
        case elu = "Elu", softsign = "Softsign", softplus = "Softplus"

        /// How many of `activation_alpha` and `activation_beta` the function takes, and their defaults.
        package var parameters: (alpha: Float?, beta: Float?) {
            switch self {
            case .relu, .tanh, .sigmoid, .softsign, .softplus: (nil, nil)
            case .affine: (1, 0)
            case .leakyRelu: (0.01, nil)
            case .thresholdedRelu: (1, nil)
            case .scaledTanh: (1, 1)
            case .hardSigmoid: (0.2, 0.5)
            case .elu: (1, nil)
            }
        }

        /// The function named `name`, matched without regard to case.
        package static func named(_ name: String) -> Function? {
            allCases.first { $0.rawValue.lowercased() == name.lowercased() }
        }
    }

    @usableFromInline package var function: Function
    @usableFromInline package var alpha: Float = 0
    @usableFromInline package var beta: Float = 0

    package static let sigmoid = RecurrentActivation(function: .sigmoid)
    package static let tanh = RecurrentActivation(function: .tanh)

    /// Parses `activations`, `activation_alpha` and `activation_beta`: alphas and betas are
    /// consumed in order by the functions that take them; missing ones take ONNX's defaults.
    ///
    /// - Returns: `perDirection · directions` activations; a list of `perDirection` names is
    ///   used for every direction.
    package static func parse(
        names: [String]?, alphas: [Float]?, betas: [Float]?, defaults: [RecurrentActivation], directions: Int
    ) throws -> [RecurrentActivation] {
        let perDirection = defaults.count
        guard let names else { return Array([[RecurrentActivation]](repeating: defaults, count: directions).joined()) }
        guard names.count == perDirection || names.count == perDirection * directions else {
            throw OnyxError.invalidAttribute(
                "activations lists \(names.count) functions; expected \(perDirection) per direction for \(directions) direction(s)")
        }
        var alphaIterator = (alphas ?? []).makeIterator(), betaIterator = (betas ?? []).makeIterator()
        var result: [RecurrentActivation] = []
        for name in names {
            guard let function = Function.named(name) else {
                throw OnyxError.invalidAttribute(
                    "unknown activation '\(name)'; supported: \(Function.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var activation = RecurrentActivation(function: function)
            let (alpha, beta) = function.parameters
            if let alpha { activation.alpha = alphaIterator.next() ?? alpha }
            if let beta { activation.beta = betaIterator.next() ?? beta }
            result.append(activation)
        }
        if result.count < perDirection * directions {
            result = Array([[RecurrentActivation]](repeating: result, count: directions).joined())
        }
        return result
    }

    /// Applies the function in place to `count` values, clipping them to `±clip` first if given.
    ///
    /// - Parameter isa: The vector kernels float32 sigmoid and tanh run on.
    @inlinable package func apply<S: RecurrentScalar>(_ values: UnsafeMutablePointer<S>, count: Int, clip: S?, isa: KernelISA) {
        if S.self == Float.self, clip == nil, function == .sigmoid || function == .tanh {
            applyVectorised(UnsafeMutableRawPointer(values).assumingMemoryBound(to: Float.self), count: count, isa: isa)
            return
        }
        if let clip {
            for i in 0..<count { values[i] = min(max(values[i], -clip), clip) }
        }
        let a = S(alpha), b = S(beta)
        switch function {
        case .relu: for i in 0..<count { values[i] = max(values[i], 0) }
        case .tanh: for i in 0..<count { values[i] = S.hyperbolicTangent(values[i]) }
        case .sigmoid: for i in 0..<count { values[i] = 1 / (1 + S.exponential(-values[i])) }
        case .affine: for i in 0..<count { values[i] = a * values[i] + b }
        case .leakyRelu: for i in 0..<count { values[i] = values[i] >= 0 ? values[i] : a * values[i] }
        case .thresholdedRelu: for i in 0..<count { values[i] = values[i] > a ? values[i] : 0 }
        case .scaledTanh: for i in 0..<count { values[i] = a * S.hyperbolicTangent(b * values[i]) }
        case .hardSigmoid: for i in 0..<count { values[i] = min(max(a * values[i] + b, 0), 1) }
        case .elu: for i in 0..<count { values[i] = values[i] >= 0 ? values[i] : a * (S.exponential(values[i]) - 1) }
        case .softsign: for i in 0..<count { values[i] = values[i] / (1 + abs(values[i])) }
        case .softplus:
            for i in 0..<count {
                let x = values[i]
                // log(1 + eˣ) without overflow for large x.
                values[i] = x > 20 ? x : S.logarithm(1 + S.exponential(x))
            }
        }
    }
}

extension RecurrentActivation {
    /// Float32 sigmoid, and tanh as `2·sigmoid(2x) − 1`, through the vector kernels: the gates of
    /// a batch-1 LSTM are a few hundred values per step, and scalar `expf` took a tenth of its time.
    @usableFromInline package func applyVectorised(_ x: UnsafeMutablePointer<Float>, count: Int, isa: KernelISA) {
        let isTanh = function == .tanh
        if isTanh { for i in 0..<count { x[i] += x[i] } }
        FusedActivation.sigmoid.apply(x, count: count, isa: isa)
        if isTanh { for i in 0..<count { x[i] = 2 * x[i] - 1 } }
    }
}

/// The cell an ONNX recurrent operator runs at each time step.
@usableFromInline package enum RecurrentCell: Sendable, Equatable {
    /// `Hₜ = f(Xₜ·Wᵀ + Hₜ₋₁·Rᵀ + Wb + Rb)`.
    case rnn
    /// Gates z, r, h; with `linearBeforeReset` the reset gate multiplies `Hₜ₋₁·R_hᵀ + Rb_h`.
    case gru(linearBeforeReset: Bool)
    /// Gates i, o, f, c; with `inputForget` the forget gate is `1 − i`.
    case lstm(inputForget: Bool)

    /// Gate blocks of `hidden_size` rows in W and R.
    @usableFromInline package var gates: Int {
        switch self {
        case .rnn: 1
        case .gru: 3
        case .lstm: 4
        }
    }

    /// Activation functions per direction (f; f, g; f, g, h).
    package var activationsPerDirection: Int { gates == 4 ? 3 : gates == 3 ? 2 : 1 }
}

/// The extents of one recurrent operator run.
@usableFromInline package struct RecurrentShape: Equatable {
    @usableFromInline package var sequenceLength: Int
    @usableFromInline package var batch: Int
    package var inputSize: Int
    @usableFromInline package var hidden: Int
    @usableFromInline package var directions: Int
    /// `layout = 1`: X and Y are batch-major, and so are the states.
    @usableFromInline package var batchFirst: Bool

    /// Offset of row (t, b) of X (in rows of `inputSize`).
    @inlinable @inline(__always) package func inputRow(_ t: Int, _ b: Int) -> Int {
        batchFirst ? b * sequenceLength + t : t * batch + b
    }

    /// Offset of Y[t, d, b, :] (or Y[b, t, d, :]).
    @inlinable @inline(__always) package func outputOffset(_ t: Int, _ d: Int, _ b: Int) -> Int {
        (batchFirst ? (b * sequenceLength + t) * directions + d : (t * directions + d) * batch + b) * hidden
    }

    /// Offset of a state's [d, b, :] (or [b, d, :]).
    @inlinable @inline(__always) package func stateOffset(_ d: Int, _ b: Int) -> Int {
        (batchFirst ? b * directions + d : d * batch + b) * hidden
    }

    package init(sequenceLength: Int, batch: Int, inputSize: Int, hidden: Int, directions: Int, batchFirst: Bool) {
        self.sequenceLength = sequenceLength
        self.batch = batch
        self.inputSize = inputSize
        self.hidden = hidden
        self.directions = directions
        self.batchFirst = batchFirst
    }
}

/// `c[rows × n] = a[rows × k] · Wᵀ` for one weight matrix `W` (n × k): the products a
/// recurrent direction takes, as values so a run builds no closures.
@usableFromInline package protocol RecurrentProduct {
    associatedtype Scalar: RecurrentScalar
    func multiply(_ a: UnsafePointer<Scalar>, rows: Int, into c: UnsafeMutablePointer<Scalar>)
}

/// The float product through the SGEMM driver, `W` packed as B panels; rows beyond one are
/// packed as A strips into `strips`.
@usableFromInline package struct PackedRecurrentProduct: RecurrentProduct {
    package var panels: PackedPanels
    package var isa: KernelISA
    package var strips: UnsafeMutablePointer<Float>
    package var pool: ComputePool

    package init(_ panels: PackedPanels, isa: KernelISA, strips: UnsafeMutablePointer<Float>, pool: ComputePool) {
        self.panels = panels
        self.isa = isa
        self.strips = strips
        self.pool = pool
    }

    @usableFromInline package func multiply(_ a: UnsafePointer<Float>, rows: Int, into c: UnsafeMutablePointer<Float>) {
        if rows == 1 {
            Gemm.multiplyRow(isa: isa, n: panels.extent, k: panels.depth, a: a, b: panels, c: c,
                             accumulate: false, epilogue: .none, pool: pool)
            return
        }
        let mr = Gemm.mr(isa)
        Gemm.packA(a, m: rows, k: panels.depth, ld: panels.depth, transposed: false, mr: mr, isa: isa, into: strips)
        let packed = PackedPanels(extent: rows, depth: panels.depth, width: mr, base: UnsafePointer(strips), owner: nil)
        Gemm.multiply(isa: isa, m: rows, n: panels.extent, k: panels.depth, a: packed, b: panels, c: c,
                      ldc: panels.extent, accumulate: false, epilogue: .none, pool: pool)
    }
}

/// The product straight from a row-major `W` of `n` rows of `k` (double precision).
@usableFromInline package struct DirectRecurrentProduct<Scalar: RecurrentScalar>: RecurrentProduct {
    @usableFromInline package var matrix: UnsafePointer<Scalar>
    @usableFromInline package var n: Int
    @usableFromInline package var k: Int

    @inlinable package init(_ matrix: UnsafePointer<Scalar>, n: Int, k: Int) {
        self.matrix = matrix
        self.n = n
        self.k = k
    }

    @inlinable package func multiply(_ a: UnsafePointer<Scalar>, rows: Int, into c: UnsafeMutablePointer<Scalar>) {
        for row in 0..<rows {
            let ar = a + row * k
            for j in 0..<n {
                let wr = matrix + j * k
                var sum: Scalar = 0
                for p in 0..<k { sum += ar[p] * wr[p] }
                c[row * n + j] = sum
            }
        }
    }
}

/// Valid steps per batch entry: all of them, or ONNX's `sequence_lens` (checked by the caller
/// to lie in `0...sequenceLength`).
@usableFromInline package struct RecurrentLengths {
    @usableFromInline package var full: Int
    @usableFromInline package var given: UnsafePointer<Int32>?

    @inlinable package init(full: Int, given: UnsafePointer<Int32>?) {
        self.full = full
        self.given = given
    }

    @inlinable @inline(__always) package subscript(_ b: Int) -> Int { given.map { Int($0[b]) } ?? full }

    /// Whether some entry of `batch` has fewer than all steps.
    @inlinable package func isRagged(batch: Int) -> Bool {
        guard let given else { return false }
        for b in 0..<batch where Int(given[b]) < full { return true }
        return false
    }
}

/// One direction of an RNN, GRU or LSTM over the whole sequence.
@usableFromInline package struct RecurrentDirection<S: RecurrentScalar> {
    @usableFromInline package var cell: RecurrentCell
    @usableFromInline package var shape: RecurrentShape
    @usableFromInline package var direction: Int
    @usableFromInline package var reverse: Bool
    /// f, g, h for this direction (a slice of the operator's list: no copy per run).
    @usableFromInline package var activations: ArraySlice<RecurrentActivation>
    @usableFromInline package var clip: S?
    /// Valid steps per batch entry.
    @usableFromInline package var lengths: RecurrentLengths
    /// The vector kernels the float32 activations run on.
    @usableFromInline package var isa: KernelISA

    /// Scalars of scratch `run` needs.
    @inlinable package static func scratchCount(_ shape: RecurrentShape, cell: RecurrentCell) -> Int {
        let g = cell.gates * shape.hidden
        return shape.sequenceLength * shape.batch * g + shape.batch * g + 4 * shape.batch * shape.hidden + g + 64
    }

    /// Runs the direction.
    ///
    /// - Parameters:
    ///   - x: The input sequence, in the layout `shape` says.
    ///   - inputProduct: `X·Wᵀ` (n = gates · hidden).
    ///   - hiddenProduct: `H·Rᵀ` (n = gates · hidden), or only the z and r blocks for GRU.
    ///   - candidateProduct: GRU only: `·R_hᵀ` (n = hidden).
    ///   - bias: This direction's `[Wb, Rb]` (2 · gates · hidden), if given.
    ///   - peepholes: LSTM's `[P_i, P_o, P_f]`, if given.
    ///   - initialH, initialC: The whole initial state tensors, if given.
    ///   - y, yH, yC: The whole output tensors, where present.
    @inlinable package func run<P: RecurrentProduct>(
        x: UnsafePointer<S>, inputProduct: P, hiddenProduct: P, candidateProduct: P?,
        bias: UnsafePointer<S>?, peepholes: UnsafePointer<S>?,
        initialH: UnsafePointer<S>?, initialC: UnsafePointer<S>?,
        y: UnsafeMutablePointer<S>?, yH: UnsafeMutablePointer<S>?, yC: UnsafeMutablePointer<S>?,
        scratch: UnsafeMutablePointer<S>
    ) where P.Scalar == S {
        let (steps, batch, hidden) = (shape.sequenceLength, shape.batch, shape.hidden)
        let gateWidth = cell.gates * hidden
        let xGates = scratch
        let hGates = xGates + steps * batch * gateWidth
        let h = hGates + batch * gateWidth
        let c = h + batch * hidden
        let temporary = c + batch * hidden
        let candidate = temporary + batch * hidden
        let combinedBias = candidate + batch * hidden

        // Biases that add straight onto X·Wᵀ; GRU's linear-before-reset R_bh is added in the step.
        var candidateBias: UnsafePointer<S>?
        for j in 0..<gateWidth {
            combinedBias[j] = bias.map { $0[j] + $0[gateWidth + j] } ?? 0
        }
        if case .gru(true) = cell, let bias {
            for j in 2 * hidden..<3 * hidden { combinedBias[j] = bias[j] }
            candidateBias = bias + gateWidth + 2 * hidden
        }

        if steps * batch > 0 { inputProduct.multiply(x, rows: steps * batch, into: xGates) }
        for row in 0..<steps * batch {
            let r = xGates + row * gateWidth
            for j in 0..<gateWidth { r[j] += combinedBias[j] }
        }
        for b in 0..<batch {
            let state = shape.stateOffset(direction, b)
            for j in 0..<hidden {
                h[b * hidden + j] = initialH?[state + j] ?? 0
                c[b * hidden + j] = initialC?[state + j] ?? 0
            }
        }

        let first = activations.startIndex
        let f = activations[first]
        for s in 0..<steps {
            hiddenProduct.multiply(UnsafePointer(h), rows: batch, into: hGates)
            switch cell {
            case .rnn:
                for b in 0..<batch where s < lengths[b] {
                    let t = reverse ? lengths[b] - 1 - s : s
                    let pre = hGates + b * hidden, xg = xGates + shape.inputRow(t, b) * gateWidth
                    for j in 0..<hidden { pre[j] += xg[j] }
                    f.apply(pre, count: hidden, clip: clip, isa: isa)
                    (h + b * hidden).update(from: pre, count: hidden)
                    if let y { (y + shape.outputOffset(t, direction, b)).update(from: pre, count: hidden) }
                }

            case .gru(let linearBeforeReset):
                let g = activations[first + 1]
                let zrWidth = 2 * hidden
                // z and r for every active entry first: the candidate's product needs all of r.
                for b in 0..<batch {
                    let zr = hGates + b * zrWidth, hb = h + b * hidden, rh = temporary + b * hidden
                    guard s < lengths[b] else {
                        rh.update(repeating: 0, count: hidden)
                        continue
                    }
                    let t = reverse ? lengths[b] - 1 - s : s
                    let xg = xGates + shape.inputRow(t, b) * gateWidth
                    for j in 0..<zrWidth { zr[j] += xg[j] }
                    f.apply(zr, count: zrWidth, clip: clip, isa: isa)
                    if !linearBeforeReset {
                        for j in 0..<hidden { rh[j] = zr[hidden + j] * hb[j] }
                    }
                }
                candidateProduct?.multiply(UnsafePointer(linearBeforeReset ? h : temporary), rows: batch, into: candidate)
                for b in 0..<batch where s < lengths[b] {
                    let t = reverse ? lengths[b] - 1 - s : s
                    let xh = xGates + shape.inputRow(t, b) * gateWidth + 2 * hidden
                    let zr = hGates + b * zrWidth, hb = h + b * hidden, hh = candidate + b * hidden
                    if linearBeforeReset {
                        for j in 0..<hidden { hh[j] = xh[j] + zr[hidden + j] * (hh[j] + (candidateBias?[j] ?? 0)) }
                    } else {
                        for j in 0..<hidden { hh[j] += xh[j] }
                    }
                    g.apply(hh, count: hidden, clip: clip, isa: isa)
                    for j in 0..<hidden { hb[j] = (1 - zr[j]) * hh[j] + zr[j] * hb[j] }
                    if let y { (y + shape.outputOffset(t, direction, b)).update(from: hb, count: hidden) }
                }

            case .lstm(let inputForget):
                let g = activations[first + 1], hAct = activations[first + 2]
                for b in 0..<batch where s < lengths[b] {
                    let t = reverse ? lengths[b] - 1 - s : s
                    let xg = xGates + shape.inputRow(t, b) * gateWidth
                    let pre = hGates + b * gateWidth, hb = h + b * hidden, cb = c + b * hidden
                    for j in 0..<gateWidth { pre[j] += xg[j] }
                    let i = pre, o = pre + hidden, fg = pre + 2 * hidden, cc = pre + 3 * hidden
                    if let p = peepholes {
                        for j in 0..<hidden {
                            i[j] += p[j] * cb[j]
                            fg[j] += p[2 * hidden + j] * cb[j]
                        }
                    }
                    f.apply(i, count: hidden, clip: clip, isa: isa)
                    if inputForget {
                        for j in 0..<hidden { fg[j] = 1 - i[j] }
                    } else {
                        f.apply(fg, count: hidden, clip: clip, isa: isa)
                    }
                    g.apply(cc, count: hidden, clip: clip, isa: isa)
                    for j in 0..<hidden { cb[j] = fg[j] * cb[j] + i[j] * cc[j] }
                    if let p = peepholes {
                        for j in 0..<hidden { o[j] += p[hidden + j] * cb[j] }
                    }
                    f.apply(o, count: hidden, clip: clip, isa: isa)
                    let squashed = temporary + b * hidden
                    squashed.update(from: cb, count: hidden)
                    hAct.apply(squashed, count: hidden, clip: nil, isa: isa)
                    for j in 0..<hidden { hb[j] = o[j] * squashed[j] }
                    if let y { (y + shape.outputOffset(t, direction, b)).update(from: hb, count: hidden) }
                }
            }
        }

        for b in 0..<batch {
            let state = shape.stateOffset(direction, b)
            yH.map { ($0 + state).update(from: h + b * hidden, count: hidden) }
            yC.map { ($0 + state).update(from: c + b * hidden, count: hidden) }
        }
    }

    @inlinable package init(
        cell: RecurrentCell, shape: RecurrentShape, direction: Int, reverse: Bool,
        activations: ArraySlice<RecurrentActivation>, clip: S?, lengths: RecurrentLengths, isa: KernelISA
    ) {
        self.cell = cell
        self.shape = shape
        self.direction = direction
        self.reverse = reverse
        self.activations = activations
        self.clip = clip
        self.lengths = lengths
        self.isa = isa
    }
}
