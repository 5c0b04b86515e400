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
enum PublishDecoder {
    static let maxEventIDBytes = 255

    static func decode(_ body: UnsafeRawBufferPointer, into batch: inout EventBatch) throws {
        batch.removeAll()
        guard UTF8Validator.isValid(body) else { throw PublishError("body is not valid UTF-8") }
        let json = JSONScanner(body)
        let start = json.skipWhitespace(0)
        guard start < body.count else { throw PublishError("body is empty; expected an event object or an array of them") }
        let out = ByteBuffer(capacity: body.count + 64)
        var scratch: [UInt8] = []
        do {
            let end: Int
            switch body[start] {
            case UInt8(ascii: "{"):
                end = try decodeEvent(json, at: start, index: nil, out: out, scratch: &scratch, batch: &batch)
            case UInt8(ascii: "["):
                var index = 0
                end = try json.forEachElement(ofArrayAt: start) { valueStart, _ in
                    guard body[valueStart] == UInt8(ascii: "{") else {
                        throw PublishError("event \(index) is not a JSON object")
                    }
                    _ = try decodeEvent(json, at: valueStart, index: index, out: out, scratch: &scratch, batch: &batch)
                    index += 1
                }
                if index == 0 { throw PublishError("the batch is empty") }
            default:
                throw PublishError("body must be an event object or an array of them")
            }
            let rest = json.skipWhitespace(end)
            if rest != body.count { throw JSONError("unexpected data after the value", at: rest) }
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

    /// Decodes one event object at `start`; appends its rest to `out`.
    private static func decodeEvent(_ json: JSONScanner, at start: Int, index: Int?, out: ByteBuffer,
                                    scratch: inout [UInt8], batch: inout EventBatch) throws -> Int {
        let body = json.bytes
        let which = index.map { "event \($0): " } ?? ""
        var idRange: Range<Int>?
        var idHasEscapes = false
        var payload: Range<Int>?
        let end = try json.forEachMember(ofObjectAt: start, depth: index == nil ? 0 : 1) { key, valueStart, valueEnd in
            if json.key(key, equals: "event_id") {
                guard idRange == nil else { throw PublishError("\(which)event_id appears twice") }
                guard body[valueStart] == UInt8(ascii: "\"") else { throw PublishError("\(which)event_id must be a string") }
                idRange = (valueStart + 1)..<(valueEnd - 1)
                idHasEscapes = body[idRange!].contains(UInt8(ascii: "\\"))
            } else if json.key(key, equals: "payload") {
                guard payload == nil else { throw PublishError("\(which)payload appears twice") }
                payload = valueStart..<valueEnd
            }
        }
        guard let idRange else { throw PublishError("\(which)event_id is missing") }
        let before = out.readableBytes
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
