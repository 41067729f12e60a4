import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    package static let poolingOperators: [OperatorRegistration] = [
        OperatorRegistration("MaxPool") { context in
            let storageOrder = try context.int("storage_order", default: 0)
            guard storageOrder == 0 || storageOrder == 1 else {
                throw context.attributeError("storage_order must be 0 (row major) or 1 (column major), found \(storageOrder)")
            }
            let withIndices = context.outputCount > 1 && !context.node.outputs[1].isEmpty
            return PoolKernel(
                kind: .max(indices: withIndices, columnMajorIndices: storageOrder == 1),
                attributes: try PoolingAttributes(context), isa: context.isa)
        },
        OperatorRegistration("AveragePool") { context in
            PoolKernel(
                kind: .average(countIncludePad: try context.int("count_include_pad", default: 0) != 0),
                attributes: try PoolingAttributes(context), isa: context.isa)
        },
        OperatorRegistration("LpPool") { context in
            PoolKernel(kind: .lp(p: try lpPoolExponent(context)), attributes: try PoolingAttributes(context), isa: context.isa)
        },
        OperatorRegistration("GlobalAveragePool") { _ in GlobalPoolKernel(kind: .average) },
        OperatorRegistration("GlobalMaxPool") { _ in GlobalPoolKernel(kind: .max) },
        OperatorRegistration("GlobalLpPool") { context in GlobalPoolKernel(kind: .lp(p: try lpPoolExponent(context))) },
        OperatorRegistration("MaxUnpool", versions: 9...Int.max) { context in try MaxUnpoolKernel(context) },
    ]

    /// LpPool's and GlobalLpPool's `p` (default 2), ≥ 1.
    private static func lpPoolExponent(_ context: NodeContext) throws -> Int {
        let p = try context.int("p", default: 2)
        guard p >= 1 else { throw context.attributeError("p must be ≥ 1, found \(p)") }
        return p
    }
}

/// MaxPool, AveragePool and LpPool over windows of any number of spatial axes: kernel_shape,
/// strides, pads, dilations, ceil_mode, auto_pad, count_include_pad, and MaxPool's optional
/// Indices output. Float32 1-D and 2-D MaxPool and AveragePool take separable vectorised loops;
/// everything else (3-D and up, LpPool, double, float16, and int8/uint8 MaxPool) a direct loop
/// over each window.
package struct PoolKernel: Kernel {
    package enum Kind: Equatable {
        case max(indices: Bool, columnMajorIndices: Bool)
        case average(countIncludePad: Bool)
        /// `(Σ |x|ᵖ)^(1/p)` over the window's input elements.
        case lp(p: Int)
    }

    package let kind: Kind
    package let attributes: PoolingAttributes
    /// The micro-kernel variant of max pooling's horizontal pass.
    package let isa: KernelISA

    private var name: String {
        switch kind {
        case .max: "MaxPool"
        case .average: "AveragePool"
        case .lp: "LpPool"
        }
    }

    private var supportedTypes: [DataType] {
        if case .max = kind { return [.float, .double, .float16, .int8, .uint8] }
        return [.float, .double, .float16]
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else {
            throw OnyxError.invalidModel("\(name) takes one input, got \(inputs.compactMap { $0 }.count)")
        }
        guard supportedTypes.contains(x.dataType) else {
            throw OnyxError.unsupportedDataType(
                "\(name) does not support \(x.dataType); supported: \(supportedTypes.map(\.onnxName).joined(separator: ", "))")
        }
        let window = try attributes.window(input: x.shape, op: name)
        let y = TensorDescriptor(x.dataType, Array(x.shape[0..<2]) + window.output)
        if case .max(indices: true, _) = kind {
            return [y, TensorDescriptor(.int64, y.shape)]
        }
        return [y]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let planes = x.shape[0] * x.shape[1]
        if x.dataType == .float, attributes.kernel.count <= 2, !isLp {
            let g = try attributes.geometry(input: x.shape, op: name)
            let input = UnsafePointer(x.pointer(as: Float.self)), output = y.pointer(as: Float.self)
            switch kind {
            case .max(let withIndices, let columnMajor):
                if withIndices, let indices = context.optionalOutput(1) {
                    PoolingLoops.maxWithIndices(
                        input, output, indices.pointer(as: Int64.self), planes: planes, g,
                        columnMajor: columnMajor, pool: context.pool)
                } else {
                    PoolingLoops.max(input, output, planes: planes, g, isa: isa, pool: context.pool)
                }
            case .average(let countIncludePad):
                PoolingLoops.average(input, output, planes: planes, g, countIncludePad: countIncludePad, pool: context.pool)
            case .lp:
                break
            }
            return
        }
        let window = try attributes.window(input: x.shape, op: name)
        let loopKind: PoolingLoops.WindowKind
        var indices: UnsafeMutablePointer<Int64>?
        switch kind {
        case .max(let withIndices, let columnMajor):
            loopKind = .max(columnMajorIndices: columnMajor)
            if withIndices { indices = context.optionalOutput(1)?.pointer(as: Int64.self) }
        case .average(let countIncludePad): loopKind = .average(countIncludePad: countIncludePad)
        case .lp(let p): loopKind = .lp(p: p)
        }
        func pool<E: PoolingElement>(_: E.Type) {
            PoolingLoops.window(
                UnsafePointer(x.pointer(as: E.self)), y.pointer(as: E.self), indices: indices, planes: planes, window,
                kind: loopKind, pool: context.pool)
        }
        switch x.dataType {
        case .float: pool(Float.self)
        case .double: pool(Double.self)
        case .float16: pool(Float16.self)
        case .int8: pool(Int8.self)
        case .uint8: pool(UInt8.self)
        default: throw OnyxError.unsupportedDataType("\(name) does not support \(x.dataType)")
        }
    }

    private var isLp: Bool {
        if case .lp = kind { return true }
        return false
    }
}

