import OnyxCore
import OnyxKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension OperatorRegistry {
    /// DFT, STFT, window functions, MelWeightMatrix.
    package static let signalOperators: [OperatorRegistration] = [
        // DFT-17 takes the axis as an attribute (default 1); DFT-20 as input 2 (default -2).
        OperatorRegistration("DFT", versions: 17...19) { context in
            DFTKernel(
                inverse: try context.int("inverse", default: 0) != 0, onesided: try context.int("onesided", default: 0) != 0,
                attributeAxis: try context.int("axis", default: 1))
        },
        OperatorRegistration("DFT", versions: 20...Int.max) { context in
            DFTKernel(
                inverse: try context.int("inverse", default: 0) != 0, onesided: try context.int("onesided", default: 0) != 0,
                attributeAxis: nil)
        },
        OperatorRegistration("STFT", versions: 17...Int.max) { context in
            STFTKernel(onesided: try context.int("onesided", default: 1) != 0)
        },
        OperatorRegistration("MelWeightMatrix", versions: 17...Int.max) { context in
            MelWeightMatrixKernel(outputType: try windowOutputType(context, allowed: [.float, .double, .float16]))
        },
    ] + [SignalWindows.Kind.hann, .hamming, .blackman].map { kind in
        OperatorRegistration(kind.rawValue, versions: 17...Int.max) { context in
            WindowKernel(
                kind: kind, periodic: try context.int("periodic", default: 1) != 0,
                outputType: try windowOutputType(
                    context, allowed: DataType.allCases.filter { ($0.isNative && $0 != .bool) || $0 == .bfloat16 }))
        }
    }
}

/// The `output_datatype` attribute (default float), which must be one of `allowed`.
private func windowOutputType(_ context: NodeContext, allowed: [DataType]) throws -> DataType {
    let type = try quantizationAttributeType(code: try context.int("output_datatype", default: 1), op: context.node.opType, attribute: "output_datatype")
    guard allowed.contains(type) else {
        throw context.attributeError("output_datatype \(type) is not one of \(allowed.map(\.onnxName).joined(separator: ", "))")
    }
    return type
}

/// A scalar integer input (one element of int32 or int64) whose value the output shape needs.
private func scalarInteger(_ input: PlannedInput?, op: String, what: String) throws -> Int? {
    guard let input else { return nil }
    guard input.elementCount == 1, input.shape.count <= 1 else {
        throw OnyxError.shapeMismatch("\(op): \(what) must be a scalar, got shape \(shapeText(input.shape))")
    }
    return try constantIntegers(input, op: op, what: what)?.first
}

/// A scalar integer read during a run (int32 or int64).
private func scalarInteger(_ view: TensorView?) -> Int? {
    guard let view, view.elementCount >= 1 else { return nil }
    switch view.dataType {
    case .int32: return Int(view.pointer(as: Int32.self).pointee)
    case .int64: return Int(view.pointer(as: Int64.self).pointee)
    default: return nil
    }
}

// MARK: - DFT

