import OnyxCore
import OnyxIR
import OnyxKernels

// The ai.onnx.ml operators on maps, which travel as handles into the run's value store like
// sequences (see Sequence.swift).

extension OperatorRegistry {
    /// ZipMap, CastMap and DictVectorizer (ai.onnx.ml).
    package static let mapOperators: [OperatorRegistration] = [
        OperatorRegistration("ZipMap", domain: "ai.onnx.ml", versions: 1...Int.max) { context in try ZipMapKernel(context) },
        OperatorRegistration("CastMap", domain: "ai.onnx.ml", versions: 1...Int.max) { context in try CastMapKernel(context) },
        OperatorRegistration("DictVectorizer", domain: "ai.onnx.ml", versions: 1...Int.max) { context in
            try DictVectorizerKernel(context)
        },
    ]
}

/// ZipMap: each row of X, [N, C] floats, as a map from the C class labels to its values; the
/// output is the sequence of the N maps (what scikit-learn classifiers export as probabilities).
package struct ZipMapKernel: Kernel {
    let labels: Tensor

    init(_ context: NodeContext) throws {
        labels = try Maps.labels(context, ints: "classlabels_int64s", strings: "classlabels_strings")
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let x = inputs.first ?? nil, x.descriptor.container == nil, x.dataType == .float else {
            throw OnyxError.unsupportedDataType("ZipMap: X must be a float tensor")
        }
        guard (1...2).contains(x.shape.count), x.shape.last == labels.elementCount else {
            throw OnyxError.shapeMismatch("ZipMap: X must be [N, \(labels.elementCount)] for \(labels.elementCount) labels, got \(shapeText(x.shape))")
        }
        return [TensorDescriptor(container: .sequence(.map(key: labels.dataType, value: .tensor(.float))))]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let x = context.input(0)!
        let classes = labels.elementCount, rows = x.elementCount / max(classes, 1)
        let values = x.pointer(as: Float.self)
        let maps = try (0..<rows).map { row in
            OnnxValue.map(keys: labels, values: try Tensor(shape: [classes], scalars: Array(UnsafeBufferPointer(start: values + row * classes, count: classes))))
        }
        try context.store(.sequence(maps), intoOutput: 0)
    }
}

/// Namespace for the helpers shared by the map kernels.
enum Maps {
    /// Labels or a vocabulary given as an int64 list or a string list (exactly one).
    static func labels(_ context: NodeContext, ints: String, strings: String) throws -> Tensor {
        switch (try context.ints(ints), try context.strings(strings)) {
        case (let values?, nil): return try Tensor(shape: [values.count], scalars: values.map(Int64.init))
        case (nil, let values?): return try Tensor(strings: values, shape: [values.count])
        default: throw context.attributeError("exactly one of '\(ints)' and '\(strings)' must be given")
        }
    }

    /// A map input's keys as integers, or an error naming the operator.
    static func integerKeys(_ keys: Tensor, op: String) throws -> [Int64] {
        guard keys.dataType == .int64 else { throw OnyxError.unsupportedDataType("\(op): map keys must be int64, got \(keys.dataType)") }
        return try keys.scalars(as: Int64.self)
    }

    /// A map input of a run, or an error naming the operator.
    static func map(_ value: OnnxValue, op: String) throws -> (keys: Tensor, values: Tensor) {
        guard case .map(let keys, let values) = value else { throw OnyxError.unsupportedDataType("\(op): input 0 must be a map, got \(value.type)") }
        return (keys, values)
    }
}

