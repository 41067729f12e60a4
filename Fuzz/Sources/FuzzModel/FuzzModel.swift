import CFuzzDriver
#if canImport(Glibc)
import Glibc
#endif
import Onyx

/// Tight limits: a fuzzed model may ask for anything, but nothing may go past these.
let limits = DecodingLimits(
    maxModelBytes: 4 << 20, maxTensorBytes: 1 << 20, maxTotalTensorBytes: 4 << 20, maxGraphDepth: 4, maxRank: 8)
let options = SessionOptions(threadCount: 1, planCacheCapacity: 2, memoryLimitBytes: 16 << 20)
/// Largest input (elements) the target builds to run a session that loaded.
let maxRunElements = 4096

/// One input of zeros per declared input when every input's shape is fixed (symbolic axes become 1).
func zeroInputs(_ session: InferenceSession) -> [String: Tensor]? {
    var inputs: [String: Tensor] = [:]
    var total = 0
    for value in session.inputs {
        guard let type = value.type, let shape = type.shape else { return nil }
        var extents: [Int] = []
        for dimension in shape.dimensions {
            switch dimension {
            case .fixed(let n): extents.append(n)
            case .symbolic, .unknown: extents.append(1)
            }
        }
        // Zero extents skipped, as the server's request decoder counts: [0, 2^40, 2^40] is refused there.
        var count = 1
        for e in extents {
            let (p, overflow) = count.multipliedReportingOverflow(by: max(e, 1))
            guard !overflow, p <= maxRunElements else { return nil }
            count = p
        }
        total += count
        guard total <= maxRunElements else { return nil }
        guard let zeros = try? Tensor.zeros(type.dataType, shape: extents) else { return nil }
        inputs[value.name] = zeros
    }
    return inputs
}

/// `FUZZ_VERBOSE=1`: print each input's error (to see why a reproducer is refused).
let verbose = getenv("FUZZ_VERBOSE") != nil

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModel(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        let model = try Model(bytes: bytes, baseDirectory: nil, limits: limits)
        let session = try InferenceSession(model: model, options: options)
        if let inputs = zeroInputs(session) {
            let outputs = try session.run(inputs)
            if verbose { print("ran: \(outputs.mapValues(\.shape))") }
        }
    } catch {
        if verbose { print("error: \(error)") }
        // A thrown error is the correct answer to a hostile model; only a crash or hang is a finding.
    }
    return 0
}

@main
enum Driver {
    static func main() { exit(onyx_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv)) }
}
