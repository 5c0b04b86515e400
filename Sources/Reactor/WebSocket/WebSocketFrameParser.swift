/// The fixed part of a frame, as read off the wire.
public struct WebSocketFrameHeader: Equatable, Sendable {
    /// Final fragment of its message.
    public var fin: Bool
    /// What the frame carries.
    public var opcode: WebSocketOpcode
    /// Whether the payload was masked (it is already unmasked when the parser returns it).
    public var masked: Bool
    /// Payload bytes (after the header and mask key).
    public var payloadLength: Int

    /// Creates a header (tests and encoders).
    public init(fin: Bool, opcode: WebSocketOpcode, masked: Bool, payloadLength: Int) {
        self.fin = fin
        self.opcode = opcode
        self.masked = masked
        self.payloadLength = payloadLength
    }
}

/// Why a frame was refused; `closeCode` is what the connection must close with.
public enum WebSocketProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    case reservedBitsSet
    case unknownOpcode(UInt8)
    case fragmentedControlFrame
    case controlFrameTooLong
    case nonMinimalLength
    case lengthTopBitSet
    case unmaskedClientFrame
    case maskedServerFrame
    case messageTooBig
    case unexpectedContinuation
    case expectedContinuation
    case invalidUTF8
    case invalidCloseFrame
    case invalidCloseCode(UInt16)

    /// The close code this error fails the connection with.
    public var closeCode: WebSocketCloseCode {
        switch self {
        case .messageTooBig: return .messageTooBig
        case .invalidUTF8: return .invalidPayload
        default: return .protocolError
        }
    }

    /// The reason, as sent in the close frame.
    public var description: String {
        switch self {
        case .reservedBitsSet: return "reserved bits set"
        case .unknownOpcode(let op): return "unknown opcode \(op)"
        case .fragmentedControlFrame: return "fragmented control frame"
        case .controlFrameTooLong: return "control frame longer than 125 bytes"
        case .nonMinimalLength: return "payload length not minimally encoded"
        case .lengthTopBitSet: return "64-bit payload length with the top bit set"
        case .unmaskedClientFrame: return "unmasked frame from client"
        case .maskedServerFrame: return "masked frame from server"
        case .messageTooBig: return "message too big"
        case .unexpectedContinuation: return "continuation frame without a message to continue"
        case .expectedContinuation: return "new data frame inside a fragmented message"
        case .invalidUTF8: return "invalid UTF-8"
        case .invalidCloseFrame: return "close frame with a 1-byte payload"
        case .invalidCloseCode(let code): return "invalid close code \(code)"
        }
    }
}

/// What one parse step found at the start of the input.
public enum WebSocketParseResult: Equatable, Sendable {
    /// The frame at the start is not complete yet: keep the bytes and offer them again with more.
    case needMore
    /// A complete frame; its payload is unmasked in place at `payload` (offsets into the input),
    /// and the frame occupies the first `consumed` bytes.
    case frame(WebSocketFrameHeader, payload: Range<Int>, consumed: Int)
    /// The input breaks the protocol; fail the connection with `error.closeCode`.
    case error(WebSocketProtocolError)
}

/// An RFC 6455 frame parser that works in place over the receive buffer.
///
/// It keeps no state between calls: a frame is returned only once all of it is in the
/// buffer, so an unfinished frame is simply offered again, prefixed, with the next read
/// (the connection keeps only those bytes). The size limit is checked on the header,
/// before any payload is buffered, so a peer cannot make us hold more than `limit` bytes.
public struct WebSocketFrameParser: Sendable {
    /// The role of the endpoint that parses: a server demands masked frames, a client refuses them.
    public let role: WebSocketRole

    public init(role: WebSocketRole) { self.role = role }

    /// The length of the frame at the start of `bytes`, header included, once its header
    /// is all there (nil before): what a reader still short of a frame needs in all. Not a
    /// validation; `parse` judges the frame.
    public func frameLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= 2, let base = bytes.baseAddress else { return nil }
        let masked = base.load(fromByteOffset: 1, as: UInt8.self) & 0x80 != 0
        let len7 = Int(base.load(fromByteOffset: 1, as: UInt8.self) & 0x7F)
        var headerLength = 2
        var length = len7
        if len7 == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            headerLength = 4
        } else if len7 == 127 {
            guard bytes.count >= 10 else { return nil }
            let wide = UInt64(bigEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt64.self))
            guard wide < 1 << 62 else { return nil }
            length = Int(wide)
            headerLength = 10
        }
        return headerLength + (masked ? 4 : 0) + length
    }

    /// Parses the frame at the start of `bytes`, unmasking its payload in place when complete.
    ///
    /// - Parameter limit: the largest payload this frame may carry (the message size limit
    ///   minus what the current fragmented message already holds). Control frames are
    ///   bounded by 125 regardless.
    @inlinable
    public func parse(_ bytes: UnsafeMutableRawBufferPointer, limit: Int = .max) -> WebSocketParseResult {
        let count = bytes.count
        guard count >= 2, let base = bytes.baseAddress else { return .needMore }
        let b0 = base.load(as: UInt8.self)
        let b1 = base.load(fromByteOffset: 1, as: UInt8.self)
        if b0 & 0x70 != 0 { return .error(.reservedBitsSet) }
        guard let opcode = WebSocketOpcode(rawValue: b0 & 0x0F) else {
            return .error(.unknownOpcode(b0 & 0x0F))
        }
        let fin = b0 & 0x80 != 0
        let masked = b1 & 0x80 != 0
        let len7 = Int(b1 & 0x7F)
        if opcode.isControl {
            if !fin { return .error(.fragmentedControlFrame) }
            if len7 > 125 { return .error(.controlFrameTooLong) }
        }
        switch role {
        case .server where !masked: return .error(.unmaskedClientFrame)
        case .client where masked: return .error(.maskedServerFrame)
        default: break
        }

        var headerLength = 2
        var length = len7
        if len7 == 126 {
            guard count >= 4 else { return .needMore }
            length = Int(UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            if length < 126 { return .error(.nonMinimalLength) }
            headerLength = 4
        } else if len7 == 127 {
            guard count >= 10 else { return .needMore }
            let wide = UInt64(bigEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt64.self))
            if wide & (1 << 63) != 0 { return .error(.lengthTopBitSet) }
            if wide <= 0xFFFF { return .error(.nonMinimalLength) }
            // Anything above Int.max was caught by the top-bit check on 64-bit platforms.
            length = Int(wide)
            headerLength = 10
        }
        if length > limit && !opcode.isControl { return .error(.messageTooBig) }

        let maskOffset = headerLength
        if masked { headerLength += 4 }
        guard count - headerLength >= length else { return .needMore }

        let payload = headerLength..<(headerLength + length)
        if masked {
            let key = base.loadUnaligned(fromByteOffset: maskOffset, as: UInt32.self)
            WebSocketMask.apply(key: key, to: UnsafeMutableRawBufferPointer(rebasing: bytes[payload]))
        }
        return .frame(WebSocketFrameHeader(fin: fin, opcode: opcode, masked: masked, payloadLength: length),
                      payload: payload, consumed: payload.upperBound)
    }
}
