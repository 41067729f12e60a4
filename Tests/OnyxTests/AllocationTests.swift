#if canImport(Glibc)
import Foundation
import Glibc
import Testing
import CAllocationCounter
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
/// The in-memory models below (float16 Conv/MatMul/Gemm staged to float32, LSTM, GRU,
/// Attention) are also checked for allocations a run frees again: the test executable counts
/// malloc calls (`CAllocationCounter`), and a run of such a model may make no more of them than
/// a run of a model that only negates its inputs into the same number of outputs (the returned
/// array and output tensors are the run's own allocations). The count is compared only in an
/// optimised build (a debug build allocates in unspecialised generic code).
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
        try Self.expectNothingKept(fixture, outputBytes: outputBytes) { _ = try session.run(orderedInputs: feeds) }
    }

    /// Expects `run` to keep no heap memory: growth over 200 runs within the outputs' bytes and
    /// at most 64 bytes a run.
    static func expectNothingKept(_ name: String, outputBytes: Int, _ run: () throws -> Void) throws {
        // Other suites run at the same time and move the process-wide figure either way: the
        // smallest growth over a few windows is this session's own.
        let runs = 200
        var smallest = Int.max
        for _ in 0..<5 {
            let before = try #require(heapInUse())
            for _ in 0..<runs { try run() }
            smallest = min(smallest, try #require(heapInUse()) - before)
        }
        #expect(smallest <= outputBytes * runs, "\(name): the heap grew by \(smallest) bytes in \(runs) runs")
        #expect(smallest <= 64 * runs, "\(name): \(smallest / runs) bytes kept per run")
    }

    // MARK: - Staged and scratch-using operators

    /// A model of one node family, its feeds, and the opset it needs.
    struct StagedCase: CustomTestStringConvertible, Sendable {
        let name: String
        let opset: Int
        let graph: @Sendable () throws -> (Graph, [Tensor])
        var testDescription: String { name }
    }

    static func tensor(_ shape: [Int], _ type: DataType, seed: Int) throws -> Tensor {
        try GemmConvTests.random(shape, seed: seed).converted(to: type)
    }

    static func inputs(_ names: [String]) -> [Value] { names.map { Value(name: $0, type: nil) } }

    /// Conv → Flatten → MatMul → Gemm, every tensor of `type` (float16 and double go through
    /// ``Float32Staged``).
    static func convMatMulGemm(_ type: DataType) -> StagedCase {
        StagedCase(name: "Conv-MatMul-Gemm \(type)", opset: 17) {
            let graph = Graph(
                nodes: [
                    Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
                    Node(name: "flatten", opType: "Flatten", inputs: ["c"], outputs: ["f"]),
                    Node(name: "matmul", opType: "MatMul", inputs: ["f", "m"], outputs: ["h"]),
                    Node(name: "gemm", opType: "Gemm", inputs: ["h", "g"], outputs: ["y"], attributes: ["transB": .int(1)]),
                ],
                inputs: inputs(["x", "g"]), outputs: [Value(name: "y", type: nil)],
                initializers: [("w", try tensor([4, 3, 3, 3], type, seed: 1)), ("m", try tensor([144, 16], type, seed: 2))])
            return (graph, [try tensor([1, 3, 8, 8], type, seed: 3), try tensor([8, 16], type, seed: 4)])
        }
    }

    /// One recurrent layer (`cell` is LSTM or GRU), weights constant, initial state a feed.
    static func recurrent(_ cell: String, _ type: DataType) -> StagedCase {
        StagedCase(
            name: "\(cell) \(type)", opset: 22
        ) {
            let gates = cell == "LSTM" ? 4 : 3, hidden = 5
            let outputs = cell == "LSTM" ? ["y", "yh", "yc"] : ["y", "yh"]
            let graph = Graph(
                nodes: [
                    Node(name: "rnn", opType: cell, inputs: ["x", "w", "r", "b", "", "h0"], outputs: outputs,
                         attributes: ["hidden_size": .int(hidden), "direction": .string("bidirectional")]),
                ],
                inputs: inputs(["x", "h0"]), outputs: outputs.map { Value(name: $0, type: nil) },
                initializers: [
                    ("w", try tensor([2, gates * hidden, 4], type, seed: 1)), ("r", try tensor([2, gates * hidden, hidden], type, seed: 2)),
                    ("b", try tensor([2, 2 * gates * hidden], type, seed: 3)),
                ])
            return (graph, [try tensor([3, 2, 4], type, seed: 4), try tensor([2, 2, hidden], type, seed: 5)])
        }
    }

    /// ONNX Attention with a past cache and a boolean mask, then RotaryEmbedding of its output.
    static func attention(_ type: DataType) -> StagedCase {
        StagedCase(
            name: "Attention \(type)", opset: 23
        ) {
            let graph = Graph(
                nodes: [
                    Node(name: "attention", opType: "Attention", inputs: ["q", "k", "v", "mask", "pk", "pv"],
                         outputs: ["y", "presentK", "presentV"], attributes: ["is_causal": .int(0)]),
                    Node(name: "rotary", opType: "RotaryEmbedding", inputs: ["y", "cos", "sin", "positions"], outputs: ["r"]),
                ],
                inputs: inputs(["q", "k", "v", "mask", "pk", "pv", "positions"]),
                outputs: ["r", "presentK", "presentV"].map { Value(name: $0, type: nil) },
                initializers: [("cos", try tensor([8, 4], type, seed: 1)), ("sin", try tensor([8, 4], type, seed: 2))])
            let mask = try Tensor(shape: [3, 5], scalars: (0..<15).map { $0 % 4 != 3 })
            return (graph, [
                try tensor([1, 2, 3, 8], type, seed: 3), try tensor([1, 2, 2, 8], type, seed: 4),
                try tensor([1, 2, 2, 8], type, seed: 5), mask,
                try tensor([1, 2, 3, 8], type, seed: 6), try tensor([1, 2, 3, 8], type, seed: 7),
                try Tensor(shape: [1, 3], scalars: [Int64(0), 2, 5]),
            ])
        }
    }

    static let stagedCases: [StagedCase] = [
        convMatMulGemm(.float16), convMatMulGemm(.double), convMatMulGemm(.float),
        recurrent("LSTM", .float16), recurrent("GRU", .float16), recurrent("LSTM", .float),
        attention(.float16), attention(.float),
    ]

    /// Malloc calls in one run: the fewest over a few windows of `runs` runs, per run.
    static func allocationsPerRun(_ run: () throws -> Void, runs: Int = 50) rethrows -> Double {
        for _ in 0..<5 { try run() }
        var fewest = Int.max
        for _ in 0..<5 {
            onyx_allocation_counting_start()
            for _ in 0..<runs { try run() }
            fewest = min(fewest, onyx_allocation_counting_stop())
        }
        return Double(fewest) / Double(runs)
    }

    @Test(arguments: stagedCases)
    func stagedRunsAllocateNothing(_ staged: StagedCase) throws {
        try #require(onyx_allocation_counting_available() != 0, "malloc counting needs glibc and no sanitizer")
        let (graph, feeds) = try staged.graph()
        let options = SessionOptions(threadCount: 1)
        let session = try InferenceSession(model: Model(opsetImports: ["": staged.opset], graph: graph), options: options)
        let outputBytes = try session.run(orderedInputs: feeds).reduce(0) { $0 + $1.byteCount }

        // The same feeds, each output a Neg of the first: a run's own allocations (the returned
        // array, the output tensors) and nothing else.
        let outputCount = graph.outputs.count
        let reference = try InferenceSession(
            model: Model(opsetImports: ["": staged.opset], graph: Graph(
                nodes: (0..<outputCount).map { Node(name: "neg\($0)", opType: "Neg", inputs: [graph.inputs[0].name], outputs: ["o\($0)"]) },
                inputs: graph.inputs, outputs: (0..<outputCount).map { Value(name: "o\($0)", type: nil) })),
            options: options)
        let own = try Self.allocationsPerRun { _ = try reference.run(orderedInputs: feeds) }
        let counted = try Self.allocationsPerRun { _ = try session.run(orderedInputs: feeds) }
        #if DEBUG
        // Unoptimised code allocates where the optimiser does not (unspecialised generic
        // iteration such as `shape.reduce` boxes its iterator), so the count is only compared
        // in an optimised build: `swift test -c release -Xswiftc -enable-testing`.
        _ = (own, counted)
        #else
        #expect(counted <= own, "\(staged.name): \(counted) allocations per run, a run's own are \(own)")
        #endif
        try Self.expectNothingKept(staged.name, outputBytes: outputBytes) { _ = try session.run(orderedInputs: feeds) }
    }
}
#endif
