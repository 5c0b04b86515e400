/// Validates and walks JSON in place over bytes (RFC 8259), without building values:
/// callers get byte ranges of keys and values and decide what to copy. Strings are
/// checked for escapes and control characters; UTF-8 validity of the whole text is the
/// caller's single `UTF8Validator` pass.
///
/// Nothing recurses: nested arrays and objects are skipped with a bit per open level, so
/// the depth limit is a rule about the input, not a guard for the stack.
public struct JSONScanner {
    /// The text being scanned.
    public let bytes: UnsafeRawBufferPointer
    /// Whether well-formed JSON that PostgreSQL cannot store is refused too (as
    /// `JSONError.Kind.unstorable`): `\u0000`, lone surrogate escapes, numbers outside
    /// `numeric`'s range. The producer checks this once, at the door.
    public let checksStorable: Bool
    /// The default nesting limit: above the producer's payload limit plus the envelope
    /// around a payload, so whatever the producer accepts every reader can walk.
    public static let maxDepth = 1024

    public init(_ bytes: UnsafeRawBufferPointer, checksStorable: Bool = false) {
        self.bytes = bytes
        self.checksStorable = checksStorable
    }

    /// The index of the first non-whitespace byte at or after `i`.
    @inlinable
    public func skipWhitespace(_ i: Int) -> Int {
        var i = i
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return i
            }
        }
        return i
    }

    /// Checks that the whole text is exactly one JSON value (whitespace around it allowed).
    public func validateDocument() throws {
        let start = skipWhitespace(0)
        let end = try skipValue(at: start)
        let rest = skipWhitespace(end)
        if rest != bytes.count { throw JSONError("unexpected data after the value", at: rest) }
    }

    /// Skips one value starting exactly at `i`, whose arrays and objects may nest at most
    /// `maxDepth` levels (`[]` is one level, `1` none; a bit per level is reserved on the stack
    /// up front, so keep it near `JSONScanner.maxDepth`); returns the index just past it.
    public func skipValue(at i: Int, maxDepth: Int = JSONScanner.maxDepth) throws -> Int {
        precondition(maxDepth >= 0, "a negative nesting limit")
        guard i < bytes.count, bytes[i] == UInt8(ascii: "[") || bytes[i] == UInt8(ascii: "{") else {
            return try skipScalar(at: i)
        }
        // One bit per open level: set for an object, clear for an array.
        return try withUnsafeTemporaryAllocation(of: UInt64.self, capacity: maxDepth / 64 + 1) { kinds in
            try skipContainer(at: i, maxDepth: maxDepth, kinds: kinds)
        }
    }

    private func skipContainer(at start: Int, maxDepth: Int, kinds: UnsafeMutableBufferPointer<UInt64>) throws -> Int {
        var depth = 0
        var i = start
        while true {
            // `i` is at a value.
            guard i < bytes.count else { throw JSONError("expected a value, found the end", at: i) }
            let c = bytes[i]
            if c == UInt8(ascii: "[") || c == UInt8(ascii: "{") {
                guard depth < maxDepth else {
                    throw JSONError("nests deeper than \(maxDepth) levels of arrays and objects", at: i, kind: .tooDeep)
                }
                let isObject = c == UInt8(ascii: "{")
                let bit = UInt64(1) << UInt64(depth & 63)
                if isObject { kinds[depth >> 6] |= bit } else { kinds[depth >> 6] &= ~bit }
                depth += 1
                i = skipWhitespace(i + 1)
                let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
                if i < bytes.count, bytes[i] == close {
                    i += 1
                    depth -= 1
                } else {
                    if isObject { i = try skipMemberName(at: i).valueStart }
                    continue
                }
            } else {
                i = try skipScalar(at: i)
            }
            // A value ended at `i`: close every container that ends here, then find the next value.
            while true {
                if depth == 0 { return i }
                i = skipWhitespace(i)
                let isObject = kinds[(depth - 1) >> 6] & (UInt64(1) << UInt64((depth - 1) & 63)) != 0
                guard i < bytes.count else {
                    throw JSONError(isObject ? "unterminated object" : "unterminated array", at: i)
                }
                if bytes[i] == UInt8(ascii: ",") {
                    i = skipWhitespace(i + 1)
                    if isObject { i = try skipMemberName(at: i).valueStart }
                    break
                }
                if bytes[i] == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    i += 1
                    depth -= 1
                    continue
                }
                throw JSONError(isObject ? "expected ',' or '}'" : "expected ',' or ']'", at: i)
            }
        }
    }

    /// Skips `"name" :` and the whitespace after it; returns where the name's closing quote
    /// is and where the member's value starts.
    private func skipMemberName(at i: Int) throws -> (nameEnd: Int, valueStart: Int) {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw JSONError("expected a member name", at: i) }
        let nameEnd = try skipString(at: i).end - 1
        let colon = skipWhitespace(nameEnd + 1)
        guard colon < bytes.count, bytes[colon] == UInt8(ascii: ":") else { throw JSONError("expected ':'", at: colon) }
        return (nameEnd, skipWhitespace(colon + 1))
    }

    private func skipScalar(at i: Int) throws -> Int {
        guard i < bytes.count else { throw JSONError("expected a value, found the end", at: i) }
        switch bytes[i] {
        case UInt8(ascii: "\""): return try skipString(at: i).end
        case UInt8(ascii: "t"): return try skipLiteral("true", at: i)
        case UInt8(ascii: "f"): return try skipLiteral("false", at: i)
        case UInt8(ascii: "n"): return try skipLiteral("null", at: i)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try skipNumber(at: i)
        case 0: throw JSONError("unexpected raw NUL byte", at: i)
        default: throw JSONError("unexpected character", at: i)
        }
    }

    private func skipLiteral(_ literal: StaticString, at i: Int) throws -> Int {
        let n = literal.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw JSONError("truncated literal", at: i) }
        for k in 0..<n where bytes[i + k] != literal.utf8Start[k] {
            throw JSONError("invalid literal", at: i + k)
        }
        return i + n
    }

    private func skipDigits(_ i: Int) -> Int {
        var i = i
        while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
        return i
    }

    private func skipNumber(at start: Int) throws -> Int {
        var i = start
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 else { throw JSONError("invalid number", at: i) }
        if bytes[i] == UInt8(ascii: "0") { i += 1 } else { i = skipDigits(i) }
        let intEnd = i
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            let digits = skipDigits(i + 1)
            guard digits > i + 1 else { throw JSONError("invalid number: digits expected after '.'", at: i + 1) }
            i = digits
        }
        let fractionEnd = i
        if i < bytes.count, bytes[i] | 0x20 == UInt8(ascii: "e") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            let digits = skipDigits(i)
            guard digits > i else { throw JSONError("invalid number: exponent digits expected", at: i) }
            i = digits
        }
        if checksStorable,
           let problem = PostgresNumeric.problem(bytes, start: start, intEnd: intEnd, fractionEnd: fractionEnd, end: i) {
            throw JSONError("contains \(problem)", at: start, kind: .unstorable)
        }
        return i
    }

    /// Skips a string starting at its opening quote; returns the index past the closing
    /// quote and whether it contains escapes (callers copy unescaped strings as they are).
    public func skipString(at start: Int) throws -> (end: Int, hasEscapes: Bool) {
        var i = start + 1
        var escapes = false
        let count = bytes.count
        while i < count {
            // Most bytes of a string are plain: step over them eight at a time, then
            // straight to the first byte that needs a look.
            if i + 8 <= count {
                let first = Self.firstQuoteBackslashOrControl(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                i += first
                if first == 8 { continue }
            }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { return (i + 1, escapes) }
            if c == UInt8(ascii: "\\") {
                escapes = true
                guard i + 1 < bytes.count else { break }
                switch bytes[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    let scalar = try hex4(at: i)
                    i += 6
                    if checksStorable { i = try checkStorable(scalar, escapeAt: i - 6) }
                default:
                    throw JSONError("invalid escape", at: i + 1)
                }
                continue
            }
            if c < 0x20 {
                if c == 0 {
                    throw JSONError("contains a raw NUL byte, which JSON does not allow and PostgreSQL cannot store",
                                    at: i, kind: .unstorable)
                }
                throw JSONError("control character in string", at: i)
            }
            i += 1
        }
        throw JSONError("unterminated string", at: start)
    }

    /// The index (0-7, little-endian) of the first byte of `word` that is `"`, `\\` or
    /// below 0x20, or 8 when there is none. The classic "has a zero byte" bit trick (on
    /// the word xor each byte) and "has a byte below n" (n = 0x20) flag such bytes with
    /// their high bit; a borrow can only flag bytes *above* a true one, so the lowest
    /// flag is exact. Bytes of 0x80 and above are never flagged.
    @inline(__always)
    static func firstQuoteBackslashOrControl(_ word: UInt64) -> Int {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let quotes = word ^ (ones &* 0x22)
        let backslashes = word ^ (ones &* 0x5C)
        let zeroInQuotes = (quotes &- ones) & ~quotes
        let zeroInBackslashes = (backslashes &- ones) & ~backslashes
        let below20 = (word &- ones &* 0x20) & ~word
        return ((zeroInQuotes | zeroInBackslashes | below20) & highs).trailingZeroBitCount >> 3
    }

    /// The value of the `\uXXXX` escape whose backslash is at `i`.
    private func hex4(at i: Int) throws -> UInt32 {
        guard i + 6 <= bytes.count else { throw JSONError("truncated \\u escape", at: i) }
        var value: UInt32 = 0
        for k in 2..<6 {
            guard let digit = Self.hexValue(bytes[i + k]) else { throw JSONError("invalid \\u escape", at: i + k) }
            value = value << 4 | digit
        }
        return value
    }

    /// Refuses the `\u` escapes PostgreSQL cannot turn into text: NUL, and surrogates that
    /// are not a high one directly followed by an escaped low one. Returns where scanning
    /// goes on (past the low half of a pair).
    private func checkStorable(_ scalar: UInt32, escapeAt i: Int) throws -> Int {
        switch scalar {
        case 0:
            throw JSONError("contains a NUL character (\\u0000), which PostgreSQL cannot store", at: i, kind: .unstorable)
        case 0xD800...0xDBFF:
            if i + 12 <= bytes.count, bytes[i + 6] == UInt8(ascii: "\\"), bytes[i + 7] == UInt8(ascii: "u"),
               (0xDC00...0xDFFF).contains(try hex4(at: i + 6)) {
                return i + 12
            }
            throw JSONError("contains a lone surrogate escape (\(escapeText(at: i)) is not followed by a low surrogate), "
                            + "which is no character and PostgreSQL cannot store", at: i, kind: .unstorable)
        case 0xDC00...0xDFFF:
            throw JSONError("contains a lone surrogate escape (\(escapeText(at: i)) without a high surrogate before it), "
                            + "which is no character and PostgreSQL cannot store", at: i, kind: .unstorable)
        default:
            return i + 6
        }
    }

    private func escapeText(at i: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + 6)]), as: UTF8.self)
    }

    /// Walks an object starting at `{`: `body(keyRange, valueStart, valueEnd)` per member,
    /// where `keyRange` excludes the quotes. `depth` is how deep this object is; its values
    /// may nest up to `maxDepth` in all. Returns the index past `}`.
    @discardableResult
    public func forEachMember(ofObjectAt start: Int, depth: Int = 0,
                              _ body: (_ key: Range<Int>, _ valueStart: Int, _ valueEnd: Int) throws -> Void) throws -> Int {
        try walkObject(at: start, depth: depth) { key, valueStart in
            let valueEnd = try skipValue(at: valueStart, maxDepth: Self.maxDepth - depth - 1)
            try body(key, valueStart, valueEnd)
            return valueEnd
        }
    }

    /// Walks an array starting at `[`: `body(valueStart, valueEnd)` per element. Returns
    /// the index past `]`.
    @discardableResult
    public func forEachElement(ofArrayAt start: Int, depth: Int = 0,
                               _ body: (_ valueStart: Int, _ valueEnd: Int) throws -> Void) throws -> Int {
        try walkArray(at: start, depth: depth) { valueStart in
            let valueEnd = try skipValue(at: valueStart, maxDepth: Self.maxDepth - depth - 1)
            try body(valueStart, valueEnd)
            return valueEnd
        }
    }

    /// Walks an object starting at `{`, leaving each value to `member(keyRange, valueStart)`,
    /// which skips it (with its own limits, naming it in its errors) and returns its end.
    /// Returns the index past `}`.
    @discardableResult
    public func walkObject(at start: Int, depth: Int = 0,
                           _ member: (_ key: Range<Int>, _ valueStart: Int) throws -> Int) throws -> Int {
        guard depth < Self.maxDepth else {
            throw JSONError("nests deeper than \(Self.maxDepth) levels of arrays and objects", at: start, kind: .tooDeep)
        }
        guard start < bytes.count, bytes[start] == UInt8(ascii: "{") else { throw JSONError("expected an object", at: start) }
        var i = skipWhitespace(start + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { return i + 1 }
        while true {
            let name = try skipMemberName(at: i)
            i = skipWhitespace(try member((i + 1)..<name.nameEnd, name.valueStart))
            guard i < bytes.count else { throw JSONError("unterminated object", at: start) }
            if bytes[i] == UInt8(ascii: ",") {
                i = skipWhitespace(i + 1)
                continue
            }
            if bytes[i] == UInt8(ascii: "}") { return i + 1 }
            throw JSONError("expected ',' or '}'", at: i)
        }
    }

    /// Walks an array starting at `[`, leaving each element to `element(valueStart)`, which
    /// skips it and returns its end. Returns the index past `]`.
    @discardableResult
    public func walkArray(at start: Int, depth: Int = 0, _ element: (_ valueStart: Int) throws -> Int) throws -> Int {
        guard depth < Self.maxDepth else {
            throw JSONError("nests deeper than \(Self.maxDepth) levels of arrays and objects", at: start, kind: .tooDeep)
        }
        guard start < bytes.count, bytes[start] == UInt8(ascii: "[") else { throw JSONError("expected an array", at: start) }
        var i = skipWhitespace(start + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { return i + 1 }
        while true {
            i = skipWhitespace(try element(i))
            guard i < bytes.count else { throw JSONError("unterminated array", at: start) }
            if bytes[i] == UInt8(ascii: ",") {
                i = skipWhitespace(i + 1)
                continue
            }
            if bytes[i] == UInt8(ascii: "]") { return i + 1 }
            throw JSONError("expected ',' or ']'", at: i)
        }
    }

    /// True when the key at `range` (from `forEachMember`) is exactly `name`, unescaped.
    public func key(_ range: Range<Int>, equals name: StaticString) -> Bool {
        guard range.count == name.utf8CodeUnitCount else { return false }
        for k in 0..<range.count where bytes[range.lowerBound + k] != name.utf8Start[k] { return false }
        return true
    }

    /// The value of an ASCII hex digit, or nil.
    public static func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case 0x30...0x39: return UInt32(c - 0x30)
        case 0x41...0x46: return UInt32(c - 0x41 + 10)
        case 0x61...0x66: return UInt32(c - 0x61 + 10)
        default: return nil
        }
    }
}
