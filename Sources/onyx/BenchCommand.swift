import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Onyx
import OnyxServe

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time a model: load time, latency percentiles, throughput, peak memory.",
        discussion: """
            Inputs come from --input files (as for `onyx run`) or are random, with each symbolic axis \
            set by --dim NAME=N when given (e.g. --dim sequence=128), else to --batch. Runs --warmup untimed runs, then runs for --duration seconds (at least 10 runs). \
            heap_growth_bytes_per_run: how much memory in use (glibc mallinfo2) grows per untimed \
            run(orderedInputs:) after the timed ones, outputs dropped; 0 when a run keeps nothing. \
            integer_steps (quantized models): the quantized operators the session runs, by type: \
            DynamicQuantizeMatMul and MatMulIntegerToFloat are fused integer products, a MatMulInteger \
            left over is a chain that did not fuse. \
            --profile: as many runs again, each node timed, printed as time per operator type \
            (largest first) so the next gap shows without a profiler.
            """)

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .customLong("input"), help: "An input tensor file, as FILE or NAME=FILE.")
    var inputs: [String] = []

    @Option(help: "Extent given to symbolic (batch) axes of random inputs.")
    var batch = 1

    @Option(name: .customLong("dim"), help: "Extent of a named symbolic axis of random inputs, as NAME=N (repeatable).")
    var dims: [String] = []

    @Option(help: "Untimed runs first.")
    var warmup = 5

    @Option(help: "Seconds of timed runs.")
    var duration = 5.0

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "Also time the server's tensor JSON codec on these inputs (decode and encode MB/s).")
    var codec = false

    @Flag(help: "After the timed runs, profile as many more and print each operator type's share of the time.")
    var profile = false

    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
        try reportingErrors {
            let baseResident = Self.residentMegabytes(field: "VmRSS:")
            let loadStart = ContinuousClock.now
            let session = try InferenceSession(contentsOf: model, options: try modelOptions.sessionOptions())
            let load = ContinuousClock.now - loadStart
            let feeds = try inputs.isEmpty ? randomInputs(session) : RunCommand.bind(inputs, to: session).mapValues { value in
                guard let tensor = value.tensor else { throw CommandLineInputError("onyx bench takes tensor inputs; got a \(value.type)") }
                return tensor
            }

            for _ in 0..<warmup { _ = try session.run(feeds) }
            var samples = LatencySamples()
            let end = ContinuousClock.now + .milliseconds(Int(duration * 1000))
            var lastProgress = ContinuousClock.now
            while ContinuousClock.now < end || samples.count < 10 {
                let start = ContinuousClock.now
                _ = try session.run(feeds)
                samples.add((ContinuousClock.now - start).milliseconds)
                if !json, ContinuousClock.now - lastProgress > .seconds(1) {
                    FileHandle.standardError.write(Data("\r\(samples.count) runs…".utf8))
                    lastProgress = .now
                }
            }
            if !json { FileHandle.standardError.write(Data("\r".utf8)) }
            let sorted = samples.kept.sorted()
            func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
            let total = samples.total
            let batchRows = feeds.values.first?.shape.first ?? 1
            var result: [(String, Any)] = [
                ("model", model),
                ("threads", session.options.threadCount),
                ("isa", session.options.isa.rawValue),
                ("batch", batchRows),
                ("runs", samples.count),
                ("load_ms", load.milliseconds),
                ("p50_ms", percentile(0.5)),
                ("p90_ms", percentile(0.9)),
                ("p99_ms", percentile(0.99)),
                ("mean_ms", total / Double(samples.count)),
                ("throughput_per_s", Double(samples.count * batchRows) / (total / 1000)),
                ("peak_rss_mb", Self.peakResidentMegabytes()),
                ("base_rss_mb", baseResident),
            ]
            if let growth = try Self.heapGrowthPerRun(session, feeds) { result.append(("heap_growth_bytes_per_run", growth)) }
            let integerSteps = Self.integerSteps(session)
            if !integerSteps.isEmpty { result.append(("integer_steps", json ? integerSteps as Any : Self.counts(integerSteps))) }
            if codec { result += try Self.codecThroughput(feeds) }
            if profile {
                // Separate runs, so the clock reads do not touch the latencies above.
                var runProfile = RunProfile()
                for _ in 0..<samples.count { _ = try session.run(feeds, profile: &runProfile) }
                result.append(("profile", Self.profileRows(runProfile, json: json)))
            }
            if json {
                let object = Dictionary(uniqueKeysWithValues: result)
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                for (key, value) in result {
                    if let d = value as? Double {
                        print("\(key): \(String(format: "%.3f", d))")
                    } else if let table = value as? String, key == "profile" {
                        print(table, terminator: "")
                    } else {
                        print("\(key): \(value)")
                    }
                }
            }
        }
    }

    /// How many of the nodes the session runs take or make quantized values, per operator (fused
    /// integer products such as DynamicQuantizeMatMul apart from unfused MatMulIntegers), so a
    /// benchmark of an int8 model shows whether it ran on the fused path.
    static func integerSteps(_ session: InferenceSession) -> [String: Int] {
        var counts: [String: Int] = [:]
        for node in session.preparedNodes where InspectCommand.isQuantized(opType: node.opType) {
            counts[node.domain.isEmpty ? node.opType : "\(node.opType) (\(node.domain))", default: 0] += 1
        }
        return counts
    }

    /// "A × 2, B × 1", largest first.
    static func counts(_ counts: [String: Int]) -> String {
        counts.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { "\($0.key) × \($0.value)" }.joined(separator: ", ")
    }

    /// Nodes listed by name under the per-type table: the few where a gap usually hides.
    static let slowestNodeCount = 10

    /// The profile by operator type, then by node: a JSON object of two arrays (every node, slowest
    /// first), or text tables (the slowest nodes only).
    static func profileRows(_ profile: RunProfile, json: Bool) -> Any {
        let runs = Double(max(profile.runs, 1))
        let types = profile.byOperatorType
        if json {
            return [
                "by_op_type": types.map { entry -> [String: Any] in
                    ["op_type": entry.opType, "nodes": entry.nodeCount, "ms_per_run": entry.seconds * 1000 / runs,
                     "min_ms": entry.fastestSeconds * 1000, "share": entry.share]
                },
                "by_node": profile.byNode.map { entry -> [String: Any] in
                    ["op_type": entry.opType, "name": entry.name, "ms_per_run": entry.seconds * 1000 / runs,
                     "min_ms": entry.fastestSeconds * 1000, "share": entry.share]
                },
            ]
        }
        func cell(_ text: String, _ width: Int) -> String {
            (text.count > width ? String(text.prefix(width - 1)) + "…" : text).padding(toLength: width, withPad: " ", startingAt: 0)
        }
        var table = "profile (\(profile.runs) runs, \(String(format: "%.3f", profile.totalSeconds * 1000 / runs)) ms per run in nodes):\n"
        table += "  " + cell("op type", 30) + "   nodes  ms/run   share\n"
        for entry in types {
            table += "  " + cell(entry.opType, 30)
                + String(format: " %7d %7.3f %6.1f%%\n", entry.nodeCount, entry.seconds * 1000 / runs, entry.share * 100)
        }
        table += "slowest nodes:\n"
        for entry in profile.byNode.prefix(slowestNodeCount) {
            table += "  " + cell(entry.opType, 30) + " " + cell(entry.name, 48)
                + String(format: " %7.3f %6.1f%%\n", entry.seconds * 1000 / runs, entry.share * 100)
        }
        return table
    }

    /// `--dim NAME=N` as a table, refusing a malformed entry or a name no input has.
    private func namedExtents(_ session: InferenceSession) throws -> [String: Int] {
        var names = Set<String>()
        for value in session.inputs {
            for case .symbolic(let name) in value.type?.shape?.dimensions ?? [] { names.insert(name) }
        }
        var extents: [String: Int] = [:]
        for entry in dims {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let n = Int(parts[1]), n >= 0 else {
                throw CommandLineInputError("--dim takes NAME=N with N a non-negative integer; got '\(entry)'")
            }
            let name = String(parts[0])
            guard names.contains(name) else {
                let known = names.isEmpty ? "none" : names.sorted().joined(separator: ", ")
                throw CommandLineInputError("--dim \(entry): no input has a symbolic axis '\(name)' (the model's: \(known))")
            }
            extents[name] = n
        }
        return extents
    }

    private func randomInputs(_ session: InferenceSession) throws -> [String: Tensor] {
        var generator = SystemRandomNumberGenerator()
        var feeds: [String: Tensor] = [:]
        let named = try namedExtents(session)
        for value in session.inputs {
            guard let type = value.type, let shape = type.shape else {
                throw CommandLineInputError("input '\(value.name)' has no declared shape; give --input")
            }
            let extents = shape.dimensions.map { d -> Int in
                switch d {
                case .fixed(let n): return n
                case .symbolic(let name): return named[name] ?? batch
                case .unknown: return batch
                }
            }
            // Refuses negative or overflowing declared extents before anything is allocated.
            let zeros = try Tensor.zeros(type.dataType, shape: extents)
            let count = zeros.elementCount
            switch type.dataType {
            case .float: feeds[value.name] = try Tensor(shape: extents, scalars: (0..<count).map { _ in Float.random(in: -1...1, using: &generator) })
            case .int64: feeds[value.name] = try Tensor(shape: extents, scalars: (0..<count).map { _ in Int64.random(in: 0..<2, using: &generator) })
            // Quantized inputs over their whole range, as real data is, not zeros.
            case .uint8: feeds[value.name] = try Tensor(shape: extents, scalars: (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
            case .int8: feeds[value.name] = try Tensor(shape: extents, scalars: (0..<count).map { _ in Int8.random(in: .min ... .max, using: &generator) })
            default: feeds[value.name] = zeros
            }
        }
        return feeds
    }

    /// Decode and encode throughput of an Open Inference Protocol JSON request holding `feeds`.
    static func codecThroughput(_ feeds: [String: Tensor]) throws -> [(String, Any)] {
        let outputs = feeds.sorted { $0.key < $1.key }.map { NamedTensor(name: $0.key, tensor: $0.value) }
        // The response encoder writes the same tensor JSON a client sends; wrap it as a request body.
        let (encoded, _) = InferenceProtocol.encodeResponse(
            modelName: "m", version: "1", id: nil, outputs: outputs, binaryOutputs: [], allBinary: false)
        var body = Array("{\"inputs\":".utf8)
        let document = try JSONParser.parse(encoded)
        guard case .array(let list)? = document["outputs"] else {
            throw CommandLineInputError("could not build a request body")
        }
        var writer = JSONWriter()
        writer.value(.array(list))
        body += writer.bytes + Array("}".utf8)
        func time(_ work: () throws -> Void) rethrows -> Double {
            var best = Double.infinity
            for _ in 0..<5 {
                let start = ContinuousClock.now
                try work()
                best = min(best, (ContinuousClock.now - start).milliseconds)
            }
            return best
        }
        let decodeMs = try time { _ = try InferenceProtocol.decodeRequest(body, headerLength: nil, maxElements: 1 << 28) }
        let encodeMs = time {
            _ = InferenceProtocol.encodeResponse(modelName: "m", version: "1", id: nil, outputs: outputs, binaryOutputs: [], allBinary: false)
        }
        let megabytes = Double(body.count) / 1e6
        return [
            ("json_request_mb", megabytes),
            ("json_decode_mb_per_s", megabytes / (decodeMs / 1000)),
            ("json_encode_mb_per_s", Double(encoded.count) / 1e6 / (encodeMs / 1000)),
        ]
    }

    /// How much the heap in use grows per steady-state `run(orderedInputs:)` whose outputs are
    /// dropped (glibc `mallinfo2`, all arenas and mmapped blocks, over 200 runs), or `nil` off glibc
    /// x86-64. Zero means a run keeps nothing; allocations a run frees again do not show here.
    static func heapGrowthPerRun(_ session: InferenceSession, _ feeds: [String: Tensor]) throws -> Double? {
        let ordered = session.inputs.compactMap { feeds[$0.name] }
        _ = try session.run(orderedInputs: ordered)
        guard ordered.count == session.inputs.count, let before = HeapInUse.bytes() else { return nil }
        let runs = 200
        for _ in 0..<runs { _ = try session.run(orderedInputs: ordered) }
        guard let after = HeapInUse.bytes() else { return nil }
        return Double(after - before) / Double(runs)
    }

    /// VmHWM from /proc/self/status, in MiB.
    static func peakResidentMegabytes() -> Double { residentMegabytes(field: "VmHWM:") }

    /// A `/proc/self/status` memory field (VmHWM: peak resident, VmRSS: resident now) in MB.
    static func residentMegabytes(field: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
              let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kilobytes / 1024
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}


/// Bytes the C heap holds for the program (glibc `mallinfo2`: `uordblks + hblkhd`).
enum HeapInUse {
    /// `nil` off glibc x86-64: `mallinfo2` is not in Swift's Glibc module, and it is called through
    /// `dlsym` with its struct result returned through the pointer in the first argument register
    /// (the x86-64 System V convention for a large struct).
    static func bytes() -> Int? {
        #if canImport(Glibc) && arch(x86_64)
        guard let symbol = dlsym(nil, "mallinfo2") else { return nil }
        typealias MallInfo2 = @convention(c) (UnsafeMutableRawPointer) -> UnsafeMutableRawPointer?
        let mallinfo2 = unsafeBitCast(symbol, to: MallInfo2.self)
        // On the stack: reading the heap must not change it.
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 10) { fields in
            _ = mallinfo2(UnsafeMutableRawPointer(fields.baseAddress!))
            return fields[7] + fields[4]  // uordblks (in use in the arenas) + hblkhd (mmapped blocks)
        }
        #else
        return nil
        #endif
    }
}

/// Run latencies: every run counts toward the total, and a uniform sample of at most
/// `capacity` of them (reservoir sampling) gives the percentiles, so a model that runs in
/// microseconds does not grow the process by megabytes of samples while it is measured.
struct LatencySamples {
    static let capacity = 1 << 16
    private(set) var kept: [Double] = []
    private(set) var count = 0
    private(set) var total = 0.0
    private var random = SystemRandomNumberGenerator()

    init() { kept.reserveCapacity(Self.capacity) }

    mutating func add(_ milliseconds: Double) {
        count += 1
        total += milliseconds
        if kept.count < Self.capacity {
            kept.append(milliseconds)
        } else {
            let slot = Int.random(in: 0..<count, using: &random)
            if slot < Self.capacity { kept[slot] = milliseconds }
        }
    }
}
