import CFuzzDriver
#if canImport(Glibc)
import Glibc
#endif
import Onyx
import OnyxServe

/// Binary-extension bodies. Input layout: 4 bytes little-endian header length (as the
/// `Inference-Header-Content-Length` field would carry it; 0xFFFFFFFF means "no header"),
/// then the body: JSON part followed by the binary tail.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBinaryRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 4 else { return 0 }
    let raw = UInt32(data[0]) | UInt32(data[1]) << 8 | UInt32(data[2]) << 16 | UInt32(data[3]) << 24
    // Signed, so negative lengths reach the decoder as they would from a parsed header of a bad client.
    let headerLength: Int? = raw == 0xFFFF_FFFF ? nil : Int(Int32(bitPattern: raw))
    let body = Array(UnsafeBufferPointer(start: data + 4, count: size - 4))
    do {
        let decoded = try InferenceProtocol.decodeRequest(body, headerLength: headerLength, maxElements: 1 << 16)
        _ = InferenceProtocol.encodeResponse(
            modelName: "m", version: "1", id: decoded.request.id, outputs: decoded.request.inputs,
            binaryOutputs: decoded.binaryOutputs, allBinary: true)
    } catch {
    }
    return 0
}

@main
enum Driver {
    static func main() { exit(onyx_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv)) }
}
