import Dispatch

/// Groups requests to one model into batches: a batch closes when it reaches the maximum size or
/// when the first request in it has waited the maximum queue delay. Requests beyond the queue
/// capacity are refused at once (503); a request still queued after its timeout gets 503.
actor DynamicBatcher {
    private struct Pending {
        let request: HandlerRequest
        let enqueued: ContinuousClock.Instant
        let continuation: CheckedContinuation<HandlerResponse, any Error>
    }

    /// The model's parts, not the ``ServedModel`` itself: it holds this batcher, and a reference
    /// back would keep both, with the session and its weights, alive after an unload or reload.
    private let handler: any ModelHandler
    private let context: HandlerContext
    private let metrics: ModelMetrics
    private let maxBatchSize: Int
    private let maxDelay: Duration
    private let capacity: Int
    private let timeout: Duration
    private let instances: Int
    private var pending: [Pending] = []
    private var running = 0
    private var runningBatches = 0
    private var timerGeneration: UInt64 = 0
    private var expiryTimer: Task<Void, Never>?
    private var expiryGeneration: UInt64 = 0

    init(handler: any ModelHandler, context: HandlerContext, metrics: ModelMetrics) {
        self.handler = handler
        self.context = context
        self.metrics = metrics
        let configuration = context.configuration
        maxBatchSize = handler.supportsBatching ? configuration.maxBatchSize : 1
        maxDelay = .milliseconds(configuration.maxQueueDelayMilliseconds)
        capacity = configuration.queueCapacity
        timeout = .milliseconds(configuration.timeoutMilliseconds)
        instances = configuration.instanceCount
    }

    /// Requests queued or running.
    var load: Int { pending.count + running }

    /// Whether a queue timeout timer is alive (none once the queue is empty).
    var hasExpiryTimer: Bool { expiryTimer != nil }

    func submit(_ request: HandlerRequest) async throws -> HandlerResponse {
        guard pending.count + running < capacity else {
            throw HandlerError.overloaded("model '\(context.modelName)' is at its queue capacity of \(capacity) requests")
        }
        return try await withCheckedThrowingContinuation { continuation in
            pending.append(Pending(request: request, enqueued: .now, continuation: continuation))
            dispatch()
        }
    }

    /// Starts batches while instances are free and a batch is ready (full, or its delay elapsed).
    private func dispatch() {
        defer { updateExpiryTimer() }
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
            let (handler, context, metrics) = (self.handler, self.context, self.metrics)
            Task {
                let started = ContinuousClock.now
                for member in batch { metrics.recordQueue(started - member.enqueued) }
                let results = await handler.handle(batch.map(\.request), context: context)
                metrics.recordCompute(ContinuousClock.now - started, batchSize: batch.count)
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

    /// Keeps one timer, for the oldest queued request (the queue is in arrival order, so it is due
    /// first), and none while the queue is empty. A sleeping task per request would hold memory
    /// for the whole timeout however fast the request was answered: at 10,000 requests/s and the
    /// default 30 s, hundreds of MB.
    private func updateExpiryTimer() {
        guard let first = pending.first else {
            expiryTimer?.cancel()
            expiryTimer = nil
            return
        }
        guard expiryTimer == nil else { return }
        expiryGeneration += 1
        let generation = expiryGeneration
        let deadline = first.enqueued + timeout
        expiryTimer = Task {
            guard (try? await Task.sleep(until: deadline, clock: .continuous)) != nil else { return }
            await self.expireDue(generation)
        }
    }

    private func expireDue(_ generation: UInt64) {
        guard generation == expiryGeneration, expiryTimer != nil else { return }
        expiryTimer = nil
        let now = ContinuousClock.now
        while let first = pending.first, now - first.enqueued >= timeout {
            pending.removeFirst()
            first.continuation.resume(throwing: HandlerError.overloaded(
                "request waited longer than \(context.configuration.timeoutMilliseconds) ms in the queue of model '\(context.modelName)'"))
        }
        updateExpiryTimer()
    }
}
