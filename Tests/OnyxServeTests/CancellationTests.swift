import Foundation
import GRPCCore
import Hummingbird
import HummingbirdTesting
import Onyx
import Testing
@testable import OnyxGRPC
@testable import OnyxServe

/// Requests whose client stops waiting leave the queue without running: a task cancelled (an HTTP
/// client that disconnects, a gRPC call cancelled), a `timeout` parameter or gRPC deadline that
/// passes while queued. Each test holds a model's only instance with a first request at a
/// ``Gate`` of its own, queues a second, lets it go, then opens the gate: the gate counts the
/// requests that reached inference.
@Suite struct CancellationTests {
    /// A model `name` whose one instance waits at `gate`, one request per batch.
    static func gated(_ name: String, gate: Gate) async throws -> ModelRepository {
        PrometheusSetup.bootstrap()
        HandlerRegistry.register(name) { GateHandler(gate: gate) }
        let repository = ModelRepository()
        try await repository.load(
            name: name, path: ServerTests.fixtures.appendingPathComponent("mlp_legacy/model.onnx").path,
            configuration: ModelConfiguration(handler: name, maxBatchSize: 1, instanceCount: 1, queueCapacity: 8, timeoutMilliseconds: 600_000))
        return repository
    }

    /// Starts a first request and waits until it holds the instance.
    static func holdInstance(_ model: ServedModel, gate: Gate) async throws -> Task<HandlerResponse, any Error> {
        let first = Task { try await model.infer(HandlerRequest(json: .null)) }
        for _ in 0..<3000 where await gate.entered == 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(await gate.entered == 1)
        return first
    }

    /// Waits (up to 20 s) until the model's batcher holds `load` requests.
    static func waitForLoad(_ model: ServedModel, _ load: Int) async throws {
        for _ in 0..<2000 where await model.batcher.load != load {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(await model.batcher.load == load)
    }

    static func cancelledCount(_ model: String, _ reason: String) -> Int {
        let text = String(decoding: PrometheusSetup.registry?.emitToBuffer() ?? [], as: UTF8.self)
        let prefix = #"onyx_requests_cancelled_total{model="\#(model)",reason="\#(reason)"} "#
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return 0 }
        return Int(line.dropFirst(prefix.count)) ?? 0
    }

    /// Runs `body` while a first request holds the only instance of a gated model `name`, then
    /// lets it finish and checks that no request but the first reached inference.
    static func withHeldInstance(_ name: String, _ body: (ModelRepository, ServedModel) async throws -> Void) async throws {
        let gate = Gate()
        let repository = try await gated(name, gate: gate)
        let model = try repository.model(name)
        let first = try await holdInstance(model, gate: gate)
        try await body(repository, model)
        try await finish(model, gate: gate, first: first)
    }

    /// Opens the gate and checks the first request was answered and no other reached inference.
    static func finish(_ model: ServedModel, gate: Gate, first: Task<HandlerResponse, any Error>) async throws {
        await gate.open()
        _ = try await first.value
        #expect(await gate.entered == 1, "a request dropped from the queue reached inference")
        #expect(await model.batcher.load == 0)
        #expect(await model.batcher.hasExpiryTimer == false)
    }

    @Test func aCancelledRequestLeavesTheQueue() async throws {
        try await Self.withHeldInstance("cancel-direct") { _, model in
            let second = Task { try await model.infer(HandlerRequest(json: .null)) }
            try await Self.waitForLoad(model, 2)
            second.cancel()
            do {
                _ = try await second.value
                Issue.record("a cancelled request was answered")
            } catch let error as HandlerError {
                #expect(error.status == 499)
                #expect(error.message.contains("the client went away before model 'cancel-direct' ran the request"))
            }
            #expect(await model.batcher.load == 1)
        }
        #expect(Self.cancelledCount("cancel-direct", "client_disconnected") == 1)
    }

    @Test func aRequestPastItsTimeoutParameterIsNotRun() async throws {
        try await Self.withHeldInstance("cancel-timeout") { repository, model in
            // Triton's `timeout` parameter, in microseconds: 100 ms.
            let body = ByteBuffer(string: #"{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[0]}],"parameters":{"timeout":100000}}"#)
            try await ServerTests.app(repository).test(.router) { client in
                try await client.execute(uri: "/v2/models/cancel-timeout/infer", method: .post, body: body) { response throws in
                    #expect(response.status == .gatewayTimeout)
                    let error = try ServerTests.json(response.body)["error"]?.stringValue ?? ""
                    #expect(error.contains("the request's timeout passed before model 'cancel-timeout' ran it"), "\(error)")
                }
            }
            #expect(await model.batcher.load == 1)
        }
        #expect(Self.cancelledCount("cancel-timeout", "timeout") == 1)
    }

    @Test func anHTTPClientThatDisconnectsLeavesTheQueue() async throws {
        try await Self.withHeldInstance("cancel-http") { repository, model in
            try await HostileConnectionTests.withServer(ServerConfiguration(), repository: repository) { port in
                let body = #"{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[0]}]}"#
                let connection = try RawConnection(port: port)
                let waited = await connection.exchange(
                    Array("POST /v2/models/cancel-http/infer HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8),
                    timeoutSeconds: 1)
                #expect(waited.outcome == .timedOut, "\(waited)")
                #expect(await model.batcher.load == 2)
                connection.close()
                try await Self.waitForLoad(model, 1)
            }
        }
        #expect(Self.cancelledCount("cancel-http", "client_disconnected") == 1)
    }

    @Test func aCancelledGRPCCallLeavesTheQueueAndAPassedDeadlineIsNotRun() async throws {
        let request = Inference_ModelInferRequest.with {
            $0.modelName = "cancel-grpc"
            $0.inputs = [GRPCServerTests.input("x", "FP32", [1])]
            $0.inputs[0].contents.fp32Contents = [0]
        }
        try await Self.withHeldInstance("cancel-grpc") { repository, model in
            try await GRPCServerTests.withServer(repository) { client in
                // A call the client cancels.
                let call = Task { try await client.modelInfer(request) }
                try await Self.waitForLoad(model, 2)
                call.cancel()
                _ = await GRPCServerTests.failure { _ = try await call.value }
                try await Self.waitForLoad(model, 1)
                // A deadline that passes in the queue (sent as metadata only, so the server answers).
                let late = await GRPCServerTests.failure {
                    _ = try await client.modelInfer(request, metadata: ["grpc-timeout": "150m"])
                }
                #expect(late?.0 == .deadlineExceeded, "\(String(describing: late))")
                try await Self.waitForLoad(model, 1)
                // The `timeout` parameter works over gRPC as over HTTP.
                var timed = request
                timed.parameters = ["timeout": .with { $0.int64Param = 100_000 }]
                let timedOut = await GRPCServerTests.failure { _ = try await client.modelInfer(timed) }
                #expect(timedOut?.0 == .deadlineExceeded, "\(String(describing: timedOut))")
                #expect(timedOut?.1.contains("the request's timeout passed before model 'cancel-grpc' ran it") == true)
            }
        }
        #expect(Self.cancelledCount("cancel-grpc", "client_disconnected") == 1)
        #expect(Self.cancelledCount("cancel-grpc", "timeout") == 2)
    }
}
