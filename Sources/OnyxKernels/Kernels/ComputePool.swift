internal import CKernels

/// Splits kernel work across threads.
///
/// The calling thread takes part; the other `threadCount - 1` are the pool's own helpers (started on
/// first use), which spin for ``spinNanoseconds`` after each parallel region, so the next region of
/// the same inference starts without a wake-up, and then sleep until work comes. A call that finds
/// the pool busy (another thread's run, or a nested call) does its work serially on its own thread.
@usableFromInline package final class ComputePool: @unchecked Sendable {
    /// The most threads one kernel call uses.
    @usableFromInline package let threadCount: Int

    /// How long an idle helper spins before it sleeps: longer than the gaps between one
    /// inference's parallel regions, short enough that an idle server's helpers sleep.
    package static let spinNanoseconds: UInt64 = 200_000

    /// The C pool (thread-safe); `nil` with one thread.
    private let pool: OpaquePointer?

    package init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        pool = self.threadCount > 1 ? onyx_pool_create(self.threadCount, Self.spinNanoseconds) : nil
    }

    deinit {
        onyx_pool_destroy(pool)
    }

    /// Calls `body(part)` once for each part in `0..<parts`, on up to ``threadCount`` threads at once,
    /// and returns when all calls have returned. `body` must be safe to call concurrently.
    private func run(parts: Int, _ body: (Int) -> Void) {
        guard let pool, parts > 1 else {
            for part in 0..<parts { body(part) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var job = body
            withUnsafeMutablePointer(to: &job) { job in
                onyx_pool_run(pool, parts, { context, part in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(part)
                }, job)
            }
        }
    }

    /// Calls `body` once for each index in `0..<count`, spread over up to ``threadCount`` threads.
    /// Indices are handed out in contiguous chunks; `body` must be safe to call concurrently.
    package func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        let workers = min(threadCount, count)
        run(parts: workers) { worker in
            for i in (count * worker / workers)..<(count * (worker + 1) / workers) { body(i) }
        }
    }

    /// Calls `body` with contiguous sub-ranges of `0..<count` covering it, each at least
    /// `minimumChunk` long (but for a shorter `count`), on up to ``threadCount`` threads at once.
    ///
    /// - Parameter rangesPerThread: How many ranges to cut per thread. Threads claim ranges as they
    ///   go, so with more than one a thread that runs slower (a busier core) does less of the work;
    ///   one suits work whose ranges each stream the same large operand (a GEMM's shared side).
    @usableFromInline package func parallelRanges(
        _ count: Int, minimumChunk: Int = 1, rangesPerThread: Int = 4, _ body: (Range<Int>) -> Void
    ) {
        if count <= 0 { return }
        if pool == nil { return body(0..<count) }
        let parts = max(1, min(threadCount * max(rangesPerThread, 1), count / max(minimumChunk, 1)))
        run(parts: parts) { part in
            body((count * part / parts)..<(count * (part + 1) / parts))
        }
    }
}
