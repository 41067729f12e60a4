import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import NIOCore
import Onyx
import Testing
@testable import OnyxServe

/// The REST front through HummingbirdTesting: every route, JSON and binary inference against the
/// fixtures' expected outputs, error statuses, batching under concurrency.
@Suite struct ServerTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func fixtureTensor(_ path: String) throws -> Tensor {
        try Tensor.decodeTensorProto([UInt8](Data(contentsOf: fixtures.appendingPathComponent(path)))).tensor
    }

    static func repository(_ configuration: ModelConfiguration = ModelConfiguration()) async throws -> ModelRepository {
        PrometheusSetup.bootstrap()
        let repository = ModelRepository()
        try await repository.load(name: "mlp", path: fixtures.appendingPathComponent("mlp_legacy/model.onnx").path, configuration: configuration)
        try await repository.load(name: "lenet", version: "3", path: fixtures.appendingPathComponent("lenet_dynamo/model.onnx").path, configuration: configuration)
        return repository
    }

    static func app(_ repository: ModelRepository, _ configuration: ServerConfiguration = ServerConfiguration()) -> some ApplicationProtocol {
        Application(router: buildRouter(repository: repository, configuration: configuration))
    }

    static func json(_ buffer: ByteBuffer?) throws -> JSONValue {
        guard let buffer else { return .null }
        return try JSONParser.parse(Array(buffer.readableBytesView))
    }

    static func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    static func inferBody(_ tensor: Tensor, name: String = "input", datatype: String = "FP32", extra: String = "") throws -> ByteBuffer {
        var writer = JSONWriter()
        writer.raw("{\"id\":\"r1\",\"inputs\":[{\"name\":")
        writer.string(name)
        writer.raw(",\"datatype\":")
        writer.string(datatype)
        writer.raw(",\"shape\":[")
        writer.bytes += Array(tensor.shape.map(String.init).joined(separator: ",").utf8)
        writer.raw("],\"data\":")
        TensorJSON.write(tensor, to: &writer)
        writer.raw("}]")
        writer.bytes += Array(extra.utf8)
        writer.raw("}")
        return ByteBuffer(bytes: writer.bytes)
    }

    static func floats(_ value: JSONValue?) -> [Float] {
        guard case .numbers(let run)? = value else { return [] }
        return run.doubles.map { Float($0) }
    }

    static func expectClose(_ a: [Float], _ b: [Float]) {
        #expect(a.count == b.count)
        for (x, y) in zip(a, b) { #expect(abs(x - y) <= 1e-5 + 1e-4 * abs(y), "\(x) vs \(y)") }
    }

    // MARK: - Health and metadata

    @Test func healthAndMetadataRoutes() async throws {
        let app = Self.app(try await Self.repository())
        try await app.test(.router) { client in
            try await client.execute(uri: "/v2/health/live", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/health/ready", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/ping", method: .get) { response throws in
                #expect(try Self.json(response.body)["status"] == .string("Healthy"))
            }
            try await client.execute(uri: "/v2", method: .get) { response throws in
                let server = try Self.json(response.body)
                #expect(server["name"] == .string("onyx"))
                #expect(server["extensions"]?.arrayValue?.contains(.string("binary_tensor_data")) == true)
            }
            try await client.execute(uri: "/v2/models/mlp", method: .get) { response throws in
                let metadata = try Self.json(response.body)
                #expect(metadata["name"] == .string("mlp"))
                #expect(metadata["versions"] == .array([.string("1")]))
                let input = metadata["inputs"]?.arrayValue?.first
                #expect(input?["name"] == .string("input"))
                #expect(input?["datatype"] == .string("FP32"))
                #expect(input?["shape"] == .numbers(NumberArray(doubles: [-1, 64], integers: [-1, 64])))
            }
            try await client.execute(uri: "/v2/models/lenet/versions/3", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/models/lenet/versions/3/ready", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/models/mlp/ready", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/models/nope", method: .get) { response throws in
                #expect(response.status == .notFound)
                #expect(try Self.json(response.body)["error"] == .string("unknown model 'nope'"))
            }
            try await client.execute(uri: "/v2/models/lenet/versions/9", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v2/models/nope/ready", method: .get) { #expect($0.status == .notFound) }
        }
    }

    // MARK: - Inference

    @Test func jsonInferenceMatchesFixtures() async throws {
        let app = Self.app(try await Self.repository())
        let x = try Self.fixtureTensor("mlp_legacy/test_data_set_0/input_0.pb")
        let expected = try Self.fixtureTensor("mlp_legacy/test_data_set_0/output_0.pb").scalars(as: Float.self)
        let image = try Self.fixtureTensor("lenet_dynamo/test_data_set_0/input_0.pb")
        let imageExpected = try Self.fixtureTensor("lenet_dynamo/test_data_set_0/output_0.pb").scalars(as: Float.self)
        try await app.test(.router) { client in
            try await client.execute(uri: "/v2/models/mlp/infer", method: .post, body: try Self.inferBody(x, extra: ",\"outputs\":[{\"name\":\"output\"}]")) { response throws in
                #expect(response.status == .ok)
                let body = try Self.json(response.body)
                #expect(body["id"] == .string("r1"))
                #expect(body["model_name"] == .string("mlp"))
                let output = body["outputs"]?.arrayValue?.first
                #expect(output?["shape"] == .numbers(NumberArray(doubles: [2, 2], integers: [2, 2])))
                Self.expectClose(Self.floats(output?["data"]), expected)
            }
            try await client.execute(uri: "/v2/models/lenet/versions/3/infer", method: .post, body: try Self.inferBody(image)) { response throws in
                #expect(response.status == .ok)
                Self.expectClose(Self.floats(try Self.json(response.body)["outputs"]?.arrayValue?.first?["data"]), imageExpected)
            }
            // TorchServe-style body, nested data without an explicit shape.
            let rows = try x.scalars(as: Float.self)
            let nested = "{\"data\": [[" + rows[0..<64].map { "\($0)" }.joined(separator: ",") + "],[" + rows[64..<128].map { "\($0)" }.joined(separator: ",") + "]]}"
            try await client.execute(uri: "/predictions/mlp", method: .post, body: Self.body(nested)) { response throws in
                #expect(response.status == .ok)
                let body = try Self.json(response.body)
                #expect(body["shape"] == .numbers(NumberArray(doubles: [2, 2], integers: [2, 2])))
                Self.expectClose(Self.floats(body["data"]), expected)
            }
            try await client.execute(uri: "/predictions/mlp/1", method: .post, body: Self.body("{\"shape\":[1,64],\"data\":[" + rows[0..<64].map { "\($0)" }.joined(separator: ",") + "]}")) { response throws in
                Self.expectClose(Self.floats(try Self.json(response.body)["data"]), Array(expected[0..<2]))
            }
        }
    }

    @Test func binaryInferenceMatchesFixtures() async throws {
        let app = Self.app(try await Self.repository())
        let x = try Self.fixtureTensor("mlp_legacy/test_data_set_0/input_0.pb")
        let expected = try Self.fixtureTensor("mlp_legacy/test_data_set_0/output_0.pb").scalars(as: Float.self)
        let header = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,64],\"parameters\":{\"binary_data_size\":\(x.byteCount)}}],"
            + "\"outputs\":[{\"name\":\"output\",\"parameters\":{\"binary_data\":true}}]}"
        var buffer = ByteBuffer(string: header)
        x.withUnsafeBytes { buffer.writeBytes($0) }
        let body = buffer
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/v2/models/mlp/infer", method: .post,
                headers: [HTTPField.Name("Inference-Header-Content-Length")!: String(header.utf8.count)], body: body
            ) { response throws in
                #expect(response.status == .ok)
                let jsonLength = try #require(response.headers[HTTPField.Name("Inference-Header-Content-Length")!].flatMap(Int.init))
                var buffer = try #require(response.body)
                let json = try JSONParser.parse(buffer.readBytes(length: jsonLength)!)
                let output = json["outputs"]?.arrayValue?.first
                #expect(output?["parameters"]?["binary_data_size"] == .number(16))
                let raw = buffer.readBytes(length: buffer.readableBytes)!
                let values = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                Self.expectClose(values, expected)
            }
            // The header length must fit the body; binary bytes must match the declared shape.
            try await client.execute(uri: "/v2/models/mlp/infer", method: .post,
                                     headers: [HTTPField.Name("Inference-Header-Content-Length")!: "999999"], body: body) { response throws in
                #expect(response.status == .badRequest)
                #expect(try Self.json(response.body)["error"]?.stringValue?.contains("Inference-Header-Content-Length") == true)
            }
            try await client.execute(uri: "/v2/models/mlp/infer", method: .post,
                                     headers: [HTTPField.Name("Inference-Header-Content-Length")!: "-5"], body: body) { #expect($0.status == .badRequest) }
            var short = ByteBuffer(string: header)
            short.writeBytes([UInt8](repeating: 0, count: 12))
            try await client.execute(uri: "/v2/models/mlp/infer", method: .post,
                                     headers: [HTTPField.Name("Inference-Header-Content-Length")!: String(header.utf8.count)], body: short) { response throws in
                #expect(response.status == .badRequest)
                #expect(try Self.json(response.body)["error"]?.stringValue?.contains("runs past the end") == true)
            }
        }
    }

    @Test func everyDatatypeRoundTripsThroughJSON() throws {
        for type in DataType.allCases where type != .string {
            // Values the type holds exactly.
            let values: [Double] = switch type {
            case .bool: [0, 1, 1, 0]
            case .int2: [0, 1, -2, -1]
            case .uint2, .int4, .uint4, .float4e2m1, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz: [0, 1, 2, 3]
            case .float8e8m0: [1, 2, 0.5, 128]
            default: [0, 1, 2, 127]
            }
            let integers = values.allSatisfy { $0.rounded() == $0 } ? values.map(Int64.init) : nil
            let data = JSONValue.numbers(NumberArray(doubles: values, integers: integers))
            let tensor = try TensorJSON.tensor(from: data, type: type, shape: [2, 2], name: "t")
            #expect(tensor.dataType == type)
            var writer = JSONWriter()
            TensorJSON.write(tensor, to: &writer)
            let back = try TensorJSON.tensor(from: try JSONParser.parse(writer.bytes), type: type, shape: [2, 2], name: "t")
            #expect(back.withUnsafeBytes { Array($0) } == tensor.withUnsafeBytes { Array($0) }, "\(type)")
        }
        let strings = try TensorJSON.tensor(from: .array([.array([.string("a"), .string("ü\\\"")]), .array([.string(""), .string("x")])]),
                                            type: .string, shape: [2, 2], name: "t")
        var writer = JSONWriter()
        TensorJSON.write(strings, to: &writer)
        #expect(try TensorJSON.tensor(from: try JSONParser.parse(writer.bytes), type: .string, shape: [2, 2], name: "t").strings()
                == ["a", "ü\\\"", "", "x"])
        #expect(throws: TensorCodingError.self) { try TensorJSON.tensor(from: .numbers(NumberArray(doubles: [300], integers: [300])), type: .uint8, shape: [1], name: "t") }
        #expect(throws: TensorCodingError.self) { try TensorJSON.tensor(from: .numbers(NumberArray(doubles: [1.5], integers: nil)), type: .int32, shape: [1], name: "t") }
    }

    /// BF16 travels as JSON or 2-byte binary; the 4- and 2-bit types only as JSON (ONNX packs
    /// them, Onyx keeps one per byte, and the protocol defines neither).
    @Test func narrowDatatypesInTheProtocol() throws {
        #expect(DataType.bfloat16.protocolName == "BF16" && DataType(protocolName: "BF16") == .bfloat16)
        #expect(DataType.float8e4m3fn.protocolName == "FLOAT8E4M3FN" && DataType(protocolName: "FLOAT8E4M3FN") == .float8e4m3fn)
        #expect(DataType(protocolName: "INT4") == .int4)
        let bf16: [UInt8] = [0x80, 0x3F, 0x40, 0xC0]  // 1.0, -3.0
        let header = #"{"inputs":[{"name":"a","datatype":"BF16","shape":[2],"parameters":{"binary_data_size":4}}]}"#
        let decoded = try InferenceProtocol.decodeRequest(Array(header.utf8) + bf16, headerLength: header.utf8.count, maxElements: 100)
        let a = decoded.request.inputs[0].tensor
        #expect(a.dataType == .bfloat16 && a.withUnsafeBytes { Array($0) } == bf16)
        #expect(try Tensor(converting: a, to: .float).scalars(as: Float.self) == [1, -3])

        let packed = #"{"inputs":[{"name":"b","datatype":"INT4","shape":[2],"parameters":{"binary_data_size":2}}]}"#
        let refusal = #expect(throws: HandlerError.self) {
            try InferenceProtocol.decodeRequest(Array(packed.utf8) + [1, 2], headerLength: packed.utf8.count, maxElements: 100)
        }
        #expect(refusal?.status == 400 && refusal?.message.contains("INT4 has no binary layout") == true, "\(String(describing: refusal))")

        // Asked for binary, an INT4 output still comes back as "data"; BF16 as binary.
        let int4 = try Tensor(converting: try Tensor(shape: [3], scalars: [Float(-8), 7, -1]), to: .int4)
        let (body, jsonLength) = InferenceProtocol.encodeResponse(
            modelName: "m", version: "1", id: nil, outputs: [NamedTensor(name: "q", tensor: int4), NamedTensor(name: "h", tensor: a)],
            binaryOutputs: [], allBinary: true)
        let length = try #require(jsonLength)
        let json = String(decoding: body[..<length], as: UTF8.self)
        #expect(json.contains(#""name":"q","datatype":"INT4","shape":[3],"data":[-8,7,-1]"#), "\(json)")
        #expect(json.contains(#""name":"h","datatype":"BF16","shape":[2],"parameters":{"binary_data_size":4}"#), "\(json)")
        #expect(Array(body[length...]) == bf16)
    }

    @Test func floatsRoundTripExactly() throws {
        var generator = SystemRandomNumberGenerator()
        let values = (0..<10_000).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &generator)) }.filter(\.isFinite)
        let tensor = try Tensor(shape: [values.count], scalars: values)
        var writer = JSONWriter()
        TensorJSON.write(tensor, to: &writer)
        let back = try TensorJSON.tensor(from: try JSONParser.parse(writer.bytes), type: .float, shape: [values.count], name: "t")
        #expect(try back.scalars(as: Float.self).map(\.bitPattern) == values.map(\.bitPattern))
    }

    // MARK: - Errors

    @Test func badRequestsGetClearErrors() async throws {
        let app = Self.app(try await Self.repository(), ServerConfiguration(maxBodyBytes: 4096))
        let cases: [(String, String, Int, String)] = [
            ("/v2/models/mlp/infer", "{bad json", 400, "not valid JSON"),
            ("/v2/models/mlp/infer", "[1,2]", 400, "JSON object"),
            ("/v2/models/mlp/infer", "{\"inputs\":[]}", 400, "no \"inputs\""),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,3],\"data\":[1,2,3]}]}", 400, "has shape [1, 3], the model expects [-1, 64]"),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"INT64\",\"shape\":[1,64],\"data\":[\(Array(repeating: "1", count: 64).joined(separator: ","))]}]}", 400, "must be FP32, got INT64"),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[1]}]}", 400, "input 'input': BYTES data must be strings"),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"a\"]}]}", 400, "must be FP32, got BYTES"),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"BF16\",\"shape\":[1],\"data\":[1]}]}", 400, "must be FP32, got BF16"),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP8\",\"shape\":[1],\"data\":[1]}]}", 400, "datatype 'FP8' is not supported"),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"INT4\",\"shape\":[2],\"data\":[1, 9]}]}", 400, "9 is out of range for INT4 (-8...7)"),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}", 400, "unknown input 'x'"),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,64],\"data\":[1,2]}]}", 400, "needs 64 elements but \"data\" has 2"),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,64],\"data\":[\"a\"]}]}", 400, "only numbers or booleans"),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,-64],\"data\":[1]}]}", 400, "non-negative integers"),
            ("/v2/models/mlp/infer", "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,64],\"data\":[1]}],\"outputs\":[{\"name\":\"zzz\"}]}", 400, "needs 64 elements"),
            ("/v2/models/lenet/versions/7/infer", "{}", 404, "has no version '7'"),
            ("/v2/models/ghost/infer", "{}", 404, "unknown model 'ghost'"),
            ("/v2/models/mlp/infer", String(repeating: " ", count: 5000), 413, "larger than the limit of 4096 bytes"),
            ("/predictions/mlp", "{\"shape\":[1,64]}", 400, "has no \"data\""),
            ("/predictions/mlp", "{\"data\":[[1,2],[3]]}", 400, "ragged"),
        ]
        try await app.test(.router) { client in
            for (uri, text, status, message) in cases {
                try await client.execute(uri: uri, method: .post, body: Self.body(text)) { response throws in
                    #expect(Int(response.status.code) == status, "\(uri) \(text.prefix(60))")
                    let error = try Self.json(response.body)["error"]?.stringValue ?? ""
                    #expect(error.contains(message), "\(text.prefix(60)): \(error)")
                }
            }
            // Unknown requested output, with otherwise valid data.
            let valid = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,64],\"data\":[\(Array(repeating: "0.5", count: 64).joined(separator: ","))]}],\"outputs\":[{\"name\":\"zzz\"}]}"
            try await client.execute(uri: "/v2/models/mlp/infer", method: .post, body: Self.body(valid)) { response throws in
                #expect(response.status == .badRequest)
                #expect(try Self.json(response.body)["error"]?.stringValue?.contains("unknown output 'zzz'") == true)
            }
        }
    }

    // MARK: - Batching

    @Test(arguments: [1, 8])
    func concurrentRequestsMatchOneByOne(maxBatchSize: Int) async throws {
        let repository = try await Self.repository(ModelConfiguration(maxBatchSize: maxBatchSize, maxQueueDelayMilliseconds: 5, instanceCount: 1))
        let model = try repository.model("mlp")
        let session = try InferenceSession(contentsOf: Self.fixtures.appendingPathComponent("mlp_legacy/model.onnx").path)
        let inputs = (0..<24).map { i in
            try! Tensor(shape: [1 + i % 3, 64], scalars: (0..<((1 + i % 3) * 64)).map { Float(($0 * 7 + i * 13) % 17) / 17 - 0.5 })
        }
        let results = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (i, x) in inputs.enumerated() {
                group.addTask {
                    let response = try await model.infer(HandlerRequest(inputs: [NamedTensor(name: "input", tensor: x)]))
                    guard case .tensors(let outputs) = response else { return (i, []) }
                    return (i, try outputs[0].tensor.scalars(as: Float.self))
                }
            }
            var collected: [Int: [Float]] = [:]
            for try await (i, values) in group { collected[i] = values }
            return collected
        }
        for (i, x) in inputs.enumerated() {
            let expected = try await session.run(["input": x])["output"]!.scalars(as: Float.self)
            Self.expectClose(results[i] ?? [], expected)
        }
    }

    @Test func modelsShareTheServersKernelThreads() async throws {
        PrometheusSetup.bootstrap()
        let repository = ModelRepository(threadPool: SharedThreadPool(threadCount: 2))
        let mlp = Self.fixtures.appendingPathComponent("mlp_legacy/model.onnx").path
        let lenet = Self.fixtures.appendingPathComponent("lenet_dynamo/model.onnx").path
        try await repository.load(name: "mlp", path: mlp)
        try await repository.load(name: "lenet", path: lenet)
        try await repository.load(name: "own", path: mlp, configuration: ModelConfiguration(threads: 1))
        func options(_ name: String) throws -> SessionOptions? {
            (try repository.model(name).handler as? OnnxModelHandler)?.session?.options
        }
        #expect(try options("mlp")?.threadPool === repository.threadPool)
        #expect(try options("lenet")?.threadPool === repository.threadPool)
        #expect(try options("lenet")?.threadCount == 2)
        #expect(try options("own")?.threadPool == nil)
        #expect(try options("own")?.threadCount == 1)

        // Both models at once on the one pool give what each gives alone.
        let cases = [("mlp", "mlp_legacy"), ("lenet", "lenet_dynamo")]
        let results = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for i in 0..<16 {
                let (name, folder) = cases[i % 2]
                let x = try Self.fixtureTensor("\(folder)/test_data_set_0/input_0.pb")
                let model = try repository.model(name)
                group.addTask {
                    let response = try await model.infer(HandlerRequest(inputs: [NamedTensor(name: model.handler.inputs[0].name, tensor: x)]))
                    guard case .tensors(let outputs) = response else { return (i, []) }
                    return (i, try outputs[0].tensor.scalars(as: Float.self))
                }
            }
            var collected: [Int: [Float]] = [:]
            for try await (i, values) in group { collected[i] = values }
            return collected
        }
        for i in 0..<16 {
            let expected = try Self.fixtureTensor("\(cases[i % 2].1)/test_data_set_0/output_0.pb").scalars(as: Float.self)
            Self.expectClose(results[i] ?? [], expected)
        }
    }

    @Test func overloadGets503WithRetryAfter() async throws {
        HandlerRegistry.register("slow") { SlowHandler() }
        let repository = ModelRepository()
        try await repository.load(name: "slow", path: Self.fixtures.appendingPathComponent("mlp_legacy/model.onnx").path,
                                  configuration: ModelConfiguration(handler: "slow", maxBatchSize: 1, instanceCount: 1, queueCapacity: 2))
        let app = Self.app(repository)
        try await app.test(.router) { client in
            let statuses = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        try await client.execute(uri: "/predictions/slow", method: .post, body: Self.body("{}")) { response throws in
                            (Int(response.status.code), response.headers[.retryAfter])
                        }
                    }
                }
                var all: [(Int, String?)] = []
                for try await status in group { all.append(status) }
                return all
            }
            #expect(statuses.filter { $0.0 == 200 }.count >= 2)
            let refused = statuses.filter { $0.0 == 503 }
            #expect(refused.count >= 1)
            #expect(refused.allSatisfy { $0.1 == "1" })
        }
    }

    // MARK: - Custom handler, repository, metrics

    /// A model that upper-cases a [N] string input `text` into `shout`, saved in a temporary folder.
    static func stringModelPath() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("onyx-bytes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let graph = Graph(
            nodes: [Node(name: "upper", opType: "StringNormalizer", inputs: ["text"], outputs: ["shout"],
                         attributes: ["case_change_action": .string("UPPER")])],
            inputs: [Value(name: "text", type: TensorType(dataType: .string, shape: Shape([.symbolic("n")])))],
            outputs: [Value(name: "shout", type: TensorType(dataType: .string, shape: nil))])
        let path = folder.appendingPathComponent("model.onnx").path
        FileManager.default.createFile(atPath: path, contents: Data(Model(opsetImports: ["": 17], graph: graph).serializedBytes()))
        return path
    }

    @Test func bytesTravelAsJSONStringsAndLengthPrefixedBinary() async throws {
        PrometheusSetup.bootstrap()
        let repository = ModelRepository()
        try await repository.load(name: "shout", path: try Self.stringModelPath(), configuration: ModelConfiguration(maxBatchSize: 1))
        let app = Self.app(repository)
        try await app.test(.router) { client in
            let json = #"{"inputs":[{"name":"text","datatype":"BYTES","shape":[2],"data":["get /etc/passwd","ok ü"]}]}"#
            try await client.execute(uri: "/v2/models/shout/infer", method: .post, body: Self.body(json)) { response throws in
                #expect(response.status == .ok)
                let output = try Self.json(response.body)["outputs"]?.arrayValue?.first
                #expect(output?["datatype"]?.stringValue == "BYTES")
                #expect(output?["data"] == .array([.string("GET /ETC/PASSWD"), .string("OK Ü")]))
            }
            // The Flask-habit route takes text too: strings default to BYTES.
            try await client.execute(uri: "/predictions/shout", method: .post, body: Self.body(#"{"data": ["rm -rf /"]}"#)) { response throws in
                #expect(response.status == .ok)
                #expect(try Self.json(response.body)["data"] == .array([.string("RM -RF /")]))
            }
            // Binary: each element a 4-byte little-endian length, then its UTF-8 bytes.
            func prefixed(_ strings: [[UInt8]]) -> [UInt8] {
                strings.flatMap { bytes in withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { Array($0) } + bytes }
            }
            let payload = prefixed([Array("union select".utf8), Array("x".utf8)])
            func request(_ payload: [UInt8], count: Int = 2) -> (ByteBuffer, String) {
                let header = #"{"inputs":[{"name":"text","datatype":"BYTES","shape":[\#(count)],"parameters":{"binary_data_size":\#(payload.count)}}],"#
                    + #""outputs":[{"name":"shout","parameters":{"binary_data":true}}]}"#
                var buffer = ByteBuffer(string: header)
                buffer.writeBytes(payload)
                return (buffer, String(header.utf8.count))
            }
            let (body, length) = request(payload)
            try await client.execute(uri: "/v2/models/shout/infer", method: .post,
                                     headers: [HTTPField.Name("Inference-Header-Content-Length")!: length], body: body) { response throws in
                #expect(response.status == .ok)
                let jsonLength = try #require(response.headers[HTTPField.Name("Inference-Header-Content-Length")!].flatMap(Int.init))
                var buffer = try #require(response.body)
                let json = try JSONParser.parse(buffer.readBytes(length: jsonLength)!)
                let expected = prefixed([Array("UNION SELECT".utf8), Array("X".utf8)])
                #expect(json["outputs"]?.arrayValue?.first?["parameters"]?["binary_data_size"] == .number(Double(expected.count)))
                #expect(buffer.readBytes(length: buffer.readableBytes) == expected)
            }
            // A length past the data, invalid UTF-8, and a count that does not match the shape: 400 naming the input.
            let bad: [([UInt8], Int, String)] = [
                (Array(payload.dropLast(1)), 2, "input 'text': BYTES element 1 has length 1, past the end of its data"),
                (prefixed([[0xFF, 0xFE]]), 1, "input 'text': BYTES element 0 is not valid UTF-8"),
                (payload, 3, "input 'text': shape [3] needs 3 elements but the data holds 2"),
                ([1, 0], 1, "input 'text': BYTES element 0 has a truncated 4-byte length"),
            ]
            for (payload, count, message) in bad {
                let (body, length) = request(payload, count: count)
                try await client.execute(uri: "/v2/models/shout/infer", method: .post,
                                         headers: [HTTPField.Name("Inference-Header-Content-Length")!: length], body: body) { response throws in
                    #expect(response.status == .badRequest)
                    #expect(try Self.json(response.body)["error"]?.stringValue == message)
                }
            }
        }
    }

    @Test func sequencesOfMapsComeBackAsJSON() async throws {
        PrometheusSetup.bootstrap()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("onyx-zipmap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let graph = Graph(
            nodes: [Node(name: "zip", opType: "ZipMap", domain: "ai.onnx.ml", inputs: ["p"], outputs: ["probabilities"],
                         attributes: ["classlabels_strings": .strings(["benign", "malicious"])])],
            inputs: [Value(name: "p", type: TensorType(dataType: .float, shape: Shape([.symbolic("n"), .fixed(2)])))],
            outputs: [Value(name: "probabilities", valueType: .sequence(.map(key: .string, value: .tensor(.float))))])
        let path = folder.appendingPathComponent("model.onnx").path
        FileManager.default.createFile(atPath: path, contents: Data(Model(opsetImports: ["": 17, "ai.onnx.ml": 1], graph: graph).serializedBytes()))
        let repository = ModelRepository()
        try await repository.load(name: "zip", path: path)
        let app = Self.app(repository)
        try await app.test(.router) { client in
            try await client.execute(uri: "/v2/models/zip", method: .get) { response throws in
                let output = try Self.json(response.body)["outputs"]?.arrayValue?.first
                #expect(output?["datatype"]?.stringValue == "BYTES")
                #expect(output?["shape"]?.arrayValue?.compactMap(\.intValue) == [-1])
            }
            // /predictions: the maps themselves, one per row.
            try await client.execute(uri: "/predictions/zip", method: .post, body: Self.body(#"{"data": [[0.75, 0.25], [0.5, 0.5]]}"#)) { response throws in
                #expect(response.status == .ok)
                #expect(try Self.json(response.body)["data"] == .array([
                    .object(["benign": .number(0.75), "malicious": .number(0.25)]),
                    .object(["benign": .number(0.5), "malicious": .number(0.5)]),
                ]))
            }
            // The v2 protocol: BYTES, each element the JSON text of one map.
            let v2 = #"{"inputs":[{"name":"p","datatype":"FP32","shape":[1,2],"data":[0.125,0.875]}]}"#
            try await client.execute(uri: "/v2/models/zip/infer", method: .post, body: Self.body(v2)) { response throws in
                #expect(response.status == .ok)
                let output = try Self.json(response.body)["outputs"]?.arrayValue?.first
                #expect(output?["data"] == .array([.string(#"{"benign":0.125,"malicious":0.875}"#)]))
            }
        }
    }

    @Test func screeningHandlerReturnsLabels() async throws {
        let repository = ModelRepository()
        try await repository.load(name: "screen", path: Self.fixtures.appendingPathComponent("mlp_legacy/model.onnx").path,
                                  configuration: ModelConfiguration(handler: "screening"))
        let app = Self.app(repository)
        try await app.test(.router) { client in
            try await client.execute(uri: "/predictions/screen", method: .post, body: Self.body("{\"features\": {\"f0\": 1.5, \"f7\": -2, \"f63\": true}}")) { response throws in
                #expect(response.status == .ok)
                let body = try Self.json(response.body)
                let label = body["label"]?.stringValue
                #expect(label == "block" || label == "allow")
                guard case .number(let score)? = body["score"] else { Issue.record("no score"); return }
                #expect(score >= 0 && score <= 1)
                #expect((score >= 0.5) == (label == "block"))
            }
            try await client.execute(uri: "/predictions/screen", method: .post, body: Self.body("{\"features\": {\"nope\": 1}}")) { response throws in
                #expect(response.status == .badRequest)
                #expect(try Self.json(response.body)["error"] == .string("unknown feature 'nope'"))
            }
            try await client.execute(uri: "/predictions/screen", method: .post, body: Self.body("{\"features\": {}, \"threshold\": 0}")) { response throws in
                #expect(try Self.json(response.body)["label"] == .string("block"))
            }
        }
    }

    @Test func repositoryControlIsOffByDefaultAndNeedsAToken() async throws {
        let root = NSTemporaryDirectory() + "onyx-repo-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root + "/mlp/1", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.fixtures.appendingPathComponent("mlp_legacy/model.onnx").path, toPath: root + "/mlp/1/model.onnx")
        try Data("{\"max_batch_size\": 4}".utf8).write(to: URL(fileURLWithPath: root + "/mlp/config.json"))
        let repository = try await ModelRepository.open(root)
        #expect(try repository.model("mlp").context.configuration.maxBatchSize == 4)

        try await Self.app(repository).test(.router) { client in
            try await client.execute(uri: "/v2/repository/index", method: .post) { #expect($0.status == .notFound) }
        }
        let enabled = ServerConfiguration(repositoryControl: true, controlToken: "s3cret")
        try await Self.app(repository, enabled).test(.router) { client in
            try await client.execute(uri: "/v2/repository/index", method: .post) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/v2/repository/index", method: .post, headers: [.authorization: "Bearer wrong"]) { #expect($0.status == .unauthorized) }
            let auth: HTTPFields = [.authorization: "Bearer s3cret"]
            try await client.execute(uri: "/v2/repository/index", method: .post, headers: auth) { response throws in
                #expect(response.status == .ok)
                #expect(try Self.json(response.body).arrayValue?.first?["state"] == .string("READY"))
            }
            try await client.execute(uri: "/v2/repository/models/mlp/unload", method: .post, headers: auth) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/models/mlp/ready", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v2/repository/models/mlp/load", method: .post, headers: auth) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/models/mlp/ready", method: .get) { #expect($0.status == .ok) }
            for hostile in ["..", "%2e%2e", ".hidden"] {
                try await client.execute(uri: "/v2/repository/models/\(hostile)/load", method: .post, headers: auth) { response throws in
                    #expect(response.status == .badRequest || response.status == .notFound, "\(hostile)")
                }
            }
        }
    }

    @Test func configurationOverridesInputsAndOutputs() async throws {
        let path = Self.fixtures.appendingPathComponent("mlp_legacy/model.onnx").path
        let repository = ModelRepository()
        let pinned = ModelConfiguration(inputs: [.init(name: "input", datatype: "FP32", dims: [1, 64])],
                                        outputs: [.init(name: "output", dims: [1, 2])])
        try await repository.load(name: "pinned", path: path, configuration: pinned)
        let model = try repository.model("pinned")
        #expect(model.handler.inputs.first?.shape == [1, 64])
        #expect(model.handler.supportsBatching == false)
        let two = try Tensor(shape: [2, 64], scalars: [Float](repeating: 0.5, count: 128))
        await #expect(throws: HandlerError.self) { try await model.infer(HandlerRequest(inputs: [NamedTensor(name: "input", tensor: two)])) }

        for bad in [
            ModelConfiguration(inputs: [.init(name: "nope")]),
            ModelConfiguration(inputs: [.init(name: "input", datatype: "INT64")]),
            ModelConfiguration(inputs: [.init(name: "input", dims: [1, 63])]),
        ] {
            await #expect(throws: HandlerError.self) { try await repository.load(name: "bad", path: path, configuration: bad) }
        }
        let decoded = try JSONDecoder().decode(ModelConfiguration.self, from: Data("{\"inputs\": [{\"name\": \"input\", \"dims\": [-1, 64]}]}".utf8))
        #expect(decoded.inputs == [.init(name: "input", dims: [-1, 64])])
        #expect(decoded.maxBatchSize == ModelConfiguration().maxBatchSize)
    }

    @Test func metricsAreExported() async throws {
        let app = Self.app(try await Self.repository())
        try await app.test(.router) { client in
            try await client.execute(uri: "/v2/models/mlp/infer", method: .post, body: Self.body("{}")) { _ in }
            try await client.execute(uri: "/metrics", method: .get) { response throws in
                let text = String(buffer: response.body ?? ByteBuffer())
                #expect(text.contains("onyx_requests_total"))
                #expect(text.contains("onyx_request_duration_seconds"))
            }
        }
    }

    @Test func liveSocketInference() async throws {
        let app = Application(
            router: buildRouter(repository: try await Self.repository(), configuration: ServerConfiguration()),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        let x = try Self.fixtureTensor("mlp_legacy/test_data_set_1/input_0.pb")
        let expected = try Self.fixtureTensor("mlp_legacy/test_data_set_1/output_0.pb").scalars(as: Float.self)
        try await app.test(.live) { client in
            try await client.execute(uri: "/v2/models/mlp/infer", method: .post, body: try Self.inferBody(x)) { response throws in
                #expect(response.status == .ok)
                Self.expectClose(Self.floats(try Self.json(response.body)["outputs"]?.arrayValue?.first?["data"]), expected)
            }
        }
    }
}

/// A handler that takes 200 ms per request: makes queue overload deterministic.
final class SlowHandler: ModelHandler, @unchecked Sendable {
    var inputs: [TensorMetadata] { [] }
    var outputs: [TensorMetadata] { [] }
    func initialize(_ context: HandlerContext) async throws {}
    func preprocess(_ requests: [HandlerRequest], context: HandlerContext) async throws -> Int { requests.count }
    func inference(_ prepared: Int, context: HandlerContext) async throws -> Int {
        try await Task.sleep(for: .milliseconds(200))
        return prepared
    }
    func postprocess(_ computed: Int, requests: [HandlerRequest], context: HandlerContext) async throws -> [Result<HandlerResponse, HandlerError>] {
        requests.map { _ in .success(.json(.object(["ok": .bool(true)]))) }
    }
}
