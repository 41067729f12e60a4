import OnyxCore
import OnyxKernels

extension OperatorRegistry {
    package static let normalizationOperators: [OperatorRegistration] = [
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
            return LayerNormalizationKernel(axis: try context.int("axis", default: -1), epsilon: epsilon, isa: context.isa)
        },
    ] + SoftmaxKernel.Kind.allCases.flatMap { kind in
        [
            OperatorRegistration(kind.rawValue, versions: 1...12) { context in
                try SoftmaxKernel(kind: kind, axis: context.int("axis", default: 1), coercesTo2D: true,
                                  nanToZero: context.int("onyx.nan_to_zero", default: 0) != 0, isa: context.isa)
            },
            OperatorRegistration(kind.rawValue, versions: 13...Int.max) { context in
                try SoftmaxKernel(kind: kind, axis: context.int("axis", default: -1), coercesTo2D: false,
                                  nanToZero: context.int("onyx.nan_to_zero", default: 0) != 0, isa: context.isa)
            },
        ]
    } + [
        OperatorRegistration("InstanceNormalization") { context in
            InstanceNormalizationKernel(epsilon: try normalizationEpsilon(context))
        },
        // Opset 18 scales and shifts per group; opset 21 per channel.
        OperatorRegistration("GroupNormalization", versions: 18...20) { context in
            try GroupNormalizationKernel(context, perChannelAffine: false)
        },
        OperatorRegistration("GroupNormalization", versions: 21...Int.max) { context in
            try GroupNormalizationKernel(context, perChannelAffine: true)
        },
        OperatorRegistration("RMSNormalization", versions: 23...Int.max) { context in
            RMSNormalizationKernel(axis: try context.int("axis", default: -1), epsilon: try normalizationEpsilon(context))
        },
        OperatorRegistration("LRN") { context in try LRNKernel(context) },
        OperatorRegistration("LpNormalization") { context in
            let p = try context.int("p", default: 2)
            guard p == 1 || p == 2 else { throw context.attributeError("p must be 1 or 2, found \(p)") }
            return LpNormalizationKernel(axis: try context.int("axis", default: -1), p: p)
        },
        OperatorRegistration("MeanVarianceNormalization", versions: 9...Int.max) { context in
            MeanVarianceNormalizationKernel(axes: try context.ints("axes") ?? [0, 2, 3])
        },
    ]

    /// The `epsilon` attribute (default 1e-5), finite and ≥ 0.
    private static func normalizationEpsilon(_ context: NodeContext) throws -> Float {
        let epsilon = try context.float("epsilon", default: 1e-5)
        guard epsilon.isFinite, epsilon >= 0 else {
            throw context.attributeError("epsilon must be finite and ≥ 0, found \(epsilon)")
        }
        return epsilon
    }
}

