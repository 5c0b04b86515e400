import Glibc
import Reactor

/// What a frame from the producer held besides events.
package enum StreamNotice: Equatable {
    /// The producer no longer had seqs `from...to` when we resumed: reported, never hidden.
    case gap(from: UInt64, to: UInt64)
    /// A line that is not a valid event (its 1-based index in the frame and why).
    case malformed(line: Int, reason: String)
}

/// Parses the producer's text frames (one JSON object per line) in place into events:
/// no Foundation, no String per event; ids are unescaped only when they contain escapes.
/// Bad lines are reported and skipped; the rest of the frame still counts.
package enum StreamLineParser {
    /// Calls `body` with each line of `frame` that is not blank, and its 1-based number.
    package static func forEachLine(_ frame: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer, Int) -> Void) {
        guard let base = frame.baseAddress else { return }
        var lineStart = 0
        var lineNumber = 0
        while lineStart < frame.count {
            let newline = memchr(base + lineStart, 0x0A, frame.count - lineStart)
            let lineEnd = newline.map { UnsafeRawPointer($0) - UnsafeRawPointer(base) } ?? frame.count
            lineNumber += 1
            let line = UnsafeRawBufferPointer(rebasing: frame[lineStart..<lineEnd])
            if !isBlank(line) { body(line, lineNumber) }
            lineStart = lineEnd + 1
        }
    }

    /// The first members of a line as the producer writes it.
    package struct LineHead {
        package var seq: UInt64
        /// The event_id's bytes in the line (it has no escapes).
        package var id: Range<Int>
        package var acceptedAt: Int64
    }

    /// Reads `{"seq":N,["ts":N,]"event_id":"...","payload":` at the start of `line`, the
    /// producer's own layout, without walking the payload: enough to tell whose event it
    /// is. Nil for anything else (escapes in the id, other members first, a gap notice,
    /// numbers with leading zeros or past Int64, a ts of 0), which `parseLine` reads in
    /// full. The line as a whole is checked only by whoever parses it in full: the claimer,
    /// or a holder that rewinds.
    package static func head(of line: UnsafeRawBufferPointer) -> LineHead? {
        guard let base = line.baseAddress else { return nil }
        let count = line.count
        var at = 0
        // Inlined, so each literal's length is a constant and the compare unrolls: a call
        // per literal cost more than the compare (these run for every line a holder
        // receives).
        @inline(__always) func literal(_ text: StaticString) -> Bool {
            let length = text.utf8CodeUnitCount
            guard count - at >= length else { return false }
            let expected = UnsafeRawPointer(text.utf8Start)
            // Eight bytes at a time, then the tail (the literals are 1 to 13 bytes).
            var k = 0
            while k + 8 <= length {
                guard base.loadUnaligned(fromByteOffset: at + k, as: UInt64.self)
                        == expected.loadUnaligned(fromByteOffset: k, as: UInt64.self) else { return false }
                k += 8
            }
            while k < length {
                guard base.load(fromByteOffset: at + k, as: UInt8.self) == expected.load(fromByteOffset: k, as: UInt8.self)
                else { return false }
                k += 1
            }
            at += length
            return true
        }
        @inline(__always) func digits() -> UInt64? {
            let start = at
            var value: UInt64 = 0
            while at < count {
                let digit = base.load(fromByteOffset: at, as: UInt8.self) &- 0x30
                guard digit < 10 else { break }
                value = value &* 10 &+ UInt64(digit)
                at += 1
            }
            // 18 digits never pass Int64; longer numbers, and leading zeros, are left to
            // the full parse.
            guard at > start, at - start <= 18, base.load(fromByteOffset: start, as: UInt8.self) != 0x30 || at - start == 1
            else { return nil }
            return value
        }
        guard literal("{\"seq\":"), let seq = digits(), seq > 0, literal(",") else { return nil }
        var acceptedAt: Int64 = 0
        if literal("\"ts\":") {
            guard let ts = digits(), ts > 0, literal(",") else { return nil }
            acceptedAt = Int64(ts)
        }
        guard literal("\"event_id\":\"") else { return nil }
        let idStart = at
        // The id ends at the first quote; a backslash or a control byte before it sends
        // the line to the full parse.
        while at < count {
            let c = base.load(fromByteOffset: at, as: UInt8.self)
            if c == UInt8(ascii: "\"") { break }
            guard c != UInt8(ascii: "\\"), c >= 0x20 else { return nil }
            at += 1
        }
        guard at < count else { return nil }
        let id = idStart..<at
        at += 1
        guard !id.isEmpty, id.count <= 255, literal(",\"payload\":") else { return nil }
        return LineHead(seq: seq, id: id, acceptedAt: acceptedAt)
    }

    private static func isBlank(_ line: UnsafeRawBufferPointer) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }

    /// Appends the line's event to `events`, or returns what else the line was (a result,
    /// not a callback: nothing is captured per line).
    package static func parseLine(_ line: UnsafeRawBufferPointer, number: Int, into events: inout EventSet,
                          scratch: inout [UInt8]) -> StreamNotice? {
        let json = JSONScanner(line)
        var seq: UInt64?
        var id: Range<Int>?
        var idEscaped = false
        var payload: Range<Int>?
        var gap: (UInt64, UInt64)?
        var acceptedAt: Int64 = 0
        do {
            let start = json.skipWhitespace(0)
            let end = try json.forEachMember(ofObjectAt: start) { key, valueStart, valueEnd in
                if json.key(key, equals: "seq") {
                    seq = integer(line, valueStart..<valueEnd)
                } else if json.key(key, equals: "event_id") {
                    guard line[valueStart] == UInt8(ascii: "\"") else { return }
                    id = (valueStart + 1)..<(valueEnd - 1)
                    idEscaped = line[id!].contains(UInt8(ascii: "\\"))
                } else if json.key(key, equals: "payload") {
                    payload = valueStart..<valueEnd
                } else if json.key(key, equals: "ts") {
                    acceptedAt = Int64(clamping: integer(line, valueStart..<valueEnd) ?? 0)
                } else if json.key(key, equals: "gap") {
                    gap = try gapRange(json, at: valueStart)
                }
            }
            if json.skipWhitespace(end) != line.count { throw JSONError("unexpected data after the object", at: end) }
        } catch {
            return .malformed(line: number, reason: "\(error)")
        }
        if let gap { return .gap(from: gap.0, to: gap.1) }
        guard let seq, seq > 0 else { return .malformed(line: number, reason: "seq missing or not a positive integer") }
        guard let id, !id.isEmpty else { return .malformed(line: number, reason: "event_id missing or not a non-empty string") }
        let payloadBytes = payload.map { UnsafeRawBufferPointer(rebasing: line[$0]) }
            ?? UnsafeRawBufferPointer(start: nullLiteral.utf8Start, count: 4)
        if idEscaped {
            scratch.removeAll(keepingCapacity: true)
            // Never a silently different id: a lone surrogate stays as bytes PostgreSQL
            // refuses, so the event ends in dead_letters, not under another id.
            JSONString.unescape(line, id, into: &scratch, keepingLoneSurrogates: true)
            guard scratch.count <= 255 else { return .malformed(line: number, reason: "event_id longer than 255 bytes") }
            scratch.withUnsafeBytes { events.append(seq: seq, id: $0, payload: payloadBytes, acceptedAt: acceptedAt) }
            return nil
        } else {
            guard id.count <= 255 else { return .malformed(line: number, reason: "event_id longer than 255 bytes") }
            events.append(seq: seq, id: UnsafeRawBufferPointer(rebasing: line[id]), payload: payloadBytes, acceptedAt: acceptedAt)
            return nil
        }
    }

    private static let nullLiteral: StaticString = "null"

    /// A non-negative decimal integer token, or nil.
    package static func integer(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> UInt64? {
        guard !range.isEmpty, range.count <= 19 else { return nil }
        var value: UInt64 = 0
        for i in range {
            let d = bytes[i] &- 0x30
            guard d < 10 else { return nil }
            value = value * 10 + UInt64(d)
        }
        return value
    }

    private static func gapRange(_ json: JSONScanner, at start: Int) throws -> (UInt64, UInt64) {
        var from: UInt64?
        var to: UInt64?
        try json.forEachMember(ofObjectAt: start, depth: 1) { key, valueStart, valueEnd in
            if json.key(key, equals: "from") { from = integer(json.bytes, valueStart..<valueEnd) }
            if json.key(key, equals: "to") { to = integer(json.bytes, valueStart..<valueEnd) }
        }
        guard let from, let to, from <= to else { throw JSONError("gap needs from <= to", at: start) }
        return (from, to)
    }
}