/// DFT: the discrete Fourier transform along one axis of a real (`[..., 1]`) or complex
/// (`[..., 2]`) signal, forward or inverse (scaled by 1/n), full or one-sided (RFFT / IRFFT),
/// zero-padded or truncated to `dft_length`. Computed in Double.
package struct DFTKernel: Kernel {
    package let inverse: Bool
    package let onesided: Bool
    /// Opset 17–19: the `axis` attribute. From opset 20 the axis is input 2.
    package let attributeAxis: Int?

    package struct Geometry {
        package var outer = 1, axisLength = 1, inner = 1, inComponents = 1
        /// The transform length.
        package var length = 1
        /// Values read along the axis (fewer than `length` are zero-padded).
        package var readLength = 1
        package var outLength = 1, outComponents = 2
        package var outputShape: [Int] = []
    }

    package func geometry(_ shape: [Int], dftLength: Int?, axis requested: Int) throws -> Geometry {
        let rank = shape.count
        guard rank >= 2, let components = shape.last, components == 1 || components == 2 else {
            throw OnyxError.shapeMismatch(
                "DFT: input must be [..., 1] (real) or [..., 2] (complex) with at least one signal axis, got \(shapeText(shape))")
        }
        let axis = requested < 0 ? requested + rank : requested
        guard axis >= 0 && axis <= rank - 2 else {
            throw OnyxError.invalidAttribute(
                "DFT: axis \(requested) is out of range for rank \(rank) (expected \(-rank)...-2 or 0...\(rank - 2))")
        }
        var g = Geometry()
        g.outer = shape[..<axis].reduce(1, *)
        g.axisLength = shape[axis]
        g.inner = shape[(axis + 1)..<(rank - 1)].reduce(1, *)
        g.inComponents = components
        let irfft = inverse && onesided
        if let dftLength {
            guard dftLength >= 1 else { throw OnyxError.invalidInput("DFT: dft_length must be ≥ 1, got \(dftLength)") }
            g.length = dftLength
        } else {
            g.length = irfft ? 2 * (g.axisLength - 1) : g.axisLength
            guard g.length >= 1 else {
                throw OnyxError.shapeMismatch("DFT: axis \(axis) of \(shapeText(shape)) is too short for a transform")
            }
        }
        g.readLength = min(g.axisLength, irfft ? g.length / 2 + 1 : g.length)
        g.outLength = onesided && !inverse ? g.length / 2 + 1 : g.length
        g.outComponents = irfft ? 1 : 2
        var out = shape
        out[axis] = g.outLength
        out[rank - 1] = g.outComponents
        g.outputShape = out
        return g
    }

    private func axisValue(_ inputs: [PlannedInput?]) throws -> Int {
        if let attributeAxis { return attributeAxis }
        return try scalarInteger(inputs.count > 2 ? inputs[2] : nil, op: "DFT", what: "axis") ?? -2
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let maxInputs = attributeAxis == nil ? 3 : 2
        guard (1...maxInputs).contains(inputs.count), let x = inputs[0] else {
            throw OnyxError.invalidModel("DFT takes input, optional dft_length\(attributeAxis == nil ? " and optional axis" : "")")
        }
        guard [.float, .double, .float16].contains(x.dataType) else {
            throw OnyxError.unsupportedDataType("DFT supports float, double and float16, got \(x.dataType)")
        }
        let length = try scalarInteger(inputs.count > 1 ? inputs[1] : nil, op: "DFT", what: "dft_length")
        let g = try geometry(x.shape, dftLength: length, axis: try axisValue(inputs))
        return [TensorDescriptor(x.dataType, g.outputShape)]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        // The transform length is at most the larger of the input and output axis extents' doubles.
        let longest = (inputs.compactMap { $0?.shape.max() } + outputs.compactMap { $0.shape.max() }).max() ?? 1
        return SignalFourierTransform.tableCount(2 * max(longest, 1)) * 8
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let axis = attributeAxis ?? scalarInteger(context.input(2)) ?? -2
        let g = try geometry(x.shape, dftLength: scalarInteger(context.input(1)), axis: axis)
        guard let table = context.workspace?.assumingMemoryBound(to: Double.self) else {
            throw OnyxError.internalError("DFT: no workspace")
        }
        SignalFourierTransform.fillTable(table, count: g.length)
        let transform = SignalFourierTransform(count: g.length, table: table)
        let lines = Lines(kernel: self, x: x, y: y, g: g, transform: transform, pool: context.pool)
        try x.dataType.visitFloating(lines, operation: "DFT")
    }

    private struct Lines: FloatingElementVisitor {
        let kernel: DFTKernel
        let x: TensorView, y: TensorView
        let g: Geometry
        let transform: SignalFourierTransform
        let pool: ComputePool

        func visit<T: FloatingElement>(_: T.Type) { kernel.lines(T.self, x, y, g, transform, pool) }
    }

    private func lines<T: FloatingElement>(
        _: T.Type, _ x: TensorView, _ y: TensorView, _ g: Geometry, _ transform: SignalFourierTransform, _ pool: ComputePool
    ) {
        let input = UnsafePointer(x.pointer(as: T.self)), output = y.pointer(as: T.self)
        let n = g.length, irfft = inverse && onesided
        let scale = inverse ? 1 / Double(n) : 1
        let cost = n * (transform.isPowerOfTwo ? max(1, n.trailingZeroBitCount) : n) * 4
        pool.forEachChunk(g.outer * g.inner, costPerItem: cost) { range in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: SignalFourierTransform.lineCount(n)) { buffer in
                let re = buffer.baseAddress!, im = re + n, scratch = im + n
                for line in range {
                    let o = line / g.inner, i = line % g.inner
                    re.update(repeating: 0, count: n)
                    im.update(repeating: 0, count: n)
                    for t in 0..<g.readLength {
                        let at = ((o * g.axisLength + t) * g.inner + i) * g.inComponents
                        re[t] = Double(input[at])
                        if g.inComponents == 2 { im[t] = Double(input[at + 1]) }
                    }
                    if irfft {
                        // The full spectrum of a real signal is conjugate-symmetric.
                        for k in (n / 2 + 1)..<max(n, n / 2 + 1) {
                            re[k] = re[n - k]
                            im[k] = -im[n - k]
                        }
                    }
                    transform.transform(re, im, inverse: inverse, scratchRe: scratch, scratchIm: scratch + n)
                    for k in 0..<g.outLength {
                        let at = ((o * g.outLength + k) * g.inner + i) * g.outComponents
                        output[at] = T(re[k] * scale)
                        if g.outComponents == 2 { output[at + 1] = T(im[k] * scale) }
                    }
                }
            }
        }
    }
}

