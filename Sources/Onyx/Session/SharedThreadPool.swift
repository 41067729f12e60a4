import OnyxKernels

/// Kernel threads that several sessions share, as onnxruntime's global intra-op thread pool:
/// with several models in one process, each session's own threads would together oversubscribe
/// the cores.
///
/// A kernel call takes the pool's threads when they are free; a call that finds them busy (another
/// session's run, or another run of the same session) does its work on its own thread instead of
/// waiting. So however many sessions share a pool, kernels run on at most ``threadCount`` threads
/// plus the callers' own.
///
/// ```swift
/// let threads = SharedThreadPool(threadCount: 4)
/// let detector = try InferenceSession(contentsOf: "detector.onnx", options: SessionOptions(threadPool: threads))
/// let classifier = try InferenceSession(contentsOf: "classifier.onnx", options: SessionOptions(threadPool: threads))
/// ```
public final class SharedThreadPool: Sendable {
    /// The most threads one kernel call uses.
    public var threadCount: Int { pool.threadCount }

    let pool: ComputePool

    /// Creates a pool; its helper threads start on first use.
    ///
    /// - Parameter threadCount: Threads one kernel call may use, the caller's included; `nil` for every online CPU.
    public init(threadCount: Int? = nil) {
        pool = ComputePool(threadCount: max(1, threadCount ?? SessionOptions.onlineProcessorCount))
    }
}
