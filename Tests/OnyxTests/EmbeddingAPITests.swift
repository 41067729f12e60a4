#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// The embedding surface: async runs, tensors over caller memory, typed element access.
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

    // MARK: - Tensors over caller memory

    /// A graph whose output is its input: the run hands the input tensor back as the output.
    static func passThrough() -> Model {
        let x = SessionTests.value("x", .float, [.symbolic("n"), .fixed(4)])
        return Model(opsetImports: ["": 17], graph: Graph(nodes: [], inputs: [x], outputs: [x], initializers: []))
    }

    /// Counts releases of lent memory, and frees it on the last.
    final class Lender: @unchecked Sendable {
        let buffer: UnsafeMutableBufferPointer<Float>
        let releases = Counter()

        init(_ values: [Float]) {
            buffer = .allocate(capacity: values.count)
            _ = buffer.initialize(from: values)
        }

        var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(buffer) }

        var deallocator: Tensor.Deallocator {
            .custom { [self] _ in releases.increment() }
        }

        deinit { buffer.deallocate() }
    }

    @Test func lentInputReachesTheRunWithoutACopy() throws {
        let lender = Lender((0..<8).map(Float.init))
        let session = try InferenceSession(model: Self.passThrough())
        var output: Tensor?
        do {
            let x = try Tensor(dataType: .float, shape: [2, 4], bytesNoCopy: lender.bytes, deallocator: lender.deallocator)
            #expect(x.withUnsafeBytes { $0.baseAddress } == lender.bytes.baseAddress)
            output = try session.run(["x": x])["x"]
        }
        do {
            let y = try #require(output)
            // The output is the caller's memory: the input went in and came out uncopied.
            #expect(y.withUnsafeBytes { $0.baseAddress } == lender.bytes.baseAddress)
            #expect(try y.scalars(as: Float.self) == (0..<8).map(Float.init))
            #expect(lender.releases.value == 0, "released while an output still shares the memory")
        }
        output = nil
        #expect(lender.releases.value == 1)
    }

    /// Kernels read the lent memory itself: a change the caller makes between two runs of the same
    /// tensor shows in the second run's output.
    @Test func kernelsReadTheLentMemoryInPlace() throws {
        let x = SessionTests.floats([3, 4], seed: 4)
        let lender = Lender(try x.scalars(as: Float.self))
        let session = try InferenceSession(model: SessionTests.mlp())
        let lent = try Tensor(dataType: .float, shape: [3, 4], bytesNoCopy: lender.bytes, deallocator: .none)
        let first = try #require(try session.run(["x": lent])["y"])
        SessionTests.expectClose(try first.scalars(as: Float.self), try SessionTests.referenceMLP(x))

        for i in lender.buffer.indices { lender.buffer[i] = -lender.buffer[i] }
        let negated = try Tensor(shape: [3, 4], scalars: Array(lender.buffer))
        let second = try #require(try session.run(["x": lent])["y"])
        SessionTests.expectClose(try second.scalars(as: Float.self), try SessionTests.referenceMLP(negated))
        #expect(try first.scalars(as: Float.self) != second.scalars(as: Float.self))
    }

    @Test func writingToALentTensorCopiesFirst() throws {
        let lender = Lender([1, 2, 3, 4])
        var x = try Tensor(dataType: .float, shape: [4], bytesNoCopy: lender.bytes, deallocator: lender.deallocator)
        try x.withUnsafeMutableBufferPointer(of: Float.self) { $0[0] = 100 }
        #expect(Array(lender.buffer) == [1, 2, 3, 4])
        #expect(try x.scalars(as: Float.self) == [100, 2, 3, 4])
        // The copy no longer shares the lent memory, so it was released.
        #expect(lender.releases.value == 1)
    }

    @Test func lentBytesMustFitTheShape() throws {
        let lender = Lender([1, 2, 3, 4, 5, 6])
        let error = #expect(throws: OnyxError.self) {
            try Tensor(dataType: .float, shape: [2, 4], bytesNoCopy: lender.bytes, deallocator: lender.deallocator)
        }
        #expect(error?.code == .shapeMismatch)
        #expect(error?.message.contains("[2, 4]") == true && error?.message.contains("needs 32 bytes but 24") == true)
        let negative = #expect(throws: OnyxError.self) {
            try Tensor(dataType: .float, shape: [-1, 6], bytesNoCopy: lender.bytes, deallocator: .none)
        }
        #expect(negative?.code == .shapeMismatch)
        let huge = #expect(throws: OnyxError.self) {
            try Tensor(dataType: .double, shape: [1 << 61, 2], bytesNoCopy: lender.bytes, deallocator: .none)
        }
        #expect(huge?.code == .limitExceeded)
        let misaligned = #expect(throws: OnyxError.self) {
            try Tensor(dataType: .float, shape: [5], bytesNoCopy: UnsafeRawBufferPointer(rebasing: lender.bytes[2..<22]), deallocator: .none)
        }
        #expect(misaligned?.code == .invalidArgument)
        // A failed initializer leaves the memory to the caller.
        #expect(lender.releases.value == 0)
    }

    @Test func emptyLentBufferMakesAnEmptyTensor() throws {
        let released = Counter()
        do {
            let x = try Tensor(dataType: .float, shape: [0, 4], bytesNoCopy: UnsafeRawBufferPointer(start: nil, count: 0),
                               deallocator: .custom { _ in released.increment() })
            #expect(x.elementCount == 0)
            #expect(try x.scalars(as: Float.self).isEmpty)
        }
        #expect(released.value == 1)
    }

    @Test func deallocateAndFreeReleaseTheirMemory() throws {
        let allocated = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 8)
        allocated.initializeMemory(as: Int64.self, repeating: 7)
        let a = try Tensor(dataType: .int64, shape: [2], bytesNoCopy: UnsafeRawBufferPointer(allocated), deallocator: .deallocate)
        #expect(try a.scalars(as: Int64.self) == [7, 7])

        let malloced = try #require(malloc(8))
        malloced.initializeMemory(as: Int32.self, repeating: -3, count: 2)
        let b = try Tensor(dataType: .int32, shape: [2], bytesNoCopy: UnsafeRawBufferPointer(start: malloced, count: 8), deallocator: .free)
        #expect(try b.scalars(as: Int32.self) == [-3, -3])
    }

    // MARK: - Zeros

    @Test func zerosChecksTheShape() throws {
        let zeros = try Tensor.zeros(.int16, shape: [2, 0, 3])
        #expect(zeros.shape == [2, 0, 3] && zeros.byteCount == 0)
        let filled = try Tensor.zeros(.double, shape: [3])
        #expect(try filled.scalars(as: Double.self) == [0, 0, 0])
        #expect(try Tensor.zeros(.bool, shape: []).scalars(as: Bool.self) == [false])

        let negative = #expect(throws: OnyxError.self) { try Tensor.zeros(.float, shape: [4, -2]) }
        #expect(negative?.code == .shapeMismatch)
        #expect(negative?.message.contains("negative extent -2 in shape [4, -2]") == true)
        let huge = #expect(throws: OnyxError.self) { try Tensor.zeros(.float, shape: [1 << 40, 1 << 30]) }
        #expect(huge?.code == .limitExceeded)
        let wide = #expect(throws: OnyxError.self) { try Tensor.zeros(.int64, shape: [1 << 61]) }
        #expect(wide?.code == .limitExceeded)
    }

    // MARK: - Typed element access

    @Test func typedReadBackSharesTheStorage() throws {
        let x = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float])
        let (address, sum) = try x.withUnsafeBufferPointer(of: Float.self) { ($0.baseAddress.map(UnsafeRawPointer.init), $0.reduce(0, +)) }
        #expect(address == x.withUnsafeBytes { $0.baseAddress })
        #expect(sum == 21)
        let error = #expect(throws: OnyxError.self) { try x.withUnsafeBufferPointer(of: Int32.self) { $0.count } }
        #expect(error?.code == .unsupportedDataType)
    }

    @Test func typedWritesKeepValueSemantics() throws {
        let original = try Tensor(shape: [3], scalars: [1, 2, 3] as [Int64])
        var copy = original
        try copy.withUnsafeMutableBufferPointer(of: Int64.self) { $0[1] = 20 }
        #expect(try original.scalars(as: Int64.self) == [1, 2, 3])
        #expect(try copy.scalars(as: Int64.self) == [1, 20, 3])
        var unique = try Tensor(shape: [2], scalars: [1, 2] as [UInt8])
        let before = unique.withUnsafeBytes { $0.baseAddress }
        try unique.withUnsafeMutableBufferPointer(of: UInt8.self) { $0[0] = 9 }
        #expect(unique.withUnsafeBytes { $0.baseAddress } == before, "a unique tensor was copied to be written")
        #expect(throws: OnyxError.self) { try unique.withUnsafeMutableBufferPointer(of: Int8.self) { _ in } }
    }
}