// MARK: - STFT

/// STFT: DFTs of `frame_length` windowed frames taken every `frame_step` samples of a
/// `[batch, length, 1 or 2]` signal; output `[batch, frames, bins, 2]`.
package struct STFTKernel: Kernel {
    package let onesided: Bool

    package struct Geometry {
        package var batch = 1, signalLength = 1, components = 1
        package var step = 1, frameLength = 1, frames = 1, bins = 1
    }

    private func geometry(_ signal: [Int], step: Int, window: [Int]?, frameLength: Int?) throws -> Geometry {
        guard signal.count == 3, signal[2] == 1 || signal[2] == 2 else {
            throw OnyxError.shapeMismatch("STFT: signal must be [batch, length, 1 or 2], got \(shapeText(signal))")
        }
        guard step >= 1 else { throw OnyxError.invalidInput("STFT: frame_step must be ≥ 1, got \(step)") }
        if let window, window.count != 1 {
            throw OnyxError.shapeMismatch("STFT: window must be 1-D, got shape \(shapeText(window))")
        }
        let length = frameLength ?? window?.first ?? signal[1]
        if let window, window[0] != length {
            throw OnyxError.shapeMismatch("STFT: window length \(window[0]) differs from frame_length \(length)")
        }
        guard length >= 1, length <= signal[1] else {
            throw OnyxError.invalidInput("STFT: frame_length \(length) must be in 1...\(signal[1]) (the signal length)")
        }
        var g = Geometry()
        g.batch = signal[0]
        g.signalLength = signal[1]
        g.components = signal[2]
        g.step = step
        g.frameLength = length
        g.frames = (signal[1] - length) / step + 1
        g.bins = onesided ? length / 2 + 1 : length
        return g
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard (2...4).contains(inputs.count), let signal = inputs[0] else {
            throw OnyxError.invalidModel("STFT takes signal, frame_step, optional window and optional frame_length")
        }
        guard [.float, .double, .float16].contains(signal.dataType) else {
            throw OnyxError.unsupportedDataType("STFT supports float, double and float16, got \(signal.dataType)")
        }
        guard let step = try scalarInteger(inputs[1], op: "STFT", what: "frame_step") else {
            throw OnyxError.invalidModel("STFT: missing input 1 (frame_step)")
        }
        let window = inputs.count > 2 ? inputs[2] : nil
        if let window, window.dataType != signal.dataType {
            throw OnyxError.unsupportedDataType("STFT: window is \(window.dataType) but signal is \(signal.dataType)")
        }
        let frameLength = try scalarInteger(inputs.count > 3 ? inputs[3] : nil, op: "STFT", what: "frame_length")
        let g = try geometry(signal.shape, step: step, window: window?.shape, frameLength: frameLength)
        return [TensorDescriptor(signal.dataType, [g.batch, g.frames, g.bins, 2])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        let longest = inputs.first??.shape.dropFirst().first ?? 1
        return SignalFourierTransform.tableCount(max(longest, 1)) * 8
    }

    package func run(_ context: borrowing KernelContext) throws {
        let signal = context.input(0)!, y = context.output(0), window = context.input(2)
        let g = try geometry(
            signal.shape, step: scalarInteger(context.input(1)) ?? 0, window: window?.shape,
            frameLength: scalarInteger(context.input(3)))
        guard let table = context.workspace?.assumingMemoryBound(to: Double.self) else {
            throw OnyxError.internalError("STFT: no workspace")
        }
        SignalFourierTransform.fillTable(table, count: g.frameLength)
        let transform = SignalFourierTransform(count: g.frameLength, table: table)
        let frames = Frames(kernel: self, signal: signal, window: window, y: y, g: g, transform: transform, pool: context.pool)
        try signal.dataType.visitFloating(frames, operation: "STFT")
    }

    private struct Frames: FloatingElementVisitor {
        let kernel: STFTKernel
        let signal: TensorView, window: TensorView?, y: TensorView
        let g: Geometry
        let transform: SignalFourierTransform
        let pool: ComputePool

        func visit<T: FloatingElement>(_: T.Type) { kernel.frames(T.self, signal, window, y, g, transform, pool) }
    }

    private func frames<T: FloatingElement>(
        _: T.Type, _ signal: TensorView, _ window: TensorView?, _ y: TensorView, _ g: Geometry,
        _ transform: SignalFourierTransform, _ pool: ComputePool
    ) {
        let input = UnsafePointer(signal.pointer(as: T.self)), output = y.pointer(as: T.self)
        let weights = window.map { UnsafePointer($0.pointer(as: T.self)) }
        let n = g.frameLength
        let cost = n * (transform.isPowerOfTwo ? max(1, n.trailingZeroBitCount) : n) * 4
        pool.forEachChunk(g.batch * g.frames, costPerItem: cost) { range in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: SignalFourierTransform.lineCount(n)) { buffer in
                let re = buffer.baseAddress!, im = re + n, scratch = im + n
                for item in range {
                    let b = item / g.frames, f = item % g.frames
                    for t in 0..<n {
                        let at = (b * g.signalLength + f * g.step + t) * g.components
                        let w = weights.map { Double($0[t]) } ?? 1
                        re[t] = Double(input[at]) * w
                        im[t] = g.components == 2 ? Double(input[at + 1]) * w : 0
                    }
                    transform.transform(re, im, inverse: false, scratchRe: scratch, scratchIm: scratch + n)
                    let base = item * g.bins * 2
                    for k in 0..<g.bins {
                        output[base + 2 * k] = T(re[k])
                        output[base + 2 * k + 1] = T(im[k])
                    }
                }
            }
        }
    }
}

