/// The Sec-WebSocket-Key / Sec-WebSocket-Accept arithmetic (RFC 6455 sections 4.1 and 4.2.2).
public enum WebSocketHandshakeKey {
    static let guid: StaticString = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// `base64(SHA1(key + GUID))`, the value a server answers in Sec-WebSocket-Accept.
    public static func acceptValue(forKey key: String) -> String {
        var input = Array(key.utf8)
        input.append(contentsOf: UnsafeRawBufferPointer(start: guid.utf8Start, count: guid.utf8CodeUnitCount))
        return Base64.encode(SHA1.digest(input))
    }

    /// A fresh client key: 16 bytes from the CSPRNG, base64-encoded.
    public static func makeClientKey() -> String {
        var nonce = [UInt8](repeating: 0, count: 16)
        WebSocketRandom.fill(&nonce)
        return Base64.encode(nonce)
    }

    /// Whether `key` is the base64 encoding of exactly 16 bytes, as a client must send.
    public static func isValidClientKey(_ key: Substring) -> Bool {
        guard let decoded = Base64.decode(key) else { return false }
        return decoded.count == 16
    }
}

/// Standard base64 (RFC 4648, with padding). Only handshake values use it.
enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            for shift in [18, 12, 6, 0] { out.append(alphabet[Int(n >> UInt32(shift) & 63)]) }
            i += 3
        }
        let rest = bytes.count - i
        if rest > 0 {
            let n = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(rest == 2 ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Strict decoding: canonical padding, no whitespace, unused bits zero. Nil when invalid.
    static func decode(_ text: Substring) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            var n: UInt32 = 0
            var padding = 0
            for k in 0..<4 {
                let c = chars[i + k]
                let value: UInt32
                switch c {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(c - UInt8(ascii: "A"))
                case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(c - UInt8(ascii: "a")) + 26
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(c - UInt8(ascii: "0")) + 52
                case UInt8(ascii: "+"): value = 62
                case UInt8(ascii: "/"): value = 63
                case UInt8(ascii: "=") where k >= 2 && i + 4 == chars.count: padding += 1; value = 0
                default: return nil
                }
                if padding > 0 && c != UInt8(ascii: "=") { return nil }
                n = n << 6 | value
            }
            out.append(UInt8(n >> 16 & 0xFF))
            if padding < 2 { out.append(UInt8(n >> 8 & 0xFF)) } else if n >> 8 & 0xFF != 0 { return nil }
            if padding < 1 { out.append(UInt8(n & 0xFF)) } else if n & 0xFF != 0 { return nil }
            i += 4
        }
        return out
    }
}
