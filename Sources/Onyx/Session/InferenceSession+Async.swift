import Dispatch
import OnyxCore
import Synchronization

extension InferenceSession {
    /// Runs the model without blocking the caller's executor.
    ///
    /// The run happens on a thread of the session's own dispatch queue, never on Swift
    /// concurrency's cooperative pool, so other tasks (an HTTP server's, for instance) keep running
    /// while the model computes. The awaiting task is suspended, not blocked. Any number of runs may
    /// be in flight on one session; they share the cores with each run's kernel threads (see
    /// ``SessionOptions/threadCount``).
    ///
    /// Cancellation is checked before the run starts: a task cancelled before its run has left the
    /// queue gets `CancellationError` and the model is not run. A run that has started completes.
    ///
    /// ```swift
    /// let outputs = try await session.run(["input": x])
    /// ```
    ///
    /// In an async context Swift picks this overload for `session.run(inputs)`. To run inline on
    /// the current thread instead (a tiny model, where the hop costs more than the run), call
    /// ``run(orderedInputs:)``, which has no async form.
    ///
    /// - Parameter inputs: One tensor per graph input, by name, as for the synchronous `run`.
    /// - Returns: Every graph output, by name.
    /// - Throws: `CancellationError` if the task was cancelled before the run started;
    ///   ``OnyxError`` with code `.invalidInput` or `.shapeMismatch` for bad inputs, or an error
    ///   from the node that failed.
    public func run(_ inputs: [String: Tensor]) async throws -> [String: Tensor] {
        try await offExecutor { session in try session.run(inputs) }
    }

    /// Calls `body` with the session on ``runQueue`` and returns its result to the awaiting task.
    private func offExecutor<Output: Sendable>(
        _ body: @escaping @Sendable (InferenceSession) throws -> Output
    ) async throws -> Output {
        try Task.checkCancellation()
        let cancelled = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                runQueue.async {
                    guard !cancelled.isSet else {
                        continuation.resume(throwing: CancellationError())
                        return
                    }
                    continuation.resume(with: Result { try body(self) })
                }
            }
        } onCancel: {
            cancelled.set()
        }
    }
}

/// Set when the task awaiting a queued run is cancelled.
private final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}
