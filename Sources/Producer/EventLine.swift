/// The NDJSON line of one event as subscribers receive it: `{"seq":N,` + the event's
/// encoded rest (`"event_id":...,"payload":...}`) + `\n`. The ring builds the same bytes
/// in its arena; this form appends them to a byte array (lines replayed from disk).
enum EventLine {
    static func append(seq: UInt64, rest: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(contentsOf: "{\"seq\":".utf8)
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                      UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var value = seq
            var index = buffer.count
            repeat {
                index -= 1
                buffer[index] = UInt8(truncatingIfNeeded: value % 10) &+ 48
                value /= 10
            } while value > 0
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[index...]))
        }
        out.append(UInt8(ascii: ","))
        out.append(contentsOf: rest)
        out.append(UInt8(ascii: "\n"))
    }
}
