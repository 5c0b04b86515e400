import XCTest
@testable import Reactor

/// Builds raw frames byte by byte, so the tests can express malformed headers too.
enum RawFrame {
    static func make(fin: Bool = true, rsv: UInt8 = 0, opcode: UInt8, payload: [UInt8],
                     mask: [UInt8]? = nil, lengthForm: Int? = nil) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        let form = lengthForm ?? (payload.count < 126 ? 7 : (payload.count <= 0xFFFF ? 16 : 64))
        switch form {
        case 7: out.append(maskBit | UInt8(payload.count))
        case 16:
            out.append(maskBit | 126)
            out += [UInt8(payload.count >> 8 & 0xFF), UInt8(payload.count & 0xFF)]
        default:
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(UInt64(payload.count) >> UInt64(shift) & 0xFF)) }
        }
        if let mask {
            out += mask
            out += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        } else {
            out += payload
        }
        return out
    }
}

final class WebSocketFrameParserTests: XCTestCase {
    let server = WebSocketFrameParser(role: .server)
    let client = WebSocketFrameParser(role: .client)
    let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

    /// Parses `bytes` and returns the result plus the (unmasked) payload bytes.
    func parse(_ parser: WebSocketFrameParser, _ bytes: [UInt8], limit: Int = .max) -> (WebSocketParseResult, [UInt8]) {
        var bytes = bytes
        return bytes.withUnsafeMutableBytes { buffer in
            let result = parser.parse(buffer, limit: limit)
            if case .frame(_, let range, _) = result { return (result, Array(buffer[range])) }
            return (result, [])
        }
    }