// MARK: - Windows

/// HannWindow, HammingWindow, BlackmanWindow: a window of `size` points, periodic or
/// symmetric, converted to `output_datatype` (integer types truncate, as Cast does).
package struct WindowKernel: Kernel {
    package let kind: SignalWindows.Kind
    package let periodic: Bool
    package let outputType: DataType

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let op = kind.rawValue
        guard inputs.count == 1, let size = try scalarInteger(inputs[0], op: op, what: "size") else {
            throw OnyxError.invalidModel("\(op) takes one input (size)")
        }
        guard size >= 0 else { throw OnyxError.invalidInput("\(op): size must be ≥ 0, got \(size)") }
        return [TensorDescriptor(outputType, [size])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        max(outputs.first?.elementCount ?? 0, 1) * 8
    }

    package func run(_ context: borrowing KernelContext) throws {
        let y = context.output(0), size = y.elementCount
        guard let values = context.workspace?.assumingMemoryBound(to: Double.self) else {
            throw OnyxError.internalError("\(kind.rawValue): no workspace")
        }
        SignalWindows.fill(kind, periodic: periodic, size: size, into: values)
        Casting.convert(UnsafeRawPointer(values), from: .double, to: y.data, outputType, count: size)
    }
}

// MARK: - MelWeightMatrix

