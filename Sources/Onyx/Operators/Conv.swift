extension OperatorRegistry {
    static let convolutionOperators: [OperatorRegistration] = [
        OperatorRegistration("Conv") { context in try Float32Staged(context) { try ConvKernel($0) } }
    ]
}

/// ONNX Conv (1-D and 2-D, groups, depthwise, strides, pads, dilations, auto_pad), float32.
///
/// Each (image, group) is one GEMM: `Y_g[M/g, OH·OW] = W_g[M/g, C/g·kh·kw] × cols[C/g·kh·kw, OH·OW]`,
/// with the weights packed once as A strips and the image written by im2col straight into packed
/// B panels (a plain copy for 1×1 convolutions). Depthwise convolutions run a direct kernel.
struct ConvKernel: Kernel {
    let spatial: SpatialAttributes
    let group: Int
    let activation: (min: Float, max: Float)?
    let isa: KernelISA
    /// Per group, the constant weights packed as A strips.
    let packedWeights: [PackedPanels]?
    let constantWeights: Tensor?

    init(_ context: NodeContext) throws {
        spatial = try SpatialAttributes(context)
        group = try context.int("group", default: 1)
        guard group >= 1 else { throw context.attributeError("group must be ≥ 1, got \(group)") }
        activation = try context.fusedActivation()
        isa = context.isa
        if let w = context.constantInput(1), w.dataType == .float, w.rank >= 3, w.shape[0] % group == 0 {
            let perGroup = w.shape[0] / group
            let depth = w.shape[1...].reduce(1, *)
            let base = w.baseAddress.assumingMemoryBound(to: Float.self)
            let isa = context.isa
            packedWeights = (0..<group).map { g in
                Gemm.prepackA(base + g * perGroup * depth, m: perGroup, k: depth, ld: depth, transposed: false, isa: isa)
            }
            constantWeights = w
        } else {
            packedWeights = nil
            constantWeights = nil
        }
    }

    private struct Shapes {
        let batch: Int, channels: Int, filters: Int
        let geometry: ConvolutionGeometry
        let outputShape: [Int]
    }

    private func shapes(_ x: [Int], _ w: [Int], bias: [Int]?) throws -> Shapes {
        guard x.count >= 3, x.count <= 4 else {
            throw OnyxError.shapeMismatch("Conv: input must be N×C×W or N×C×H×W, got \(x)")
        }
        guard w.count == x.count else {
            throw OnyxError.shapeMismatch("Conv: weight \(w) must have the input's rank \(x.count)")
        }
        let channels = x[1], filters = w[0]
        guard channels == w[1] * group else {
            throw OnyxError.shapeMismatch("Conv: input has \(channels) channels but weight \(w) with group \(group) expects \(w[1] * group)")
        }
        guard filters % group == 0 else {
            throw OnyxError.shapeMismatch("Conv: \(filters) filters do not divide into \(group) groups")
        }
        if let bias, bias != [filters] {
            throw OnyxError.shapeMismatch("Conv: bias must have shape [\(filters)], got \(bias)")
        }
        let kernel = Array(w[2...])
        if let declared = spatial.kernelShape, declared != kernel {
            throw OnyxError.shapeMismatch("Conv: kernel_shape \(declared) does not match weight \(w)")
        }
        let spatialIn = Array(x[2...])
        let (output, _) = try spatial.resolve(spatial: spatialIn, kernel: kernel, op: "Conv")
        let geometry = try spatial.geometry(spatial: spatialIn, kernel: kernel, op: "Conv")
        return Shapes(batch: x[0], channels: channels, filters: filters, geometry: geometry,
                      outputShape: [x[0], filters] + output)
    }

    /// The run's shapes, read off the planned views without building arrays when the pads do not
    /// depend on the input size (auto_pad NOTSET or VALID; the plan has checked them).
    private func runShapes(_ x: TensorView, _ w: TensorView, _ y: TensorView, bias: TensorView?) throws -> Shapes {
        guard spatial.autoPad == "NOTSET" || spatial.autoPad == "VALID", x.rank == w.rank, x.rank == y.rank,
              x.rank == 3 || x.rank == 4
        else { return try shapes(x.shape, w.shape, bias: bias?.shape) }
        func value(_ list: [Int]?, _ index: Int, _ fallback: Int) -> Int {
            guard let list, index < list.count else { return fallback }
            return list[index]
        }
        let valid = spatial.autoPad == "VALID"
        let geometry: ConvolutionGeometry
        if x.rank == 3 {
            geometry = ConvolutionGeometry(
                inputHeight: 1, inputWidth: x.shape[2], kernelHeight: 1, kernelWidth: w.shape[2],
                strideY: 1, strideX: value(spatial.strides, 0, 1), dilationY: 1, dilationX: value(spatial.dilations, 0, 1),
                padTop: 0, padLeft: valid ? 0 : value(spatial.pads, 0, 0), outputHeight: 1, outputWidth: y.shape[2])
        } else {
            geometry = ConvolutionGeometry(
                inputHeight: x.shape[2], inputWidth: x.shape[3], kernelHeight: w.shape[2], kernelWidth: w.shape[3],
                strideY: value(spatial.strides, 0, 1), strideX: value(spatial.strides, 1, 1),
                dilationY: value(spatial.dilations, 0, 1), dilationX: value(spatial.dilations, 1, 1),
                padTop: valid ? 0 : value(spatial.pads, 0, 0), padLeft: valid ? 0 : value(spatial.pads, 1, 0),
                outputHeight: y.shape[2], outputWidth: y.shape[3])
        }
        return Shapes(batch: x.shape[0], channels: x.shape[1], filters: w.shape[0], geometry: geometry, outputShape: y.shape)
    }

