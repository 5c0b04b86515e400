import Glibc

/// Writes frames straight into an outbound ByteBuffer: header, then payload, masked in place
/// when a mask key is given (client role). No intermediate buffers.
public enum WebSocketFrameEncoder {
    /// The largest header: 2 bytes, a 64-bit length and a mask key.
    public static let maxHeaderLength = 14

    /// Header bytes for a payload of `length` bytes.
    @inlinable
    public static func headerLength(payloadLength length: Int, masked: Bool) -> Int {
        let base = length < 126 ? 2 : (length <= 0xFFFF ? 4 : 10)
        return masked ? base + 4 : base
    }

    /// Writes a header at `pointer` and returns its length. `maskKey` nil means unmasked.
    @inlinable @discardableResult
    public static func writeHeader(
        at pointer: UnsafeMutableRawPointer, fin: Bool = true, opcode: WebSocketOpcode,
        payloadLength length: Int, maskKey: UInt32?
    ) -> Int {
        pointer.storeBytes(of: (fin ? 0x80 : 0) | opcode.rawValue, as: UInt8.self)
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        var offset: Int
        if length < 126 {
            pointer.storeBytes(of: maskBit | UInt8(length), toByteOffset: 1, as: UInt8.self)
            offset = 2
        } else if length <= 0xFFFF {
            pointer.storeBytes(of: maskBit | 126, toByteOffset: 1, as: UInt8.self)
            pointer.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
            offset = 4
        } else {
            pointer.storeBytes(of: maskBit | 127, toByteOffset: 1, as: UInt8.self)
            pointer.storeBytes(of: UInt64(length).bigEndian, toByteOffset: 2, as: UInt64.self)
            offset = 10
        }
        if let key = maskKey {
            pointer.storeBytes(of: key, toByteOffset: offset, as: UInt32.self)
            offset += 4
        }
        return offset
    }

    /// Appends one whole frame carrying `payload` to `buffer`.
    @inlinable
    public static func writeFrame(
        into buffer: ByteBuffer, fin: Bool = true, opcode: WebSocketOpcode,
        payload: UnsafeRawBufferPointer, maskKey: UInt32?
    ) {
        let header = headerLength(payloadLength: payload.count, masked: maskKey != nil)
        buffer.writeWithUnsafeMutableBytes(minimumCapacity: header + payload.count) { space in
            let base = space.baseAddress!
            writeHeader(at: base, fin: fin, opcode: opcode, payloadLength: payload.count, maskKey: maskKey)
            if payload.count > 0 {
                (base + header).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
                if let key = maskKey {
                    WebSocketMask.apply(key: key, to: UnsafeMutableRawBufferPointer(start: base + header, count: payload.count))
                }
            }
            return header + payload.count
        }
    }

    /// Appends one frame whose payload `body` writes into `buffer` itself (any of ByteBuffer's
    /// write methods), so a caller can encode many records into one frame without a copy.
    ///
    /// The header's size depends on the final length, so room for it is reserved from
    /// `expectedLength` and the payload is slid back a few bytes only when the guess was
    /// too big. Returns the payload length.
    @inlinable @discardableResult
    public static func writeFrame(
        into buffer: ByteBuffer, fin: Bool = true, opcode: WebSocketOpcode, maskKey: UInt32?,
        expectedLength: Int = 0, body: (ByteBuffer) throws -> Void
    ) rethrows -> Int {
        let masked = maskKey != nil
        let start = buffer.readableBytes
        let reserved = max(headerLength(payloadLength: expectedLength, masked: masked),
                           masked ? 6 : 2)
        buffer.writeWithUnsafeMutableBytes(minimumCapacity: reserved) { _ in reserved }
        do {
            try body(buffer)
        } catch {
            buffer.truncateWritten(to: start)
            throw error
        }
        var length = buffer.readableBytes - start - reserved
        var header = headerLength(payloadLength: length, masked: masked)
        if header > reserved {
            // The guess was too small: make room for the longer header by sliding forward.
            let grow = header - reserved
            buffer.writeWithUnsafeMutableBytes(minimumCapacity: grow) { _ in grow }
            buffer.withMutableReadableBytes { all in
                let frame = all.baseAddress! + start
                memmove(frame + header, frame + reserved, length)
            }
        } else if header < reserved {
            buffer.withMutableReadableBytes { all in
                let frame = all.baseAddress! + start
                memmove(frame + header, frame + reserved, length)
            }
            buffer.truncateWritten(to: start + header + length)
        }
        length = buffer.readableBytes - start - header
        header = headerLength(payloadLength: length, masked: masked)
        buffer.withMutableReadableBytes { all in
            let frame = all.baseAddress! + start
            writeHeader(at: frame, fin: fin, opcode: opcode, payloadLength: length, maskKey: maskKey)
            if let key = maskKey {
                WebSocketMask.apply(key: key, to: UnsafeMutableRawBufferPointer(start: frame + header, count: length))
            }
        }
        return length
    }
}
