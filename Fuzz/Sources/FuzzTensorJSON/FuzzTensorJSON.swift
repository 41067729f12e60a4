import CFuzzDriver
#if canImport(Glibc)
import Glibc
#endif
import Onyx
import OnyxServe

/// Whole JSON `/infer` bodies (no binary tail), with a small element limit.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTensorJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        let decoded = try InferenceProtocol.decodeRequest(body, headerLength: nil, maxElements: 1 << 16)
        // Encoding what was decoded must not crash either (the echo path of the server's writer).
        let outputs = decoded.request.inputs
        _ = InferenceProtocol.encodeResponse(
            modelName: "m", version: "1", id: decoded.request.id, outputs: outputs,
            binaryOutputs: decoded.binaryOutputs, allBinary: decoded.allBinary)
    } catch {
    }
    return 0
}

@main
enum Driver {
    static func main() { exit(onyx_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv)) }
}
