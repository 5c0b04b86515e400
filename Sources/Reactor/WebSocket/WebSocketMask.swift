/// XOR masking of payloads (RFC 6455 section 5.3), in place, 8 bytes at a time.
public enum WebSocketMask {
    /// XORs `bytes` with the 4-byte `key` (in wire order, loaded as a native UInt32) starting
    /// at key byte 0. Masking and unmasking are the same operation.
    @inlinable
    public static func apply(key: UInt32, to bytes: UnsafeMutableRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let count = bytes.count
        // Both the key and the data are loaded in native order, so byte j of the wide word
        // meets key byte j % 4 whatever the endianness.
        let wide = UInt64(key) | UInt64(key) << 32
        var i = 0
        while i + 32 <= count {
            for k in stride(from: 0, to: 32, by: 8) {
                let v = base.loadUnaligned(fromByteOffset: i + k, as: UInt64.self)
                base.storeBytes(of: v ^ wide, toByteOffset: i + k, as: UInt64.self)
            }
            i += 32
        }
        while i + 8 <= count {
            let v = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            base.storeBytes(of: v ^ wide, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        var tail = wide.littleEndian  // low byte = key byte 0 in memory order
        while i < count {
            let b = base.load(fromByteOffset: i, as: UInt8.self)
            base.storeBytes(of: b ^ UInt8(truncatingIfNeeded: tail), toByteOffset: i, as: UInt8.self)
            tail >>= 8
            i += 1
        }
    }
}
