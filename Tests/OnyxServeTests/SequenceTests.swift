import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Hummingbird
import HummingbirdTesting
import Onyx
import Testing
@testable import OnyxGRPC
@testable import OnyxServe

/// Stateful sequences (Fixtures/stateful_gru: a GRU step whose state goes out as `stateN` and
/// comes back as `state`): the server keeps each sequence's state, so streaming chunks one request
/// at a time gives exactly what running the model locally chunk by chunk gives, over HTTP and gRPC.
@Suite struct SequenceTests {
    static let folder = ServerTests.fixtures.appendingPathComponent("stateful_gru")
    static let state = ModelConfiguration.SequenceBatching.State(inputName: "state", outputName: "stateN")

    static func repository(
        maxSequences: Int = 1024, idleMilliseconds: Int = 60_000, maxBatchSize: Int = 8
    ) async throws -> ModelRepository {
        PrometheusSetup.bootstrap()
        let repository = ModelRepository()
        try await repository.load(
            name: "gru", path: folder.appendingPathComponent("model.onnx").path,
            configuration: ModelConfiguration(
                maxBatchSize: maxBatchSize,
                sequenceBatching: .init(state: [state], maxSequenceIdleMilliseconds: idleMilliseconds, maxSequences: maxSequences)))
        return repository
    }

    /// The 100 chunks of `stream/` ([1, 8] each) and PyTorch's outputs for them.
    static func stream() throws -> (chunks: [Tensor], expected: [[Float]]) {
        let stacked = try ServerTests.fixtureTensor("stateful_gru/stream/input_0.pb")
        let outputs = try ServerTests.fixtureTensor("stateful_gru/stream/output_0.pb").scalars(as: Float.self)
        let chunks = try (0..<100).map { try Batching.slice(stacked, rows: $0..<($0 + 1)) }
            .map { try Tensor(shape: [1, 8], scalars: $0.scalars(as: Float.self)) }
        return (chunks, (0..<100).map { Array(outputs[($0 * 4)..<($0 * 4 + 4)]) })
    }

    /// Runs the model locally chunk by chunk, carrying the state: the reference.
    static func localRun(_ chunks: [Tensor]) throws -> [[Float]] {
        let session = try InferenceSession(contentsOf: folder.appendingPathComponent("model.onnx").path)
        var state = try Tensor(shape: [1, 16], scalars: [Float](repeating: 0, count: 16))
        return try chunks.map { chunk in
            let outputs = try session.run(["input": chunk, "state": state])
            state = try #require(outputs["stateN"])
            return try #require(outputs["output"]).scalars(as: Float.self)
        }
    }

    static func inferBody(_ chunk: Tensor, parameters: String) throws -> ByteBuffer {
        try ServerTests.inferBody(chunk, extra: ",\"parameters\":{\(parameters)}")
    }

    static func sequenceParameters(_ id: String, index: Int, count: Int) -> String {
        "\"sequence_id\":\(id),\"sequence_start\":\(index == 0),\"sequence_end\":\(index == count - 1)"
    }

    // MARK: - HTTP

    @Test func aStreamOf100ChunksOverHTTPMatchesTheLocalRun() async throws {
        let (chunks, expected) = try Self.stream()
        let local = try Self.localRun(chunks)
        for (mine, torch) in zip(local, expected) { ServerTests.expectClose(mine, torch) }
        // A second sequence, interleaved, streams the chunks backwards: the two states stay apart.
        let reversed = Array(chunks.reversed())
        let localReversed = try Self.localRun(reversed)
        let repository = try await Self.repository()
        // Small enough to be answered on the event loop, but its requests must go through its sequences.
        #expect(try repository.model("gru").reserveInline() == false)
        try await ServerTests.app(repository).test(.router) { client in
            try await client.execute(uri: "/v2/models/gru", method: .get) { response throws in
                let metadata = try ServerTests.json(response.body)
                #expect(metadata["inputs"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["input"])
                #expect(metadata["outputs"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["output"])
            }
            for index in 0..<100 {
                for (id, stream, reference) in [("42", chunks, local), ("\"backwards\"", reversed, localReversed)] {
                    let body = try Self.inferBody(stream[index], parameters: Self.sequenceParameters(id, index: index, count: 100))
                    try await client.execute(uri: "/v2/models/gru/infer", method: .post, body: body) { response throws in
                        #expect(response.status == .ok, "chunk \(index) of \(id)")
                        let answer = try ServerTests.json(response.body)
                        let outputs = answer["outputs"]?.arrayValue ?? []
                        #expect(outputs.map { $0["name"]?.stringValue } == ["output"], "the state output is the server's")
                        #expect(ServerTests.floats(outputs.first?["data"]) == reference[index], "chunk \(index) of sequence \(id)")
                    }
                }
            }
            #expect(try await repository.model("gru").sequences?.liveCount == 0, "sequence_end dropped both sequences")
            // The ended sequence is gone: continuing it without a start is refused.
            let body = try Self.inferBody(chunks[0], parameters: "\"sequence_id\":42")
            try await client.execute(uri: "/v2/models/gru/infer", method: .post, body: body) { response throws in
                #expect(response.status == .badRequest)
                let error = try ServerTests.json(response.body)["error"]?.stringValue ?? ""
                #expect(error.contains("sequence 42 of model 'gru' is not live"), "\(error)")
            }
        }
    }

