import Dispatch

/// Groups requests to one model into batches: a batch closes when it reaches the maximum size or
/// when the first request in it has waited the maximum queue delay. Requests beyond the queue
/// capacity are refused at once (503); a request still queued after the model's timeout gets 503,
/// one still queued at its own deadline (the `timeout` parameter, a gRPC deadline) 504, and one
/// whose task is cancelled (its client went away) leaves the queue at once: none of them runs.
actor DynamicBatcher {
    private struct Pending {
        let ticket: UInt64
        let request: HandlerRequest
        let enqueued: ContinuousClock.Instant
        /// When the request leaves the queue unanswered: the model's timeout or its own deadline.
        let expiry: ContinuousClock.Instant
        /// Whether the expiry is the request's own deadline (504) rather than the model's timeout (503).
        let ownDeadline: Bool
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
    private var nextTicket: UInt64 = 0
    private var timerGeneration: UInt64 = 0
    private var expiryTimer: Task<Void, Never>?
    private var expiryTimerDue: ContinuousClock.Instant?
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

    /// Queues `request` and answers it once its batch has run.
    ///
    /// - Throws: ``HandlerError``: 503 when the queue is full or the request waited past the
    ///   model's timeout, 504 when its own deadline passed before it ran, 499 when its task was
    ///   cancelled while queued; what the handler reports for it.
    func submit(_ request: HandlerRequest) async throws -> HandlerResponse {
        guard pending.count + running < capacity else {
            throw HandlerError.overloaded("model '\(context.modelName)' is at its queue capacity of \(capacity) requests")
        }
        let now = ContinuousClock.now
        var expiry = now + timeout
        var ownDeadline = false
        if let deadline = request.deadline, deadline <= expiry {
            guard deadline > now else {
                metrics.recordCancelled(.timeout)
                throw HandlerError.deadlinePassed(context.modelName)
            }
            (expiry, ownDeadline) = (deadline, true)
        }
        nextTicket += 1
        let ticket = nextTicket
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard !Task.isCancelled else {
                    metrics.recordCancelled(.clientGone)
                    continuation.resume(throwing: HandlerError.clientGone(context.modelName))
                    return
                }
                pending.append(Pending(ticket: ticket, request: request, enqueued: now, expiry: expiry, ownDeadline: ownDeadline,
                                       continuation: continuation))
                dispatch()
            }
        } onCancel: {
            Task { await self.cancel(ticket) }
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
            var batch = Array(pending.prefix(maxBatchSize))
            pending.removeFirst(batch.count)
            // A request whose time ran out while the timer had not fired yet is not started.
            let now = ContinuousClock.now
            for member in batch where member.expiry <= now { expire(member) }
            batch.removeAll { $0.expiry <= now }
            guard !batch.isEmpty else { continue }
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

    /// A queued request whose task was cancelled leaves the queue; one already running finishes.
    private func cancel(_ ticket: UInt64) {
        guard let index = pending.firstIndex(where: { $0.ticket == ticket }) else { return }
        let member = pending.remove(at: index)
        metrics.recordCancelled(.clientGone)
        member.continuation.resume(throwing: HandlerError.clientGone(context.modelName))
        updateExpiryTimer()
    }

    /// Answers a request whose time in the queue ran out.
    private func expire(_ member: Pending) {
        if member.ownDeadline {
            metrics.recordCancelled(.timeout)
            member.continuation.resume(throwing: HandlerError.deadlinePassed(context.modelName))
        } else {
            metrics.recordCancelled(.queueTimeout)
            member.continuation.resume(throwing: HandlerError.overloaded(
                "request waited longer than \(context.configuration.timeoutMilliseconds) ms in the queue of model '\(context.modelName)'"))
        }
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

    /// Keeps one timer, for the queued request due first, and none while the queue is empty. A
    /// sleeping task per request would hold memory for the whole timeout however fast the request
    /// was answered: at 10,000 requests/s and the default 30 s, hundreds of MB. Without deadlines of
    /// their own, requests expire in arrival order and the first is due first; a request with an
    /// earlier deadline than the timer's moves it forward.
    private func updateExpiryTimer() {
        guard let first = pending.first else {
            expiryTimer?.cancel()
            expiryTimer = nil
            expiryTimerDue = nil
            return
        }
        let due = pending.contains(where: \.ownDeadline) ? pending.lazy.map(\.expiry).min()! : first.expiry
        if let current = expiryTimerDue, expiryTimer != nil, current <= due { return }
        expiryTimer?.cancel()
        expiryGeneration += 1
        let generation = expiryGeneration
        expiryTimerDue = due
        expiryTimer = Task {
            guard (try? await Task.sleep(until: due, clock: .continuous)) != nil else { return }
            await self.expireDue(generation)
        }
    }

    private func expireDue(_ generation: UInt64) {
        guard generation == expiryGeneration, expiryTimer != nil else { return }
        expiryTimer = nil
        expiryTimerDue = nil
        let now = ContinuousClock.now
        let expired = pending.filter { $0.expiry <= now }
        if !expired.isEmpty {
            pending.removeAll { $0.expiry <= now }
            for member in expired { expire(member) }
        }
        updateExpiryTimer()
    }
}

extension HandlerError {
    /// A 499 (nginx's "client closed request"): the client went away before its request ran.
    static func clientGone(_ model: String) -> HandlerError {
        HandlerError(status: 499, "the client went away before model '\(model)' ran the request")
    }

    /// A 504: the request's own deadline (the `timeout` parameter, a gRPC deadline) passed before it ran.
    static func deadlinePassed(_ model: String) -> HandlerError {
        HandlerError(status: 504, "the request's timeout passed before model '\(model)' ran it")
    }
}