/// MelWeightMatrix: triangular mel filters mapping `dft_length/2 + 1` spectrogram bins to
/// `num_mel_bins` mel bands, as the ONNX reference computes them.
package struct MelWeightMatrixKernel: Kernel {
    package let outputType: DataType

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let op = "MelWeightMatrix"
        guard inputs.count == 5, inputs.allSatisfy({ $0 != nil }) else {
            throw OnyxError.invalidModel("\(op) takes num_mel_bins, dft_length, sample_rate, lower_edge_hertz and upper_edge_hertz")
        }
        guard let melBins = try scalarInteger(inputs[0], op: op, what: "num_mel_bins"),
              let dftLength = try scalarInteger(inputs[1], op: op, what: "dft_length") else {
            throw OnyxError.invalidModel("\(op): missing num_mel_bins or dft_length")
        }
        guard (0...Int(Int32.max)).contains(melBins), (1...Int(Int32.max)).contains(dftLength) else {
            throw OnyxError.invalidInput("\(op): num_mel_bins (\(melBins)) must be ≥ 0 and dft_length (\(dftLength)) ≥ 1")
        }
        guard let rate = inputs[2], [.int32, .int64].contains(rate.dataType), rate.elementCount == 1 else {
            throw OnyxError.unsupportedDataType("\(op): sample_rate must be an int32 or int64 scalar")
        }
        for index in 3...4 {
            guard let edge = inputs[index], [.float, .double, .float16].contains(edge.dataType), edge.elementCount == 1,
                  edge.dataType == inputs[3]?.dataType else {
                throw OnyxError.unsupportedDataType(
                    "\(op): lower_edge_hertz and upper_edge_hertz must be scalars of one type among float, double, float16")
            }
        }
        return [TensorDescriptor(outputType, [dftLength / 2 + 1, melBins])]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        max(outputs.first?.elementCount ?? 0, 1) * 8
    }

    package func run(_ context: borrowing KernelContext) throws {
        let y = context.output(0)
        guard let melBins = scalarInteger(context.input(0)), let dftLength = scalarInteger(context.input(1)),
              let sampleRate = scalarInteger(context.input(2)) else {
            throw OnyxError.invalidInput("MelWeightMatrix: num_mel_bins, dft_length and sample_rate must be int32 or int64")
        }
        guard sampleRate > 0 else { throw OnyxError.invalidInput("MelWeightMatrix: sample_rate must be positive, got \(sampleRate)") }
        let lowerView = context.input(3)!, upperView = context.input(4)!
        let lower = QuantizationLoops.double(lowerView, at: 0), upper = QuantizationLoops.double(upperView, at: 0)
        let intervals = Double(melBins + 2)
        // The reference computes the band edges' mel values in the edges' own precision.
        let lowMel: Double, melStep: Double
        switch lowerView.dataType {
        case .double:
            lowMel = 2595 * log1p(lower / 700) / log(10.0)
            melStep = (2595 * log1p(upper / 700) / log(10.0) - lowMel) / intervals
        default:
            func mel(_ f: Double) -> Float { Float(2595) * log1pf(Float(f) / 700) / Float(log(10.0)) }
            let low = mel(lower), high = mel(upper)
            lowMel = Double(low)
            melStep = Double((high - low) / Float(intervals))
        }
        guard let values = context.workspace?.assumingMemoryBound(to: Double.self) else {
            throw OnyxError.internalError("MelWeightMatrix: no workspace")
        }
        SignalWindows.melWeights(
            melBins: melBins, dftLength: dftLength, sampleRate: sampleRate, lowMel: lowMel, melStep: melStep, into: values)
        Casting.convert(UnsafeRawPointer(values), from: .double, to: y.data, outputType, count: y.elementCount)
    }
}
