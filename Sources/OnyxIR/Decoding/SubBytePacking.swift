import OnyxCore

/// ONNX's packed form of the types narrower than a byte (int4, uint4, float4e2m1: two to a byte;
/// int2, uint2: four), which Onyx unpacks to one element per byte in memory.
///
/// Elements fill each byte from its least significant bits; a last byte that is not full is
/// padded. Unpacking sign-extends int4 and int2, so the byte holds the element's value.
enum SubBytePacking {
    /// Unpacks `count` elements of `type` from `packed` (`type.packedByteCount(count)` bytes)
    /// into `unpacked` (`count` bytes).
    static func unpack(_ packed: UnsafeRawPointer, count: Int, type: DataType, into unpacked: UnsafeMutableRawPointer) {
        let bits = type.bitWidth
        let perByte = 8 / bits
        let mask: UInt8 = (1 << UInt8(bits)) - 1
        let signed = type == .int4 || type == .int2
        let source = packed.assumingMemoryBound(to: UInt8.self)
        let target = unpacked.assumingMemoryBound(to: UInt8.self)
        for i in 0..<count {
            let shift = UInt8((i % perByte) * bits)
            let value = (source[i / perByte] >> shift) & mask
            // Shifting the field to the top and back (arithmetically) copies its sign bit down.
            target[i] = signed ? UInt8(bitPattern: Int8(bitPattern: value << UInt8(8 - bits)) >> UInt8(8 - bits)) : value
        }
    }

    /// Packs `count` unpacked elements of `type` into `type.packedByteCount(count)` bytes.
    static func pack(_ unpacked: UnsafeRawPointer, count: Int, type: DataType) -> [UInt8] {
        let bits = type.bitWidth
        let perByte = 8 / bits
        let mask: UInt8 = (1 << UInt8(bits)) - 1
        let source = unpacked.assumingMemoryBound(to: UInt8.self)
        var packed = [UInt8](repeating: 0, count: type.packedByteCount(count))
        for i in 0..<count {
            packed[i / perByte] |= (source[i] & mask) << UInt8((i % perByte) * bits)
        }
        return packed
    }
}
