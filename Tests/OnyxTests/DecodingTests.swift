import Foundation
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

@Suite struct DecodingTests {
    static func sampleTensor(_ type: DataType, shape: [Int] = [2, 3]) -> Tensor {
        if type == .string {
            let count = shape.reduce(1, *)
            return try! Tensor(strings: (0..<count).map { $0 == 1 ? "" : "s\($0) ü" }, shape: shape)
        }
        var tensor = Tensor(zeros: type, shape: shape)
        tensor.withUnsafeMutableBytes { bytes in
            for i in 0..<bytes.count {
                let byte = UInt8(truncatingIfNeeded: i * 37 + 5)
                bytes[i] = switch type {
                case .bool: UInt8(i % 2)
                // Unpacked 4- and 2-bit elements: a value in range in each byte, negative ones sign-extended.
                case .uint4, .float4e2m1: byte & 0xF
                case .uint2: byte & 0x3
                case .int4: UInt8(bitPattern: Int8(bitPattern: byte << 4) >> 4)
                case .int2: UInt8(bitPattern: Int8(bitPattern: byte << 6) >> 6)
                default: byte
                }
            }
        }
        return tensor
    }

    static func model(
        nodes: [Node], inputs: [Value], outputs: [Value], initializers: [(name: String, tensor: Tensor)] = [],
        opsets: [String: Int] = ["": 17]
    ) -> Model {
        Model(opsetImports: opsets, producerName: "tests", graph: Graph(
            name: "g", nodes: nodes, inputs: inputs, outputs: outputs, initializers: initializers))
    }