/// GlobalAveragePool, GlobalMaxPool and GlobalLpPool: one value per (image, channel) over all
/// spatial axes.
package struct GlobalPoolKernel: Kernel {
    package enum Kind: Equatable { case average, max, lp(p: Int) }

    package let kind: Kind

    private var name: String {
        switch kind {
        case .average: "GlobalAveragePool"
        case .max: "GlobalMaxPool"
        case .lp: "GlobalLpPool"
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else {
            throw OnyxError.invalidModel("\(name) takes one input, got \(inputs.compactMap { $0 }.count)")
        }
        guard x.shape.count >= 3 else {
            throw OnyxError.shapeMismatch("\(name): input of shape \(x.shape) needs N, C and at least one spatial axis")
        }
        guard x.dataType.isFloatingPoint else {
            throw OnyxError.unsupportedDataType("\(name) supports float, double and float16, got \(x.dataType)")
        }
        return [TensorDescriptor(x.dataType, Array(x.shape[0..<2]) + Array(repeating: 1, count: x.shape.count - 2))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let planes = x.shape[0] * x.shape[1], area = x.shape[2...].reduce(1, *)
        if x.dataType == .float, kind == .average || kind == .max {
            PoolingLoops.global(
                UnsafePointer(x.pointer(as: Float.self)), y.pointer(as: Float.self),
                planes: planes, area: area, average: kind == .average, pool: context.pool)
            return
        }
        let loopKind: PoolingLoops.WindowKind
        switch kind {
        case .average: loopKind = .average(countIncludePad: false)
        case .max: loopKind = .max(columnMajorIndices: false)
        case .lp(let p): loopKind = .lp(p: p)
        }
        // One window covering each whole plane.
        let window = PoolingWindow(
            input: [area], output: [1], kernel: [area], strides: [1], dilations: [1], begin: [0], paddedInput: [area])
        let pooling = GlobalPooling(x: x, y: y, planes: planes, window: window, kind: loopKind, pool: context.pool)
        try x.dataType.visitFloating(pooling, operation: name)
    }

    private struct GlobalPooling: FloatingElementVisitor {
        let x: TensorView, y: TensorView
        let planes: Int
        let window: PoolingWindow
        let kind: PoolingLoops.WindowKind
        let pool: ComputePool

        func visit<E: FloatingElement>(_: E.Type) {
            PoolingLoops.window(
                UnsafePointer(x.pointer(as: E.self)), y.pointer(as: E.self), indices: nil, planes: planes, window, kind: kind,
                pool: pool)
        }
    }
}

/// MaxUnpool: scatters X into zeros at the positions `I` names (flat indices into the shape a
/// MaxPool with these attributes inverts). With the optional `output_shape` input, that inferred
/// tensor fills the leading corner of a zero tensor of the given shape.
package struct MaxUnpoolKernel: Kernel {
    package let kernel: [Int]
    package let strides: [Int]
    package let pads: [Int]

    package init(_ context: NodeContext) throws {
        guard let kernel = try context.ints("kernel_shape") else { throw context.attributeError("missing 'kernel_shape'") }
        let rank = kernel.count
        let strides = try context.ints("strides") ?? Array(repeating: 1, count: rank)
        let pads = try context.ints("pads") ?? Array(repeating: 0, count: 2 * rank)
        guard rank >= 1 else { throw context.attributeError("kernel_shape is empty") }
        for (name, values, count) in [("strides", strides, rank), ("pads", pads, 2 * rank)] where values.count != count {
            throw context.attributeError("'\(name)' has \(values.count) values; kernel_shape \(kernel) needs \(count)")
        }
        guard kernel.allSatisfy({ $0 >= 1 }) else { throw context.attributeError("kernel_shape \(kernel) must be ≥ 1") }
        guard strides.allSatisfy({ $0 >= 1 }) else { throw context.attributeError("strides \(strides) must be ≥ 1") }
        guard pads.allSatisfy({ $0 >= 0 }) else { throw context.attributeError("pads \(pads) must be ≥ 0") }
        self.kernel = kernel
        self.strides = strides
        self.pads = pads
    }

    /// The shape MaxPool's input had: `(in − 1) · stride − pads + kernel` per spatial axis.
    private func inferredShape(_ x: [Int]) throws -> [Int] {
        guard x.count == kernel.count + 2 else {
            throw OnyxError.shapeMismatch("MaxUnpool: X of shape \(x) needs rank \(kernel.count + 2) for kernel_shape \(kernel)")
        }
        var shape = Array(x[0..<2])
        for a in 0..<kernel.count {
            let extent = (x[a + 2] - 1) * strides[a] - (pads[a] + pads[a + kernel.count]) + kernel[a]
            guard extent >= 0 else { throw OnyxError.shapeMismatch("MaxUnpool: X of shape \(x) gives a negative output extent") }
            shape.append(extent)
        }
        return shape
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard (2...3).contains(inputs.count), let x = inputs[0], let indices = inputs[1] else {
            throw OnyxError.invalidModel("MaxUnpool takes X, I and optional output_shape")
        }
        guard x.dataType.isFloatingPoint else {
            throw OnyxError.unsupportedDataType("MaxUnpool supports float, double and float16, got \(x.dataType)")
        }
        guard indices.dataType == .int64, indices.shape == x.shape else {
            throw OnyxError.shapeMismatch("MaxUnpool: I must be int64 of X's shape \(x.shape), got \(indices.descriptor)")
        }
        let inferred = try inferredShape(x.shape)
        guard let requested = try constantIntegers(inputs.count > 2 ? inputs[2] : nil, op: "MaxUnpool", what: "output_shape") else {
            return [TensorDescriptor(x.dataType, inferred)]
        }
        guard requested.count == inferred.count, zip(requested, inferred).allSatisfy({ $0 >= $1 }) else {
            throw OnyxError.shapeMismatch("MaxUnpool: output_shape \(shapeText(requested)) must have rank \(inferred.count) and hold \(shapeText(inferred))")
        }
        return [TensorDescriptor(x.dataType, requested)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, indices = context.input(1)!.pointer(as: Int64.self), y = context.output(0)
        let inferred = try inferredShape(x.shape)
        let inferredCount = inferred.reduce(1, *)
        let bytes = x.dataType.byteWidth
        y.data.initializeMemory(as: UInt8.self, repeating: 0, count: y.byteCount)
        let count = x.elementCount
        for i in 0..<count {
            let index = Int(indices[i])
            guard index >= 0 && index < inferredCount else {
                throw OnyxError.invalidInput("MaxUnpool: index \(index) is out of range for an output of shape \(shapeText(inferred))")
            }
            // The position in the inferred shape, re-flattened in the (possibly larger) output shape.
            var rest = index, target = 0, step = 1
            for a in stride(from: inferred.count - 1, through: 0, by: -1) {
                target += (rest % inferred[a]) * step
                rest /= inferred[a]
                step *= y.shape[a]
            }
            (y.data + target * bytes).copyMemory(from: x.data + i * bytes, byteCount: bytes)
        }
    }
}

/// The window attributes of MaxPool, AveragePool and LpPool, validated once per node.
package struct PoolingAttributes: Sendable, Equatable {
    package typealias AutoPad = WindowAxis.AutoPad

    /// One entry per spatial axis.
    package let kernel: [Int]
    package let strides: [Int]
    package let dilations: [Int]
    /// `[begin…, end…]`, as ONNX lists them; ignored unless `autoPad` is `.notSet`.
    package let pads: [Int]
    package let autoPad: AutoPad
    package let ceilMode: Bool

    /// Reads `kernel_shape`, `strides`, `dilations`, `pads`, `auto_pad` and `ceil_mode`.
    ///
    /// - Throws: ``OnyxError`` `.invalidAttribute` if one is missing, has the wrong length or an
    ///   out-of-range value.
    package init(_ context: NodeContext) throws {
        guard let kernel = try context.ints("kernel_shape") else { throw context.attributeError("missing 'kernel_shape'") }
        guard !kernel.isEmpty else { throw context.attributeError("kernel_shape is empty") }
        let rank = kernel.count
        let strides = try context.ints("strides") ?? Array(repeating: 1, count: rank)
        let dilations = try context.ints("dilations") ?? Array(repeating: 1, count: rank)
        let pads = try context.ints("pads") ?? Array(repeating: 0, count: 2 * rank)
        let autoPadName = try context.string("auto_pad", default: "NOTSET")
        guard let autoPad = AutoPad(rawValue: autoPadName) else {
            throw context.attributeError("auto_pad '\(autoPadName)' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        }
        for (name, values, count) in [("strides", strides, rank), ("dilations", dilations, rank), ("pads", pads, 2 * rank)]
        where values.count != count {
            throw context.attributeError("'\(name)' has \(values.count) values; kernel_shape \(kernel) needs \(count)")
        }
        guard kernel.allSatisfy({ $0 >= 1 }) else { throw context.attributeError("kernel_shape \(kernel) must be ≥ 1") }
        guard strides.allSatisfy({ $0 >= 1 }) else { throw context.attributeError("strides \(strides) must be ≥ 1") }
        guard dilations.allSatisfy({ $0 >= 1 }) else { throw context.attributeError("dilations \(dilations) must be ≥ 1") }
        guard pads.allSatisfy({ $0 >= 0 }) else { throw context.attributeError("pads \(pads) must be ≥ 0") }
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        self.pads = pads
        self.autoPad = autoPad
        self.ceilMode = try context.int("ceil_mode", default: 0) != 0
    }

    private func checkRank(_ shape: [Int], op: String) throws {
        guard shape.count == kernel.count + 2 else {
            throw OnyxError.shapeMismatch(
                "\(op): input of shape \(shape) needs rank \(kernel.count + 2) (N, C and \(kernel.count) spatial axes) for kernel_shape \(kernel)")
        }
    }

    /// The window for an input of shape `[N, C, spatial…]`, any number of spatial axes.
    ///
    /// - Throws: ``OnyxError`` `.shapeMismatch` if the input's rank does not fit the kernel or
    ///   the window does not fit in the padded input.
    package func window(input shape: [Int], op: String) throws -> PoolingWindow {
        try checkRank(shape, op: op)
        var w = PoolingWindow(input: Array(shape[2...]), output: [], kernel: kernel, strides: strides, dilations: dilations,
                              begin: [], paddedInput: [])
        for axis in 0..<kernel.count {
            let r = try resolve(axis: axis, input: shape[axis + 2], op: op)
            w.output.append(r.output)
            w.begin.append(r.begin)
            w.paddedInput.append(shape[axis + 2] + r.begin + r.end)
        }
        return w
    }

    /// The geometry of a 1-D or 2-D window for an input of shape `[N, C, spatial…]`.
    ///
    /// - Throws: ``OnyxError`` `.shapeMismatch` if the input's rank does not fit the kernel or
    ///   the window does not fit in the padded input.
    package func geometry(input shape: [Int], op: String) throws -> PoolingGeometry {
        try checkRank(shape, op: op)
        let rank = kernel.count
        let x = try resolve(axis: rank - 1, input: shape[rank + 1], op: op)
        if rank == 1 {
            return PoolingGeometry(
                inputHeight: 1, inputWidth: shape[2], kernelHeight: 1, kernelWidth: kernel[0],
                strideY: 1, strideX: strides[0], dilationY: 1, dilationX: dilations[0],
                padTop: 0, padLeft: x.begin, padBottom: 0, padRight: x.end,
                outputHeight: 1, outputWidth: x.output)
        }
        let y = try resolve(axis: 0, input: shape[2], op: op)
        return PoolingGeometry(
            inputHeight: shape[2], inputWidth: shape[3], kernelHeight: kernel[0], kernelWidth: kernel[1],
            strideY: strides[0], strideX: strides[1], dilationY: dilations[0], dilationX: dilations[1],
            padTop: y.begin, padLeft: x.begin, padBottom: y.end, padRight: x.end,
            outputHeight: y.output, outputWidth: x.output)
    }

    /// Output extent and the pads before and after one spatial axis of extent `input`.
    private func resolve(axis: Int, input: Int, op: String) throws -> (output: Int, begin: Int, end: Int) {
        let r = WindowAxis.resolve(
            input: input, kernel: kernel[axis], stride: strides[axis], dilation: dilations[axis], padBegin: pads[axis],
            padEnd: pads[axis + kernel.count], autoPad: autoPad, ceilMode: ceilMode)
        guard r.span >= 0 else {
            let extent = (kernel[axis] - 1) * dilations[axis] + 1
            throw OnyxError.shapeMismatch(
                "\(op): a window of extent \(extent) does not fit spatial extent \(input) padded by \(r.begin)+\(r.end)")
        }
        return (r.output, r.begin, r.end)
    }
}
