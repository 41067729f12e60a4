extension OperatorRegistry {
    static let poolingOperators: [OperatorRegistration] = [
        OperatorRegistration("MaxPool") { context in
            let storageOrder = try context.int("storage_order", default: 0)
            guard storageOrder == 0 || storageOrder == 1 else {
                throw context.attributeError("storage_order must be 0 (row major) or 1 (column major), found \(storageOrder)")
            }
            let withIndices = context.outputCount > 1 && !context.node.outputs[1].isEmpty
            return PoolKernel(
                kind: .max(indices: withIndices, columnMajorIndices: storageOrder == 1),
                attributes: try PoolingAttributes(context))
        },
        OperatorRegistration("AveragePool") { context in
            PoolKernel(
                kind: .average(countIncludePad: try context.int("count_include_pad", default: 0) != 0),
                attributes: try PoolingAttributes(context))
        },
        OperatorRegistration("GlobalAveragePool") { _ in GlobalPoolKernel(average: true) },
        OperatorRegistration("GlobalMaxPool") { _ in GlobalPoolKernel(average: false) },
    ]
}

/// MaxPool and AveragePool over 1-D or 2-D windows, float32: kernel_shape, strides, pads,
/// dilations, ceil_mode, auto_pad, count_include_pad, and MaxPool's optional Indices output.
struct PoolKernel: Kernel {
    enum Kind: Equatable {
        case max(indices: Bool, columnMajorIndices: Bool)
        case average(countIncludePad: Bool)
    }

    let kind: Kind
    let attributes: PoolingAttributes

    private var name: String {
        if case .max = kind { "MaxPool" } else { "AveragePool" }
    }

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else {
            throw OnyxError.invalidModel("\(name) takes one input, got \(inputs.compactMap { $0 }.count)")
        }
        guard x.dataType == .float else {
            throw OnyxError.unsupportedDataType("\(name) supports float, got \(x.dataType)")
        }
        let g = try attributes.geometry(input: x.shape, op: name)
        let spatial = attributes.kernel.count == 1 ? [g.outputWidth] : [g.outputHeight, g.outputWidth]
        let y = TensorDescriptor(.float, Array(x.shape[0..<2]) + spatial)
        if case .max(indices: true, _) = kind {
            return [y, TensorDescriptor(.int64, y.shape)]
        }
        return [y]
    }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let g = try attributes.geometry(input: x.shape, op: name)
        let planes = x.shape[0] * x.shape[1]
        let input = UnsafePointer(x.pointer(as: Float.self)), output = y.pointer(as: Float.self)
        switch kind {
        case .max(let withIndices, let columnMajor):
            if withIndices, let indices = context.optionalOutput(1) {
                PoolingLoops.maxWithIndices(
                    input, output, indices.pointer(as: Int64.self), planes: planes, g,
                    columnMajor: columnMajor, pool: context.pool)
            } else {
                PoolingLoops.max(input, output, planes: planes, g, pool: context.pool)
            }
        case .average(let countIncludePad):
            PoolingLoops.average(input, output, planes: planes, g, countIncludePad: countIncludePad, pool: context.pool)
        }
    }
}

/// GlobalAveragePool and GlobalMaxPool: one value per (image, channel) over all spatial axes.
struct GlobalPoolKernel: Kernel {
    let average: Bool

    private var name: String { average ? "GlobalAveragePool" : "GlobalMaxPool" }

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == 1, let x = inputs[0] else {
            throw OnyxError.invalidModel("\(name) takes one input, got \(inputs.compactMap { $0 }.count)")
        }
        guard x.shape.count >= 3 else {
            throw OnyxError.shapeMismatch("\(name): input of shape \(x.shape) needs N, C and at least one spatial axis")
        }
        guard x.dataType == .float else {
            throw OnyxError.unsupportedDataType("\(name) supports float, got \(x.dataType)")
        }
        return [TensorDescriptor(.float, Array(x.shape[0..<2]) + Array(repeating: 1, count: x.shape.count - 2))]
    }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        PoolingLoops.global(
            UnsafePointer(x.pointer(as: Float.self)), y.pointer(as: Float.self),
            planes: x.shape[0] * x.shape[1], area: x.shape[2...].reduce(1, *), average: average, pool: context.pool)
    }
}