/// CastMap: a map from int64 keys to floats or strings as a [1, N] tensor of `cast_to`: its values
/// in key order (DENSE), or at the positions its keys give in a row of `max_map` (SPARSE; 0 or
/// the empty string elsewhere).
package struct CastMapKernel: Kernel {
    let target: DataType
    let dense: Bool
    let maxMap: Int

    init(_ context: NodeContext) throws {
        switch try context.string("cast_to", default: "TO_FLOAT") {
        case "TO_FLOAT": target = .float
        case "TO_STRING": target = .string
        case "TO_INT64": target = .int64
        case let other: throw context.attributeError("cast_to '\(other)' is not TO_FLOAT, TO_STRING or TO_INT64")
        }
        switch try context.string("map_form", default: "DENSE") {
        case "DENSE": dense = true
        case "SPARSE": dense = false
        case let other: throw context.attributeError("map_form '\(other)' is not DENSE or SPARSE")
        }
        maxMap = try context.int("max_map", default: 1)
        guard maxMap >= 1, maxMap <= 1 << 24 else { throw context.attributeError("max_map must be between 1 and 2^24, got \(maxMap)") }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let input = inputs.first ?? nil, case .map(.int64, _)? = input.descriptor.container else {
            throw OnyxError.unsupportedDataType("CastMap: input 0 must be a map with int64 keys")
        }
        guard dense else { return [TensorDescriptor(target, [1, maxMap])] }
        let (keys, _) = try Maps.map(try input.requireValue(op: "CastMap", what: "map"), op: "CastMap")
        return [TensorDescriptor(target, [1, keys.elementCount])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let (keys, values) = try Maps.map(try context.value(ofInput: 0), op: "CastMap")
        let order = try Maps.integerKeys(keys, op: "CastMap").enumerated().sorted { $0.element < $1.element }
        let texts: [String]
        switch values.dataType {
        case .string: texts = try values.strings()
        case .float: texts = try values.scalars(as: Float.self).map(\.description)
        default: throw OnyxError.unsupportedDataType("CastMap: map values must be float or string, got \(values.dataType)")
        }
        let numbers: [Float] = try texts.enumerated().map { i, text in
            if values.dataType == .float { return try values.scalars(as: Float.self)[i] }
            guard let number = target == .string ? 0 : Float(text) else {
                throw OnyxError.invalidInput("CastMap: '\(text)' is not a number")
            }
            return number
        }
        let width = context.output(0).elementCount
        var row = [(number: Float, text: String)](repeating: (0, ""), count: width)
        for (position, (index, key)) in order.enumerated() {
            let slot = dense ? position : Int(key)
            guard slot >= 0, slot < width else {
                throw OnyxError.invalidInput("CastMap: key \(key) is outside the \(width) columns of max_map")
            }
            row[slot] = (numbers[index], texts[index])
        }
        switch target {
        case .string: try context.store(row.map(\.text), intoOutput: 0)
        case .int64:
            let out = context.output(0).pointer(as: Int64.self)
            for (i, entry) in row.enumerated() { out[i] = Int64(entry.number) }
        default:
            let out = context.output(0).pointer(as: Float.self)
            for (i, entry) in row.enumerated() { out[i] = entry.number }
        }
    }
}

/// DictVectorizer: a map's values laid out as a [1, V] row in the order of the vocabulary (its
/// key type's list); keys outside the vocabulary are ignored, missing ones are 0 (or "").
package struct DictVectorizerKernel: Kernel {
    let vocabulary: Tensor
    /// Each vocabulary entry's column, by key.
    let integerColumns: [Int64: Int]
    let stringColumns: [String: Int]

    init(_ context: NodeContext) throws {
        vocabulary = try Maps.labels(context, ints: "int64_vocabulary", strings: "string_vocabulary")
        if vocabulary.dataType == .string {
            stringColumns = Dictionary(try vocabulary.strings().enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
            integerColumns = [:]
        } else {
            integerColumns = Dictionary(try vocabulary.scalars(as: Int64.self).enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
            stringColumns = [:]
        }
    }

    package func outputDescriptors(for inputs: [PlannedInput?]) throws -> [TensorDescriptor] {
        guard let input = inputs.first ?? nil, case .map(let key, .tensor(let value))? = input.descriptor.container else {
            throw OnyxError.unsupportedDataType("DictVectorizer: input 0 must be a map")
        }
        guard key == vocabulary.dataType else {
            throw OnyxError.unsupportedDataType("DictVectorizer: the map's keys are \(key), the vocabulary's \(vocabulary.dataType)")
        }
        guard [.float, .double, .int64, .string].contains(value) else {
            throw OnyxError.unsupportedDataType("DictVectorizer: map values must be float, double, int64 or string, got \(value)")
        }
        return [TensorDescriptor(value, [1, vocabulary.elementCount])]
    }

    package func run(_ context: borrowing KernelContext) throws {
        let (keys, values) = try Maps.map(try context.value(ofInput: 0), op: "DictVectorizer")
        let columns: [Int?] = keys.dataType == .string
            ? try keys.strings().map { stringColumns[$0] }
            : try keys.scalars(as: Int64.self).map { integerColumns[$0] }
        let y = context.output(0)
        if values.dataType == .string {
            var row = [String](repeating: "", count: y.elementCount)
            for (entry, text) in try values.strings().enumerated() { if let column = columns[entry] { row[column] = text } }
            return try context.store(row, intoOutput: 0)
        }
        let width = values.dataType.byteWidth
        y.data.initializeMemory(as: UInt8.self, repeating: 0, count: y.byteCount)
        values.withUnsafeBytes { source in
            for (entry, column) in columns.enumerated() {
                guard let column else { continue }
                (y.data + column * width).copyMemory(from: source.baseAddress! + entry * width, byteCount: width)
            }
        }
    }
}
