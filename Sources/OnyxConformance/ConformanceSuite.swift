import Foundation
import Onyx

/// Runs test cases in the layout of ONNX's backend tests: a folder holding `model.onnx` and
/// `test_data_set_N/` folders of `input_K.pb` and `output_K.pb` TensorProtos.
///
/// Used by `onyx test` and by the conformance test that guards `Tests/Conformance/expected-pass.txt`.
public struct ConformanceSuite: Sendable {
    /// Tolerances: a float output passes when |expected − actual| ≤ atol + rtol·|expected|.
    public struct Tolerance: Sendable, Equatable {
        public var rtol: Double
        public var atol: Double

        public init(rtol: Double = 1e-3, atol: Double = 1e-5) {
            self.rtol = rtol
            self.atol = atol
        }
    }

    /// One case's result.
    public struct Outcome: Sendable {
        public enum Status: String, Sendable { case passed, failed }
        /// The case folder's name (`test_abs`).
        public let name: String
        public let status: Status
        /// Why it failed: `unsupported operator …`, `output 0 'y': shape [2] expected [3]`, …
        public let reason: String?
        /// The operator types the case's model uses.
        public let operators: [String]
        /// Per operator type, the element types of the graph inputs its nodes read.
        public let operatorInputTypes: [String: [String]]
    }

    public var defaultTolerance: Tolerance
    /// Per-case tolerance overrides, by case name.
    public var overrides: [String: Tolerance]
    public var sessionOptions: SessionOptions

    public init(defaultTolerance: Tolerance = Tolerance(), overrides: [String: Tolerance] = [:],
                sessionOptions: SessionOptions = SessionOptions(threadCount: 1)) {
        self.defaultTolerance = defaultTolerance
        self.overrides = overrides
        self.sessionOptions = sessionOptions
    }

