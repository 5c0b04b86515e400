import Reactor

/// Why a publish body was refused (answered 400 with this message; nothing is published).
struct PublishError: Error, Equatable {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Turns a `POST /publish` body (one event object or an array of them) into an
/// `EventBatch`, all or nothing. The body is validated as JSON once, in place; the
/// payload is forwarded as the bytes it arrived in, except that a payload spread over
/// several lines is compacted, since each event must stay on one NDJSON line. The
/// event_id is re-encoded canonically so every listener sees the same key bytes.
///
/// What PostgreSQL could not store (`TEXT` for the id, `JSONB` for the payload) is
/// refused here, in the same pass, naming the event and the reason: a listener must
/// never hold an event no insert can take.
enum PublishDecoder {
    static let maxEventIDBytes = 255
    /// Deepest nesting of arrays and objects in a payload: a limit of ours, well inside what
    /// PostgreSQL's parser takes, so every reader can walk what we accept.
    static let maxPayloadDepth = 1000

    /// `acceptedAtMillis` (Unix ms), when given, leads every event's line as `"ts":N,`:
    /// the accept time rides in the log and the stream, so a listener can measure
    /// publish-to-stored latency.
    static func decode(_ body: UnsafeRawBufferPointer, into batch: inout EventBatch, acceptedAtMillis: Int64? = nil) throws {
        batch.removeAll()
        let json = JSONScanner(body, checksStorable: true)
        let start = json.skipWhitespace(0)
        guard start < body.count else { throw PublishError("body is empty; expected an event object or an array of them") }
        // Ill-formed UTF-8 is found by one fast pass; where it is found the walk names the event.
        var stamp: [UInt8] = []
        if let acceptedAtMillis { stamp = Array("\"ts\":\(acceptedAtMillis),".utf8) }
        let context = Context(json: json, badUTF8: UTF8Validator.firstInvalidOffset(body), stamp: stamp)
        let out = ByteBuffer(capacity: body.count + 64)
        var scratch: [UInt8] = []
        do {
            let end: Int
            switch body[start] {
            case UInt8(ascii: "{"):
                end = try decodeEvent(context, at: start, index: nil, out: out, scratch: &scratch, batch: &batch)
            case UInt8(ascii: "["):
                var index = 0
                end = try json.walkArray(at: start) { valueStart in
                    guard valueStart < body.count, body[valueStart] == UInt8(ascii: "{") else {
                        throw PublishError("event \(index) is not a JSON object")
                    }
                    let end = try decodeEvent(context, at: valueStart, index: index, out: out, scratch: &scratch, batch: &batch)
                    index += 1
                    return end
                }
                if index == 0 { throw PublishError("the batch is empty") }
            default:
                throw PublishError("body must be an event object or an array of them")
            }
            let rest = json.skipWhitespace(end)
            if rest != body.count { throw JSONError("unexpected data after the value", at: rest) }
            if let bad = context.badUTF8 { throw PublishError("body \(utf8Problem(body, at: bad))") }
        } catch let error as PublishError {
            batch.removeAll()
            throw error
        } catch let error as JSONError {
            batch.removeAll()
            throw PublishError("malformed JSON: \(error.description)")
        } catch {
            batch.removeAll()
            throw PublishError("malformed JSON")
        }
        batch.bytes = out.readableBytesArray
    }

    /// What one decode shares across its events.
    private struct Context {
        let json: JSONScanner
        /// Where the body stops being UTF-8, if it does.
        let badUTF8: Int?
        /// `"ts":N,` or nothing.
        let stamp: [UInt8]
    }

