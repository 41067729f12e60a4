import Dispatch

/// Splits kernel work across threads. Idle threads sleep in libdispatch's pool; nothing spins.
final class ComputePool: Sendable {
    /// The most threads one kernel call uses.
    let threadCount: Int

    init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
    }

    /// Calls `body` once for each index in `0..<count`, spread over up to ``threadCount`` threads.
    /// Indices are handed out in contiguous chunks; `body` must be safe to call concurrently.
    func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        let workers = min(threadCount, count)
        if workers == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let task = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let start = count * worker / workers
                let end = count * (worker + 1) / workers
                for i in start..<end { task.value(i) }
            }
        }
    }

    /// Calls `body` with contiguous sub-ranges of `0..<count` covering it, one per thread.
    func parallelRanges(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = max(1, min(threadCount, count / max(minimumChunk, 1)))
        if workers == 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let task = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                task.value((count * worker / workers)..<(count * (worker + 1) / workers))
            }
        }
    }
}

/// Carries a non-Sendable closure into `concurrentPerform`, whose callers guarantee it is safe.
private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
