import OnyxCore
import OnyxIR
import OnyxKernels

// The ai.onnx.ml feature transforms skl2onnx puts in front of a model: Normalizer, Scaler,
// Imputer, OneHotEncoder, FeatureVectorizer, LabelEncoder (numeric keys and values), and
// CategoryMapper, which needs string tensors.

/// Reads element `index` of a float, double, int64, int32 or int16 buffer as a Double.
@inline(__always)
private func realValue(_ data: UnsafeRawPointer, _ dataType: DataType, _ index: Int) -> Double {
    switch dataType {
    case .float: Double(data.assumingMemoryBound(to: Float.self)[index])
    case .double: data.assumingMemoryBound(to: Double.self)[index]
    case .int64: Double(data.assumingMemoryBound(to: Int64.self)[index])
    case .int32: Double(data.assumingMemoryBound(to: Int32.self)[index])
    default: Double(data.assumingMemoryBound(to: Int16.self)[index])
    }
}

/// The rows and row length of a rank-1 (`[C]`, one row) or rank-2 (`[N, C]`) input.
private func rowsAndLength(_ shape: [Int], op: String) throws -> (rows: Int, length: Int) {
    switch shape.count {
    case 1: return (1, shape[0])
    case 2: return (shape[0], shape[1])
    default: throw OnyxError.shapeMismatch("\(op): X must be [N, C] or [C], got \(shapeText(shape))")
    }
}

private let numericTypes: [DataType] = [.float, .double, .int64, .int32]

/// The planned input 0, checked to be float, double, int64 or int32.
private func numericInput(_ inputs: [PlannedInput?], op: String) throws -> PlannedInput {
    guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("\(op): missing input 0 (X)") }
    guard numericTypes.contains(x.dataType) else {
        throw OnyxError.unsupportedDataType("\(op): X must be float, double, int64 or int32, found \(x.dataType)")
    }
    return x
}

// MARK: - Normalizer