    static func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch let error as OnyxError {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "onyx-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    // MARK: - Model files

    @Test func modelFilesAreDecodedAndCheckedLikeBytes() throws {
        let folder = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = FixtureTests.root.appendingPathComponent("mlp_legacy/model.onnx").path
        let fromFile = try Model(contentsOf: source)
        let fromBytes = try Model(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: source))))
        #expect(fromFile.parameterCount.bytes == fromBytes.parameterCount.bytes)
        for (a, b) in zip(fromFile.graph.initializers, fromBytes.graph.initializers) {
            #expect(a.name == b.name)
            #expect(a.tensor.withUnsafeBytes { Array($0) } == b.tensor.withUnsafeBytes { Array($0) })
        }
        // Adopted raw data is the model's own: writing a decoded weight does not need a copy and
        // does not touch the file.
        var weight = fromFile.graph.initializers[0].tensor
        weight.withUnsafeMutableBytes { $0[0] = ~$0[0] }
        #expect(try Model(contentsOf: source).graph.initializers[0].tensor.withUnsafeBytes { Array($0) }
                == fromBytes.graph.initializers[0].tensor.withUnsafeBytes { Array($0) })

        FileManager.default.createFile(atPath: folder + "/empty.onnx", contents: Data())
        #expect(Self.message { _ = try Model(contentsOf: folder + "/empty.onnx") }.contains("the file is empty"))
        #expect(Self.message { _ = try Model(contentsOf: folder) }.contains("is not a regular file"))
        #expect(Self.message { _ = try Model(contentsOf: folder + "/missing.onnx") }.contains("cannot open"))
        #expect(Self.message { _ = try Model(contentsOf: source, limits: DecodingLimits(maxModelBytes: 100)) }
            .contains("more than the limit of 100"))
    }

    // MARK: - Round trips

    @Test(arguments: DataType.allCases)
    func roundTripsEveryDataType(type: DataType) throws {
        let tensor = Self.sampleTensor(type)
        let decoded = try Tensor.decodeTensorProto(tensor.onnxTensorProtoBytes(name: "t"))
        #expect(decoded.name == "t")
        #expect(decoded.tensor.dataType == type)
        #expect(decoded.tensor.shape == [2, 3])
        #expect(decoded.tensor.withUnsafeBytes { Array($0) } == tensor.withUnsafeBytes { Array($0) })
    }

    @Test func roundTripsModelMetadataAttributesAndShapes() throws {
        let attributes: [String: Attribute] = [
            "f": .float(1.5), "i": .int(-7), "s": .string("héllo"), "t": .tensor(Self.sampleTensor(.int64, shape: [2])),
            "fs": .floats([1, 2.5]), "is": .ints([3, -4, 5]), "ss": .strings(["a", "b"]),
            "ts": .tensors([Self.sampleTensor(.float, shape: [1]), Self.sampleTensor(.uint8, shape: [3])]),
        ]
        var model = Self.model(
            nodes: [Node(name: "n", opType: "Relu", inputs: ["x"], outputs: ["y"], attributes: attributes)],
            inputs: [Value(name: "x", type: TensorType(dataType: .float, shape: Shape([.symbolic("batch"), .fixed(3), .unknown])))],
            outputs: [Value(name: "y", type: TensorType(dataType: .float, shape: nil))],
            initializers: DataType.allCases.map { ("w_\($0)", Self.sampleTensor($0)) },
            opsets: ["": 17, "com.example": 2])
        model.metadata = ["author": "onyx", "version": "1"]
        model.docString = "doc"
        let decoded = try Model(bytes: model.serializedBytes())

        #expect(decoded.producerName == "tests")
        #expect(decoded.docString == "doc")
        #expect(decoded.metadata == ["author": "onyx", "version": "1"])
        #expect(decoded.opsetImports == ["": 17, "com.example": 2])
        #expect(decoded.graph.inputs[0].type?.shape == Shape([.symbolic("batch"), .fixed(3), .unknown]))
        #expect(decoded.graph.outputs[0].type == TensorType(dataType: .float, shape: nil))
        #expect(decoded.graph.initializers.count == DataType.allCases.count)
        for (original, copy) in zip(model.graph.initializers, decoded.graph.initializers) {
            #expect(original.name == copy.name)
            #expect(copy.tensor.dataType == original.tensor.dataType)
            #expect(copy.tensor.withUnsafeBytes { Array($0) } == original.tensor.withUnsafeBytes { Array($0) })
        }
        let a = decoded.graph.nodes[0].attributes
        guard case .float(1.5)? = a["f"], case .int(-7)? = a["i"], case .string("héllo")? = a["s"],
              case .floats([1, 2.5])? = a["fs"], case .ints([3, -4, 5])? = a["is"], case .strings(["a", "b"])? = a["ss"],
              case .tensor(let t)? = a["t"], case .tensors(let ts)? = a["ts"]
        else {
            Issue.record("attributes did not round-trip: \(a)")
            return
        }
        #expect(try t.scalars(as: Int64.self) == Self.sampleTensor(.int64, shape: [2]).scalars(as: Int64.self))
        #expect(ts.map(\.dataType) == [.float, .uint8])
    }

    @Test func dropsInitializersListedAsInputs() throws {
        let model = Self.model(
            nodes: [Node(name: "n", opType: "Add", inputs: ["x", "w"], outputs: ["y"])],
            inputs: [Value(name: "x", type: nil), Value(name: "w", type: nil)],
            outputs: [Value(name: "y", type: nil)],
            initializers: [("w", Self.sampleTensor(.float))])
        let decoded = try Model(bytes: model.serializedBytes())
        #expect(decoded.graph.inputs.map(\.name) == ["x"])
    }

    /// Bytes written by the onnx Python package for a TensorProto with float_data (typed field).
    @Test func decodesTypedFields() throws {
        // dims: [2], data_type: FLOAT, float_data: [1.0, -2.0], name: "f"
        let bytes: [UInt8] = [0x08, 0x02, 0x10, 0x01, 0x22, 0x08, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0, 0x42, 0x01, 0x66]
        let decoded = try Tensor.decodeTensorProto(bytes)
        #expect(decoded.name == "f")
        #expect(try decoded.tensor.scalars(as: Float.self) == [1, -2])
        // dims: [3], data_type: INT64, int64_data: [1, -1, 300] (packed)
        let ints: [UInt8] = [0x08, 0x03, 0x10, 0x07, 0x3A, 0x0D, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0xAC, 0x02]
        #expect(try Tensor.decodeTensorProto(ints).tensor.scalars(as: Int64.self) == [1, -1, 300])
        // dims: [2], data_type: BOOL, int32_data: [1, 0]
        let bools: [UInt8] = [0x08, 0x02, 0x10, 0x09, 0x2A, 0x02, 0x01, 0x00]
        #expect(try Tensor.decodeTensorProto(bools).tensor.scalars(as: Bool.self) == [true, false])
        // dims: [2], data_type: FLOAT16, int32_data: [0x3C00 (1.0), 0xC000 (-2.0)]
        let halves: [UInt8] = [0x08, 0x02, 0x10, 0x0A, 0x2A, 0x06, 0x80, 0xF8, 0x00, 0x80, 0x80, 0x03]
        #expect(try Tensor.decodeTensorProto(halves).tensor.scalars(as: Float16.self) == [1, -2])
    }

    // MARK: - Malformed files

    @Test func rejectsEmptyTruncatedAndRandomBytes() throws {
        #expect(Self.message { _ = try Model(bytes: []) }.contains("not an ONNX model"))
        let good = try Model(contentsOf: FixtureTests.root.appendingPathComponent("mlp_legacy/model.onnx").path).serializedBytes()
        for cut in [1, 7, good.count / 2, good.count - 3] {
            let message = Self.message { _ = try Model(bytes: Array(good.prefix(cut))) }
            #expect(message != "no error", "truncated to \(cut) bytes")
        }
        var generator = SystemRandomNumberGenerator()
        for length in [1, 16, 1000, 100_000] {
            let noise = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let message = Self.message { _ = try Model(bytes: noise) }
            #expect(message != "no error")
        }
        #expect(Self.message { _ = try Model(bytes: Array("hello, I am a text file\n".utf8)) } != "no error")
    }

    @Test func refusesSizeBombsBeforeAllocating() throws {
        // An initializer that declares 2^40 × 2^40 floats but carries 4 bytes.
        var small = Tensor(zeros: .float, shape: [1])
        small.withUnsafeMutableBytes { $0[0] = 1 }
        let model = Self.model(
            nodes: [Node(name: "n", opType: "Relu", inputs: ["w"], outputs: ["y"])],
            inputs: [], outputs: [Value(name: "y", type: nil)], initializers: [("w", small)])
        var bytes = model.serializedBytes()
        // Patch dims: find the initializer's dims field (0x08 0x01) and declare a huge extent.
        let pattern: [UInt8] = [0x08, 0x01, 0x10, 0x01]
        let replacement: [UInt8] = [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0x10, 0x01]
        let start = try #require((0...(bytes.count - 4)).first { Array(bytes[$0..<($0 + 4)]) == pattern })
        bytes.replaceSubrange(start..<(start + 4), with: replacement)
        bytes = Self.fixingLengths(bytes, delta: replacement.count - pattern.count, at: start)
        let message = Self.message { _ = try Model(bytes: bytes) }
        #expect(message.contains("overflows") || message.contains("limit"), "\(message)")

        let limited = Self.message {
            _ = try Model(bytes: model.serializedBytes(), limits: DecodingLimits(maxTensorBytes: 2))
        }
        #expect(limited.contains("limit of 2 bytes"))
    }

    @Test func refusesRawDataShorterThanShape() throws {
        // dims [4], FLOAT, raw_data of 8 bytes.
        let bytes: [UInt8] = [0x08, 0x04, 0x10, 0x01, 0x4A, 0x08] + [UInt8](repeating: 0, count: 8)
        #expect(Self.message { _ = try Tensor.decodeTensorProto(bytes) }.contains("raw data holds 8 bytes but shape [4] of float needs 16"))
    }

    // MARK: - External data

    /// A model whose initializer `w` (4 floats) lives in an external file at `location`.
    static func externalModel(location: String, offset: Int = 0) -> [UInt8] {
        let model = Self.model(
            nodes: [Node(name: "n", opType: "Relu", inputs: ["w"], outputs: ["y"])],
            inputs: [], outputs: [Value(name: "y", type: nil)],
            initializers: [("w", try! Tensor(shape: [4], scalars: [Float](repeating: 0, count: 4)))])
        var bytes = model.serializedBytes()
        // Replace raw_data (field 9, 16 bytes) with data_location = EXTERNAL and external_data entries.
        let raw: [UInt8] = [0x4A, 0x10] + [UInt8](repeating: 0, count: 16)
        func entry(_ key: String, _ value: String) -> [UInt8] {
            let k = Array(key.utf8), v = Array(value.utf8)
            let body: [UInt8] = [0x0A, UInt8(k.count)] + k + [0x12, UInt8(v.count)] + v
            return [0x6A, UInt8(body.count)] + body
        }
        var external = entry("location", location)
        if offset > 0 { external += entry("offset", String(offset)) }
        external += [0x70, 0x01]
        // The initializer message's length prefix changes with its content: rebuild it.
        guard let start = (0...(bytes.count - raw.count)).first(where: { Array(bytes[$0..<($0 + raw.count)]) == raw }) else {
            fatalError("raw data not found")
        }
        bytes.replaceSubrange(start..<(start + raw.count), with: external)
        return Self.fixingLengths(bytes, delta: external.count - raw.count, at: start)
    }

    /// Re-encodes the length prefixes of the enclosing messages (graph → initializer) after an edit.
    static func fixingLengths(_ bytes: [UInt8], delta: Int, at position: Int) -> [UInt8] {
        // ModelProto.graph (field 7, tag 0x3A) encloses GraphProto.initializer (field 5, tag 0x2A).
        var result = bytes
        func varint(at i: Int) -> (Int, Int) {
            var value = 0, shift = 0, j = i
            while true {
                let b = Int(result[j]); value |= (b & 0x7F) << shift; j += 1
                if b & 0x80 == 0 { break }
                shift += 7
            }
            return (value, j - i)
        }
        // Walk the model's top-level fields to find the graph, then the graph's fields to find the initializer.
        func findEnclosing(tag: UInt8, from start: Int, to end: Int) -> (Int, Int, Int)? {
            var i = start
            while i < end {
                let (key, keySize) = varint(at: i)
                let wire = key & 7
                let fieldStart = i
                i += keySize
                switch wire {
                case 0: i += varint(at: i).1
                case 1: i += 8
                case 5: i += 4
                case 2:
                    let (length, lengthSize) = varint(at: i)
                    let contentStart = i + lengthSize
                    if UInt8(key) == tag && contentStart <= position && position < contentStart + length {
                        return (fieldStart + keySize, length, contentStart)
                    }
                    i = contentStart + length
                default: return nil
                }
            }
            return nil
        }
        guard let graph = findEnclosing(tag: 0x3A, from: 0, to: result.count),
              let initializer = findEnclosing(tag: 0x2A, from: graph.2, to: graph.2 + graph.1 + delta)
        else { fatalError("could not locate enclosing messages") }
        let changes = [(offset: initializer.0, oldSize: initializer.2 - initializer.0, newLength: initializer.1 + delta),
                       (offset: graph.0, oldSize: graph.2 - graph.0, newLength: graph.1 + delta)]
        for change in changes {  // inner first: its offset is after the outer one
            var encoded: [UInt8] = []
            var v = change.newLength
            repeat {
                var b = UInt8(v & 0x7F); v >>= 7
                if v != 0 { b |= 0x80 }
                encoded.append(b)
            } while v != 0
            result.replaceSubrange(change.offset..<(change.offset + change.oldSize), with: encoded)
        }
        return result
    }

    @Test func readsExternalDataInsideTheModelFolder() throws {
        let folder = try Self.temporaryDirectory()
        let values: [Float] = [1, -2, 3, -4]
        var data = [UInt8](repeating: 9, count: 8)
        values.withUnsafeBytes { data += $0 }
        try Data(data).write(to: URL(fileURLWithPath: folder + "/weights.bin"))
        try Data(Self.externalModel(location: "weights.bin", offset: 8)).write(to: URL(fileURLWithPath: folder + "/model.onnx"))
        let model = try Model(contentsOf: folder + "/model.onnx")
        #expect(try model.graph.initializers[0].tensor.scalars(as: Float.self) == values)
    }

    @Test func refusesExternalDataOutsideTheModelFolder() throws {
        let outside = try Self.temporaryDirectory()
        try Data(count: 16).write(to: URL(fileURLWithPath: outside + "/secret.bin"))
        let folder = try Self.temporaryDirectory()
        try FileManager.default.createSymbolicLink(atPath: folder + "/link.bin", withDestinationPath: outside + "/secret.bin")
        let outsideName = (outside as NSString).lastPathComponent
        let cases: [(String, String)] = [
            (outside + "/secret.bin", "absolute path"),
            ("../\(outsideName)/secret.bin", "'..'"),
            ("link.bin", "outside the model's folder"),
            ("missing.bin", "does not exist"),
        ]
        for (location, expected) in cases {
            try Data(Self.externalModel(location: location)).write(to: URL(fileURLWithPath: folder + "/model.onnx"))
            let message = Self.message { _ = try Model(contentsOf: folder + "/model.onnx") }
            #expect(message.contains(expected), "\(location): \(message)")
        }
        // From bytes there is no folder to resolve against.
        #expect(Self.message { _ = try Model(bytes: Self.externalModel(location: "w.bin")) }.contains("load the model from its file"))
        // An offset past the end of the file.
        try Data(count: 16).write(to: URL(fileURLWithPath: folder + "/short.bin"))
        try Data(Self.externalModel(location: "short.bin", offset: 8)).write(to: URL(fileURLWithPath: folder + "/model.onnx"))
        #expect(Self.message { _ = try Model(contentsOf: folder + "/model.onnx") }.contains("cannot read 16 bytes at offset 8"))
    }

    // MARK: - Graph validation

    static let x = Value(name: "x", type: TensorType(dataType: .float, shape: Shape(fixed: [1])))
    static let y = Value(name: "y", type: TensorType(dataType: .float, shape: Shape(fixed: [1])))

    @Test func rejectsACycle() {
        let model = Self.model(
            nodes: [
                Node(name: "a", opType: "Add", inputs: ["x", "c"], outputs: ["b"]),
                Node(name: "b", opType: "Relu", inputs: ["b"], outputs: ["c"]),
                Node(name: "out", opType: "Relu", inputs: ["c"], outputs: ["y"]),
            ],
            inputs: [Self.x], outputs: [Self.y])
        #expect(Self.message { try model.graph.validate(opsetImports: model.opsetImports) }.contains("cycle through node"))
        #expect(Self.message { _ = try InferenceSession(model: model) }.contains("cycle"))
    }

    @Test func rejectsValuesNeverProduced() {
        let model = Self.model(
            nodes: [Node(name: "r", opType: "Relu", inputs: ["ghost"], outputs: ["y"])], inputs: [Self.x], outputs: [Self.y])
        #expect(Self.message { _ = try InferenceSession(model: model) } == "value 'ghost' used by node 'r' (Relu) is never produced")
        let missingOutput = Self.model(
            nodes: [Node(name: "r", opType: "Relu", inputs: ["x"], outputs: ["z"])], inputs: [Self.x], outputs: [Self.y])
        #expect(Self.message { _ = try InferenceSession(model: missingOutput) } == "graph output 'y' is never produced")
    }

    @Test func rejectsDuplicateProducers() {
        let model = Self.model(
            nodes: [
                Node(name: "r1", opType: "Relu", inputs: ["x"], outputs: ["y"]),
                Node(name: "r2", opType: "Relu", inputs: ["x"], outputs: ["y"]),
            ],
            inputs: [Self.x], outputs: [Self.y])
        #expect(Self.message { _ = try InferenceSession(model: model) } == "value 'y' is produced twice: by node 'r1' and by node 'r2'")
    }

    @Test func rejectsMissingOpsetImport() {
        let model = Self.model(
            nodes: [Node(name: "r", opType: "Custom", domain: "com.example", inputs: ["x"], outputs: ["y"])],
            inputs: [Self.x], outputs: [Self.y])
        #expect(Self.message { _ = try InferenceSession(model: model) } == "missing opset import for domain 'com.example' used by node 'r'")
    }

    @Test func unsupportedOperatorNamesOpDomainOpsetAndNode() throws {
        let model = Self.model(
            nodes: [Node(name: "bar", opType: "Foo", inputs: ["x"], outputs: ["y"])], inputs: [Self.x], outputs: [Self.y])
        let decoded = try Model(bytes: model.serializedBytes())
        #expect(Self.message { _ = try InferenceSession(model: decoded) } == "unsupported operator Foo (ai.onnx, opset 17) at node 'bar'")
        #expect(decoded.unsupportedNodes.map(\.description) == ["unsupported operator Foo (ai.onnx, opset 17) at node 'bar'"])
    }
}
