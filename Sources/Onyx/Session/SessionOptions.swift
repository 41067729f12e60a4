import OnyxKernels

#if canImport(Glibc)
import Glibc
#endif

/// How much the session rewrites the graph before running it.
public enum OptimizationLevel: String, Sendable, CaseIterable {
    /// Run the graph as decoded (constant inputs are still folded, since kernels need them).
    case none
    /// Lift Constant nodes into initializers, remove Identity/Dropout, fold Conv+BatchNormalization.
    case basic
    /// Everything in `basic`, plus bias, residual-Add and activation fusion into Conv/Gemm/MatMul epilogues,
    /// and (with the AVX2 or AVX-512 kernels) chains of convolutions run in a blocked channel layout.
    case all
}

/// Settings for an ``InferenceSession``.
public struct SessionOptions: Sendable {
    /// Threads a single `run` may use for one kernel; defaults to the number of online CPUs. With a
    /// ``threadPool``, its ``SharedThreadPool/threadCount``.
    public var threadCount: Int
    /// Kernel threads shared with other sessions; `nil` for threads of the session's own.
    public var threadPool: SharedThreadPool?
    /// Graph optimizations to apply when the session is created.
    public var optimizationLevel: OptimizationLevel
    /// The micro-kernel variant; defaults to the best the CPU supports (or `ONYX_ISA`).
    public var isa: KernelISA
    /// Largest number of distinct input-shape signatures whose plans are kept.
    public var planCacheCapacity: Int
    /// Largest arena (bytes of intermediate values) a single run may need.
    public var memoryLimitBytes: Int

    /// Creates session settings; every default suits a single model on a dedicated machine.
    ///
    /// - Parameters:
    ///   - threadCount: Threads one run may use for one kernel; `nil` for every online CPU. At least 1.
    ///   - optimizationLevel: Graph optimizations applied when the session is created.
    ///   - isa: The micro-kernel variant; ``KernelISA/preferred`` unless you force one for testing.
    ///   - planCacheCapacity: Most input-shape signatures whose plans are kept. At least 1.
    ///   - memoryLimitBytes: Largest arena of intermediate values one run may need; a run that needs more throws `.limitExceeded`.
    ///   - threadPool: Kernel threads shared with other sessions, in place of the session's own
    ///     `threadCount` threads.
    public init(
        threadCount: Int? = nil,
        optimizationLevel: OptimizationLevel = .all,
        isa: KernelISA = .preferred,
        planCacheCapacity: Int = 32,
        memoryLimitBytes: Int = 8 << 30,
        threadPool: SharedThreadPool? = nil
    ) {
        self.threadCount = threadPool?.threadCount ?? max(1, threadCount ?? Self.onlineProcessorCount)
        self.threadPool = threadPool
        self.optimizationLevel = optimizationLevel
        self.isa = isa
        self.planCacheCapacity = max(1, planCacheCapacity)
        self.memoryLimitBytes = memoryLimitBytes
    }

    static var onlineProcessorCount: Int {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 1
        #endif
    }
}
