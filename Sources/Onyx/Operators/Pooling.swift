extension OperatorRegistry {
    static let poolingOperators: [OperatorRegistration] = [
        OperatorRegistration("MaxPool") { context in
            if context.outputCount > 1 && !context.node.outputs[1].isEmpty {
                throw context.attributeError("the Indices output of MaxPool is not supported")
            }
            if try context.int("storage_order", default: 0) != 0 {
                throw context.attributeError("storage_order = 1 is not supported")
            }
            return try PoolKernel(context, kind: .max)
        },
        OperatorRegistration("AveragePool") { context in try PoolKernel(context, kind: .average) },
        OperatorRegistration("GlobalAveragePool") { _ in GlobalPoolKernel(kind: .average) },
        OperatorRegistration("GlobalMaxPool") { _ in GlobalPoolKernel(kind: .max) },
    ]
}

enum PoolKind { case max, average }

/// MaxPool and AveragePool over 1-D or 2-D windows (pads, strides, dilations, ceil_mode, auto_pad,
/// count_include_pad), float32.
struct PoolKernel: Kernel {
    let kind: PoolKind
    let spatial: SpatialAttributes
    let kernelShape: [Int]
    let countIncludePad: Bool

    init(_ context: NodeContext, kind: PoolKind) throws {
        self.kind = kind
        spatial = try SpatialAttributes(context)
        guard let kernel = spatial.kernelShape else { throw context.attributeError("missing 'kernel_shape'") }
        kernelShape = kernel
        countIncludePad = try context.int("count_include_pad", default: 0) != 0
        if kind == .average && context.opset < 19 && spatial.dilations.map({ $0.contains { $0 != 1 } }) == true {
            throw context.attributeError("AveragePool has no dilations before opset 19")
        }
    }

    private func geometry(_ x: [Int]) throws -> ConvolutionGeometry {
        guard x.count == 3 || x.count == 4, x.count - 2 == kernelShape.count else {
            throw OnyxError.shapeMismatch("\(kind == .max ? "MaxPool" : "AveragePool"): input \(x) does not match kernel_shape \(kernelShape)")
        }
        return try spatial.geometry(spatial: Array(x[2...]), kernel: kernelShape, op: kind == .max ? "MaxPool" : "AveragePool")
    }

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("pooling takes one input") }
        guard x.dataType == .float else { throw OnyxError.unsupportedDataType("pooling supports float, got \(x.dataType)") }
        let g = try geometry(x.shape)
        let out = x.shape.count == 3 ? [g.outputWidth] : [g.outputHeight, g.outputWidth]
        return [TensorDescriptor(.float, Array(x.shape[0..<2]) + out)]
    }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let g = try geometry(x.shape)
        let planes = x.shape[0] * x.shape[1]
        let input = UnsafePointer(x.pointer(as: Float.self)), output = y.pointer(as: Float.self)
        let kind = self.kind, countIncludePad = self.countIncludePad
        // Pads the window may count (explicit pads only; the ceil_mode overhang never counts).
        let padBottom = spatial.pads.map { $0.count == 4 ? $0[2] : 0 } ?? 0
        let padRight = spatial.pads.map { $0.count == 4 ? $0[3] : ($0.count == 2 ? $0[1] : 0) } ?? 0
        let explicitPads = spatial.autoPad == "NOTSET"
        context.pool.parallelRanges(planes) { range in
            for plane in range {
                let src = input + plane * g.inputArea
                let dst = output + plane * g.outputArea
                for oy in 0..<g.outputHeight {
                    for ox in 0..<g.outputWidth {
                        var best = -Float.infinity
                        var sum: Float = 0
                        var count = 0
                        var padded = 0
                        for ky in 0..<g.kernelHeight {
                            let iy = oy * g.strideY + ky * g.dilationY - g.padTop
                            for kx in 0..<g.kernelWidth {
                                let ix = ox * g.strideX + kx * g.dilationX - g.padLeft
                                if iy >= 0 && iy < g.inputHeight && ix >= 0 && ix < g.inputWidth {
                                    let v = src[iy * g.inputWidth + ix]
                                    best = max(best, v)
                                    sum += v
                                    count += 1
                                } else if !explicitPads
                                            || (iy >= -g.padTop && iy < g.inputHeight + padBottom
                                                && ix >= -g.padLeft && ix < g.inputWidth + padRight) {
                                    padded += 1
                                }
                            }
                        }
                        let divisor = countIncludePad ? count + padded : count
                        dst[oy * g.outputWidth + ox] = kind == .max ? best : (divisor > 0 ? sum / Float(divisor) : 0)
                    }
                }
            }
        }
    }
}

/// GlobalAveragePool / GlobalMaxPool: one value per (image, channel).
struct GlobalPoolKernel: Kernel {
    let kind: PoolKind

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil, x.shape.count >= 2 else {
            throw OnyxError.shapeMismatch("global pooling needs an N×C×… input")
        }
        guard x.dataType == .float else { throw OnyxError.unsupportedDataType("global pooling supports float, got \(x.dataType)") }
        return [TensorDescriptor(.float, Array(x.shape[0..<2]) + Array(repeating: 1, count: x.shape.count - 2))]
    }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let planes = x.shape[0] * x.shape[1]
        let area = x.shape[2...].reduce(1, *)
        let input = x.pointer(as: Float.self), output = y.pointer(as: Float.self)
        for plane in 0..<planes {
            let src = input + plane * area
            if kind == .max {
                var best = -Float.infinity
                for i in 0..<area { best = max(best, src[i]) }
                output[plane] = best
            } else {
                var sum: Float = 0
                for i in 0..<area { sum += src[i] }
                output[plane] = area > 0 ? sum / Float(area) : 0
            }
        }
    }
}
