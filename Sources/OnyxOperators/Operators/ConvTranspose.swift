import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// ConvTranspose.
    package static let convTransposeOperators: [OperatorRegistration] = [
        OperatorRegistration("ConvTranspose", versions: 1...10) { context in try ConvTransposeKernel(context) },
        OperatorRegistration("ConvTranspose", versions: 11...21) { context in try ConvTransposeKernel(context) },
        OperatorRegistration("ConvTranspose", versions: 22...Int.max) { context in try ConvTransposeKernel(context) },
    ]
}

/// ONNX ConvTranspose (1-D, 2-D and 3-D; strides, dilations, group, pads, output_padding,
/// output_shape, auto_pad).
///
/// Float32: per image and group one GEMM `cols[M/g·K, HW] = W_gᵀ × X_g` with the SGEMM driver
/// (weights packed once when constant), then col2im adds the columns into the bias-filled
/// output. Double and float16 run a direct loop that accumulates in double.
package struct ConvTransposeKernel: Kernel {
    package let kernelShape: [Int]?
    package let strides: [Int]?
    package let dilations: [Int]?
    package let pads: [Int]?
    package let outputPadding: [Int]?
    package let outputShape: [Int]?
    package let autoPad: String
    package let group: Int
    package let isa: KernelISA
    /// Per group, Wᵀ packed as A strips when W is a constant float tensor.
    package let packedWeights: [PackedPanels]?

    package init(_ context: NodeContext) throws {
        kernelShape = try context.ints("kernel_shape")
        strides = try context.ints("strides")
        dilations = try context.ints("dilations")
        pads = try context.ints("pads")
        outputPadding = try context.ints("output_padding")
        outputShape = try context.ints("output_shape")
        autoPad = try context.string("auto_pad", default: "NOTSET")
        guard ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"].contains(autoPad) else {
            throw context.attributeError("auto_pad '\(autoPad)' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        }
        group = try context.int("group", default: 1)
        guard group >= 1 else { throw context.attributeError("group must be ≥ 1, got \(group)") }
        guard (2...3).contains(context.inputCount) else {
            throw OnyxError.invalidModel("ConvTranspose node '\(context.node.name)' takes X, W and an optional B; got \(context.inputCount) inputs")
        }
        isa = context.isa
        if let w = context.constantInput(1), w.dataType == .float, (3...5).contains(w.rank), w.shape[0] % group == 0 {
            let channelsPerGroup = w.shape[0] / group
            let rows = w.shape[1...].reduce(1, *)
            let base = w.baseAddress.assumingMemoryBound(to: Float.self)
            let isa = context.isa
            packedWeights = (0..<group).map { g in
                Gemm.prepackA(base + g * channelsPerGroup * rows, m: rows, k: channelsPerGroup, ld: rows,
                              transposed: true, isa: isa)
            }
            withExtendedLifetime(w) {}
        } else {
            packedWeights = nil
        }
    }

    package struct Shapes {
        package var batch: Int, channels: Int, filters: Int
        package var geometry: TransposedConvolutionGeometry
        package var outputShape: [Int]
    }

    package func shapes(_ x: [Int], _ w: [Int], bias: [Int]?) throws -> Shapes {
        guard (3...5).contains(x.count), w.count == x.count else {
            throw OnyxError.shapeMismatch("ConvTranspose: X and W must both be 3-D to 5-D, got \(x) and \(w)")
        }
        let rank = x.count - 2
        let channels = x[1]
        guard w[0] == channels else {
            throw OnyxError.shapeMismatch("ConvTranspose: X has \(channels) channels but W \(w) expects \(w[0])")
        }
        guard channels % group == 0 else {
            throw OnyxError.shapeMismatch("ConvTranspose: \(channels) channels do not divide into \(group) groups")
        }
        let filters = w[1] * group
        if let bias, bias != [filters] {
            throw OnyxError.shapeMismatch("ConvTranspose: B must have shape [\(filters)], got \(bias)")
        }
        let kernel = Array(w[2...])
        if let kernelShape, kernelShape != kernel {
            throw OnyxError.shapeMismatch("ConvTranspose: kernel_shape \(kernelShape) does not match W \(w)")
        }
        let strides = self.strides ?? Array(repeating: 1, count: rank)
        let dilations = self.dilations ?? Array(repeating: 1, count: rank)
        let extra = self.outputPadding ?? Array(repeating: 0, count: rank)
        guard strides.count == rank, dilations.count == rank, extra.count == rank,
              pads == nil || pads!.count == 2 * rank else {
            throw OnyxError.invalidAttribute(
                "ConvTranspose: strides, dilations, output_padding (\(rank) each) and pads (\(2 * rank)) do not fit \(rank) spatial axes")
        }
        guard strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }), extra.allSatisfy({ $0 >= 0 }) else {
            throw OnyxError.invalidAttribute("ConvTranspose: strides and dilations must be ≥ 1 and output_padding ≥ 0")
        }
        var requested: [Int]?
        if let outputShape {
            guard outputShape.count == rank || outputShape.count == rank + 2 else {
                throw OnyxError.invalidAttribute("ConvTranspose: output_shape \(outputShape) does not fit \(rank) spatial axes")
            }
            requested = Array(outputShape.suffix(rank))
        }
        let input = Array(x[2...])
        var output: [Int] = [], begin: [Int] = []
        for axis in 0..<rank {
            let full = strides[axis] * (input[axis] - 1) + extra[axis] + (kernel[axis] - 1) * dilations[axis] + 1
            if pads == nil && (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
                let out = requested?[axis] ?? input[axis] * strides[axis]
                let total = full - out
                // Floor division, as the reference implementation does for a negative total.
                let half = Int((Double(total) / 2).rounded(.down))
                output.append(out)
                begin.append(autoPad == "SAME_UPPER" ? half : total - half)
            } else if let requested {
                output.append(requested[axis])
                begin.append(autoPad == "VALID" ? 0 : pads?[axis] ?? 0)
            } else {
                let padBegin = autoPad == "VALID" ? 0 : pads?[axis] ?? 0
                let padEnd = autoPad == "VALID" ? 0 : pads?[axis + rank] ?? 0
                output.append(full - padBegin - padEnd)
                begin.append(padBegin)
            }
            guard output[axis] >= 1, kernel[axis] >= 1 else {
                throw OnyxError.shapeMismatch("ConvTranspose: output extent \(output[axis]) on spatial axis \(axis) is not positive")
            }
        }
        let geometry = TransposedConvolutionGeometry(
            input: input, kernel: kernel, output: output, strides: strides, dilations: dilations, padBegin: begin)
        return Shapes(batch: x[0], channels: channels, filters: filters, geometry: geometry,
                      outputShape: [x[0], filters] + output)
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count >= 2, let x = inputs[0], let w = inputs[1] else {
            throw OnyxError.invalidModel("ConvTranspose takes X and W")
        }
        guard [.float, .double, .float16].contains(x.dataType) else {
            throw OnyxError.unsupportedDataType("ConvTranspose supports float, double and float16, got \(x.dataType)")
        }
        let bias = inputs.count > 2 ? inputs[2] : nil
        for other in [w, bias] {
            if let other, other.dataType != x.dataType {
                throw OnyxError.unsupportedDataType("ConvTranspose: X is \(x.dataType) but W or B is \(other.dataType)")
            }
        }
        return [TensorDescriptor(x.dataType, try shapes(x.shape, w.shape, bias: bias?.shape).outputShape)]
    }

    package func workspaceByteCount(inputs: [TensorDescriptor?], outputs: [TensorDescriptor]) -> Int {
        guard let x = inputs[0], let w = inputs[1], let s = try? shapes(x.shape, w.shape, bias: nil) else { return 0 }
        let g = s.geometry
        guard x.dataType == .float else { return s.filters * g.outputArea * 8 + 64 }
        let rows = s.filters / group * g.kernelArea, depth = s.channels / group
        // The columns, then the input planes' row offsets (the GEMM reads them in place).
        var floats = (rows * g.inputArea + 15) / 16 * 16 + (depth * MemoryLayout<Int>.stride / 4 + 15) / 16 * 16
        if packedWeights == nil { floats += PackedPanels.floatCount(extent: rows, depth: depth, width: Gemm.mr(isa)) + 16 }
        return floats * 4 + 64
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, w = context.input(1)!, y = context.output(0)
        let bias = context.input(2)
        let s = try shapes(x.shape, w.shape, bias: bias?.shape)
        guard let workspace = context.workspace else { throw OnyxError.internalError("ConvTranspose: no workspace") }
        if x.dataType == .float {
            runFloat(s, x, w, bias, y, workspace: workspace.assumingMemoryBound(to: Float.self), pool: context.pool)
        } else {
            let direct = Direct(kernel: self, s: s, x: x, w: w, bias: bias, y: y,
                                accumulator: workspace.assumingMemoryBound(to: Double.self))
            try x.dataType.visitFloating(direct, operation: "ConvTranspose")
        }
    }

    /// `runDirect` for double and float16 (float has its GEMM path).
    private struct Direct: FloatingElementVisitor {
        let kernel: ConvTransposeKernel
        let s: Shapes
        let x: TensorView, w: TensorView, bias: TensorView?, y: TensorView
        let accumulator: UnsafeMutablePointer<Double>

        func visit<T: FloatingElement>(_: T.Type) { kernel.runDirect(T.self, s, x, w, bias, y, accumulator: accumulator) }
    }

    private func runFloat(
        _ s: Shapes, _ x: TensorView, _ w: TensorView, _ bias: TensorView?, _ y: TensorView,
        workspace: UnsafeMutablePointer<Float>, pool: ComputePool
    ) {
        let g = s.geometry
        let channelsPerGroup = s.channels / group, filtersPerGroup = s.filters / group
        let rows = filtersPerGroup * g.kernelArea
        let mr = Gemm.mr(isa)
        let columns = workspace
        let offsetsAt = columns + (rows * g.inputArea + 15) / 16 * 16
        let strips = offsetsAt + (channelsPerGroup * MemoryLayout<Int>.stride / 4 + 15) / 16 * 16
        // B is the group's input planes, read in place: packing them would copy the whole image
        // (7 MB for a segmentation head's last layer) on one thread.
        let rowOffsets = UnsafeMutableRawPointer(offsetsAt).bindMemory(to: Int.self, capacity: channelsPerGroup)
        for c in 0..<channelsPerGroup { rowOffsets[c] = c * g.inputArea }
        // Output rows are independent (each sums its own taps), so col2im splits by filter and
        // row: a segmentation head's last layer has one filter and the largest map.
        let planeRows = g.output[0] == 1 ? g.output[1] : 1
        let rowLength = g.outputArea / planeRows
        let input = UnsafePointer(x.pointer(as: Float.self)), weights = UnsafePointer(w.pointer(as: Float.self))
        let output = y.pointer(as: Float.self)
        let biasValues = bias.map { UnsafePointer($0.pointer(as: Float.self)) }
        let area = g.outputArea

        for n in 0..<s.batch {
            for gi in 0..<group {
                let image = input + (n * s.channels + gi * channelsPerGroup) * g.inputArea
                let a: PackedPanels
                if let packedWeights {
                    a = packedWeights[gi]
                } else {
                    Gemm.packA(weights + gi * channelsPerGroup * rows, m: rows, k: channelsPerGroup, ld: rows,
                               transposed: true, mr: mr, isa: isa, into: strips)
                    a = PackedPanels(extent: rows, depth: channelsPerGroup, width: mr, base: UnsafePointer(strips), owner: nil)
                }
                Gemm.multiply(isa: isa, m: rows, n: g.inputArea, k: channelsPerGroup, a: a,
                              b: .rows(base: image, rowOffsets: UnsafePointer(rowOffsets)), c: columns,
                              ldc: g.inputArea, accumulate: false, epilogue: .none, pool: pool)
                let firstFilter = gi * filtersPerGroup
                pool.forEachChunk(filtersPerGroup * planeRows, costPerItem: rowLength * (1 + g.kernelArea)) { range in
                    var item = range.lowerBound
                    while item < range.upperBound {
                        let m = item / planeRows, first = item % planeRows
                        let end = min(planeRows, first + range.upperBound - item)
                        let plane = output + (n * s.filters + firstFilter + m) * area
                        (plane + first * rowLength).update(repeating: biasValues?[firstFilter + m] ?? 0,
                                                           count: (end - first) * rowLength)
                        TransposedConvolution.accumulateColumns(
                            UnsafePointer(columns + m * g.kernelArea * g.inputArea), into: plane, geometry: g,
                            outputRows: planeRows == 1 ? nil : first..<end)
                        item += end - first
                    }
                }
            }
        }
        withExtendedLifetime(packedWeights) {}
    }

    private func runDirect<T: BinaryFloatingPoint>(
        _: T.Type, _ s: Shapes, _ x: TensorView, _ w: TensorView, _ bias: TensorView?, _ y: TensorView,
        accumulator: UnsafeMutablePointer<Double>
    ) {
        let g = s.geometry
        let channelsPerGroup = s.channels / group, filtersPerGroup = s.filters / group
        let input = UnsafePointer(x.pointer(as: T.self)), weights = UnsafePointer(w.pointer(as: T.self))
        let output = y.pointer(as: T.self)
        let biasValues = bias.map { UnsafePointer($0.pointer(as: T.self)) }
        let area = g.outputArea
        for n in 0..<s.batch {
            for m in 0..<s.filters {
                accumulator.advanced(by: m * area).update(repeating: biasValues.map { Double($0[m]) } ?? 0, count: area)
            }
            for gi in 0..<group {
                TransposedConvolution.direct(
                    input + (n * s.channels + gi * channelsPerGroup) * g.inputArea,
                    weights + gi * channelsPerGroup * filtersPerGroup * g.kernelArea,
                    into: accumulator + gi * filtersPerGroup * area,
                    channels: channelsPerGroup, filters: filtersPerGroup, geometry: g)
            }
            let image = output + n * s.filters * area
            for i in 0..<s.filters * area { image[i] = T(accumulator[i]) }
        }
    }
}
