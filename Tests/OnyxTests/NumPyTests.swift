import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

@Suite struct NumPyTests {
    @Test func roundTripsEveryType() throws {
        for type in DataType.allCases {
            var tensor = Tensor(zeros: type, shape: [2, 3])
            if type == .string { tensor = try Tensor(strings: ["a", "", "bc", "日本", "a", "z"], shape: [2, 3]) }
            if type != .string { tensor.withUnsafeMutableBytes { bytes in
                for i in 0..<bytes.count { bytes[i] = type == .bool || type.bitWidth < 8 ? UInt8(i % 2) : UInt8(truncatingIfNeeded: i * 7 + 1) }
            } }
            guard type.isNative || type == .string else {
                // No NumPy dtype: written as ml_dtypes writes them (opaque void elements), refused on reading.
                let bytes = tensor.npyBytes()
                #expect(String(decoding: bytes[10..<60], as: UTF8.self).contains("'descr': '|V\(type.byteWidth)'"))
                #expect(bytes.suffix(tensor.byteCount) == ArraySlice(tensor.withUnsafeBytes { Array($0) }))
                let refusal = #expect(throws: OnyxError.self) { try Tensor(npy: bytes) }
                #expect(refusal?.message.contains("opaque") == true, "\(type)")
                continue
            }
            let decoded = try Tensor(npy: tensor.npyBytes())
            #expect(decoded.dataType == type)
            #expect(decoded.shape == [2, 3])
            #expect(decoded.withUnsafeBytes { Array($0) } == tensor.withUnsafeBytes { Array($0) })
        }
    }

    @Test func readsNumPyWrittenHeader() throws {
        // np.save of np.arange(3, dtype=np.float32): header written by NumPy 2.x.
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"
        var bytes: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        let padded = header + String(repeating: " ", count: 118 - header.utf8.count - 10 + 10 - 1) + "\n"
        bytes += [UInt8(padded.utf8.count & 0xFF), UInt8(padded.utf8.count >> 8)]
        bytes += Array(padded.utf8)
        for v: Float in [0, 1, 2] { withUnsafeBytes(of: v) { bytes += $0 } }
        let tensor = try Tensor(npy: bytes)
        #expect(tensor.shape == [3])
        #expect(try tensor.scalars(as: Float.self) == [0, 1, 2])
    }

    @Test func rejectsShortData() {
        var bytes = (try! Tensor(shape: [4], scalars: [Float](repeating: 1, count: 4))).npyBytes()
        bytes.removeLast(4)
        #expect(throws: OnyxError.self) { try Tensor(npy: bytes) }
    }

    @Test func rejectsGarbage() {
        #expect(throws: OnyxError.self) { try Tensor(npy: [1, 2, 3]) }
        #expect(throws: OnyxError.self) { try Tensor(npy: Array("\u{93}NUMPY\u{1}\u{0}".utf8)) }
    }
}
