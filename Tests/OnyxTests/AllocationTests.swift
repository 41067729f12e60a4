#if canImport(Glibc)
import Foundation
import Glibc
import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// A steady-state `run(orderedInputs:)` keeps nothing on the heap once its outputs are dropped.
///
/// Measured with glibc's `mallinfo2` (bytes in use, all arenas and mmapped blocks), which sees
/// memory a run keeps but not memory it allocates and frees again; those per-run allocations
/// were removed by reading the run path and checked with heaptrack (see `onyx bench`).
///
/// The heap is measured process-wide, so other tests running at the same time would disturb it:
/// the suite runs only in a process of its own, `ONYX_ALLOCATION_TESTS=1 swift test --filter
/// AllocationTests` (tools/test.sh does this after the other tests).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["ONYX_ALLOCATION_TESTS"] == "1",
                             "needs a process of its own: ONYX_ALLOCATION_TESTS=1 swift test --filter AllocationTests"))
struct AllocationTests {
    static let fixtures = ["mlp_legacy", "mlp_dynamo", "lenet_legacy", "lenet_dynamo"]

    /// `uordblks + hblkhd`, or `nil` off x86-64 (the struct result comes back through the pointer
    /// in the first argument register, the System V convention for a large struct).
    static func heapInUse() -> Int? {
        #if arch(x86_64)
        guard let symbol = dlsym(nil, "mallinfo2") else { return nil }
        typealias MallInfo2 = @convention(c) (UnsafeMutableRawPointer) -> UnsafeMutableRawPointer?
        let mallinfo2 = unsafeBitCast(symbol, to: MallInfo2.self)
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 10) { fields in
            _ = mallinfo2(UnsafeMutableRawPointer(fields.baseAddress!))
            return fields[7] + fields[4]
        }
        #else
        return nil
        #endif
    }

    static func fixturePath(_ name: String) -> String {
        let root = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
        return "/\(root)/Fixtures/\(name)/model.onnx"
    }

    @Test func theMeasureSeesKeptMemory() throws {
        let before = try #require(Self.heapInUse())
        let kept = Tensor(uninitialized: .float, shape: [1 << 16])
        let after = try #require(Self.heapInUse())
        // The allocator may reuse a little freed space it already counted.
        #expect(after - before >= kept.byteCount * 9 / 10, "\(after - before) bytes for a \(kept.byteCount)-byte tensor")
    }

    @Test(arguments: fixtures)
    func steadyStateRunsKeepNothing(fixture: String) throws {
        let session = try InferenceSession(contentsOf: Self.fixturePath(fixture), options: SessionOptions(threadCount: 1))
        let feeds = try session.inputs.map { value in
            let dims = try #require(value.type?.shape?.dimensions)
            return GemmConvTests.random(dims.map { if case .fixed(let n) = $0 { n } else { 3 } }, seed: 7)
        }
        let outputBytes = try session.run(orderedInputs: feeds).reduce(0) { $0 + $1.byteCount }
        for _ in 0..<5 { _ = try session.run(orderedInputs: feeds) }

        // Other suites run at the same time and move the process-wide figure either way: the
        // smallest growth over a few windows is this session's own.
        let runs = 200
        var smallest = Int.max
        for _ in 0..<5 {
            let before = try #require(Self.heapInUse())
            for _ in 0..<runs { _ = try session.run(orderedInputs: feeds) }
            smallest = min(smallest, try #require(Self.heapInUse()) - before)
        }
        #expect(smallest <= outputBytes * runs, "\(fixture): the heap grew by \(smallest) bytes in \(runs) runs")
        #expect(smallest <= 64 * runs, "\(fixture): \(smallest / runs) bytes kept per run")
    }
}
#endif
