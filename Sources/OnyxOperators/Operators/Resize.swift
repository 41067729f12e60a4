import OnyxCore
import OnyxIR
import OnyxKernels

extension OperatorRegistry {
    /// Resize and Upsample.
    package static let resizeOperators: [OperatorRegistration] = [
        OperatorRegistration("Resize", versions: 10...10) { context in
            ResizeKernel(
                attributes: try ResizeAttributes(legacyMode: context),
                inputs: .init(roi: nil, scales: 1, sizes: nil), scalesAttribute: nil, op: "Resize")
        },
        OperatorRegistration("Resize", versions: 11...Int.max) { context in
            ResizeKernel(
                attributes: try ResizeAttributes(context), inputs: .init(roi: 1, scales: 2, sizes: 3),
                scalesAttribute: nil, op: "Resize")
        },
        OperatorRegistration("Upsample", versions: 7...8) { context in
            guard let scales = try context.floats("scales") else { throw context.attributeError("missing 'scales'") }
            return ResizeKernel(
                attributes: try ResizeAttributes(legacyMode: context), inputs: .init(roi: nil, scales: nil, sizes: nil),
                scalesAttribute: scales.map(Double.init), op: "Upsample")
        },
        OperatorRegistration("Upsample", versions: 9...9) { context in
            ResizeKernel(
                attributes: try ResizeAttributes(legacyMode: context), inputs: .init(roi: nil, scales: 1, sizes: nil),
                scalesAttribute: nil, op: "Upsample")
        },
    ]
}

extension ResizeAttributes {
    /// Resize-10 and Upsample: `mode` only (nearest or linear, "bilinear" as Upsample-7 spells it
    /// in old exporters), asymmetric coordinates.
    package init(legacyMode context: NodeContext) throws {
        let name = try context.string("mode", default: "nearest")
        let mode: Mode
        switch name.lowercased() {
        case "nearest": mode = .nearest
        case "linear", "bilinear": mode = .linear
        default: throw context.attributeError("mode '\(name)' is not nearest or linear")
        }
        self.init(
            mode: mode, coordinates: .asymmetric, rounding: .legacy, cubicCoefficient: -0.75, excludeOutside: false,
            extrapolationValue: 0, antialias: false, axes: nil, aspectPolicy: .stretch)
    }

    /// Resize-11 and later.
    package init(_ context: NodeContext) throws {
        func parse<T: RawRepresentable<String>>(_ name: String, _ fallback: String, _ what: String) throws -> T {
            let value = try context.string(name, default: fallback)
            guard let parsed = T(rawValue: value) else { throw context.attributeError("\(name) '\(value)' is not \(what)") }
            return parsed
        }
        self.init(
            mode: try parse("mode", "nearest", "nearest, linear or cubic"),
            coordinates: try parse(
                "coordinate_transformation_mode", "half_pixel",
                "half_pixel, half_pixel_symmetric, pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn or tf_crop_and_resize"),
            rounding: try parse("nearest_mode", "round_prefer_floor", "round_prefer_floor, round_prefer_ceil, floor or ceil"),
            cubicCoefficient: Double(try context.float("cubic_coeff_a", default: -0.75)),
            excludeOutside: try context.int("exclude_outside", default: 0) != 0,
            extrapolationValue: Double(try context.float("extrapolation_value", default: 0)),
            antialias: try context.int("antialias", default: 0) != 0,
            axes: try context.ints("axes"),
            aspectPolicy: try parse("keep_aspect_ratio_policy", "stretch", "stretch, not_larger or not_smaller"))
        if antialias && mode == .nearest { throw context.attributeError("antialias applies to linear and cubic modes, not nearest") }
    }
}

