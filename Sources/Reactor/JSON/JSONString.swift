/// JSON string escaping and unescaping over bytes.
public enum JSONString {
    /// Appends the unescaped bytes of the string body `bytes[range]` (between the quotes,
    /// already validated by `JSONScanner.skipString`) to `out`. `\u` escapes become UTF-8,
    /// surrogate pairs included. A lone surrogate becomes U+FFFD, or, with
    /// `keepingLoneSurrogates`, its 3-byte generalized UTF-8 form (not valid UTF-8): a
    /// reader that must never turn one text into another (an event_id) keeps the
    /// difference, and a store that wants valid UTF-8 refuses it. Only text from a scanner
    /// that does not `checksStorable` can hold one (the producer refuses it at the door).
    public static func unescape(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, into out: inout [UInt8],
                                keepingLoneSurrogates: Bool = false) {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let c = bytes[i]
            guard c == UInt8(ascii: "\\") else {
                out.append(c)
                i += 1
                continue
            }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex4(bytes, i)
                i += 4
                if (0xD800...0xDBFF).contains(scalar), i + 6 <= end, bytes[i] == UInt8(ascii: "\\"),
                   bytes[i + 1] == UInt8(ascii: "u") {
                    let low = hex4(bytes, i + 2)
                    if (0xDC00...0xDFFF).contains(low) {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                }
                if let valid = Unicode.Scalar(scalar) {
                    appendUTF8(valid, to: &out)
                } else if keepingLoneSurrogates {
                    out.append(UInt8(0xE0 | (scalar >> 12)))
                    out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
                    out.append(UInt8(0x80 | (scalar & 0x3F)))
                } else {
                    appendUTF8("\u{FFFD}", to: &out)
                }
            default: out.append(e)  // '"', '\\', '/'
            }
        }
    }

    private static func hex4(_ bytes: UnsafeRawBufferPointer, _ i: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 4 | (JSONScanner.hexValue(bytes[i + k]) ?? 0) }
        return v
    }

    private static func appendUTF8(_ scalar: Unicode.Scalar, to out: inout [UInt8]) {
        for unit in UTF8.encode(scalar)! { out.append(unit) }
    }

    private static let hexDigits: StaticString = "0123456789abcdef"

    /// Writes `bytes` (valid UTF-8) as a quoted JSON string: only `"`, `\` and control
    /// characters are escaped, so the same text always encodes the same way.
    public static func writeQuoted(_ bytes: UnsafeRawBufferPointer, to out: ByteBuffer) {
        out.write(byte: UInt8(ascii: "\""))
        var runStart = 0
        for i in 0..<bytes.count {
            let c = bytes[i]
            guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else { continue }
            out.write(UnsafeRawBufferPointer(rebasing: bytes[runStart..<i]))
            switch c {
            case UInt8(ascii: "\""): out.write("\\\"" as StaticString)
            case UInt8(ascii: "\\"): out.write("\\\\" as StaticString)
            case 0x0A: out.write("\\n" as StaticString)
            case 0x0D: out.write("\\r" as StaticString)
            case 0x09: out.write("\\t" as StaticString)
            default:
                out.write("\\u00" as StaticString)
                out.write(byte: hexDigits.utf8Start[Int(c >> 4)])
                out.write(byte: hexDigits.utf8Start[Int(c & 0xF)])
            }
            runStart = i + 1
        }
        out.write(UnsafeRawBufferPointer(rebasing: bytes[runStart..<bytes.count]))
        out.write(byte: UInt8(ascii: "\""))
    }

    /// Writes a Swift string as a quoted JSON string.
    public static func writeQuoted(_ string: String, to out: ByteBuffer) {
        var s = string
        s.withUTF8 { writeQuoted(UnsafeRawBufferPointer($0), to: out) }
    }

    /// A Swift string as a quoted JSON string (error bodies and other slow paths).
    public static func quoted(_ string: String) -> String {
        let buffer = ByteBuffer(capacity: string.utf8.count + 8)
        writeQuoted(string, to: buffer)
        return buffer.readString()
    }
}
