import Foundation
import Onyx
import Testing
@testable import OnyxServe

/// The batcher's queue under pressure: a request queued past its timeout gets 503, and answered
/// requests leave nothing behind (the soak test once saw RSS grow by 300 MB in 40 s because every
/// request kept a sleeping timeout task alive for 30 s).
@Suite(.serialized) struct OverloadTests {
    @Test func answeredRequestsLeaveNoQueueTimer() async throws {
        let repository = try await ServerTests.repository(
            ModelConfiguration(maxBatchSize: 1, instanceCount: 1, queueCapacity: 1000, timeoutMilliseconds: 600_000))
        let model = try repository.model("mlp")
        let x = try Tensor(shape: [1, 64], scalars: [Float](repeating: 0.25, count: 64))
        let answered = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<200 {
                group.addTask {
                    guard case .tensors = try await model.infer(HandlerRequest(inputs: [NamedTensor(name: "input", tensor: x)])) else { return false }
                    return true
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(answered == 200)
        #expect(await model.batcher.load == 0)
        #expect(await model.batcher.hasExpiryTimer == false)
    }

    @Test func unloadedModelsAreFreed() async throws {
        // The batcher once held its ServedModel, which holds the batcher: an unloaded or reloaded
        // model kept its session and weights for the life of the process (LeakSanitizer found it).
        let repository = try await ServerTests.repository()
        weak var served: ServedModel?
        do {
            let model = try repository.model("mlp")
            served = model
            let x = try Tensor(shape: [1, 64], scalars: [Float](repeating: 0.25, count: 64))
            _ = try await model.infer(HandlerRequest(inputs: [NamedTensor(name: "input", tensor: x)]))
        }
        #expect(served != nil)
        #expect(repository.unload("mlp"))
        #expect(served == nil, "an unloaded model is still alive")
    }

    @Test func requestQueuedPastItsTimeoutGets503() async throws {
        HandlerRegistry.register("gate") { GateHandler() }
        let repository = ModelRepository()
        try await repository.load(
            name: "gate", path: ServerTests.fixtures.appendingPathComponent("mlp_legacy/model.onnx").path,
            configuration: ModelConfiguration(handler: "gate", maxBatchSize: 1, instanceCount: 1, queueCapacity: 10, timeoutMilliseconds: 50))
        let model = try repository.model("gate")
        // The first request holds the only instance until the gate opens…
        let first = Task { try await model.infer(HandlerRequest(json: .null)) }
        for _ in 0..<1000 where await GateHandler.gate.entered == 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(await GateHandler.gate.entered == 1)
        // …so the next ones can only wait in the queue until their timeout.
        for _ in 0..<2 {
            do {
                _ = try await model.infer(HandlerRequest(json: .null))
                Issue.record("a request queued behind a blocked instance was answered")
            } catch let error as HandlerError {
                #expect(error.status == 503)
                #expect(error.retryAfter != nil)
                #expect(error.message.contains("waited longer than 50 ms"), "\(error.message)")
            }
        }
        #expect(await model.batcher.hasExpiryTimer == false)
        await GateHandler.gate.open()
        guard case .json = try await first.value else {
            Issue.record("the first request got no JSON answer")
            return
        }
        #expect(await model.batcher.load == 0)
    }
}

/// Counts requests that reach inference and holds them until opened.
actor Gate {
    private(set) var entered = 0
    private var isOpen = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func pass() async {
        entered += 1
        if isOpen { return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func open() {
        isOpen = true
        for continuation in waiting { continuation.resume() }
        waiting = []
    }
}

/// A handler whose inference waits at a ``Gate`` (by default the shared one): makes a busy
/// instance deterministic.
final class GateHandler: ModelHandler, @unchecked Sendable {
    static let gate = Gate()
    let gate: Gate
    init(gate: Gate = GateHandler.gate) { self.gate = gate }
    var inputs: [TensorMetadata] { [] }
    var outputs: [TensorMetadata] { [] }
    func initialize(_ context: HandlerContext) async throws {}
    func preprocess(_ requests: [HandlerRequest], context: HandlerContext) async throws -> Int { requests.count }
    func inference(_ prepared: Int, context: HandlerContext) async throws -> Int {
        await gate.pass()
        return prepared
    }
    func postprocess(_ computed: Int, requests: [HandlerRequest], context: HandlerContext) async throws -> [Result<HandlerResponse, HandlerError>] {
        requests.map { _ in .success(.json(.object(["ok": .bool(true)]))) }
    }
}
