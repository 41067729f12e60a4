import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import Onyx
import ServiceLifecycle
import Testing
@testable import OnyxGRPC
@testable import OnyxServe

/// The gRPC front through a real grpc-swift client on a loopback port: health, metadata, inference
/// with typed and raw contents against the fixtures' expected outputs, and the status of each
/// kind of bad request.
@Suite struct GRPCServerTests {
    typealias Client = Inference_GRPCInferenceService.Client<HTTP2ClientTransport.Posix>

    static let fixtures = ServerTests.fixtures

    static func fixtureTensor(_ path: String) throws -> Tensor { try ServerTests.fixtureTensor(path) }

    static func repository(_ configuration: ModelConfiguration = ModelConfiguration()) async throws -> ModelRepository {
        PrometheusSetup.bootstrap()
        let repository = ModelRepository()
        try await repository.load(name: "mlp", path: fixtures.appendingPathComponent("mlp_legacy/model.onnx").path, configuration: configuration)
        try await repository.load(name: "screener", path: fixtures.appendingPathComponent("screener/model.onnx").path, configuration: configuration)
        return repository
    }

    /// Runs `body` against a gRPC server on a free loopback port, run as `onyx serve` runs it (a
    /// service of a ServiceGroup), then shuts the group down gracefully.
    static func withServer(
        _ repository: ModelRepository, _ configuration: ServerConfiguration = ServerConfiguration(),
        _ body: @Sendable (Client) async throws -> Void
    ) async throws {
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let server = GRPCInferenceServer(repository: repository, configuration: configuration, port: 0) { portContinuation.yield($0) }
        let group = ServiceGroup(configuration: .init(services: [server], logger: Logger(label: "onyx.grpc.test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var next = ports.makeAsyncIterator()
            let port = try #require(await next.next())
            let outcome: Result<Void, any Error>
            do {
                try await withGRPCClient(
                    transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
                ) { client in
                    try await body(Client(wrapping: client))
                }
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            try outcome.get()
        }
    }

    static func input(_ name: String, _ datatype: String, _ shape: [Int]) -> Inference_ModelInferRequest.InferInputTensor {
        .with {
            $0.name = name
            $0.datatype = datatype
            $0.shape = shape.map(Int64.init)
        }
    }

    static func floats(_ data: Data) -> [Float] {
        data.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
    }

    static func expectClose(_ a: [Float], _ b: [Float]) { ServerTests.expectClose(a, b) }

    /// The error code and message `call` fails with, or nil when it succeeds.
    static func failure(_ call: () async throws -> Void) async -> (RPCError.Code, String)? {
        do {
            try await call()
            return nil
        } catch let error as RPCError {
            return (error.code, error.message)
        } catch {
            return (.unknown, "\(error)")
        }
    }

    // MARK: - Health and metadata

    @Test func healthAndMetadata() async throws {
        try await Self.withServer(try await Self.repository()) { client in
            #expect(try await client.serverLive(Inference_ServerLiveRequest()).live)
            #expect(try await client.serverReady(Inference_ServerReadyRequest()).ready)
            #expect(try await client.modelReady(.with { $0.name = "mlp" }).ready)
            #expect(try await client.modelReady(.with { $0.name = "mlp"; $0.version = "1" }).ready)
            #expect(try await !client.modelReady(.with { $0.name = "mlp"; $0.version = "9" }).ready)
            #expect(try await !client.modelReady(.with { $0.name = "no-such-model" }).ready)

            let server = try await client.serverMetadata(Inference_ServerMetadataRequest())
            #expect(server.name == "onyx")
            #expect(server.extensions.contains("binary_tensor_data"))

            let mlp = try await client.modelMetadata(.with { $0.name = "mlp" })
            #expect(mlp.name == "mlp")
            #expect(mlp.versions == ["1"])
            #expect(mlp.platform == "onnx_onyx")
            #expect(mlp.inputs.map(\.name) == ["input"])
            #expect(mlp.inputs.first?.datatype == "FP32")
            #expect(mlp.inputs.first?.shape == [-1, 64])
            #expect(mlp.outputs.map(\.name) == ["output"])
            let screener = try await client.modelMetadata(.with { $0.name = "screener" })
            #expect(screener.inputs.first?.datatype == "BYTES")
            #expect(screener.outputs.map(\.datatype) == ["INT64", "FP32"])

            let missing = await Self.failure { _ = try await client.modelMetadata(.with { $0.name = "no-such-model" }) }
            #expect(missing?.0 == .notFound)
            #expect(missing?.1.contains("unknown model 'no-such-model'") == true)
        }
    }

    // MARK: - Inference

    @Test(arguments: ["test_data_set_0", "test_data_set_1"])
    func typedAndRawInferenceMatchFixtures(dataSet: String) async throws {
        let x = try Self.fixtureTensor("mlp_legacy/\(dataSet)/input_0.pb")
        let expected = try Self.fixtureTensor("mlp_legacy/\(dataSet)/output_0.pb").scalars(as: Float.self)
        try await Self.withServer(try await Self.repository()) { client in
            // Typed contents in; raw contents out, as Triton answers.
            var typed = Inference_ModelInferRequest.with {
                $0.modelName = "mlp"
                $0.id = "typed-\(dataSet)"
                $0.inputs = [Self.input("input", "FP32", x.shape)]
            }
            typed.inputs[0].contents.fp32Contents = try x.scalars(as: Float.self)
            let answer = try await client.modelInfer(typed)
            #expect(answer.modelName == "mlp")
            #expect(answer.modelVersion == "1")
            #expect(answer.id == "typed-\(dataSet)")
            #expect(answer.outputs.map(\.name) == ["output"])
            #expect(answer.outputs.first?.datatype == "FP32")
            #expect(answer.outputs.first?.shape == [Int64(x.shape[0]), 2])
            #expect(answer.rawOutputContents.count == 1)
            Self.expectClose(Self.floats(try #require(answer.rawOutputContents.first)), expected)

            // Raw contents in; typed contents out when asked for (binary_data: false).
            var raw = Inference_ModelInferRequest.with {
                $0.modelName = "mlp"
                $0.modelVersion = "1"
                $0.inputs = [Self.input("input", "FP32", x.shape)]
                $0.rawInputContents = [x.withUnsafeBytes { Data($0) }]
                $0.outputs = [.with { $0.name = "output"; $0.parameters = ["binary_data": .with { $0.boolParam = false }] }]
            }
            let typedAnswer = try await client.modelInfer(raw)
            #expect(typedAnswer.rawOutputContents.isEmpty)
            Self.expectClose(try #require(typedAnswer.outputs.first).contents.fp32Contents, expected)

            // The same, asked for on the whole request.
            raw.outputs = []
            raw.parameters = ["binary_data_output": .with { $0.boolParam = false }]
            Self.expectClose(try #require(try await client.modelInfer(raw).outputs.first).contents.fp32Contents, expected)
        }
    }

    @Test func bytesInputsTypedAndLengthPrefixed() async throws {
        let x = try Self.fixtureTensor("screener/test_data_set_0/input_0.pb")
        let labels = try Self.fixtureTensor("screener/test_data_set_0/output_0.pb").scalars(as: Int64.self)
        let probabilities = try Self.fixtureTensor("screener/test_data_set_0/output_1.pb").scalars(as: Float.self)
        let strings = try x.strings()
        @Sendable func prefixed(_ elements: [[UInt8]]) -> Data {
            Data(elements.flatMap { bytes in withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { Array($0) } + bytes })
        }
        try await Self.withServer(try await Self.repository()) { client in
            var typed = Inference_ModelInferRequest.with {
                $0.modelName = "screener"
                $0.inputs = [Self.input("request", "BYTES", x.shape)]
            }
            typed.inputs[0].contents.bytesContents = strings.map { Data($0.utf8) }
            let raw = Inference_ModelInferRequest.with {
                $0.modelName = "screener"
                $0.inputs = [Self.input("request", "BYTES", x.shape)]
                $0.rawInputContents = [prefixed(strings.map { Array($0.utf8) })]
            }
            for request in [typed, raw] {
                let answer = try await client.modelInfer(request)
                #expect(answer.outputs.map(\.name) == ["label", "probabilities"])
                #expect(answer.rawOutputContents.count == 2)
                let gotLabels = try #require(answer.rawOutputContents.first).withUnsafeBytes { raw in
                    (0..<(raw.count / 8)).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) }
                }
                #expect(gotLabels == labels)
                Self.expectClose(Self.floats(answer.rawOutputContents[1]), probabilities)
            }

            // Output selection: only the probabilities.
            var selected = raw
            selected.outputs = [.with { $0.name = "probabilities" }]
            let answer = try await client.modelInfer(selected)
            #expect(answer.outputs.map(\.name) == ["probabilities"])
            #expect(answer.rawOutputContents.count == 1)

            // A length prefix past the end of the data, invalid UTF-8: INVALID_ARGUMENT naming the input.
            var truncated = raw
            truncated.rawInputContents = [prefixed(strings.map { Array($0.utf8) }).dropLast(1)]
            let past = await Self.failure { _ = try await client.modelInfer(truncated) }
            #expect(past?.0 == .invalidArgument)
            #expect(past?.1 == "input 'request': BYTES element 4 has length \(strings[4].utf8.count), past the end of its data")
            var invalid = typed
            invalid.inputs[0].contents.bytesContents[2] = Data([0xFF, 0xFE])
            let notUTF8 = await Self.failure { _ = try await client.modelInfer(invalid) }
            #expect(notUTF8?.0 == .invalidArgument)
            #expect(notUTF8?.1 == "input 'request': BYTES element 2 is not valid UTF-8")
        }
    }

    // MARK: - Errors

    @Test func badRequestsGetStatusesNamingTheInput() async throws {
        let x = try Self.fixtureTensor("mlp_legacy/test_data_set_0/input_0.pb")
        let bytes = x.withUnsafeBytes { Data($0) }
        let good = Inference_ModelInferRequest.with {
            $0.modelName = "mlp"
            $0.inputs = [Self.input("input", "FP32", x.shape)]
            $0.rawInputContents = [bytes]
        }
        func variant(_ change: (inout Inference_ModelInferRequest) -> Void) -> Inference_ModelInferRequest {
            var request = good
            change(&request)
            return request
        }
        let cases: [(Inference_ModelInferRequest, RPCError.Code, String)] = [
            (variant { $0.modelName = "no-such-model" }, .notFound, "unknown model 'no-such-model'"),
            (variant { $0.modelVersion = "7" }, .notFound, "model 'mlp' has no version '7'"),
            (variant { $0.inputs = []; $0.rawInputContents = [] }, .invalidArgument, "request has no inputs"),
            (variant { $0.rawInputContents = [bytes.dropLast(4)] }, .invalidArgument,
             "input 'input': shape [2, 64] of FP32 needs 512 bytes, raw_input_contents[0] holds 508"),
            (variant { $0.rawInputContents = [bytes, bytes] }, .invalidArgument,
             "raw_input_contents has 2 entries for 1 inputs: give one per input, or none and use contents"),
            (variant { $0.inputs[0].datatype = "FP33" }, .invalidArgument, "input 'input': datatype 'FP33' is not supported"),
            (variant { $0.inputs[0].shape = [2, -64] }, .invalidArgument, "input 'input': shape must hold non-negative integers"),
            (variant { $0.inputs[0].contents.fp32Contents = [1] }, .invalidArgument,
             "input 'input': has contents while the request uses raw_input_contents"),
            (variant { $0.rawInputContents = []; $0.inputs[0].contents.fp32Contents = [1, 2, 3] }, .invalidArgument,
             "input 'input': shape [2, 64] needs 128 elements but fp32_contents holds 3"),
            (variant { $0.rawInputContents = []; $0.inputs[0].datatype = "FP16" }, .invalidArgument,
             "input 'input': FP16 has no typed contents field in the protocol; send it in raw_input_contents"),
            (variant { $0.rawInputContents = []; $0.inputs[0].datatype = "INT8"; $0.inputs[0].shape = [1]; $0.inputs[0].contents.intContents = [300] },
             .invalidArgument, "input 'input': 300 in int_contents is out of range for INT8"),
            (variant { $0.inputs[0].shape = [1 << 40, 1 << 40] }, .invalidArgument, "holds more than the limit"),
            // The model itself refuses what it cannot take: a wrong datatype or shape for its input.
            (variant { $0.inputs[0].datatype = "INT32" }, .invalidArgument, "input 'input' must be FP32, got INT32"),
            (variant { $0.inputs[0].shape = [4, 32] }, .invalidArgument, "input 'input' has shape [4, 32], the model expects [-1, 64]"),
            (variant { $0.inputs[0].name = "x" }, .invalidArgument, "unknown input 'x'; the model's inputs are 'input'"),
            (variant { $0.outputs = [.with { $0.name = "nope" }] }, .invalidArgument, "unknown output 'nope'"),
        ]
        try await Self.withServer(try await Self.repository()) { client in
            for (request, code, message) in cases {
                let outcome = await Self.failure { _ = try await client.modelInfer(request) }
                #expect(outcome?.0 == code, "\(message): \(String(describing: outcome))")
                #expect(outcome?.1.contains(message) == true, "\(String(describing: outcome)) should contain \(message)")
            }
            // The server stays up and answers after all that.
            let answer = try await client.modelInfer(good)
            #expect(answer.rawOutputContents.count == 1)
        }
    }

    @Test func messagesPastTheBodyLimitAreRefused() async throws {
        func request(rows: Int) -> Inference_ModelInferRequest {
            .with {
                $0.modelName = "mlp"
                $0.inputs = [Self.input("input", "FP32", [rows, 64])]
                $0.rawInputContents = [Data(count: rows * 64 * 4)]
            }
        }
        let (small, large) = (request(rows: 2), request(rows: 8))  // 512 and 2,048 bytes of data
        try await Self.withServer(try await Self.repository(), ServerConfiguration(maxBodyBytes: 1024)) { client in
            let answer = try await client.modelInfer(small)
            #expect(answer.rawOutputContents.first?.count == 2 * 2 * 4)
            // Refused from its length prefix, with a status rather than a bare stream reset.
            let outcome = await Self.failure { _ = try await client.modelInfer(large) }
            #expect(outcome?.0 == .resourceExhausted, "\(String(describing: outcome))")
            #expect(outcome?.1.contains("limit of 1024 bytes") == true, "\(String(describing: outcome))")
            let live = try await client.serverLive(Inference_ServerLiveRequest())
            #expect(live.live)
            // The connection still carries calls, and the limit applies to each message alone.
            let again = try await client.modelInfer(small)
            #expect(again.rawOutputContents.first?.count == 2 * 2 * 4)
        }
    }

    @Test func deadlinesAreReadFromGRPCTimeout() {
        func timeout(_ value: String) -> Duration? {
            var metadata = Metadata()
            metadata.addString(value, forKey: "grpc-timeout")
            return InferenceService.timeout(metadata)
        }
        #expect(timeout("200m") == .milliseconds(200))
        #expect(timeout("5S") == .seconds(5))
        #expect(timeout("2M") == .seconds(120))
        #expect(timeout("1H") == .seconds(3600))
        #expect(timeout("750u") == .microseconds(750))
        #expect(timeout("99999999n") == .nanoseconds(99_999_999))
        #expect(timeout("123456789S") == nil)  // at most 8 digits
        #expect(timeout("5s") == nil)
        #expect(timeout("S") == nil)
        #expect(timeout("-5S") == nil)
        #expect(InferenceService.timeout([:]) == nil)
    }

    @Test func metricsCountGRPCRequests() async throws {
        try await Self.withServer(try await Self.repository()) { client in
            _ = await Self.failure { _ = try await client.modelInfer(.with { $0.modelName = "metrics-probe" }) }
        }
        let text = String(decoding: PrometheusSetup.registry?.emitToBuffer() ?? [], as: UTF8.self)
        #expect(text.contains(#"model="metrics-probe""#) && text.contains(#"route="grpc_infer""#) && text.contains(#"status="404""#))
    }
}

/// Queue and deadline outcomes, with a ``GateHandler`` at a gate of its own.
@Suite struct GRPCOverloadTests {
    static let gate = Gate()

    @Test func queueFullIsUnavailableAndAPassedDeadlineIsDeadlineExceeded() async throws {
        HandlerRegistry.register("held") { GateHandler(gate: Self.gate) }
        PrometheusSetup.bootstrap()
        let repository = ModelRepository()
        let path = GRPCServerTests.fixtures.appendingPathComponent("mlp_legacy/model.onnx").path
        // One instance and room for one request: a second is refused while the first runs.
        try await repository.load(
            name: "held", path: path, configuration: ModelConfiguration(handler: "held", maxBatchSize: 1, instanceCount: 1, queueCapacity: 1))
        try await repository.load(
            name: "held-too", path: path, configuration: ModelConfiguration(handler: "held", maxBatchSize: 1, instanceCount: 1, queueCapacity: 8))
        @Sendable func request(_ model: String) -> Inference_ModelInferRequest {
            .with {
                $0.modelName = model
                $0.inputs = [GRPCServerTests.input("x", "FP32", [1])]
                $0.inputs[0].contents.fp32Contents = [0]
            }
        }
        try await GRPCServerTests.withServer(repository) { client in
            let first = Task { try await client.modelInfer(request("held")) }
            for _ in 0..<3000 where await Self.gate.entered == 0 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(await Self.gate.entered == 1)
            let refused = await GRPCServerTests.failure { _ = try await client.modelInfer(request("held")) }
            #expect(refused?.0 == .unavailable, "\(String(describing: refused))")
            #expect(refused?.1.contains("model 'held' is at its queue capacity of 1 requests") == true)

            // A request still unanswered when its deadline passes gets DEADLINE_EXCEEDED from the
            // server (the deadline goes as metadata only, so the client does not enforce it itself
            // and the code seen is the server's).
            let late = await GRPCServerTests.failure {
                _ = try await client.modelInfer(request("held-too"), metadata: ["grpc-timeout": "200m"])
            }
            #expect(late?.0 == .deadlineExceeded, "\(String(describing: late))")
            #expect(late?.1.contains("deadline passed before model 'held-too' answered") == true)

            await Self.gate.open()
            // The handler answers with JSON of its own, which gRPC cannot carry.
            let outcome = await GRPCServerTests.failure { _ = try await first.value }
            #expect(outcome?.0 == .unimplemented, "\(String(describing: outcome))")
            #expect(outcome?.1.contains("answers with its own JSON") == true)
        }
    }
}