    /// Decodes one event object at `start`; appends its rest to `out`.
    private static func decodeEvent(_ context: Context, at start: Int, index: Int?, out: ByteBuffer,
                                    scratch: inout [UInt8], batch: inout EventBatch) throws -> Int {
        let json = context.json
        let body = json.bytes
        let which = index.map { "event \($0): " } ?? ""
        var idRange: Range<Int>?
        var idHasEscapes = false
        var payload: Range<Int>?
        let end: Int
        do {
            end = try json.walkObject(at: start, depth: index == nil ? 0 : 1) { key, valueStart in
                let valueEnd: Int
                do {
                    valueEnd = try json.skipValue(at: valueStart, maxDepth: maxPayloadDepth)
                } catch let error as JSONError where error.kind != .syntax {
                    throw PublishError("\(which)\(memberName(json, key)) \(error.message)")
                }
                if let bad = context.badUTF8, (valueStart..<valueEnd).contains(bad) {
                    throw PublishError("\(which)\(memberName(json, key)) \(utf8Problem(body, at: bad))")
                }
                if json.key(key, equals: "event_id") {
                    guard idRange == nil else { throw PublishError("\(which)event_id appears twice") }
                    guard body[valueStart] == UInt8(ascii: "\"") else { throw PublishError("\(which)event_id must be a string") }
                    idRange = (valueStart + 1)..<(valueEnd - 1)
                    idHasEscapes = body[idRange!].contains(UInt8(ascii: "\\"))
                } else if json.key(key, equals: "payload") {
                    guard payload == nil else { throw PublishError("\(which)payload appears twice") }
                    payload = valueStart..<valueEnd
                }
                return valueEnd
            }
        } catch let error as JSONError {
            // Raised by the event's own braces, commas or member names, not by a value.
            let what = error.kind == .syntax ? "malformed JSON: \(error.description)" : "a member name \(error.message)"
            throw PublishError("\(which)\(what)")
        }
        guard let idRange else { throw PublishError("\(which)event_id is missing") }
        let before = out.readableBytes
        out.write(context.stamp)
        out.write("\"event_id\":" as StaticString)
        if idHasEscapes {
            scratch.removeAll(keepingCapacity: true)
            JSONString.unescape(body, idRange, into: &scratch)
            try checkID(count: scratch.count, which)
            scratch.withUnsafeBytes { JSONString.writeQuoted($0, to: out) }
        } else {
            try checkID(count: idRange.count, which)
            out.write(byte: UInt8(ascii: "\""))
            out.write(UnsafeRawBufferPointer(rebasing: body[idRange]))
            out.write(byte: UInt8(ascii: "\""))
        }
        out.write(",\"payload\":" as StaticString)
        if let payload {
            writePayload(UnsafeRawBufferPointer(rebasing: body[payload]), to: out)
        } else {
            out.write("null" as StaticString)
        }
        out.write(byte: UInt8(ascii: "}"))
        batch.lengths.append(out.readableBytes - before)
        return end
    }

    /// How a refusal names a member: ours by name, any other by its quoted key.
    private static func memberName(_ json: JSONScanner, _ key: Range<Int>) -> String {
        if json.key(key, equals: "event_id") || json.key(key, equals: "payload") {
            return String(decoding: UnsafeRawBufferPointer(rebasing: json.bytes[key]), as: UTF8.self)
        }
        let shown = key.prefix(64)
        return "member \"\(String(decoding: UnsafeRawBufferPointer(rebasing: json.bytes[shown]), as: UTF8.self))\""
    }

    private static func utf8Problem(_ body: UnsafeRawBufferPointer, at offset: Int) -> String {
        let hex = String(body[offset], radix: 16, uppercase: true)
        return "is not valid UTF-8 (byte 0x\(hex.count == 1 ? "0" : "")\(hex) at offset \(offset)), which PostgreSQL cannot store"
    }

    private static func checkID(count: Int, _ which: String) throws {
        if count == 0 { throw PublishError("\(which)event_id must not be empty") }
        if count > maxEventIDBytes {
            throw PublishError("\(which)event_id is \(count) bytes; at most \(maxEventIDBytes) UTF-8 bytes are allowed")
        }
    }

    /// Copies a validated JSON value, dropping whitespace outside strings only when the
    /// value contains a line break (the common one-line payload is copied as is).
    static func writePayload(_ value: UnsafeRawBufferPointer, to out: ByteBuffer) {
        guard value.contains(where: { $0 == 0x0A || $0 == 0x0D }) else {
            out.write(value)
            return
        }
        var inString = false
        var escaped = false
        for c in value {
            if inString {
                out.write(byte: c)
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch c {
            case 0x20, 0x09, 0x0A, 0x0D: continue
            case UInt8(ascii: "\""): inString = true; out.write(byte: c)
            default: out.write(byte: c)
            }
        }
    }
}