/// Normalizer (ai.onnx.ml 1): divides each row by its maximum (MAX), the sum of its magnitudes (L1)
/// or its Euclidean norm (L2); a row whose divisor is 0 is copied. The output is float.
package struct NormalizerKernel: Kernel {
    package enum Norm: Sendable { case max, l1, l2 }
    let norm: Norm

    package init(_ context: NodeContext) throws {
        let name = try context.string("norm", default: "MAX")
        switch name {
        case "MAX": norm = .max
        case "L1": norm = .l1
        case "L2": norm = .l2
        default: throw context.attributeError("norm '\(name)' is not MAX, L1 or L2")
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try numericInput(inputs, op: "Normalizer")
        _ = try rowsAndLength(x.shape, op: "Normalizer")
        return [TensorDescriptor(.float, x.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0).pointer(as: Float.self)
        let (rows, length) = try rowsAndLength(x.shape, op: "Normalizer")
        let norm = self.norm
        context.pool.parallelRanges(rows, minimumChunk: 256) { range in
            // Each row is widened to Double in one typed loop: a type switch per element costs
            // more than the arithmetic.
            let row = UnsafeMutableBufferPointer<Double>.allocate(capacity: length)
            defer { row.deallocate() }
            for r in range {
                widen(x, elements: (r * length)..<(r * length + length), into: row)
                var divisor = switch norm {
                case .max: row.reduce(-Double(Float.greatestFiniteMagnitude)) { Swift.max($0, $1) }
                case .l1: Self.sum(row) { Swift.abs($0) }
                case .l2: Self.sum(row) { $0 * $0 }.squareRoot()
                }
                if divisor == 0 { divisor = 1 }
                for i in 0..<length { y[r * length + i] = Float(row[i] / divisor) }
            }
        }
    }

    /// The sum of `term` over `row`, in four running sums so the additions overlap.
    @inline(__always)
    private static func sum(_ row: UnsafeMutableBufferPointer<Double>, _ term: (Double) -> Double) -> Double {
        var partial: (Double, Double, Double, Double) = (0, 0, 0, 0)
        var i = 0
        while i + 4 <= row.count {
            partial.0 += term(row[i])
            partial.1 += term(row[i + 1])
            partial.2 += term(row[i + 2])
            partial.3 += term(row[i + 3])
            i += 4
        }
        while i < row.count {
            partial.0 += term(row[i])
            i += 1
        }
        return (partial.0 + partial.1) + (partial.2 + partial.3)
    }
}

/// Elements `range` of a float, double, int64 or int32 tensor as Doubles, into `row`.
private func widen(_ x: TensorView, elements range: Range<Int>, into row: UnsafeMutableBufferPointer<Double>) {
    @inline(__always) func copy<Element>(_: Element.Type, _ real: (Element) -> Double) {
        let source = x.pointer(as: Element.self) + range.lowerBound
        for i in 0..<range.count { row[i] = real(source[i]) }
    }
    switch x.dataType {
    case .float: copy(Float.self) { Double($0) }
    case .double: copy(Double.self) { $0 }
    case .int64: copy(Int64.self) { Double($0) }
    default: copy(Int32.self) { Double($0) }
    }
}

// MARK: - Scaler

/// Scaler (ai.onnx.ml 1): `(x − offset) · scale` per feature; `offset` and `scale` each hold one
/// value per feature or one for all. The output is float.
package struct ScalerKernel: Kernel {
    let offset: [Double]
    let scale: [Double]

    package init(_ context: NodeContext) throws {
        offset = (try context.floats("offset") ?? [0]).map(Double.init)
        scale = (try context.floats("scale") ?? [1]).map(Double.init)
        guard !offset.isEmpty, !scale.isEmpty else { throw context.attributeError("offset and scale must not be empty") }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try numericInput(inputs, op: "Scaler")
        let (_, length) = try rowsAndLength(x.shape, op: "Scaler")
        for (name, values) in [("offset", offset), ("scale", scale)] where values.count != 1 && values.count != length {
            throw OnyxError.shapeMismatch("Scaler: \(name) has \(values.count) values; X has \(length) features (or give 1)")
        }
        return [TensorDescriptor(.float, x.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0).pointer(as: Float.self)
        let (rows, length) = try rowsAndLength(x.shape, op: "Scaler")
        let offsetStep = offset.count == 1 ? 0 : 1, scaleStep = scale.count == 1 ? 0 : 1
        offset.withUnsafeBufferPointer { offset in
            scale.withUnsafeBufferPointer { scale in
                context.pool.parallelRanges(rows, minimumChunk: 256) { range in
                    for r in range {
                        for f in 0..<length {
                            let i = r * length + f
                            y[i] = Float((realValue(x.data, x.dataType, i) - offset[f * offsetStep]) * scale[f * scaleStep])
                        }
                    }
                }
            }
        }
    }
}

// MARK: - Imputer

/// Imputer (ai.onnx.ml 1): replaces every element equal to the replaced value (NaN matches NaN)
/// by its feature's imputed value. Float and double inputs use `imputed_value_floats` and
/// `replaced_value_float`; int64 and int32 inputs the int64 pair. The output keeps X's type.
package struct ImputerKernel: Kernel {
    package enum Values: Sendable {
        case reals(imputed: [Double], replaced: Double)
        case integers(imputed: [Int64], replaced: Int64)
    }
    let values: Values

    package init(_ context: NodeContext) throws {
        let floats = try context.floats("imputed_value_floats") ?? []
        let ints = try context.ints("imputed_value_int64s") ?? []
        guard floats.isEmpty != ints.isEmpty else {
            throw context.attributeError("needs exactly one of imputed_value_floats and imputed_value_int64s")
        }
        values = floats.isEmpty
            ? .integers(imputed: ints.map(Int64.init), replaced: Int64(try context.int("replaced_value_int64", default: 0)))
            : .reals(imputed: floats.map(Double.init), replaced: Double(try context.float("replaced_value_float", default: 0)))
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        let x = try numericInput(inputs, op: "Imputer")
        let (_, length) = try rowsAndLength(x.shape, op: "Imputer")
        let count: Int
        switch values {
        case .reals(let imputed, _):
            guard x.dataType == .float || x.dataType == .double else {
                throw OnyxError.unsupportedDataType("Imputer: imputed_value_floats needs float or double X, found \(x.dataType)")
            }
            count = imputed.count
        case .integers(let imputed, _):
            guard x.dataType == .int64 || x.dataType == .int32 else {
                throw OnyxError.unsupportedDataType("Imputer: imputed_value_int64s needs int64 or int32 X, found \(x.dataType)")
            }
            count = imputed.count
        }
        guard count == 1 || count == length else {
            throw OnyxError.shapeMismatch("Imputer: \(count) imputed values; X has \(length) features (or give 1)")
        }
        return [x.descriptor]
    }

    package var aliasing: KernelAliasing { .inPlace(input: 0) }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let (_, length) = try rowsAndLength(x.shape, op: "Imputer")
        let count = x.elementCount
        switch values {
        case .reals(let imputed, let replaced):
            let step = imputed.count == 1 ? 0 : 1
            func impute<T: BinaryFloatingPoint>(_: T.Type) {
                let source = x.pointer(as: T.self), target = y.pointer(as: T.self)
                for i in 0..<count {
                    let v = source[i]
                    let matches = replaced.isNaN ? v.isNaN : Double(v) == replaced
                    target[i] = matches ? T(imputed[(i % Swift.max(length, 1)) * step]) : v
                }
            }
            if x.dataType == .float { impute(Float.self) } else { impute(Double.self) }
        case .integers(let imputed, let replaced):
            let step = imputed.count == 1 ? 0 : 1
            func impute<T: FixedWidthInteger>(_: T.Type) {
                let source = x.pointer(as: T.self), target = y.pointer(as: T.self)
                for i in 0..<count {
                    let v = source[i]
                    target[i] = Int64(v) == replaced ? T(clamping: imputed[(i % Swift.max(length, 1)) * step]) : v
                }
            }
            if x.dataType == .int64 { impute(Int64.self) } else { impute(Int32.self) }
        }
    }
}

// MARK: - OneHotEncoder

/// OneHotEncoder (ai.onnx.ml 1) over integer categories (`cats_int64s`) or string categories
/// (`cats_strings`, for string input): each element becomes a row of zeros with a one at its
/// category's position. Float and double elements are truncated to integers first. An unknown
/// category gives all zeros, or an error when `zeros` is 0.
package struct OneHotEncoderKernel: Kernel {
    let positions: [Int64: Int]
    let stringPositions: [String: Int]?
    let categoryCount: Int
    let zerosForUnknown: Bool
    let nodeName: String

    package init(_ context: NodeContext) throws {
        var positions: [Int64: Int] = [:]
        // A repeated category takes its last position, as in onnxruntime.
        if let strings = try attributeStrings(context, "cats_strings"), !strings.isEmpty {
            var stringPositions: [String: Int] = [:]
            for (position, category) in strings.enumerated() { stringPositions[category] = position }
            self.stringPositions = stringPositions
            categoryCount = strings.count
        } else {
            guard let categories = try context.ints("cats_int64s"), !categories.isEmpty else {
                throw context.attributeError("missing attribute 'cats_int64s' (or 'cats_strings')")
            }
            for (position, category) in categories.enumerated() { positions[Int64(category)] = position }
            stringPositions = nil
            categoryCount = categories.count
        }
        self.positions = positions
        zerosForUnknown = try context.int("zeros", default: 1) != 0
        nodeName = context.node.name
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        if stringPositions != nil {
            guard let x = inputs.first ?? nil, x.dataType == .string else {
                throw OnyxError.unsupportedDataType("OneHotEncoder: X must be string with cats_strings")
            }
            return [TensorDescriptor(.float, x.shape + [categoryCount])]
        }
        let x = try numericInput(inputs, op: "OneHotEncoder")
        return [TensorDescriptor(.float, x.shape + [categoryCount])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0).pointer(as: Float.self)
        let count = x.elementCount
        y.initialize(repeating: 0, count: count * categoryCount)
        if let stringPositions {
            for (i, text) in try context.strings(ofInput: 0).enumerated() {
                if let position = stringPositions[text] {
                    y[i * categoryCount + position] = 1
                } else if !zerosForUnknown {
                    throw OnyxError.invalidInput("OneHotEncoder node '\(nodeName)': '\(text)' is not in cats_strings and zeros is 0")
                }
            }
            return
        }
        for i in 0..<count {
            let category: Int64?
            switch x.dataType {
            case .int64: category = x.pointer(as: Int64.self)[i]
            case .int32: category = Int64(x.pointer(as: Int32.self)[i])
            default:
                let v = realValue(x.data, x.dataType, i)
                category = v.isFinite && Swift.abs(v) < 9.2e18 ? Int64(v) : nil
            }
            if let category, let position = positions[category] {
                y[i * categoryCount + position] = 1
            } else if !zerosForUnknown {
                throw OnyxError.invalidInput(
                    "OneHotEncoder node '\(nodeName)': \(category.map(String.init) ?? "a non-finite value") is not in cats_int64s and zeros is 0")
            }
        }
    }
}

// MARK: - FeatureVectorizer

/// FeatureVectorizer (ai.onnx.ml 1): concatenates the inputs' rows into float rows, input k taking
/// `inputdimensions[k]` columns (its extra values dropped, missing ones zero).
package struct FeatureVectorizerKernel: Kernel {
    let dimensions: [Int]

    package init(_ context: NodeContext) throws {
        guard let dimensions = try context.ints("inputdimensions") else { throw context.attributeError("missing attribute 'inputdimensions'") }
        guard dimensions.count == context.inputCount else {
            throw context.attributeError("inputdimensions has \(dimensions.count) entries for \(context.inputCount) inputs")
        }
        guard dimensions.allSatisfy({ $0 >= 0 && $0 < 1 << 32 }) else {
            throw context.attributeError("inputdimensions \(shapeText(dimensions)) must not be negative")
        }
        self.dimensions = dimensions
    }

    /// An input's rows and values per row: `[C]` is one row, `[N, …]` N rows.
    private static func rows(_ shape: [Int]) -> (rows: Int, length: Int) {
        shape.count == 1 ? (1, shape[0]) : (shape[0], shape.dropFirst().reduce(1, *))
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard inputs.count == dimensions.count, !inputs.isEmpty else {
            throw OnyxError.invalidModel("FeatureVectorizer: \(inputs.count) inputs for \(dimensions.count) inputdimensions")
        }
        var rows: Int?
        for (k, input) in inputs.enumerated() {
            guard let input else { throw OnyxError.invalidModel("FeatureVectorizer: input \(k) is missing") }
            guard numericTypes.contains(input.dataType) else {
                throw OnyxError.unsupportedDataType("FeatureVectorizer: input \(k) must be float, double, int64 or int32, found \(input.dataType)")
            }
            guard input.shape.count >= 1 else { throw OnyxError.shapeMismatch("FeatureVectorizer: input \(k) is a scalar") }
            let n = Self.rows(input.shape).rows
            guard rows == nil || rows == n else {
                throw OnyxError.shapeMismatch("FeatureVectorizer: input \(k) has \(n) rows, input 0 has \(rows!)")
            }
            rows = n
        }
        return [TensorDescriptor(.float, [rows!, dimensions.reduce(0, +)])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let y = context.output(0)
        let width = y.shape[1], rows = y.shape[0]
        let out = y.pointer(as: Float.self)
        out.initialize(repeating: 0, count: rows * width)
        var column = 0
        for (k, dimension) in dimensions.enumerated() {
            let x = context.input(k)!
            let length = Self.rows(x.shape).length
            for r in 0..<rows {
                for c in 0..<Swift.min(length, dimension) {
                    out[r * width + column + c] = Float(realValue(x.data, x.dataType, r * length + c))
                }
            }
            column += dimension
        }
    }
}

// MARK: - LabelEncoder

/// LabelEncoder (ai.onnx.ml): maps each element to the value of the equal key, or to the default.
/// Keys come from `keys_int64s`/`keys_floats`/`keys_strings` (or, from opset 4, `keys_tensor`),
/// values likewise; the first of repeated keys wins. From opset 4 a NaN key matches NaN elements.
/// Opset 1 maps strings to their position in `classes_strings` (or −1 / `default_int64`), and
/// integers to the string at that position (or `default_string`).
package struct LabelEncoderKernel: Kernel {
    /// The values, in the output's element type, with the default last.
    package enum Values: Sendable {
        case integers([Int64])
        case reals([Double])
        case strings([String])
    }

    let keyType: DataType
    let valueType: DataType
    let integerKeys: [Int64: Int]
    let realKeys: [Double: Int]
    let stringKeys: [String: Int]
    let nanKey: Int?
    let values: Values
    /// Opset 1: the reverse mapping, from integer positions to `classes_strings`, for int64 input.
    let reverse: (keys: [Int64: Int], values: Values)?

    package init(_ context: NodeContext) throws {
        let op = "LabelEncoder node '\(context.node.name)'"
        if context.opset < 2 {
            guard let classes = try attributeStrings(context, "classes_strings") else {
                throw context.attributeError("missing attribute 'classes_strings'")
            }
            keyType = .string
            valueType = .int64
            var positions: [String: Int] = [:]
            for (i, name) in classes.enumerated() where positions[name] == nil { positions[name] = i }
            stringKeys = positions
            values = .integers(classes.indices.map(Int64.init) + [Int64(try context.int("default_int64", default: -1))])
            reverse = (Dictionary(uniqueKeysWithValues: classes.indices.map { (Int64($0), $0) }),
                       .strings(classes + [try context.string("default_string", default: "_Unused")]))
            integerKeys = [:]
            realKeys = [:]
            nanKey = nil
            return
        }
        reverse = nil
        // Keys.
        let keyList: [Double]
        var integerKeyList: [Int64] = []
        var stringKeyList: [String] = []
        if let strings = try attributeStrings(context, "keys_strings") {
            keyType = .string
            stringKeyList = strings
            keyList = []
        } else if let ints = try context.ints("keys_int64s") {
            keyType = .int64
            integerKeyList = ints.map(Int64.init)
            keyList = []
        } else if let floats = try context.floats("keys_floats") {
            keyType = .float
            keyList = floats.map(Double.init)
        } else if context.opset >= 4, let tensor = try context.tensor("keys_tensor") {
            keyType = tensor.dataType
            switch tensor.dataType {
            case .int64: integerKeyList = try tensor.scalars(as: Int64.self)
            case .int32: integerKeyList = try tensor.scalars(as: Int32.self).map(Int64.init)
            case .int16: integerKeyList = try tensor.scalars(as: Int16.self).map(Int64.init)
            case .float, .double: break
            case .string: stringKeyList = try tensor.strings()
            default: throw OnyxError.unsupportedDataType("\(op): keys_tensor of \(tensor.dataType) is not supported")
            }
            keyList = tensor.dataType == .float || tensor.dataType == .double ? visionRealValues(tensor)! : []
        } else {
            throw context.attributeError("missing the keys (keys_int64s, keys_floats or keys_tensor)")
        }
        // Values, then the default: default_tensor, else default_int64 or default_float by the value type.
        let defaultTensor = context.opset >= 4 ? try context.tensor("default_tensor") : nil
        var valueCount: Int
        if let strings = try attributeStrings(context, "values_strings") {
            valueType = .string
            let fallback = try defaultTensor.map { tensor -> String in
                guard tensor.dataType == .string, tensor.elementCount == 1 else {
                    throw context.attributeError("default_tensor must be one string, found \(tensor.dataType) \(shapeText(tensor.shape))")
                }
                return try tensor.strings()[0]
            }
            values = .strings(strings + [try fallback ?? context.string("default_string", default: "_Unused")])
            valueCount = strings.count
        } else if let ints = try context.ints("values_int64s") {
            valueType = .int64
            values = .integers(ints.map(Int64.init) + [Int64(try context.int("default_int64", default: -1))])
            valueCount = ints.count
        } else if let floats = try context.floats("values_floats") {
            valueType = .float
            values = .reals(floats.map(Double.init) + [Double(try context.float("default_float", default: -0.0))])
            valueCount = floats.count
        } else if context.opset >= 4, let tensor = try context.tensor("values_tensor") {
            valueType = tensor.dataType
            let fallback = defaultTensor
            if let fallback, fallback.dataType != tensor.dataType || fallback.elementCount != 1 {
                throw context.attributeError("default_tensor must be one \(tensor.dataType) value, found \(fallback.dataType) \(shapeText(fallback.shape))")
            }
            switch tensor.dataType {
            case .int64, .int32, .int16:
                let list = try Self.integers(tensor)
                let standard = Int64(try context.int("default_int64", default: -1))
                values = .integers(list + [try fallback.map { try Self.integers($0)[0] } ?? standard])
                valueCount = list.count
            case .float, .double:
                let list = visionRealValues(tensor)!
                let standard = Double(try context.float("default_float", default: -0.0))
                values = .reals(list + [fallback.map { visionRealValues($0)![0] } ?? standard])
                valueCount = list.count
            case .string:
                let list = try tensor.strings()
                values = .strings(list + [try fallback.map { try $0.strings()[0] } ?? context.string("default_string", default: "_Unused")])
                valueCount = list.count
            default: throw OnyxError.unsupportedDataType("\(op): values_tensor of \(tensor.dataType) is not supported")
            }
        } else {
            throw context.attributeError("missing the values (values_int64s, values_floats or values_tensor)")
        }
        let keyCount = keyType == .string ? stringKeyList.count
            : keyType == .float || keyType == .double ? keyList.count : integerKeyList.count
        guard keyCount == valueCount else {
            throw context.attributeError("has \(keyCount) keys but \(valueCount) values")
        }
        var integerKeys: [Int64: Int] = [:], realKeys: [Double: Int] = [:], stringKeys: [String: Int] = [:], nanKey: Int?
        for (i, key) in integerKeyList.enumerated() where integerKeys[key] == nil { integerKeys[key] = i }
        for (i, key) in stringKeyList.enumerated() where stringKeys[key] == nil { stringKeys[key] = i }
        for (i, key) in keyList.enumerated() {
            if key.isNaN {
                if context.opset >= 4, nanKey == nil { nanKey = i }
            } else if realKeys[key] == nil {
                realKeys[key] = i
            }
        }
        self.integerKeys = integerKeys
        self.realKeys = realKeys
        self.stringKeys = stringKeys
        self.nanKey = nanKey
    }

    private static func integers(_ tensor: Tensor) throws -> [Int64] {
        switch tensor.dataType {
        case .int32: try tensor.scalars(as: Int32.self).map(Int64.init)
        case .int16: try tensor.scalars(as: Int16.self).map(Int64.init)
        default: try tensor.scalars(as: Int64.self)
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("LabelEncoder: missing input 0 (X)") }
        if reverse != nil && x.dataType == .int64 { return [TensorDescriptor(.string, x.shape)] }
        guard x.dataType == keyType else {
            throw OnyxError.unsupportedDataType("LabelEncoder: X must be \(keyType) like the keys, found \(x.dataType)")
        }
        return [TensorDescriptor(valueType, x.shape)]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        let count = x.elementCount
        // Opset 1 on integers: positions to class names.
        let (integerKeys, values) = reverse.flatMap { x.dataType == .int64 ? $0 : nil } ?? (self.integerKeys, self.values)
        let keyType = x.dataType
        let fallback: Int
        switch values {
        case .integers(let list): fallback = list.count - 1
        case .reals(let list): fallback = list.count - 1
        case .strings(let list): fallback = list.count - 1
        }
        let texts = keyType == .string ? try context.strings(ofInput: 0) : []
        let table = valueType == .string || reverse != nil ? context.strings : nil
        for i in 0..<count {
            let position: Int?
            switch keyType {
            case .string: position = stringKeys[texts[i]]
            case .int64: position = integerKeys[x.pointer(as: Int64.self)[i]]
            case .int32: position = integerKeys[Int64(x.pointer(as: Int32.self)[i])]
            case .int16: position = integerKeys[Int64(x.pointer(as: Int16.self)[i])]
            default:
                let key = realValue(x.data, x.dataType, i)
                position = key.isNaN ? nanKey : realKeys[key]
            }
            let k = position ?? fallback
            switch values {
            case .integers(let list):
                switch valueType {
                case .int32: y.pointer(as: Int32.self)[i] = Int32(truncatingIfNeeded: list[k])
                case .int16: y.pointer(as: Int16.self)[i] = Int16(truncatingIfNeeded: list[k])
                default: y.pointer(as: Int64.self)[i] = list[k]
                }
            case .reals(let list):
                if valueType == .double { y.pointer(as: Double.self)[i] = list[k] } else { y.pointer(as: Float.self)[i] = Float(list[k]) }
            case .strings(let list):
                guard let table else { throw OnyxError.internalError("LabelEncoder: a string output without a string table") }
                y.pointer(as: Int64.self)[i] = table.intern(list[k])
            }
        }
    }
}

// MARK: - CategoryMapper

/// CategoryMapper (ai.onnx.ml 1): strings to integers through the pairs (`cats_strings[i]`,
/// `cats_int64s[i]`), or integers to strings, by the input's type; unmatched elements become
/// `default_int64` (−1) or `default_string` ("_Unused").
package struct CategoryMapperKernel: Kernel {
    let integers: [String: Int64]
    let strings: [Int64: String]
    let defaultInteger: Int64
    let defaultString: String

    package init(_ context: NodeContext) throws {
        guard let names = try attributeStrings(context, "cats_strings"), let codes = try context.ints("cats_int64s") else {
            throw context.attributeError("cats_strings and cats_int64s are both required")
        }
        guard names.count == codes.count else {
            throw context.attributeError("cats_strings has \(names.count) entries but cats_int64s \(codes.count)")
        }
        integers = Dictionary(zip(names, codes.map(Int64.init)), uniquingKeysWith: { first, _ in first })
        strings = Dictionary(zip(codes.map(Int64.init), names), uniquingKeysWith: { first, _ in first })
        defaultInteger = Int64(try context.int("default_int64", default: -1))
        defaultString = try context.string("default_string", default: "_Unused")
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil else { throw OnyxError.invalidModel("CategoryMapper: missing input 0 (X)") }
        switch x.dataType {
        case .string: return [TensorDescriptor(.int64, x.shape)]
        case .int64: return [TensorDescriptor(.string, x.shape)]
        default: throw OnyxError.unsupportedDataType("CategoryMapper: X must be string or int64, found \(x.dataType)")
        }
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!, y = context.output(0)
        if x.dataType == .string {
            let out = y.pointer(as: Int64.self)
            for (i, text) in try context.strings(ofInput: 0).enumerated() { out[i] = integers[text] ?? defaultInteger }
        } else {
            let codes = UnsafeBufferPointer(start: x.pointer(as: Int64.self), count: x.elementCount)
            try context.store(codes.map { strings[$0] ?? defaultString }, intoOutput: 0)
        }
    }
}
