import Dispatch

/// Groups requests to one model into batches: a batch closes when it reaches the maximum size or
/// when the first request in it has waited the maximum queue delay. Requests beyond the queue
/// capacity are refused at once (503); a request still queued after its timeout gets 503.
actor DynamicBatcher {
    private struct Pending {
        let id: UInt64
        let request: HandlerRequest
        let enqueued: ContinuousClock.Instant
        let continuation: CheckedContinuation<HandlerResponse, any Error>
    }

    private let model: ServedModel
    private let maxBatchSize: Int
    private let maxDelay: Duration
    private let capacity: Int
    private let timeout: Duration
    private let instances: Int
    private var pending: [Pending] = []
    private var running = 0
    private var runningBatches = 0
    private var nextID: UInt64 = 0
    private var timerGeneration: UInt64 = 0

    init(model: ServedModel) {
        self.model = model
        let configuration = model.context.configuration
        maxBatchSize = model.handler.supportsBatching ? configuration.maxBatchSize : 1
        maxDelay = .milliseconds(configuration.maxQueueDelayMilliseconds)
        capacity = configuration.queueCapacity
        timeout = .milliseconds(configuration.timeoutMilliseconds)
        instances = configuration.instanceCount
    }

    /// Requests queued or running.
    var load: Int { pending.count + running }

    func submit(_ request: HandlerRequest) async throws -> HandlerResponse {
        guard pending.count + running < capacity else {
            throw HandlerError.overloaded("model '\(model.context.modelName)' is at its queue capacity of \(capacity) requests")
        }
        let id = nextID
        nextID += 1
        return try await withCheckedThrowingContinuation { continuation in
            pending.append(Pending(id: id, request: request, enqueued: .now, continuation: continuation))
            scheduleTimeout(for: id)
            dispatch()
        }
    }

    /// Starts batches while instances are free and a batch is ready (full, or its delay elapsed).
    private func dispatch() {
        while runningBatches < instances, let first = pending.first {
            let full = pending.count >= maxBatchSize
            let due = ContinuousClock.now - first.enqueued >= maxDelay
            guard full || due || maxBatchSize == 1 else {
                scheduleFlush(after: maxDelay - (ContinuousClock.now - first.enqueued))
                return
            }
            let batch = Array(pending.prefix(maxBatchSize))
            pending.removeFirst(batch.count)
            running += batch.count
            runningBatches += 1
            let model = self.model
            Task {
                let started = ContinuousClock.now
                for member in batch { model.metrics.recordQueue(started - member.enqueued) }
                let results = await model.handler.handle(batch.map(\.request), context: model.context)
                model.metrics.recordCompute(ContinuousClock.now - started, batchSize: batch.count)
                for (member, result) in zip(batch, results) {
                    member.continuation.resume(with: result.mapError { $0 as any Error })
                }
                await self.finished(batch.count)
            }
        }
    }

    private func finished(_ count: Int) {
        running -= count
        runningBatches -= 1
        dispatch()
    }

    private func scheduleFlush(after delay: Duration) {
        timerGeneration += 1
        let generation = timerGeneration
        Task {
            try? await Task.sleep(for: max(delay, .microseconds(50)))
            await self.timerFired(generation)
        }
    }

    private func timerFired(_ generation: UInt64) {
        guard generation == timerGeneration else { return }
        dispatch()
    }

    private func scheduleTimeout(for id: UInt64) {
        let timeout = self.timeout
        Task {
            try? await Task.sleep(for: timeout)
            await self.expire(id)
        }
    }

    private func expire(_ id: UInt64) {
        guard let index = pending.firstIndex(where: { $0.id == id }) else { return }
        let entry = pending.remove(at: index)
        entry.continuation.resume(throwing: HandlerError.overloaded(
            "request waited longer than \(model.context.configuration.timeoutMilliseconds) ms in the queue of model '\(model.context.modelName)'"))
    }
}
