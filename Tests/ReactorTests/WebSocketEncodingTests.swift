import XCTest
@testable import Reactor

final class WebSocketEncodingTests: XCTestCase {
    func testHandshakeAcceptMatchesTheRFCTestVector() {
        XCTAssertEqual(WebSocketHandshakeKey.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    func testClientKeysAreFreshSixteenByteBase64() {
        let a = WebSocketHandshakeKey.makeClientKey()
        let b = WebSocketHandshakeKey.makeClientKey()
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(a.utf8.count, 24)
        XCTAssertTrue(WebSocketHandshakeKey.isValidClientKey(Substring(a)))
    }

    func testClientKeyValidationRejectsWrongLengthsAndAlphabet() {
        XCTAssertTrue(WebSocketHandshakeKey.isValidClientKey("dGhlIHNhbXBsZSBub25jZQ=="))
        XCTAssertFalse(WebSocketHandshakeKey.isValidClientKey(""))
        XCTAssertFalse(WebSocketHandshakeKey.isValidClientKey("dGhlIHNhbXBsZSBub25jZQ"))        // unpadded
        XCTAssertFalse(WebSocketHandshakeKey.isValidClientKey("dGhlIHNhbXBsZSBub25jZSE="))      // 17 bytes
        XCTAssertFalse(WebSocketHandshakeKey.isValidClientKey("dGhlIHNhbXBsZSBub25j"))          // 15 bytes
        XCTAssertFalse(WebSocketHandshakeKey.isValidClientKey("dGhlIHNhbXBsZSBub25jZQ=!"))
        XCTAssertFalse(WebSocketHandshakeKey.isValidClientKey("dGhlIHNhbXBsZSBub25jZR=="))      // non-zero spare bits
    }

    func testBase64MatchesRFC4648Vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(Substring(encoded)), Array(plain.utf8))
        }
    }

    func testMaskKeysFromThePoolAreNotRepeated() {
        let pool = WebSocketMaskKeyPool()
        let keys = (0..<1000).map { _ in pool.nextKey() }
        // 1000 draws from 2^32: a repeat would mean the pool hands out stale keys.
        XCTAssertGreaterThan(Set(keys).count, 995)
    }

    func testEncoderRoundTripsThroughTheParserForBothRoles() {
        for size in [0, 1, 125, 126, 65535, 65536, 200_000] {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
            for role in [WebSocketRole.client, .server] {
                let buffer = ByteBuffer()
                let key: UInt32? = role == .client ? 0xDEADBEEF : nil
                payload.withUnsafeBytes { WebSocketFrameEncoder.writeFrame(into: buffer, opcode: .binary, payload: $0, maskKey: key) }
                XCTAssertEqual(buffer.readableBytes, WebSocketFrameEncoder.headerLength(payloadLength: size, masked: key != nil) + size)
                let peer = WebSocketFrameParser(role: role == .client ? .server : .client)
                let (result, got) = buffer.withMutableReadableBytes { bytes -> (WebSocketParseResult, [UInt8]) in
                    let r = peer.parse(bytes)
                    if case .frame(_, let range, _) = r { return (r, Array(bytes[range])) }
                    return (r, [])
                }
                guard case .frame(let header, _, let consumed) = result else { return XCTFail("\(result)") }
                XCTAssertEqual(header, .init(fin: true, opcode: .binary, masked: key != nil, payloadLength: size))
                XCTAssertEqual(consumed, buffer.readableBytes)
                XCTAssertEqual(got, payload, "size \(size) role \(role)")
            }
        }
    }

    func testInPlaceBodyEncoderFixesTheHeaderWhateverTheGuess() {
        for size in [0, 5, 125, 126, 1000, 65535, 65536, 100_000] {
            for guess in [0, 200, 70_000] {
                for key: UInt32? in [nil, 0x01020304] {
                    let buffer = ByteBuffer(capacity: 16)
                    buffer.write("prefix")  // pending output before the frame
                    let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }
                    let length = WebSocketFrameEncoder.writeFrame(into: buffer, opcode: .text, maskKey: key, expectedLength: guess) {
                        $0.write(payload)
                    }
                    XCTAssertEqual(length, size)
                    buffer.moveReaderIndex(forwardBy: 6)
                    let parser = WebSocketFrameParser(role: key == nil ? .client : .server)
                    let got = buffer.withMutableReadableBytes { bytes -> [UInt8]? in
                        guard case .frame(let header, let range, let consumed) = parser.parse(bytes),
                              header.opcode == .text, consumed == bytes.count else { return nil }
                        return Array(bytes[range])
                    }
                    XCTAssertEqual(got, payload, "size \(size) guess \(guess) masked \(key != nil)")
                }
            }
        }
    }

    func testUTF8ValidatorAgreesWithKnownCases() {
        let valid: [[UInt8]] = [[], Array("hello".utf8), Array("κόσμε".utf8), [0xF0, 0x9F, 0x98, 0x80], [0xEF, 0xBF, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF]]
        let invalid: [[UInt8]] = [[0x80], [0xC0, 0xAF], [0xC1, 0xBF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80],
                                  [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF], [0xE2, 0x82],
                                  Array("abcdefghijklmnop".utf8) + [0xCE]]
        for bytes in valid { XCTAssertTrue(bytes.withUnsafeBytes { UTF8Validator.isValid($0) }, "\(bytes)") }
        for bytes in invalid { XCTAssertFalse(bytes.withUnsafeBytes { UTF8Validator.isValid($0) }, "\(bytes)") }
    }

    func testUTF8ValidatorPointsAtTheFirstBadSequence() {
        let cases: [([UInt8], Int?)] = [(Array("plain ascii text".utf8), nil), (Array("é😀".utf8), nil),
                                        (Array(repeating: 0x61, count: 40) + [0xFF], 40), ([0x61, 0xC0, 0x80], 1),
                                        ([0xE2, 0x82, 0xAC, 0xED, 0xA0, 0x80], 3), ([0x61, 0xF0, 0x9F, 0x98], 1)]
        for (bytes, offset) in cases {
            XCTAssertEqual(bytes.withUnsafeBytes { UTF8Validator.firstInvalidOffset($0) }, offset, "\(bytes)")
        }
    }

    func testUTF8ValidatorAgreesWithSwiftOnRandomBytes() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        // Mostly-ASCII runs with sprinkled multibyte sequences and junk exercise both the
        // fast path and every branch of the slow one.
        let pieces: [[UInt8]] = [Array("a".utf8), Array("é".utf8), Array("€".utf8), Array("😀".utf8),
                                 [0x80], [0xC3], [0xED, 0xA0], [0xF4, 0x90], [0xE0, 0x9F, 0x80], [0xF0, 0x8F, 0x80, 0x80]]
        for round in 0..<20_000 {
            var bytes: [UInt8] = []
            let length = Int(rng.next() % 64)
            if round % 2 == 0 {
                for _ in 0..<length { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
            } else {
                for _ in 0..<length {
                    let r = rng.next() % 100
                    bytes += r < 80 ? [UInt8(truncatingIfNeeded: 0x20 + r)] : pieces[Int(rng.next() % UInt64(pieces.count))]
                }
            }
            let swiftSays = String(validating: bytes, as: UTF8.self) != nil
            let weSay = bytes.withUnsafeBytes { UTF8Validator.isValid($0) }
            XCTAssertEqual(weSay, swiftSays, "\(bytes)")
            if weSay != swiftSays { break }
        }
    }
}

/// A small deterministic generator so fuzz failures reproduce from the seed.

