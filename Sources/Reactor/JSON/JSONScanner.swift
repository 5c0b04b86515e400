/// A JSON syntax error: what was expected, and at which byte.
public struct JSONError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public let offset: Int
    public init(_ message: String, at offset: Int) {
        self.message = message
        self.offset = offset
    }
    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}

/// Validates and walks JSON in place over bytes (RFC 8259), without building values:
/// callers get byte ranges of keys and values and decide what to copy. Strings are
/// checked for escapes and control characters; UTF-8 validity of the whole text is the
/// caller's single `UTF8Validator` pass.
public struct JSONScanner {
    /// The text being scanned.
    public let bytes: UnsafeRawBufferPointer
    /// Deeper nesting is refused, so hostile input cannot exhaust the stack.
    public static let maxDepth = 256

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    @inline(__always) func byte(_ i: Int) -> UInt8 { bytes[i] }

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

    /// Skips one value starting exactly at `i`; returns the index just past it.
    public func skipValue(at i: Int, depth: Int = 0) throws -> Int {
        guard i < bytes.count else { throw JSONError("expected a value, found the end", at: i) }
        switch bytes[i] {
        case UInt8(ascii: "\""): return try skipString(at: i).end
        case UInt8(ascii: "{"):
            return try forEachMember(ofObjectAt: i, depth: depth) { _, _, _ in }
        case UInt8(ascii: "["):
            return try forEachElement(ofArrayAt: i, depth: depth) { _, _ in }
        case UInt8(ascii: "t"): return try skipLiteral("true", at: i)
        case UInt8(ascii: "f"): return try skipLiteral("false", at: i)
        case UInt8(ascii: "n"): return try skipLiteral("null", at: i)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try skipNumber(at: i)
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
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            let digits = skipDigits(i + 1)
            guard digits > i + 1 else { throw JSONError("invalid number: digits expected after '.'", at: i + 1) }
            i = digits
        }
        if i < bytes.count, bytes[i] | 0x20 == UInt8(ascii: "e") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            let digits = skipDigits(i)
            guard digits > i else { throw JSONError("invalid number: exponent digits expected", at: i) }
            i = digits
        }
        return i
    }

    /// Skips a string starting at its opening quote; returns the index past the closing
    /// quote and whether it contains escapes (callers copy unescaped strings as they are).
    public func skipString(at start: Int) throws -> (end: Int, hasEscapes: Bool) {
        var i = start + 1
        var escapes = false
        while i < bytes.count {
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
                    guard i + 6 <= bytes.count else { throw JSONError("truncated \\u escape", at: i) }
                    for k in 2..<6 where Self.hexValue(bytes[i + k]) == nil {
                        throw JSONError("invalid \\u escape", at: i + k)
                    }
                    i += 6
                default:
                    throw JSONError("invalid escape", at: i + 1)
                }
                continue
            }
            if c < 0x20 { throw JSONError("control character in string", at: i) }
            i += 1
        }
        throw JSONError("unterminated string", at: start)
    }

    /// Walks an object starting at `{`: `body(keyRange, valueStart, valueEnd)` per member,
    /// where `keyRange` excludes the quotes. Returns the index past `}`.
    @discardableResult
    public func forEachMember(ofObjectAt start: Int, depth: Int = 0,
                              _ body: (_ key: Range<Int>, _ valueStart: Int, _ valueEnd: Int) throws -> Void) throws -> Int {
        guard depth < Self.maxDepth else { throw JSONError("nesting deeper than \(Self.maxDepth)", at: start) }
        guard start < bytes.count, bytes[start] == UInt8(ascii: "{") else { throw JSONError("expected an object", at: start) }
        var i = skipWhitespace(start + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { return i + 1 }
        while true {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw JSONError("expected a member name", at: i) }
            let keyStart = i
            let key = try skipString(at: i)
            i = skipWhitespace(key.end)
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw JSONError("expected ':'", at: i) }
            let valueStart = skipWhitespace(i + 1)
            let valueEnd = try skipValue(at: valueStart, depth: depth + 1)
            try body((keyStart + 1)..<(key.end - 1), valueStart, valueEnd)
            i = skipWhitespace(valueEnd)
            guard i < bytes.count else { throw JSONError("unterminated object", at: start) }
            if bytes[i] == UInt8(ascii: ",") {
                i = skipWhitespace(i + 1)
                continue
            }
            if bytes[i] == UInt8(ascii: "}") { return i + 1 }
            throw JSONError("expected ',' or '}'", at: i)
        }
    }

    /// Walks an array starting at `[`: `body(valueStart, valueEnd)` per element. Returns
    /// the index past `]`.
    @discardableResult
    public func forEachElement(ofArrayAt start: Int, depth: Int = 0,
                               _ body: (_ valueStart: Int, _ valueEnd: Int) throws -> Void) throws -> Int {
        guard depth < Self.maxDepth else { throw JSONError("nesting deeper than \(Self.maxDepth)", at: start) }
        guard start < bytes.count, bytes[start] == UInt8(ascii: "[") else { throw JSONError("expected an array", at: start) }
        var i = skipWhitespace(start + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { return i + 1 }
        while true {
            let valueEnd = try skipValue(at: i, depth: depth + 1)
            try body(i, valueEnd)
            i = skipWhitespace(valueEnd)
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
