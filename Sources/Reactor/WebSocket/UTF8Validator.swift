/// Validates UTF-8 over raw bytes, without building a String (RFC 3629: no overlongs, no
/// surrogates, nothing above U+10FFFF). Text messages and close reasons are checked once each.
public enum UTF8Validator {
    /// True when `bytes` is well-formed UTF-8.
    @inlinable
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        firstInvalidOffset(bytes) == nil
    }

    /// The offset of the first byte that starts an ill-formed sequence, or nil when `bytes`
    /// is well-formed UTF-8 (so a refusal can say where the problem is).
    @inlinable
    public static func firstInvalidOffset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let base = bytes.baseAddress else { return nil }
        let count = bytes.count
        var i = 0
        while i < count {
            // ASCII fast path: NDJSON is mostly ASCII, so skip 16 then 8 bytes at a time.
            while i + 16 <= count {
                let a = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let b = base.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
                if (a | b) & 0x8080_8080_8080_8080 != 0 { break }
                i += 16
            }
            if i + 8 <= count,
               base.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8
                continue
            }
            if i >= count { break }
            let lead = base.load(fromByteOffset: i, as: UInt8.self)
            if lead < 0x80 {
                i += 1
                continue
            }
            // The second byte's range depends on the lead byte; that is where overlongs,
            // surrogates and code points above U+10FFFF are excluded.
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            let length: Int
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: return i
            }
            if i + length > count { return i }
            let second = base.load(fromByteOffset: i + 1, as: UInt8.self)
            if second < low || second > high { return i }
            var k = 2
            while k < length {
                if base.load(fromByteOffset: i + k, as: UInt8.self) & 0xC0 != 0x80 { return i }
                k += 1
            }
            i += length
        }
        return nil
    }
}