    @Test func requestsOfOneSequenceRunOneAtATime() async throws {
        // 16 identical chunks sent at once to one sequence: whatever order they run in, each must
        // see the state the one before left, so the answers are the 16 steps of the local run.
        let chunk = try Self.stream().chunks[3]
        let local = try Self.localRun([Tensor](repeating: chunk, count: 17))
        let repository = try await Self.repository(maxBatchSize: 8)
        let model = try repository.model("gru")
        _ = try await model.infer(HandlerRequest(inputs: [NamedTensor(name: "input", tensor: chunk)],
                                                 sequence: SequenceControl(id: .string("s"), start: true)))
        let answers = try await withThrowingTaskGroup(of: [Float].self) { group in
            for _ in 0..<16 {
                group.addTask {
                    let request = HandlerRequest(inputs: [NamedTensor(name: "input", tensor: chunk)], sequence: SequenceControl(id: .string("s")))
                    guard case .tensors(let outputs) = try await model.infer(request) else { return [] }
                    return try outputs[0].tensor.scalars(as: Float.self)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(answers.map { $0.map(\.bitPattern) }) == Set(local[1...].map { $0.map(\.bitPattern) }))
    }

    @Test func sequenceErrorsAreClear() async throws {
        let chunk = try Self.stream().chunks[0]
        let repository = try await Self.repository(maxSequences: 2)
        let model = try repository.model("gru")
        func status(_ request: HandlerRequest) async -> (Int, String)? {
            do {
                _ = try await model.infer(request)
                return nil
            } catch let error as HandlerError {
                return (error.status, error.message)
            } catch {
                return (0, "\(error)")
            }
        }
        let input = [NamedTensor(name: "input", tensor: chunk)]
        let noSequence = await status(HandlerRequest(inputs: input))
        #expect(noSequence?.0 == 400 && noSequence?.1.contains("keeps state per sequence: give each request a sequence_id") == true)
        let unknown = await status(HandlerRequest(inputs: input, sequence: SequenceControl(id: .number(7))))
        #expect(unknown?.0 == 400 && unknown?.1.contains("sequence 7 of model 'gru' is not live") == true, "\(String(describing: unknown))")
        let withState = input + [NamedTensor(name: "state", tensor: try Tensor(shape: [1, 16], scalars: [Float](repeating: 0, count: 16)))]
        let sendsState = await status(HandlerRequest(inputs: withState, sequence: SequenceControl(id: .number(7), start: true)))
        #expect(sendsState?.0 == 400 && sendsState?.1.contains("input 'state' is state the server keeps") == true)

        // Two live sequences at most: a third start gets 429 until one ends.
        #expect(await status(HandlerRequest(inputs: input, sequence: SequenceControl(id: .number(1), start: true))) == nil)
        #expect(await status(HandlerRequest(inputs: input, sequence: SequenceControl(id: .number(2), start: true))) == nil)
        let third = await status(HandlerRequest(inputs: input, sequence: SequenceControl(id: .number(3), start: true)))
        #expect(third?.0 == 429 && third?.1.contains("maximum of 2 live sequences") == true, "\(String(describing: third))")
        #expect(await status(HandlerRequest(inputs: input, sequence: SequenceControl(id: .number(1), end: true))) == nil)
        #expect(await status(HandlerRequest(inputs: input, sequence: SequenceControl(id: .number(3), start: true))) == nil)
        // A start of a live sequence starts it over; a state output named in `outputs` is returned.
        let restart = HandlerRequest(inputs: input, requestedOutputs: ["stateN"], sequence: SequenceControl(id: .number(3), start: true))
        guard case .tensors(let outputs) = try await model.infer(restart) else { throw HandlerError(status: 500, "no tensors") }
        #expect(outputs.map(\.name) == ["stateN"])
        #expect(outputs.first?.tensor.shape == [1, 16])
        #expect(await model.sequences?.liveCount == 2)

        // Malformed parameters.
        for (parameters, message) in [
            ("\"sequence_id\":-3", "sequence_id must be an integer from 0 to 2^53 or a string"),
            ("\"sequence_id\":1.5", "sequence_id must be an integer"),
            ("\"sequence_id\":[1]", "sequence_id must be an unsigned integer or a string"),
            ("\"sequence_id\":1,\"sequence_start\":1", "sequence_start must be a boolean"),
            ("\"sequence_start\":true", "need a non-zero sequence_id"),
            ("\"timeout\":-1", "timeout must be a whole number of microseconds"),
        ] {
            let body = try Self.inferBody(chunk, parameters: parameters)
            try await ServerTests.app(repository).test(.router) { client in
                try await client.execute(uri: "/v2/models/gru/infer", method: .post, body: body) { response throws in
                    #expect(response.status == .badRequest, "\(parameters)")
                    let error = try ServerTests.json(response.body)["error"]?.stringValue ?? ""
                    #expect(error.contains(message), "\(parameters): \(error)")
                }
            }
        }
    }

    @Test func aSequenceHoldsAtMostTheQueueCapacityWaiting() async throws {
        let gate = Gate()
        HandlerRegistry.register("gated-gru") { GatedOnnxHandler(gate: gate) }
        let repository = ModelRepository()
        try await repository.load(
            name: "gru", path: Self.folder.appendingPathComponent("model.onnx").path,
            configuration: ModelConfiguration(handler: "gated-gru", queueCapacity: 2, sequenceBatching: .init(state: [Self.state])))
        let model = try repository.model("gru")
        let chunks = try Self.stream().chunks
        let local = try Self.localRun(Array(chunks[0..<3]))
        @Sendable func send(_ index: Int) async throws -> [Float] {
            let request = HandlerRequest(inputs: [NamedTensor(name: "input", tensor: chunks[index])],
                                         sequence: SequenceControl(id: .number(1), start: index == 0))
            guard case .tensors(let outputs) = try await model.infer(request) else { return [] }
            return try outputs[0].tensor.scalars(as: Float.self)
        }
        // The first holds the model at the gate; two more wait in line, in order.
        let first = Task { try await send(0) }
        for _ in 0..<2000 where await gate.entered == 0 { try await Task.sleep(for: .milliseconds(10)) }
        let second = Task { try await send(1) }
        for _ in 0..<2000 where await model.sequences?.waitingCount(.number(1)) != 1 { try await Task.sleep(for: .milliseconds(10)) }
        let third = Task { try await send(2) }
        for _ in 0..<2000 where await model.sequences?.waitingCount(.number(1)) != 2 { try await Task.sleep(for: .milliseconds(10)) }
        do {
            _ = try await send(2)
            Issue.record("a third request waiting in one sequence was accepted with a queue capacity of 2")
        } catch let error as HandlerError {
            #expect(error.status == 503 && error.message.contains("sequence 1 of model 'gru' has 2 requests waiting for their turn"), "\(error)")
        }
        await gate.open()
        #expect(try await [first.value, second.value, third.value] == local)
    }

    @Test func idleSequencesAreDropped() async throws {
        let chunk = try Self.stream().chunks[0]
        let repository = try await Self.repository(idleMilliseconds: 50)
        let model = try repository.model("gru")
        let input = [NamedTensor(name: "input", tensor: chunk)]
        _ = try await model.infer(HandlerRequest(inputs: input, sequence: SequenceControl(id: .string("idle"), start: true)))
        #expect(await model.sequences?.liveCount == 1)
        for _ in 0..<500 where await model.sequences?.liveCount != 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(await model.sequences?.liveCount == 0, "an idle sequence outlived its 50 ms")
        do {
            _ = try await model.infer(HandlerRequest(inputs: input, sequence: SequenceControl(id: .string("idle"))))
            Issue.record("a dropped sequence was continued")
        } catch let error as HandlerError {
            #expect(error.status == 400 && error.message.contains("idle longer than 50 ms"), "\(error)")
        }
    }

    @Test func stateThatDoesNotFitTheModelFailsTheLoad() async throws {
        let path = Self.folder.appendingPathComponent("model.onnx").path
        for (pair, message) in [
            (ModelConfiguration.SequenceBatching.State(inputName: "hidden", outputName: "stateN"), "the model has no input 'hidden'"),
            (.init(inputName: "state", outputName: "hN"), "the model has no output 'hN'"),
            (.init(inputName: "state", outputName: "stateN", dims: [1, 8]), "dims [1, 8] do not fit the input's shape [-1, 16]"),
        ] {
            do {
                try await ModelRepository().load(name: "gru", path: path, configuration: ModelConfiguration(sequenceBatching: .init(state: [pair])))
                Issue.record("loaded with \(pair)")
            } catch let error as HandlerError {
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
        // config.json's form.
        let json = #"{"sequence_batching": {"state": [{"input_name": "state", "output_name": "stateN", "dims": [-1, 16]}], "max_sequences": 4}}"#
        let configuration = try JSONDecoder().decode(ModelConfiguration.self, from: Data(json.utf8))
        #expect(configuration.sequenceBatching == .init(state: [.init(inputName: "state", outputName: "stateN", dims: [-1, 16])], maxSequences: 4))
    }

    // MARK: - gRPC

    @Test func aStreamOf100ChunksOverGRPCMatchesTheLocalRun() async throws {
        let (chunks, _) = try Self.stream()
        let local = try Self.localRun(chunks)
        let repository = try await Self.repository(maxSequences: 1)
        try await GRPCServerTests.withServer(repository) { client in
            let metadata = try await client.modelMetadata(.with { $0.name = "gru" })
            #expect(metadata.inputs.map(\.name) == ["input"])
            #expect(metadata.outputs.map(\.name) == ["output"])
            for (index, chunk) in chunks.enumerated() {
                let request = Inference_ModelInferRequest.with {
                    $0.modelName = "gru"
                    $0.inputs = [GRPCServerTests.input("input", "FP32", chunk.shape)]
                    $0.rawInputContents = [chunk.withUnsafeBytes { Data($0) }]
                    // As tritonclient.grpc sends them.
                    $0.parameters = [
                        "sequence_id": .with { $0.int64Param = 9_007_199_254_740_993 },  // past 2^53: carried exactly
                        "sequence_start": .with { $0.boolParam = index == 0 },
                        "sequence_end": .with { $0.boolParam = index == 99 },
                    ]
                }
                let answer = try await client.modelInfer(request)
                #expect(answer.outputs.map(\.name) == ["output"])
                #expect(GRPCServerTests.floats(try #require(answer.rawOutputContents.first)) == local[index], "chunk \(index)")
                if index == 0 {
                    // The one sequence allowed is live: another start is RESOURCE_EXHAUSTED.
                    var other = request
                    other.parameters["sequence_id"] = .with { $0.stringParam = "other" }
                    let refused = await GRPCServerTests.failure { _ = try await client.modelInfer(other) }
                    #expect(refused?.0 == .resourceExhausted, "\(String(describing: refused))")
                    #expect(refused?.1.contains("maximum of 1 live sequences") == true)
                }
            }
            let unknown = await GRPCServerTests.failure {
                _ = try await client.modelInfer(.with {
                    $0.modelName = "gru"
                    $0.inputs = [GRPCServerTests.input("input", "FP32", [1, 8])]
                    $0.inputs[0].contents.fp32Contents = [Float](repeating: 0, count: 8)
                    $0.parameters = ["sequence_id": .with { $0.uint64Param = 5 }]
                })
            }
            #expect(unknown?.0 == .invalidArgument)
            #expect(unknown?.1.contains("sequence 5 of model 'gru' is not live") == true, "\(String(describing: unknown))")
        }
    }
}

/// The ONNX handler with its inference held at a ``Gate``: a stateful model whose runs wait.
final class GatedOnnxHandler: ModelHandler, @unchecked Sendable {
    let inner = OnnxModelHandler()
    let gate: Gate
    init(gate: Gate) { self.gate = gate }
    var inputs: [TensorMetadata] { inner.inputs }
    var outputs: [TensorMetadata] { inner.outputs }
    func initialize(_ context: HandlerContext) async throws { try await inner.initialize(context) }
    func preprocess(_ requests: [HandlerRequest], context: HandlerContext) async throws -> OnnxModelHandler.Prepared {
        try await inner.preprocess(requests, context: context)
    }
    func inference(_ prepared: OnnxModelHandler.Prepared, context: HandlerContext) async throws -> OnnxModelHandler.Computed {
        await gate.pass()
        return try await inner.inference(prepared, context: context)
    }
    func postprocess(_ computed: OnnxModelHandler.Computed, requests: [HandlerRequest], context: HandlerContext) async throws
        -> [Result<HandlerResponse, HandlerError>]
    {
        try await inner.postprocess(computed, requests: requests, context: context)
    }
}
