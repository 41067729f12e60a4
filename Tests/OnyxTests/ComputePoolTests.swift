import Dispatch
import Synchronization
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// The fork-join pool kernels split their work with: every index exactly once, whatever the
/// thread count, and correct under concurrent and nested use.
@Suite struct ComputePoolTests {
    /// Counts how often each index of `0..<count` was visited.
    final class Visits: @unchecked Sendable {
        let counts: UnsafeMutablePointer<Atomic<Int>>
        let count: Int
        init(_ count: Int) {
            self.count = count
            counts = .allocate(capacity: count)
            for i in 0..<count { (counts + i).initialize(to: Atomic(0)) }
        }
        deinit {
            counts.deinitialize(count: count)
            counts.deallocate()
        }
        func visit(_ i: Int) { counts[i].add(1, ordering: .relaxed) }
        var eachOnce: Bool { (0..<count).allSatisfy { counts[$0].load(ordering: .relaxed) == 1 } }
    }

    @Test(arguments: [1, 2, 3, 8])
    func rangesCoverEveryIndexOnce(threads: Int) {
        let pool = ComputePool(threadCount: threads)
        for count in [1, 2, 5, 7, 64, 1000] {
            for chunk in [1, 3, 100] {
                for perThread in [1, 4] {
                    let visits = Visits(count)
                    pool.parallelRanges(count, minimumChunk: chunk, rangesPerThread: perThread) { range in
                        #expect(range.count >= min(chunk, count))
                        for i in range { visits.visit(i) }
                    }
                    #expect(visits.eachOnce, "count \(count), chunk \(chunk), \(perThread) per thread")
                }
            }
            let visits = Visits(count)
            pool.parallelFor(count) { visits.visit($0) }
            #expect(visits.eachOnce, "parallelFor over \(count)")
        }
    }

    @Test func manyRegionsInARowAllComplete() {
        // Thousands of short regions: the hand-off between runs (spinning helpers, a new ticket per
        // run) must not lose or repeat a part.
        let pool = ComputePool(threadCount: 2)
        let total = Atomic<Int>(0)
        for _ in 0..<5000 {
            pool.parallelRanges(4, rangesPerThread: 2) { range in total.add(range.count, ordering: .relaxed) }
        }
        #expect(total.load(ordering: .relaxed) == 5000 * 4)
    }

    @Test func helpersSleepThenWakeForTheNextRun() async throws {
        // Longer than the spin budget between runs, so the helper is asleep when work comes.
        let pool = ComputePool(threadCount: 2)
        for _ in 0..<3 {
            let visits = Visits(100)
            pool.parallelFor(100) { visits.visit($0) }
            #expect(visits.eachOnce)
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test func concurrentAndNestedCallsRunToCompletion() {
        // Callers that find the pool busy (another thread's region, or their own outer region) run
        // their parts serially instead of waiting on it.
        let pool = ComputePool(threadCount: 2)
        let visits = Visits(8 * 64 * 16)
        DispatchQueue.concurrentPerform(iterations: 8) { caller in
            pool.parallelRanges(64) { outer in
                for i in outer {
                    pool.parallelFor(16) { j in visits.visit((caller * 64 + i) * 16 + j) }
                }
            }
        }
        #expect(visits.eachOnce)
    }

    @Test func aPoolThatRanWorkIsReleased() {
        // deinit joins the helpers; a leak or a hang here shows up as a stuck test.
        for _ in 0..<50 {
            let pool = ComputePool(threadCount: 3)
            let visits = Visits(30)
            pool.parallelFor(30) { visits.visit($0) }
            #expect(visits.eachOnce)
        }
    }

    /// Sessions on one ``SharedThreadPool`` run their kernels on it, and runs of different models
    /// at once (one takes the pool, the others work on their own threads) give what each gives alone.
    @Test func sessionsShareOnePool() throws {
        let shared = SharedThreadPool(threadCount: 2)
        let names = ["lenet_legacy", "lenet_dynamo", "mlp_legacy"]
        let sessions = try names.map { name in
            try InferenceSession(contentsOf: FixtureTests.root.appendingPathComponent("\(name)/model.onnx").path,
                                 options: SessionOptions(threadCount: 7, threadPool: shared))
        }
        #expect(sessions.allSatisfy { $0.options.threadPool === shared && $0.options.threadCount == 2 })
        let inputs = try names.map { try FixtureTests.load(FixtureTests.root.appendingPathComponent("\($0)/test_data_set_0/input_0.pb")).tensor }
        let expected = try sessions.indices.map { try sessions[$0].run([sessions[$0].inputs[0].name: inputs[$0]]).values.first!.scalars(as: Float.self) }
        let results = Mutex<[Int: [Float]]>([:])
        DispatchQueue.concurrentPerform(iterations: 24) { i in
            let k = i % sessions.count
            let output = try? sessions[k].run([sessions[k].inputs[0].name: inputs[k]]).values.first!.scalars(as: Float.self)
            results.withLock { $0[i] = output }
        }
        for i in 0..<24 { #expect(results.withLock { $0[i] } == expected[i % sessions.count]) }
    }
}