/// Resize (opset 10–19+) and Upsample (opset 7–9): nearest, linear and cubic interpolation over
/// any axes, with scales or sizes, every coordinate transformation mode, nearest_mode,
/// cubic_coeff_a, exclude_outside, extrapolation_value, antialias, axes and
/// keep_aspect_ratio_policy, following `onnx.reference`.
///
/// The scales or sizes must be known when the session plans (the output shape depends on them).
/// Nearest moves elements of any type; linear and cubic interpolate one axis at a time in Double
/// and round integer results to the nearest value in range.
package struct ResizeKernel: Kernel {
    /// Which node inputs hold roi, scales and sizes (`nil`: the op has no such input).
    package struct InputSlots: Sendable {
        package var roi: Int?
        package var scales: Int?
        package var sizes: Int?
    }

    package let attributes: ResizeAttributes
    package let inputs: InputSlots
    /// Upsample-7's `scales` attribute.
    package let scalesAttribute: [Double]?
    package let op: String

    package typealias AxisPlan = ResizeAxisPlan

    package func readsData(ofInput index: Int) -> Bool { index == 0 || index == inputs.roi }

    /// The axes that change, and the output shape.
    private func plan(_ inputs: [PlannedInput?]) throws -> (axes: [AxisPlan], shape: [Int]) {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("\(op): missing input X") }
        let rank = x.shape.count
        func input(_ slot: Int?) -> PlannedInput? {
            guard let slot, slot < inputs.count, let value = inputs[slot], value.elementCount > 0 else { return nil }
            return value
        }
        // The axes the scales or sizes list.
        var axes = Array(0..<rank)
        if let given = attributes.axes {
            axes = []
            for axis in given {
                let a = axis < 0 ? axis + rank : axis
                guard a >= 0 && a < rank, !axes.contains(a) else {
                    throw OnyxError.invalidAttribute("\(op): axes \(given) are out of range or repeat for rank \(rank)")
                }
                axes.append(a)
            }
        }
        var scales = [Double](repeating: 1, count: rank)
        var shape = x.shape
        if let sizesInput = input(self.inputs.sizes) {
            guard input(self.inputs.scales) == nil else {
                throw OnyxError.invalidModel("\(op): give scales or sizes, not both")
            }
            guard let sizes = try constantIntegers(sizesInput, op: op, what: "sizes"), sizes.count == axes.count else {
                throw OnyxError.shapeMismatch("\(op): sizes must have one entry per resized axis (\(axes.count))")
            }
            guard sizes.allSatisfy({ $0 >= 0 }) else { throw OnyxError.invalidInput("\(op): sizes \(shapeText(sizes)) are negative") }
            for (a, size) in zip(axes, sizes) {
                scales[a] = x.shape[a] == 0 ? 1 : Double(size) / Double(x.shape[a])
                shape[a] = size
            }
            if attributes.aspectPolicy != .stretch {
                let chosen = axes.map { scales[$0] }
                let scale = (attributes.aspectPolicy == .notLarger ? chosen.min() : chosen.max()) ?? 1
                for a in axes {
                    scales[a] = scale
                    shape[a] = Int((scale * Double(x.shape[a]) + 0.5).rounded(.down))
                }
            }
        } else {
            let values: [Double]
            if let scalesAttribute {
                values = scalesAttribute
            } else if let scalesInput = input(self.inputs.scales) {
                values = try floatingValues(try scalesInput.requireConstant(op: op, what: "scales"), what: "scales")
            } else {
                throw OnyxError.invalidModel("\(op): one of scales and sizes must be given")
            }
            guard values.count == axes.count else {
                throw OnyxError.shapeMismatch("\(op): scales has \(values.count) values for \(axes.count) axes")
            }
            for (a, scale) in zip(axes, values) {
                guard scale > 0, scale.isFinite else { throw OnyxError.invalidInput("\(op): scale \(scale) must be > 0") }
                let extent = scale * Double(x.shape[a])
                guard extent < Double(Int32.max) else { throw OnyxError.limitExceeded("\(op): scale \(scale) gives too large an output") }
                scales[a] = scale
                shape[a] = Int(extent)
            }
        }
        let changed = (0..<rank).compactMap { a -> AxisPlan? in
            let trivialRegion = attributes.coordinates != .tfCropAndResize
            if shape[a] == x.shape[a] && abs(scales[a] - 1) < 1e-9 && trivialRegion { return nil }
            return AxisPlan(axis: a, scale: scales[a], output: shape[a])
        }
        return (changed, shape)
    }

    private func floatingValues(_ tensor: Tensor, what: String) throws -> [Double] {
        try tensor.dataType.visitFloating(FloatingValues(tensor: tensor), operation: "\(op): \(what)")
    }

    private struct FloatingValues: FloatingElementVisitor {
        let tensor: Tensor

        func visit<T: FloatingElement>(_: T.Type) throws -> [Double] { try tensor.scalars(as: T.self).map(\.castDouble) }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("\(op): missing input X") }
        let maximum = [self.inputs.roi, self.inputs.scales, self.inputs.sizes].compactMap { $0 }.max() ?? 0
        guard inputs.count <= maximum + 1 else {
            throw OnyxError.invalidModel("\(op) takes at most \(maximum + 1) inputs, got \(inputs.count)")
        }
        guard x.shape.count >= 1 else { throw OnyxError.shapeMismatch("\(op): X is a scalar") }
        if attributes.mode != .nearest && x.dataType == .bool {
            throw OnyxError.unsupportedDataType("\(op): \(attributes.mode.rawValue) interpolation does not apply to bool")
        }
        return [TensorDescriptor(x.dataType, try plan(inputs).shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        var planned: [PlannedInput?] = []
        var tensors: [Tensor?] = []
        for i in 0..<context.inputCount {
            guard let view = context.input(i) else {
                planned.append(nil)
                tensors.append(nil)
                continue
            }
            if i == 0 {
                planned.append(PlannedInput(descriptor: TensorDescriptor(view.dataType, view.shape), constant: nil))
                tensors.append(nil)
            } else {
                let tensor = try Tensor(dataType: view.dataType, shape: view.shape,
                                        bytes: UnsafeRawBufferPointer(start: view.data, count: view.byteCount))
                planned.append(PlannedInput(descriptor: TensorDescriptor(view.dataType, view.shape), constant: tensor))
                tensors.append(tensor)
            }
        }
        let (axes, shape) = try plan(planned)
        guard y.elementCount > 0 else { return }
        if axes.isEmpty {
            y.data.copyMemory(from: x.data, byteCount: x.byteCount)
            return
        }
        // The region of interest, `[starts…, ends…]` over every axis (tf_crop_and_resize only).
        var roi = [Double](repeating: 0, count: x.rank) + [Double](repeating: 1, count: x.rank)
        if attributes.coordinates == .tfCropAndResize, let slot = inputs.roi, slot < tensors.count,
           let given = tensors[slot], given.elementCount > 0 {
            let values = try floatingValues(given, what: "roi")
            let listed = attributes.axes.map { axes in axes.map { $0 < 0 ? $0 + x.rank : $0 } } ?? Array(0..<x.rank)
            guard values.count == 2 * listed.count else {
                throw OnyxError.shapeMismatch("\(op): roi has \(values.count) values; \(2 * listed.count) expected")
            }
            for (i, a) in listed.enumerated() {
                roi[a] = values[i]
                roi[x.rank + a] = values[listed.count + i]
            }
        }
        let tables = axes.map { ResizeLoops.table(for: $0, input: x.shape[$0.axis], roi: (roi[$0.axis], roi[x.rank + $0.axis]), attributes) }
        if attributes.mode == .nearest {
            try ResizeLoops.nearest(x, y, outputShape: shape, axes: axes, tables: tables,
                                    extrapolation: attributes.extrapolationValue, pool: context.pool, op: op)
        } else {
            try ResizeLoops.interpolate(x, y, axes: axes, tables: tables,
                                        extrapolation: attributes.extrapolationValue, pool: context.pool, op: op)
        }
    }
}
