/// Redis Cluster's key-to-slot function: CRC16/XMODEM of the key (or of its hash tag)
/// modulo 16384, as the cluster specification defines it.
public enum RedisSlot {
    /// Number of hash slots in a Redis Cluster.
    public static let count = 16384

    /// The slot of `key`. When the key holds a `{...}` with at least one byte between the
    /// first `{` and the next `}`, only those bytes are hashed, so `{user1000}.following` and
    /// `{user1000}.followers` share a slot; `foo{}{bar}` hashes the whole key.
    @inline(__always)
    public static func of<K: RedisArgument>(_ key: K) -> Int {
        key.withRedisBytes { of(bytes: $0) }
    }

    /// The slot of a key given as raw bytes.
    public static func of(bytes key: UnsafeRawBufferPointer) -> Int {
        let tagged = hashTag(key)
        return Int(crc16(tagged) & 0x3FFF)
    }

    /// The bytes the slot is computed from: the hash tag when there is a non-empty one.
    static func hashTag(_ key: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")) else { return key }
        guard let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 else { return key }
        return UnsafeRawBufferPointer(rebasing: key[(open + 1)..<close])
    }

    /// CRC16/XMODEM (polynomial 0x1021, initial 0, no reflection): `123456789` gives 0x31C3.
    public static func crc16(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var crc: UInt16 = 0
        table.withUnsafeBufferPointer { table in
            for byte in bytes {
                crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
            }
        }
        return crc
    }

    /// The byte-at-a-time table of the polynomial.
    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
