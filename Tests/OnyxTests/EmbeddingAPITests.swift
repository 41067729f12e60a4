import Dispatch
import Synchronization
import Testing
@testable import Onyx

/// The embedding surface: async runs.
@Suite struct EmbeddingAPITests {
    /// A count that escaping closures can share.
    final class Counter: Sendable {
        private let count = Atomic<Int>(0)
        var value: Int { count.load(ordering: .relaxed) }
        func increment() { count.add(1, ordering: .relaxed) }
    }

    /// A flag the first of several racing parties claims.
    final class Once: Sendable {
        private let claimed = Atomic<Bool>(false)
        func claim() -> Bool { !claimed.exchange(true, ordering: .acquiringAndReleasing) }
    }

    // MARK: - Async run

    @Test func asyncRunEqualsSyncRun() async throws {
        let session = try InferenceSession(model: SessionTests.mlp())
        let x = SessionTests.floats([3, 4], seed: 5)
        let asynchronous = try #require(try await session.run(["x": x])["y"])
        let synchronous = try #require(try { try session.run(["x": x]) }()["y"])
        #expect(asynchronous.shape == synchronous.shape)
        #expect(try asynchronous.scalars(as: Float.self) == synchronous.scalars(as: Float.self))
    }

    @Test func asyncRunReportsBadInputs() async throws {
        let session = try InferenceSession(model: SessionTests.mlp())
        let error = await #expect(throws: OnyxError.self) {
            try await session.run(["x": SessionTests.floats([2, 5])])
        }
        #expect(error?.code == .shapeMismatch)
    }

    @Test func manyConcurrentAsyncRunsGetTheirOwnAnswers() async throws {
        let session = try InferenceSession(model: SessionTests.mlp(), options: SessionOptions(threadCount: 1))
        let inputs = (0..<48).map { SessionTests.floats([1 + $0 % 5, 4], seed: $0) }
        let answers = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (k, x) in inputs.enumerated() {
                group.addTask { (k, try #require(try await session.run(["x": x])["y"]).scalars(as: Float.self)) }
            }
            return try await group.reduce(into: [Int: [Float]]()) { $0[$1.0] = $1.1 }
        }
        #expect(answers.count == inputs.count)
        for (k, x) in inputs.enumerated() {
            SessionTests.expectClose(answers[k] ?? [], try SessionTests.referenceMLP(x))
        }
    }

    /// While the session's queue is held, queued runs must leave the cooperative pool free: more
    /// awaiting runs than the pool has threads, and other tasks still finish. Runs that blocked
    /// their tasks' threads would starve them; then a watchdog on a thread of its own releases the
    /// queue after a minute so the test ends, and fails, instead of hanging.
    @Test func awaitingRunsDoNotBlockOtherTasks() async throws {
        let session = try InferenceSession(model: SessionTests.mlp())
        let runs = 4 * SessionOptions.onlineProcessorCount + 8
        let finishedRuns = Counter()
        let x = SessionTests.floats([2, 4], seed: 9)
        let expected = try SessionTests.referenceMLP(x)

        session.runQueue.suspend()
        let release = Once()
        let othersFinished = DispatchSemaphore(value: 0)
        let watchdogFired = Counter()
        DispatchQueue(label: "watchdog").async {
            if othersFinished.wait(timeout: .now() + 60) == .timedOut, release.claim() {
                watchdogFired.increment()
                session.runQueue.resume()
            }
        }

        try await withThrowingTaskGroup(of: [Float].self) { group in
            for _ in 0..<runs {
                group.addTask {
                    let y = try #require(try await session.run(["x": x])["y"]).scalars(as: Float.self)
                    finishedRuns.increment()
                    return y
                }
            }
            // Other work on the cooperative pool, each task needing a thread of it to finish.
            let others = await withTaskGroup(of: Int.self) { others in
                for k in 0..<runs {
                    others.addTask {
                        await Task.yield()
                        return k
                    }
                }
                return await others.reduce(0, +)
            }
            othersFinished.signal()
            #expect(others == runs * (runs - 1) / 2)
            #expect(watchdogFired.value == 0, "other tasks could not run while runs were queued")
            if release.claim() {
                #expect(finishedRuns.value == 0, "a run finished while the queue was held")
                session.runQueue.resume()
            }
            for try await y in group { SessionTests.expectClose(y, expected) }
        }
        #expect(finishedRuns.value == runs)
    }

    @Test func cancelledTaskDoesNotRun() async throws {
        let session = try InferenceSession(model: SessionTests.mlp())
        let x = SessionTests.floats([1, 4])
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await session.run(["x": x])
        }
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    @Test func taskCancelledWhileQueuedDoesNotRun() async throws {
        let session = try InferenceSession(model: SessionTests.mlp())
        session.runQueue.suspend()
        let task = Task { try await session.run(["x": SessionTests.floats([1, 4])]) }
        task.cancel()
        session.runQueue.resume()
        await #expect(throws: CancellationError.self) { try await task.value }
        // The session still runs for tasks that are not cancelled.
        #expect(try await session.run(["x": SessionTests.floats([1, 4])])["y"]?.shape == [1, 3])
    }
}