/// BatchNormalization (float32 vectorised; double, float16 and mixed parameter types in Double): `Y = scale · (X − mean) / √(var + ε) + B` per channel.
///
/// In inference mode the statistics are the `mean` and `var` inputs. In training mode
/// (`training_mode = 1`, or `is_test = 0` before opset 7) Y uses the batch's own mean and
/// variance, as the specification defines; from opset 14 the optional running_mean and
/// running_var outputs are computed too, while the older training outputs (mean, var,
/// saved_mean, saved_var) are refused when the node is made. Before opset 9, `spatial = 0`
/// gives every element of `C×D1×…` its own parameters.
package struct BatchNormalizationKernel: Kernel {
    package let epsilon: Float
    package let spatial: Bool
    package let batchStatistics: Bool
    /// Training mode, opset 14+: outputs 1 and 2 are running_mean and running_var.
    package let runningOutputs: Bool
    package let momentum: Float

    /// `(batch, features, area)`: parameters apply per feature to runs of `area` elements.
    private func layout(_ shape: [Int]) -> (batch: Int, features: Int, area: Int) {
        spatial
            ? (shape[0], shape[1], shape[2...].reduce(1, *))
            : (shape[0], shape[1...].reduce(1, *), 1)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 5, let x = inputs[0] else {
            throw OnyxError.invalidModel("BatchNormalization takes X, scale, B, mean and var; got \(inputs.compactMap { $0 }.count) inputs")
        }
        guard x.dataType.isFloatingPoint else {
            throw OnyxError.unsupportedDataType("BatchNormalization supports float, double and float16, got \(x.dataType)")
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
            guard p.dataType.isFloatingPoint, fits else {
                throw OnyxError.shapeMismatch("BatchNormalization: \(name) must be \(x.dataType)\(expected), got \(p.descriptor)")
            }
        }
        if runningOutputs, let mean = inputs[3] {
            return [x.descriptor, TensorDescriptor(mean.dataType, [features]), TensorDescriptor(mean.dataType, [features])]
        }
        return [x.descriptor]
    }

    package var aliasing: KernelAliasing { .inPlace(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let (batch, features, area) = layout(x.shape)
        let parameterTypes = (1...4).map { context.input($0)!.dataType }
        guard x.dataType == .float, parameterTypes.allSatisfy({ $0 == .float }) else {
            try runInDouble(context, batch: batch, features: features, area: area)
            return
        }
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

    /// Double, float16 and mixed parameter types: statistics and the affine step in Double.
    private func runInDouble(_ context: borrowing KernelContext, batch: Int, features: Int, area: Int) throws {
        let x = context.input(0)!, y = context.output(0)
        let scale = wideValues(context.input(1)!, as: Double.self), bias = wideValues(context.input(2)!, as: Double.self)
        var mean = wideValues(context.input(3)!, as: Double.self), variance = wideValues(context.input(4)!, as: Double.self)
        let count = batch * area
        let input = try x.dataType.visitFloating(DoubleValues(view: x), operation: "BatchNormalization")
        if batchStatistics && count > 0 {
            var batchMean = [Double](repeating: 0, count: features), batchVariance = batchMean
            for n in 0..<batch {
                for c in 0..<features {
                    for i in 0..<area { batchMean[c] += input[(n * features + c) * area + i] }
                }
            }
            for c in 0..<features { batchMean[c] /= Double(count) }
            for n in 0..<batch {
                for c in 0..<features {
                    for i in 0..<area {
                        let d = input[(n * features + c) * area + i] - batchMean[c]
                        batchVariance[c] += d * d
                    }
                }
            }
            for c in 0..<features { batchVariance[c] /= Double(count) }
            if runningOutputs {
                let m = Double(momentum)
                for (index, statistics, given) in [(1, batchMean, mean), (2, batchVariance, variance)] {
                    guard let out = context.optionalOutput(index) else { continue }
                    try writeValues((0..<features).map { given[$0] * m + statistics[$0] * (1 - m) }, to: out)
                }
            }
            mean = batchMean
            variance = batchVariance
        }
        var result = [Double](repeating: 0, count: input.count)
        for n in 0..<batch {
            for c in 0..<features {
                let factor = scale[c] / (variance[c] + Double(epsilon)).squareRoot()
                let offset = bias[c] - mean[c] * factor
                let start = (n * features + c) * area
                for i in start..<(start + area) { result[i] = input[i] * factor + offset }
            }
        }
        try writeValues(result, to: y)
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

/// Softmax, LogSoftmax and Hardmax on float, double and float16. From opset 13 they work along
/// `axis` (default −1). Before, the input is flattened to 2-D at `axis` (default 1) and each row
/// of the trailing axes is one line. Hardmax sets the first largest element of each line to 1.
///
/// Float32 Softmax has dedicated vectorised loops; the rest compute in Float (Double for double).
package struct SoftmaxKernel: Kernel {
    package typealias Kind = SoftmaxKind

    package let kind: Kind
    package let axis: Int
    package let coercesTo2D: Bool
    /// Writes 0 where the result would be NaN (`onyx.nan_to_zero`, see SoftmaxNaNFusion): float
    /// Softmax only, as the fused Where's float zero requires.
    package let nanToZero: Bool
    package let isa: KernelISA

    private var name: String { kind.rawValue }

    /// `(outer, extent, inner)`: `outer · inner` lines of `extent` elements, `inner` apart.
    private func layout(_ shape: [Int]) throws -> (outer: Int, extent: Int, inner: Int) {
        guard !shape.isEmpty else {
            throw OnyxError.shapeMismatch("\(name): the input is a scalar; it needs at least one axis")
        }
        let a = try normalizedAxis(axis, rank: shape.count, op: name)
        let outer = shape[..<a].reduce(1, *)
        return coercesTo2D
            ? (outer, shape[a...].reduce(1, *), 1)
            : (outer, shape[a], shape[(a + 1)...].reduce(1, *))
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else {
            throw OnyxError.invalidModel("\(name) takes one input, got \(inputs.compactMap { $0 }.count)")
        }
        guard x.dataType.isFloatingPoint else {
            throw OnyxError.unsupportedDataType("\(name) supports float, double and float16, got \(x.dataType)")
        }
        guard !nanToZero || (kind == .softmax && x.dataType == .float) else {
            throw OnyxError.unsupportedDataType("\(name) with onyx.nan_to_zero (a fused Where of a float 0) takes float, got \(x.dataType)")
        }
        _ = try layout(x.shape)
        return [x.descriptor]
    }

    package var aliasing: KernelAliasing { .inPlace(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let (outer, extent, inner) = try layout(x.shape)
        // An empty input (a zero extent anywhere) has nothing to normalise; the loops below read
        // a line's first row before they look at its extent.
        if outer == 0 || extent == 0 || inner == 0 { return }
        if x.dataType == .float && kind == .softmax {
            let input = UnsafePointer(x.pointer(as: Float.self)), output = y.pointer(as: Float.self)
            if inner == 1 {
                NormalizationLoops.softmax(input, output, rows: outer, length: extent, zeroingNaN: nanToZero, isa: isa,
                                           pool: context.pool)
            } else {
                NormalizationLoops.softmax(input, output, outer: outer, extent: extent, inner: inner, pool: context.pool)
                if nanToZero {
                    for i in 0..<outer * extent * inner where output[i].isNaN { output[i] = 0 }
                }
            }
        } else {
            let lines = Lines(x: x, y: y, outer: outer, extent: extent, inner: inner, kind: kind, pool: context.pool)
            try x.dataType.visitFloating(lines, operation: name)
        }
    }

    private struct Lines: FloatingElementVisitor {
        let x: TensorView, y: TensorView
        let outer: Int, extent: Int, inner: Int
        let kind: Kind
        let pool: ComputePool

        func visit<E: FloatingElement>(_: E.Type) {
            NormalizationLoops.softmaxFamily(
                UnsafePointer(x.pointer(as: E.self)), y.pointer(as: E.self), outer: outer, extent: extent, inner: inner,
                kind: kind, pool: pool)
        }
    }
}

/// Checks that `input` is floating point and returns its type, naming `op` otherwise.
private func floatingType(_ input: PlannedInput, _ op: String, _ what: String) throws -> DataType {
    guard input.dataType.isFloatingPoint else {
        throw OnyxError.unsupportedDataType("\(op): \(what) must be float, double or float16, got \(input.dataType)")
    }
    return input.dataType
}

/// Reads a parameter tensor of any floating type as `W` values.
private func wideValues<W: WideFloat>(_ view: TensorView, as _: W.Type) -> [W] {
    let n = view.elementCount
    switch view.dataType {
    case .float: let p = view.pointer(as: Float.self); return (0..<n).map { W(p[$0]) }
    case .double: let p = view.pointer(as: Double.self); return (0..<n).map { W(p[$0]) }
    case .float16: let p = view.pointer(as: Float16.self); return (0..<n).map { W(p[$0].castFloat) }
    default: return [W](repeating: 0, count: n)
    }
}

/// A floating-point tensor's elements as Doubles.
private struct DoubleValues: FloatingElementVisitor {
    let view: TensorView

    func visit<E: FloatingElement>(_: E.Type) -> [Double] {
        let p = view.pointer(as: E.self)
        return (0..<view.elementCount).map { p[$0].castDouble }
    }
}

/// Writes Double values into a floating-point tensor.
private func writeValues(_ values: [Double], to view: TensorView) throws {
    try view.dataType.visitFloating(DoubleWriter(values: values, view: view), operation: "writing floating-point results")
}

private struct DoubleWriter: FloatingElementVisitor {
    let values: [Double]
    let view: TensorView

    func visit<E: FloatingElement>(_: E.Type) {
        // E(Double) rounds once, also for float16.
        let p = view.pointer(as: E.self)
        for i in values.indices { p[i] = E(values[i]) }
    }
}

/// `view` (broadcastable to `normalized`) repeated to one value per element of `normalized`.
private func expandedValues<W: WideFloat>(_ view: TensorView, to normalized: [Int], as _: W.Type) -> [W] {
    let values = wideValues(view, as: W.self)
    let width = normalized.reduce(1, *)
    if values.count == width { return values }
    let strides = Broadcasting.strides(of: view.shape, in: normalized)
    return (0..<width).map { i in
        var rest = i, offset = 0
        for axis in stride(from: normalized.count - 1, through: 0, by: -1) {
            offset += (rest % normalized[axis]) * strides[axis]
            rest /= normalized[axis]
        }
        return values[offset]
    }
}

/// Runs `body` specialised for the floating element types of input and output.
private func withFloatTypes(
    _ input: DataType, _ output: DataType, op: String,
    _ body: (any WideningFloat.Type, any WideningFloat.Type) throws -> Void
) throws {
    func type(_ t: DataType) throws -> any WideningFloat.Type {
        switch t {
        case .float: Float.self
        case .double: Double.self
        case .float16: Float16.self
        default: throw OnyxError.unsupportedDataType("\(op) does not support \(t)")
        }
    }
    try body(try type(input), try type(output))
}

/// Normalises `rows` rows of `width` elements of `x` into `y` with ``NormalizationLoops/normalizeRows``,
/// after reading the affine parameters as the input's compute type.
private func normalizeRows(
    _ x: TensorView, _ y: TensorView, rows: Int, width: Int, epsilon: Float, centered: Bool,
    scale: [Double]?, bias: [Double]?, rowsPerPeriod: Int, segment: Int,
    statistics: (mean: UnsafeMutablePointer<Float>?, inverse: UnsafeMutablePointer<Float>?) = (nil, nil),
    pool: ComputePool, op: String
) throws {
    try withFloatTypes(x.dataType, y.dataType, op: op) { input, output in
        func run<E: WideningFloat, F: WideningFloat>(_: E.Type, _: F.Type) {
            let s = scale?.map { E.Wide($0) }, b = bias?.map { E.Wide($0) }
            (s ?? []).withUnsafeBufferPointer { sp in
                (b ?? []).withUnsafeBufferPointer { bp in
                    NormalizationLoops.normalizeRows(
                        UnsafePointer(x.pointer(as: E.self)), y.pointer(as: F.self), rows: rows, width: width,
                        epsilon: E.Wide(epsilon), centered: centered,
                        affine: .init(scale: s == nil ? nil : sp.baseAddress, bias: b == nil ? nil : bp.baseAddress,
                                      rowsPerPeriod: rowsPerPeriod, segment: segment),
                        statistics: statistics, pool: pool)
                }
            }
        }
        func open<E: WideningFloat>(_ e: E.Type) {
            func inner<F: WideningFloat>(_ f: F.Type) { run(E.self, F.self) }
            inner(output)
        }
        open(input)
    }
}

/// LayerNormalization (opset 17): each row over axes `axis…` is normalised to zero mean and unit
/// variance, then scaled and shifted: `Y = (X − mean) / √(var + ε) · Scale + B`, with `Scale` and
/// `B` broadcast over the normalised axes. The optional Mean and InvStdDev outputs (float) have
/// X's leading axes and 1 for each normalised axis. Float32 has its own loop; double and float16
/// compute in Double and Float.
package struct LayerNormalizationKernel: Kernel {
    package let axis: Int
    package let epsilon: Float
    package let isa: KernelISA

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard (2...3).contains(inputs.count), let x = inputs[0], let scale = inputs[1] else {
            throw OnyxError.invalidModel("LayerNormalization takes X, Scale and optional B")
        }
        let type = try floatingType(x, "LayerNormalization", "X")
        let a = try normalizedAxis(axis, rank: x.shape.count, op: "LayerNormalization")
        let normalized = Array(x.shape[a...])
        for (name, input) in [("Scale", scale), ("B", inputs.count > 2 ? inputs[2] : nil)] {
            guard let input else { continue }
            guard input.dataType == type else {
                throw OnyxError.unsupportedDataType("LayerNormalization: \(name) is \(input.dataType); X is \(type)")
            }
            guard try Broadcasting.shape(input.shape, normalized, op: "LayerNormalization") == normalized,
                  input.shape.count <= normalized.count else {
                throw OnyxError.shapeMismatch("LayerNormalization: \(name) \(input.shape) does not broadcast to the normalised axes \(normalized)")
            }
        }
        let statistics = Array(x.shape[..<a]) + Array(repeating: 1, count: x.shape.count - a)
        return [x.descriptor, TensorDescriptor(.float, statistics), TensorDescriptor(.float, statistics)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let a = try normalizedAxis(axis, rank: x.rank, op: "LayerNormalization")
        let rows = x.shape[..<a].reduce(1, *)
        let width = x.shape[a...].reduce(1, *)
        let normalized = Array(x.shape[a...])
        let meanOut = context.optionalOutput(1)?.pointer(as: Float.self)
        let inverseOut = context.optionalOutput(2)?.pointer(as: Float.self)
        guard x.dataType == .float else {
            let scale = context.input(1)!, bias = context.input(2)
            try normalizeRows(
                x, y, rows: rows, width: width, epsilon: epsilon, centered: true,
                scale: expandedValues(scale, to: normalized, as: Double.self),
                bias: bias.map { expandedValues($0, to: normalized, as: Double.self) },
                rowsPerPeriod: 1, segment: 1, statistics: (meanOut, inverseOut), pool: context.pool, op: "LayerNormalization")
            return
        }
        // Scale and B as full rows (they usually are; otherwise expand once per run).
        let scale = expandedRow(context.input(1)!, width: width, normalized: normalized)
        let bias = context.input(2).map { expandedRow($0, width: width, normalized: normalized) }
        defer {
            if scale.owned { scale.pointer.deallocate() }
            if let bias, bias.owned { bias.pointer.deallocate() }
        }
        NormalizationLoops.layerNormalization(
            x.pointer(as: Float.self), y.pointer(as: Float.self), rows: rows, width: width, epsilon: epsilon,
            scale: scale.pointer, bias: bias?.pointer, mean: meanOut, inverse: inverseOut, isa: isa, pool: context.pool)
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

/// RMSNormalization (opset 23): `Y = X / √(mean(X²) + ε) · scale` over axes `axis…`, with
/// `scale` broadcast over the normalised axes. Y has scale's type, which may differ from X's.
package struct RMSNormalizationKernel: Kernel {
    package let axis: Int
    package let epsilon: Float

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 2, let x = inputs[0], let scale = inputs[1] else {
            throw OnyxError.invalidModel("RMSNormalization takes X and scale")
        }
        _ = try floatingType(x, "RMSNormalization", "X")
        let type = try floatingType(scale, "RMSNormalization", "scale")
        let a = try normalizedAxis(axis, rank: x.shape.count, op: "RMSNormalization")
        let normalized = Array(x.shape[a...])
        guard scale.shape.count <= normalized.count,
              try Broadcasting.shape(scale.shape, normalized, op: "RMSNormalization") == normalized else {
            throw OnyxError.shapeMismatch("RMSNormalization: scale \(scale.shape) does not broadcast to the normalised axes \(normalized)")
        }
        return [TensorDescriptor(type, x.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0), scale = context.input(1)!
        let a = try normalizedAxis(axis, rank: x.rank, op: "RMSNormalization")
        let normalized = Array(x.shape[a...])
        try normalizeRows(
            x, y, rows: x.shape[..<a].reduce(1, *), width: normalized.reduce(1, *), epsilon: epsilon, centered: false,
            scale: expandedValues(scale, to: normalized, as: Double.self), bias: nil,
            rowsPerPeriod: 1, segment: 1, pool: context.pool, op: "RMSNormalization")
    }
}

/// InstanceNormalization: each `(n, c)` plane of `[N, C, D1 …]` is normalised over its spatial
/// elements, then `· scale[c] + B[c]`.
package struct InstanceNormalizationKernel: Kernel {
    package let epsilon: Float

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 3, let x = inputs[0], let scale = inputs[1], let bias = inputs[2] else {
            throw OnyxError.invalidModel("InstanceNormalization takes input, scale and B")
        }
        let type = try floatingType(x, "InstanceNormalization", "input")
        guard x.shape.count >= 3 else {
            throw OnyxError.shapeMismatch("InstanceNormalization: input of shape \(x.shape) needs N, C and at least one spatial axis")
        }
        for (name, p) in [("scale", scale), ("B", bias)] where p.dataType != type || p.shape != [x.shape[1]] {
            throw OnyxError.shapeMismatch("InstanceNormalization: \(name) must be \(type)[\(x.shape[1])], got \(p.descriptor)")
        }
        return [x.descriptor]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, scale = context.input(1)!, bias = context.input(2)!
        let channels = x.shape[1], area = x.shape[2...].reduce(1, *)
        try normalizeRows(
            x, context.output(0), rows: x.shape[0] * channels, width: area, epsilon: epsilon, centered: true,
            scale: wideValues(scale, as: Double.self), bias: wideValues(bias, as: Double.self),
            rowsPerPeriod: channels, segment: area, pool: context.pool, op: "InstanceNormalization")
    }
}

/// GroupNormalization: the channels of `[N, C, D1 …]` form `num_groups` groups; each `(n, group)`
/// is normalised over its channels' elements, then scaled and shifted per group (opset 18) or
/// per channel (opset 21).
package struct GroupNormalizationKernel: Kernel {
    package let groups: Int
    package let epsilon: Float
    package let perChannelAffine: Bool

    package init(_ context: NodeContext, perChannelAffine: Bool) throws {
        guard let groups = try context.int("num_groups") else { throw context.attributeError("missing 'num_groups'") }
        guard groups >= 1 else { throw context.attributeError("num_groups must be ≥ 1, found \(groups)") }
        let epsilon = try context.float("epsilon", default: 1e-5)
        guard epsilon.isFinite, epsilon >= 0 else { throw context.attributeError("epsilon must be finite and ≥ 0, found \(epsilon)") }
        self.groups = groups
        self.epsilon = epsilon
        self.perChannelAffine = perChannelAffine
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 3, let x = inputs[0], let scale = inputs[1], let bias = inputs[2] else {
            throw OnyxError.invalidModel("GroupNormalization takes X, scale and bias")
        }
        let type = try floatingType(x, "GroupNormalization", "X")
        guard x.shape.count >= 2 else {
            throw OnyxError.shapeMismatch("GroupNormalization: X of shape \(x.shape) has no channel axis")
        }
        let channels = x.shape[1]
        guard channels % groups == 0 else {
            throw OnyxError.invalidAttribute("GroupNormalization: num_groups \(groups) does not divide the \(channels) channels")
        }
        let expected = perChannelAffine ? channels : groups
        for (name, p) in [("scale", scale), ("bias", bias)] where p.dataType != type || p.shape != [expected] {
            throw OnyxError.shapeMismatch("GroupNormalization: \(name) must be \(type)[\(expected)], got \(p.descriptor)")
        }
        return [x.descriptor]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, scale = context.input(1)!, bias = context.input(2)!
        let channels = x.shape[1], area = x.shape[2...].reduce(1, *)
        let width = channels / groups * area
        try normalizeRows(
            x, context.output(0), rows: x.shape[0] * groups, width: width, epsilon: epsilon, centered: true,
            scale: wideValues(scale, as: Double.self), bias: wideValues(bias, as: Double.self),
            rowsPerPeriod: groups, segment: perChannelAffine ? area : width, pool: context.pool, op: "GroupNormalization")
    }
}

/// LRN across channels of `[N, C, D1 …]`: `y = x / (bias + α/size · Σ x²)^β`, the sum over the
/// channels `c − ⌊(size−1)/2⌋ … c + ⌈(size−1)/2⌉` that exist.
package struct LRNKernel: Kernel {
    package let size: Int
    package let alpha: Float, beta: Float, bias: Float

    package init(_ context: NodeContext) throws {
        guard let size = try context.int("size") else { throw context.attributeError("missing 'size'") }
        guard size >= 1 else { throw context.attributeError("size must be ≥ 1, found \(size)") }
        self.size = size
        alpha = try context.float("alpha", default: 1e-4)
        beta = try context.float("beta", default: 0.75)
        bias = try context.float("bias", default: 1)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else { throw OnyxError.invalidModel("LRN takes one input") }
        _ = try floatingType(x, "LRN", "X")
        guard x.shape.count >= 2 else {
            throw OnyxError.shapeMismatch("LRN: input of shape \(x.shape) has no channel axis")
        }
        return [x.descriptor]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        try x.dataType.visitFloating(LocalResponse(kernel: self, x: x, y: y, pool: context.pool), operation: "LRN")
    }

    private struct LocalResponse: FloatingElementVisitor {
        let kernel: LRNKernel
        let x: TensorView, y: TensorView
        let pool: ComputePool

        func visit<E: FloatingElement>(_: E.Type) {
            NormalizationLoops.localResponse(
                UnsafePointer(x.pointer(as: E.self)), y.pointer(as: E.self), batch: x.shape[0], channels: x.shape[1],
                area: x.shape[2...].reduce(1, *), size: kernel.size, alpha: E.Wide(kernel.alpha), beta: E.Wide(kernel.beta),
                bias: E.Wide(kernel.bias), pool: pool)
        }
    }
}

/// LpNormalization: `x / ‖x‖ₚ` along `axis` (p is 1 or 2); a line whose norm is 0 becomes 0.
package struct LpNormalizationKernel: Kernel {
    package let axis: Int
    package let p: Int

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else { throw OnyxError.invalidModel("LpNormalization takes one input") }
        _ = try floatingType(x, "LpNormalization", "input")
        _ = try normalizedAxis(axis, rank: x.shape.count, op: "LpNormalization")
        return [x.descriptor]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let shape = x.shape.isEmpty ? [1] : x.shape
        let a = try normalizedAxis(axis, rank: x.rank, op: "LpNormalization")
        let (outer, extent, inner) = (shape[..<a].reduce(1, *), shape[a], shape[(a + 1)...].reduce(1, *))
        let lp = LpNorm(x: x, y: y, outer: outer, extent: extent, inner: inner, p: p, pool: context.pool)
        try x.dataType.visitFloating(lp, operation: "LpNormalization")
    }

    private struct LpNorm: FloatingElementVisitor {
        let x: TensorView, y: TensorView
        let outer: Int, extent: Int, inner: Int
        let p: Int
        let pool: ComputePool

        func visit<E: FloatingElement>(_: E.Type) {
            NormalizationLoops.lpNormalize(
                UnsafePointer(x.pointer(as: E.self)), y.pointer(as: E.self), outer: outer, extent: extent, inner: inner,
                p: p, pool: pool)
        }
    }
}

/// MeanVarianceNormalization: `(X − E[X]) / (√(E[(X − E[X])²]) + 1e-9)` with the statistics over
/// `axes` (default `[0, 2, 3]`).
package struct MeanVarianceNormalizationKernel: Kernel {
    package let axes: [Int]

    private func mask(rank: Int) throws -> [Bool] {
        var mask = [Bool](repeating: false, count: rank)
        for axis in axes {
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0 && a < rank else {
                throw OnyxError.invalidAttribute("MeanVarianceNormalization: axis \(axis) is out of range for rank \(rank)")
            }
            guard !mask[a] else {
                throw OnyxError.invalidAttribute("MeanVarianceNormalization: axes \(axes) name axis \(a) more than once")
            }
            mask[a] = true
        }
        return mask
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else {
            throw OnyxError.invalidModel("MeanVarianceNormalization takes one input")
        }
        _ = try floatingType(x, "MeanVarianceNormalization", "X")
        _ = try mask(rank: x.shape.count)
        return [x.descriptor]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let reduced = try mask(rank: x.rank)
        let normalization = MeanVariance(x: x, y: y, reduced: reduced, pool: context.pool)
        try x.dataType.visitFloating(normalization, operation: "MeanVarianceNormalization")
    }

    private struct MeanVariance: FloatingElementVisitor {
        let x: TensorView, y: TensorView
        let reduced: [Bool]
        let pool: ComputePool

        func visit<E: FloatingElement>(_: E.Type) {
            NormalizationLoops.meanVarianceNormalize(
                UnsafePointer(x.pointer(as: E.self)), y.pointer(as: E.self), shape: x.shape, reduced: reduced, pool: pool)
        }
    }
}
