import Reactor

/// Seeded JSON payloads and event ids, mostly ordinary, with the edges of what PostgreSQL
/// can store mixed in: NULs (escaped and raw), lone and paired surrogates, ill-formed and
/// overlong UTF-8, numbers around `numeric`'s limits, digit strings a hundred thousand
/// long, nesting around 1000. Used to compare the producer's verdicts with PostgreSQL's.
struct StorableEdgeGenerator {
    private var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    /// A payload's JSON text and how deeply its arrays and objects nest.
    mutating func payload() -> (bytes: [UInt8], depth: Int) {
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<45: return value(budget: 4)
        case 45..<65: return (number(), 0)
        case 65..<85: return (quoted(stringBody(chunks: 1...4)), 0)
        default: return deeplyNested()
        }
    }

    /// The text between the quotes of an event_id.
    mutating func idBody() -> [UInt8] {
        switch Int.random(in: 0..<10, using: &rng) {
        case 0:
            return []
        case 1:
            // Around the 255-byte limit, with a multibyte or escaped character near the end.
            var body = [UInt8](repeating: UInt8(ascii: "x"), count: Int.random(in: 245...256, using: &rng))
            body += stringChunk()
            return body
        default:
            return stringBody(chunks: 1...6)
        }
    }

    // MARK: Values

    private mutating func value(budget: Int) -> (bytes: [UInt8], depth: Int) {
        let pick = Int.random(in: 0..<10, using: &rng)
        if budget > 0, pick < 2 {
            var out: [UInt8] = [UInt8(ascii: "[")]
            var depth = 0
            for i in 0..<Int.random(in: 0...4, using: &rng) {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                let element = value(budget: budget - 1)
                out += element.bytes
                depth = max(depth, element.depth)
            }
            return (out + [UInt8(ascii: "]")], depth + 1)
        }
        if budget > 0, pick < 4 {
            var out: [UInt8] = [UInt8(ascii: "{")]
            var depth = 0
            for i in 0..<Int.random(in: 0...4, using: &rng) {
                if i > 0 { out += Array(", ".utf8) }
                out += quoted(stringBody(chunks: 0...2)) + [UInt8(ascii: ":")]
                let member = value(budget: budget - 1)
                out += member.bytes
                depth = max(depth, member.depth)
            }
            return (out + [UInt8(ascii: "}")], depth + 1)
        }
        switch pick {
        case 4, 5: return (number(), 0)
        case 6, 7: return (quoted(stringBody(chunks: 0...3)), 0)
        default: return (Array(["true", "false", "null"].randomElement(using: &rng)!.utf8), 0)
        }
    }

    /// Arrays and objects nested around our limit of 1000, sometimes with poison inside.
    private mutating func deeplyNested() -> (bytes: [UInt8], depth: Int) {
        let depth = Int.random(in: 995...1005, using: &rng)
        var out: [UInt8] = []
        var closers: [UInt8] = []
        for _ in 0..<depth {
            if Bool.random(using: &rng) {
                out.append(UInt8(ascii: "["))
                closers.append(UInt8(ascii: "]"))
            } else {
                out += Array("{\"k\":".utf8)
                closers.append(UInt8(ascii: "}"))
            }
        }
        out += Bool.random(using: &rng) ? number() : quoted(stringBody(chunks: 0...2))
        return (out + closers.reversed(), depth)
    }

    private func quoted(_ body: [UInt8]) -> [UInt8] { [UInt8(ascii: "\"")] + body + [UInt8(ascii: "\"")] }

    // MARK: Strings

    private static let plainChunks: [[UInt8]] = [
        "abc", "event-42", " ", "é", "😀", "\u{FFFD}", "\\n", "\\t", "\\\"", "\\\\", "\\/", "\\u0041", "\\u00e9",
        "\\u0001", "\\u001f", "\\u007f", "\\uffff", "\\ufffe", "\\ud83d\\ude00", "\\uD83D\\uDE00", "\\udbff\\udfff",
        "\\ud800\\udc00", "\\\\u0000", "\\\\ud800",
    ].map { Array($0.utf8) }

    private static let poisonChunks: [[UInt8]] = [
        Array("\\u0000".utf8), Array("\\ud800".utf8), Array("\\udc00".utf8), Array("\\uDFFF".utf8),
        Array("\\ud83dx".utf8), Array("\\ude00\\ud83d".utf8), Array("\\ud83d\\ud83d".utf8), Array("\\ud800\\u0041".utf8),
        Array("\\ud800\\n".utf8), Array("\\ud800\\\\udc00".utf8),
        [0x00], [0xFF], [0xFE], [0x80], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],
        [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xF0, 0x80, 0x80, 0x80], [0xF4, 0x90, 0x80, 0x80],
        [0xF8, 0x88, 0x80, 0x80, 0x80], [0xE2, 0x82], [0xF0, 0x9F, 0x98],
    ]

    private mutating func stringChunk() -> [UInt8] {
        if Int.random(in: 0..<4, using: &rng) == 0 { return Self.poisonChunks.randomElement(using: &rng)! }
        return Self.plainChunks.randomElement(using: &rng)!
    }

    private mutating func stringBody(chunks: ClosedRange<Int>) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<Int.random(in: chunks, using: &rng) { out += stringChunk() }
        return out
    }

    // MARK: Numbers

    /// Exponents around every limit numeric_in has, and some ordinary ones.
    private static let exponents: [String] = [
        "0", "1", "5", "308", "309", "400", "16382", "16383", "16384", "16385", "99999", "131067", "131068", "131070",
        "131071", "131072", "131073", "1073741821", "1073741822", "1073741823", "1073741824", "2147483647",
        "2147483648", "9223372036854775808", "99999999999999999999", "000016383", "0000131072",
    ]

    private mutating func number() -> [UInt8] {
        var text = Bool.random(using: &rng) ? "-" : ""
        let longDigits = Int.random(in: 0..<200, using: &rng) == 0
        switch Int.random(in: 0..<10, using: &rng) {
        case 0..<3: text += "0"
        case 3 where longDigits:
            let count = [131_071, 131_072, 131_073].randomElement(using: &rng)!
            text += "1" + String(repeating: Bool.random(using: &rng) ? "0" : "7", count: count - 1)
        default: text += String(Int.random(in: 1...999_999_999, using: &rng))
        }
        switch Int.random(in: 0..<10, using: &rng) {
        case 0..<4: break
        case 4 where longDigits:
            let zeros = Int.random(in: 16_380...16_385, using: &rng)
            text += "." + String(repeating: "0", count: zeros) + (Bool.random(using: &rng) ? "1" : "0")
        case 5: text += "." + String(repeating: "0", count: Int.random(in: 1...5, using: &rng))
        default: text += "." + String(Int.random(in: 0...99_999, using: &rng))
        }
        if Int.random(in: 0..<3, using: &rng) > 0 {
            text += Bool.random(using: &rng) ? "e" : "E"
            text += ["", "+", "-"].randomElement(using: &rng)!
            text += Int.random(in: 0..<3, using: &rng) == 0
                ? String(Int.random(in: 0...20, using: &rng)) : Self.exponents.randomElement(using: &rng)!
        }
        return Array(text.utf8)
    }
}