    func testRFCExampleUnmaskedTextFromServer() {
        // RFC 6455 5.7: a single-frame unmasked text message "Hello".
        let (result, payload) = parse(client, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
        XCTAssertEqual(result, .frame(.init(fin: true, opcode: .text, masked: false, payloadLength: 5), payload: 2..<7, consumed: 7))
        XCTAssertEqual(payload, Array("Hello".utf8))
    }

    func testRFCExampleMaskedTextFromClient() {
        let (result, payload) = parse(server, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
        XCTAssertEqual(result, .frame(.init(fin: true, opcode: .text, masked: true, payloadLength: 5), payload: 6..<11, consumed: 11))
        XCTAssertEqual(payload, Array("Hello".utf8))
    }

    func testRFCExampleFragmentedText() {
        let (first, p1) = parse(client, [0x01, 0x03, 0x48, 0x65, 0x6c])
        XCTAssertEqual(first, .frame(.init(fin: false, opcode: .text, masked: false, payloadLength: 3), payload: 2..<5, consumed: 5))
        XCTAssertEqual(p1, Array("Hel".utf8))
        let (second, p2) = parse(client, [0x80, 0x02, 0x6c, 0x6f])
        XCTAssertEqual(second, .frame(.init(fin: true, opcode: .continuation, masked: false, payloadLength: 2), payload: 2..<4, consumed: 4))
        XCTAssertEqual(p2, Array("lo".utf8))
    }

    func testEveryLengthFormRoundTripsAtItsBoundaries() {
        for size in [0, 1, 125, 126, 127, 65535, 65536, 70000] {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let (result, got) = parse(server, RawFrame.make(opcode: 2, payload: payload, mask: mask))
            let header = size < 126 ? 6 : (size <= 0xFFFF ? 8 : 14)
            XCTAssertEqual(result, .frame(.init(fin: true, opcode: .binary, masked: true, payloadLength: size),
                                          payload: header..<(header + size), consumed: header + size), "size \(size)")
            XCTAssertEqual(got, payload, "size \(size)")
        }
    }

    func testEveryOpcodeIsAccepted() {
        for (raw, opcode) in [(0, WebSocketOpcode.continuation), (1, .text), (2, .binary), (8, .close), (9, .ping), (10, .pong)] {
            let (result, _) = parse(client, RawFrame.make(opcode: UInt8(raw), payload: [1, 2]))
            XCTAssertEqual(result, .frame(.init(fin: true, opcode: opcode, masked: false, payloadLength: 2), payload: 2..<4, consumed: 4))
        }
    }

    func testIncompleteInputAsksForMoreAtEveryCut() {
        let frame = RawFrame.make(opcode: 1, payload: Array(repeating: 65, count: 300), mask: mask)
        for cut in 0..<frame.count {
            XCTAssertEqual(parse(server, Array(frame[..<cut])).0, .needMore, "cut at \(cut)")
        }
        // 64-bit form needs all ten header bytes before it can say anything.
        let big = RawFrame.make(opcode: 2, payload: [], lengthForm: 64)
        XCTAssertEqual(parse(client, Array(big[..<9])).0, .needMore)
    }

    func testAFrameCutShortTellsItsWholeLengthOnceItsHeaderIsThere() {
        for (payload, masked, form) in [(5, true, 7), (300, true, 16), (70_000, false, 64), (0, false, 64)] {
            let frame = RawFrame.make(opcode: 2, payload: Array(repeating: 7, count: payload), mask: masked ? mask : nil,
                                      lengthForm: form)
            let header = (form == 7 ? 2 : form == 16 ? 4 : 10) + (masked ? 4 : 0)
            for cut in [0, 1, header - (masked ? 5 : 1), header, frame.count - 1, frame.count] where cut >= 0 {
                let length = Array(frame[..<cut]).withUnsafeBytes { server.frameLength($0) }
                // The length bytes are what it needs; the mask key it may still miss.
                let known = cut >= header - (masked ? 4 : 0)
                XCTAssertEqual(length, known ? frame.count : nil, "payload \(payload), cut at \(cut)")
            }
        }
    }

    func testReservedBitsAreAProtocolError() {
        for rsv: UInt8 in [1, 2, 4, 7] {
            XCTAssertEqual(parse(client, RawFrame.make(rsv: rsv, opcode: 1, payload: [])).0, .error(.reservedBitsSet))
        }
        XCTAssertEqual(WebSocketProtocolError.reservedBitsSet.closeCode, .protocolError)
    }

    func testUnknownOpcodesAreAProtocolError() {
        for op: UInt8 in [3, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            XCTAssertEqual(parse(client, RawFrame.make(opcode: op, payload: [])).0, .error(.unknownOpcode(op)))
        }
    }

    func testControlFramesMustBeFinalAndShort() {
        XCTAssertEqual(parse(client, RawFrame.make(fin: false, opcode: 9, payload: [])).0, .error(.fragmentedControlFrame))
        XCTAssertEqual(parse(client, RawFrame.make(opcode: 8, payload: Array(repeating: 0, count: 126))).0, .error(.controlFrameTooLong))
        let (ok, _) = parse(client, RawFrame.make(opcode: 10, payload: Array(repeating: 0, count: 125)))
        XCTAssertEqual(ok, .frame(.init(fin: true, opcode: .pong, masked: false, payloadLength: 125), payload: 2..<127, consumed: 127))
    }

    func testLengthsMustBeMinimallyEncoded() {
        XCTAssertEqual(parse(client, RawFrame.make(opcode: 2, payload: [1], lengthForm: 16)).0, .error(.nonMinimalLength))
        XCTAssertEqual(parse(client, RawFrame.make(opcode: 2, payload: Array(repeating: 0, count: 125), lengthForm: 16)).0, .error(.nonMinimalLength))
        XCTAssertEqual(parse(client, RawFrame.make(opcode: 2, payload: Array(repeating: 0, count: 65535), lengthForm: 64)).0, .error(.nonMinimalLength))
    }

    func testSixtyFourBitLengthWithTopBitIsAProtocolError() {
        let frame: [UInt8] = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]
        XCTAssertEqual(parse(client, frame).0, .error(.lengthTopBitSet))
    }

    func testMaskingRulesFollowTheRole() {
        XCTAssertEqual(parse(server, RawFrame.make(opcode: 1, payload: [65])).0, .error(.unmaskedClientFrame))
        XCTAssertEqual(parse(client, RawFrame.make(opcode: 1, payload: [65], mask: mask)).0, .error(.maskedServerFrame))
    }

    func testSizeLimitIsCheckedOnTheHeaderBeforeThePayloadArrives() {
        // Only the header of a 1 MiB frame: the limit must trip without the payload.
        let header: [UInt8] = [0x82, 0xFF, 0, 0, 0, 0, 0, 0x10, 0, 0]
        XCTAssertEqual(parse(server, header, limit: 1000).0, .error(.messageTooBig))
        XCTAssertEqual(WebSocketProtocolError.messageTooBig.closeCode, .messageTooBig)
        XCTAssertEqual(parse(server, header, limit: 1 << 20).0, .needMore)
        // Control frames are bounded by 125, not by the message limit.
        let (ping, _) = parse(server, RawFrame.make(opcode: 9, payload: [1, 2, 3], mask: mask), limit: 0)
        XCTAssertEqual(ping, .frame(.init(fin: true, opcode: .ping, masked: true, payloadLength: 3), payload: 6..<9, consumed: 9))
    }

    func testTwoFramesInOneBufferParseOneAtATime() {
        let bytes = RawFrame.make(opcode: 9, payload: [7]) + RawFrame.make(opcode: 1, payload: [65, 66])
        XCTAssertEqual(parse(client, bytes).0, .frame(.init(fin: true, opcode: .ping, masked: false, payloadLength: 1), payload: 2..<3, consumed: 3))
        XCTAssertEqual(parse(client, Array(bytes[3...])).0, .frame(.init(fin: true, opcode: .text, masked: false, payloadLength: 2), payload: 2..<4, consumed: 4))
    }

    func testMaskingMatchesBytewiseReferenceForEveryLengthAndAlignment() {
        let key: [UInt8] = [0xA1, 0x02, 0xF3, 0x44]
        let keyWord = key.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        for length in 0..<80 {
            for offset in 0..<8 {
                var data = (0..<(length + offset)).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }
                let expected = Array(data[..<offset]) + data[offset...].enumerated().map { $0.element ^ key[$0.offset % 4] }
                data.withUnsafeMutableBytes { WebSocketMask.apply(key: keyWord, to: UnsafeMutableRawBufferPointer(rebasing: $0[offset...])) }
                XCTAssertEqual(data, expected, "length \(length) offset \(offset)")
            }
        }
    }
}