    /// Every case folder under `directory` (a folder holding `model.onnx`), sorted by name;
    /// `directory` itself if it is a case.
    public static func caseFolders(under directory: String) throws -> [String] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw OnyxError(.io, "'\(directory)' is not a folder")
        }
        if fm.fileExists(atPath: directory + "/model.onnx") { return [directory] }
        var found: [String] = []
        for entry in try fm.contentsOfDirectory(atPath: directory).sorted() {
            let path = directory + "/" + entry
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            found += try caseFolders(under: path)
        }
        return found
    }

    /// Reads an override file: one `case_name rtol atol` per line; `#` starts a comment.
    public static func readOverrides(_ path: String) throws -> [String: Tolerance] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw OnyxError(.io, "cannot read tolerance file '\(path)'")
        }
        var overrides: [String: Tolerance] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let fields = line.split(whereSeparator: \.isWhitespace)
            if fields.isEmpty { continue }
            guard fields.count == 3, let rtol = Double(fields[1]), let atol = Double(fields[2]) else {
                throw OnyxError(.invalidArgument, "\(path):\(number + 1): expected 'case_name rtol atol'")
            }
            overrides[String(fields[0])] = Tolerance(rtol: rtol, atol: atol)
        }
        return overrides
    }

    /// Runs the case in `folder`. Never throws: every problem is a failed outcome with its reason.
    public func run(caseAt folder: String) -> Outcome {
        let name = (folder as NSString).lastPathComponent
        var operators: [String] = []
        var types: [String: [String]] = [:]
        do {
            let model = try Model(contentsOf: folder + "/model.onnx")
            operators = Array(Set(model.graph.nodes.map(\.opType))).sorted()
            types = Self.inputTypes(of: model.graph)
            let session = try InferenceSession(model: model, options: sessionOptions)
            let dataSets = try FileManager.default.contentsOfDirectory(atPath: folder)
                .filter { $0.hasPrefix("test_data_set_") }.sorted()
            guard !dataSets.isEmpty else { throw CaseFailure("no test_data_set_N folder") }
            let tolerance = overrides[name] ?? defaultTolerance
            let declaredTypes = (session.inputs + session.outputs).compactMap(\.valueType)
            if declaredTypes.contains(where: { !$0.isTensor }) {
                for dataSet in dataSets {
                    try runValues(session, dataSet: dataSet, folder: folder, tolerance: tolerance)
                }
                return Outcome(name: name, status: .passed, reason: nil, operators: operators, operatorInputTypes: types)
            }
            for dataSet in dataSets {
                let path = folder + "/" + dataSet
                let inputs = try session.inputs.indices.map { k in try Self.readTensor(path + "/input_\(k).pb", "input \(k)") }
                let outputs = try session.run(orderedInputs: inputs)
                for (k, (value, actual)) in zip(session.outputs, outputs).enumerated() {
                    let expected = try Self.readTensor(path + "/output_\(k).pb", "output \(k)")
                    if let problem = Self.compare(expected: expected, actual: actual, tolerance: tolerance) {
                        throw CaseFailure("\(dataSet) output \(k) '\(value.name)': \(problem)")
                    }
                }
            }
            return Outcome(name: name, status: .passed, reason: nil, operators: operators, operatorInputTypes: types)
        } catch let error as OnyxError {
            return Outcome(name: name, status: .failed, reason: error.message, operators: operators, operatorInputTypes: types)
        } catch {
            return Outcome(name: name, status: .failed, reason: "\(error)", operators: operators, operatorInputTypes: types)
        }
    }

    /// One data set of a model with sequence, map or optional inputs or outputs, through `run(values:)`.
    private func runValues(_ session: InferenceSession, dataSet: String, folder: String, tolerance: Tolerance) throws {
        let path = folder + "/" + dataSet
        var inputs: [String: OnnxValue] = [:]
        for (k, declared) in session.inputs.enumerated() {
            let type = declared.valueType ?? .tensor(.float)
            let file = path + "/input_\(k).pb"
            if case .optional = type, !FileManager.default.fileExists(atPath: file) {
                inputs[declared.name] = .optional(nil)
                continue
            }
            inputs[declared.name] = try Self.readValue(file, as: type, "input \(k)")
        }
        let outputs = try session.run(values: inputs)
        for (k, declared) in session.outputs.enumerated() {
            guard let actual = outputs[declared.name] else { throw CaseFailure("output \(k) '\(declared.name)' missing") }
            let expected = try Self.readValue(path + "/output_\(k).pb", as: declared.valueType ?? actual.type, "output \(k)")
            if let problem = Self.compare(expected: expected, actual: actual, tolerance: tolerance) {
                throw CaseFailure("\(dataSet) output \(k) '\(declared.name)': \(problem)")
            }
        }
    }

    private static func readValue(_ path: String, as type: ValueType, _ what: String) throws -> OnnxValue {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CaseFailure("missing \(what) file \((path as NSString).lastPathComponent)")
        }
        do {
            return try OnnxValue.decodeProto([UInt8](data), as: type).value
        } catch let error as OnyxError {
            throw CaseFailure("\(what) is not a \(type) Onyx reads: \(error.message)")
        }
    }

    /// Why `actual` does not match `expected` (element by element, as tensors compare), or `nil`.
    public static func compare(expected: OnnxValue, actual: OnnxValue, tolerance: Tolerance) -> String? {
        switch (expected, actual) {
        case (.tensor(let e), .tensor(let a)):
            return compare(expected: e, actual: a, tolerance: tolerance)
        case (.sequence(let e), .sequence(let a)):
            guard e.count == a.count else { return "a sequence of \(a.count), expected \(e.count)" }
            for (i, (x, y)) in zip(e, a).enumerated() {
                if let problem = compare(expected: x, actual: y, tolerance: tolerance) { return "element \(i): \(problem)" }
            }
            return nil
        case (.map(let ek, let ev), .map(let ak, let av)):
            return compare(expected: ek, actual: ak, tolerance: tolerance).map { "keys: \($0)" }
                ?? compare(expected: ev, actual: av, tolerance: tolerance).map { "values: \($0)" }
        case (.optional(let e), .optional(let a)):
            switch (e, a) {
            case (nil, nil): return nil
            case (let x?, let y?): return compare(expected: x, actual: y, tolerance: tolerance)
            default: return a == nil ? "an empty optional, expected a value" : "a value, expected an empty optional"
            }
        default:
            return "\(actual.type), expected \(expected.type)"
        }
    }

    /// For each operator type, the element types of the graph inputs its nodes read directly.
    private static func inputTypes(of graph: Graph) -> [String: [String]] {
        var typeOf: [String: String] = [:]
        for value in graph.inputs { if let type = value.type { typeOf[value.name] = type.dataType.onnxName } }
        var result: [String: Set<String>] = [:]
        for node in graph.nodes {
            for input in node.inputs { if let type = typeOf[input] { result[node.opType, default: []].insert(type) } }
        }
        return result.mapValues { $0.sorted() }
    }

    private struct CaseFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private static func readTensor(_ path: String, _ what: String) throws -> Tensor {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CaseFailure("missing \(what) file \((path as NSString).lastPathComponent)")
        }
        do {
            return try Tensor.decodeTensorProto([UInt8](data)).tensor
        } catch let error as OnyxError {
            throw CaseFailure("\(what) is not a tensor Onyx reads (sequence, map, optional or an unsupported type): \(error.message)")
        }
    }

    /// Why `actual` does not match `expected`, or `nil` if it does.
    ///
    /// Floating-point values match within `tolerance` (NaN matches NaN, infinities match exactly);
    /// integers and booleans must be equal.
    public static func compare(expected: Tensor, actual: Tensor, tolerance: Tolerance) -> String? {
        guard expected.dataType == actual.dataType else {
            return "type \(actual.dataType), expected \(expected.dataType)"
        }
        guard expected.shape == actual.shape else {
            return "shape \(actual.shape), expected \(expected.shape)"
        }
        if expected.dataType == .string {
            guard let e = try? expected.strings(), let a = try? actual.strings() else { return "cannot read string values" }
            guard let i = e.indices.first(where: { e[$0] != a[$0] }) else { return nil }
            return "first difference at \(unravel(i, expected.shape)): got \"\(a[i])\", expected \"\(e[i])\""
        }
        if expected.dataType == .int64 || expected.dataType == .uint64 {
            // 64-bit integers do not fit a Double exactly: compare bit patterns.
            func bits(_ t: Tensor) -> [Int64]? {
                t.dataType == .uint64
                    ? (try? t.scalars(as: UInt64.self))?.map { Int64(bitPattern: $0) } : try? t.scalars(as: Int64.self)
            }
            guard let e = bits(expected), let a = bits(actual) else { return "cannot read \(expected.dataType) values" }
            guard let i = e.indices.first(where: { e[$0] != a[$0] }) else { return nil }
            return "first difference at \(unravel(i, expected.shape)): got \(a[i]), expected \(e[i])"
        }
        guard let e = try? expected.doubles(), let a = try? actual.doubles() else {
            return "cannot read \(expected.dataType) values"
        }
        let exact = !expected.dataType.isFloatingPoint
        var worst: (index: Int, error: Double)?
        for i in e.indices {
            let x = e[i], y = a[i]
            if x == y || (x.isNaN && y.isNaN) { continue }
            let error = (x - y).isNaN ? Double.infinity : abs(x - y)
            let allowed = exact || !x.isFinite ? 0 : tolerance.atol + tolerance.rtol * abs(x)
            if error > allowed && error > (worst?.error ?? -1) { worst = (i, error) }
        }
        guard let worst else { return nil }
        return "max error \(worst.error) at \(unravel(worst.index, expected.shape)): got \(a[worst.index]), expected \(e[worst.index])"
            + (exact ? "" : " (rtol \(tolerance.rtol), atol \(tolerance.atol))")
    }

    private static func unravel(_ flat: Int, _ shape: [Int]) -> [Int] {
        var rest = flat
        var index = [Int](repeating: 0, count: shape.count)
        for axis in shape.indices.reversed() where shape[axis] > 0 {
            index[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return index
    }
}

extension Tensor {
    /// Every element as a `Double` (bool as 0/1), for comparisons.
    func doubles() throws -> [Double] {
        switch dataType {
        case .float: return try scalars(as: Float.self).map(Double.init)
        case .double: return try scalars(as: Double.self)
        case .float16: return try scalars(as: Float16.self).map(Double.init)
        case .int8: return try scalars(as: Int8.self).map(Double.init)
        case .uint8: return try scalars(as: UInt8.self).map(Double.init)
        case .int16: return try scalars(as: Int16.self).map(Double.init)
        case .uint16: return try scalars(as: UInt16.self).map(Double.init)
        case .int32: return try scalars(as: Int32.self).map(Double.init)
        case .uint32: return try scalars(as: UInt32.self).map(Double.init)
        case .int64: return try scalars(as: Int64.self).map(Double.init)
        case .uint64: return try scalars(as: UInt64.self).map(Double.init)
        case .bool: return try scalars(as: Bool.self).map { $0 ? 1 : 0 }
        case .string: throw OnyxError.unsupportedDataType("string tensors have no numeric values")
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1,
             .int4, .uint4, .int2, .uint2:
            // Exact: Double holds every value of these types.
            return try Tensor(converting: self, to: .double).scalars(as: Double.self)
        }
    }
}