/// Decodes a JSON string body (already well-formed JSON) the way a naive reader would:
/// escapes become code points, and lone surrogates are encoded as if they were characters
/// (generalized UTF-8), which PostgreSQL then refuses like any other ill-formed UTF-8.
/// Independent of the producer's own unescaping, on purpose.
func looselyDecodedJSONString(_ body: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    func hex(_ at: Int) -> UInt32 { UInt32(String(decoding: body[at..<(at + 4)], as: UTF8.self), radix: 16)! }
    func encode(_ v: UInt32) {
        switch v {
        case 0..<0x80: out.append(UInt8(v))
        case 0x80..<0x800: out += [UInt8(0xC0 | v >> 6), UInt8(0x80 | v & 0x3F)]
        case 0x800..<0x10000: out += [UInt8(0xE0 | v >> 12), UInt8(0x80 | v >> 6 & 0x3F), UInt8(0x80 | v & 0x3F)]
        default: out += [UInt8(0xF0 | v >> 18), UInt8(0x80 | v >> 12 & 0x3F), UInt8(0x80 | v >> 6 & 0x3F), UInt8(0x80 | v & 0x3F)]
        }
    }
    while i < body.count {
        guard body[i] == UInt8(ascii: "\\") else {
            out.append(body[i])
            i += 1
            continue
        }
        let e = body[i + 1]
        i += 2
        switch e {
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "u"):
            var v = hex(i)
            i += 4
            if (0xD800...0xDBFF).contains(v), i + 6 <= body.count, body[i] == UInt8(ascii: "\\"), body[i + 1] == UInt8(ascii: "u"),
               (0xDC00...0xDFFF).contains(hex(i + 2)) {
                v = 0x10000 + ((v - 0xD800) << 10) + (hex(i + 2) - 0xDC00)
                i += 6
            }
            encode(v)
        default: out.append(e)
        }
    }
    return out
}