    func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 2, let x = inputs[0], let w = inputs[1] else { throw OnyxError.invalidModel("Conv takes X and W") }
        guard x.dataType == .float, w.dataType == .float else {
            throw OnyxError.unsupportedDataType("Conv supports float, got \(x.dataType) and \(w.dataType)")
        }
        let bias = inputs.count > 2 ? inputs[2] : nil
        if let bias, bias.dataType != .float { throw OnyxError.unsupportedDataType("Conv: bias must be float") }
        return [TensorDescriptor(.float, try shapes(x.shape, w.shape, bias: bias?.shape).outputShape)]
    }

    func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let x = inputs[0], let w = inputs[1], let s = try? shapes(x.shape, w.shape, bias: nil) else { return 0 }
        if s.channels == group && s.filters == group { return 0 }
        let depth = (s.channels / group) * s.geometry.kernelArea
        var floats = PackedPanels.floatCount(extent: s.geometry.outputArea, depth: depth, width: Gemm.nr(isa))
        if packedWeights == nil {
            floats += PackedPanels.floatCount(extent: s.filters / group, depth: depth, width: Gemm.mr(isa))
        }
        return floats * 4 + 64
    }

    func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, w = context.input(1)!, y = context.output(0)
        let s = try runShapes(x, w, y, bias: context.input(2))
        let g = s.geometry
        let bias = context.input(2).map { UnsafePointer($0.pointer(as: Float.self)) }
        let input = UnsafePointer(x.pointer(as: Float.self))
        let weights = UnsafePointer(w.pointer(as: Float.self))
        let output = y.pointer(as: Float.self)
        let channelsPerGroup = s.channels / group, filtersPerGroup = s.filters / group

        if s.channels == group && s.filters == group {
            let planes = s.batch * s.channels
            let activation = self.activation, isa = self.isa
            let chunk = max(1, (1 << 16) / max(g.outputArea * g.kernelArea, 1))
            context.pool.parallelRanges(planes, minimumChunk: chunk) { range in
                for plane in range {
                    let c = plane % s.channels
                    Convolution.depthwisePlane(
                        input + plane * g.inputArea, weights + c * g.kernelArea, bias: bias?[c] ?? 0,
                        output + plane * g.outputArea, geometry: g, clip: activation, isa: isa)
                }
            }
            return
        }

        guard let workspace = context.workspace?.assumingMemoryBound(to: Float.self) else {
            throw OnyxError.internalError("Conv: no workspace")
        }
        let depth = channelsPerGroup * g.kernelArea
        let nr = Gemm.nr(isa), mr = Gemm.mr(isa)
        let columns = workspace
        let strips = workspace + PackedPanels.floatCount(extent: g.outputArea, depth: depth, width: nr)

        for n in 0..<s.batch {
            for gi in 0..<group {
                let image = input + (n * s.channels + gi * channelsPerGroup) * g.inputArea
                // Small images are gathered on one thread: waking another costs more than the copy.
                let chunk = max(8, (1 << 16) / max(g.outputArea, 1))
                context.pool.parallelRanges(depth, minimumChunk: chunk) { rows in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: g.outputArea) { line in
                        Convolution.packImageColumns(
                            image, channels: channelsPerGroup, geometry: g, nr: nr, into: columns, rows: rows,
                            line: line.baseAddress!)
                    }
                }
                let b = PackedPanels(extent: g.outputArea, depth: depth, width: nr, base: UnsafePointer(columns), owner: nil)
                let a: PackedPanels
                if let packedWeights {
                    a = packedWeights[gi]
                } else {
                    Gemm.packA(weights + gi * filtersPerGroup * depth, m: filtersPerGroup, k: depth, ld: depth,
                               transposed: false, mr: mr, into: strips)
                    a = PackedPanels(extent: filtersPerGroup, depth: depth, width: mr, base: UnsafePointer(strips), owner: nil)
                }
                var epilogue = Gemm.Epilogue()
                epilogue.biasRow = bias.map { $0 + gi * filtersPerGroup }
                epilogue.clip = activation
                let out = output + (n * s.filters + gi * filtersPerGroup) * g.outputArea
                Gemm.multiply(isa: isa, m: filtersPerGroup, n: g.outputArea, k: depth, a: a, b: b, c: out,
                              ldc: g.outputArea, accumulate: false, epilogue: epilogue, pool: context.pool)
            }
        }
        withExtendedLifetime(constantWeights) {}
    }
}
