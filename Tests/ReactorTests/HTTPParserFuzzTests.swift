import XCTest
import Reactor

/// Feeds the parser valid, mutated and random inputs, each in one piece and in random
/// chunkings (uWS fuzzing/WebSocket.cpp): it must never crash and must give exactly the
/// same sequence of results whatever the chunking.
final class HTTPParserFuzzTests: XCTestCase {
    private static let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "X-CUSTOM"]
    private static let tokenBytes = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~".utf8)
    private static let valueBytes = Array(" \tabcdefghijklmnopqrstuvwxyz0123456789\"(),/:;<=>?@[\\]{}ÄÖ".utf8)

    /// One generated request: its bytes and what the parser must make of it.
    private struct Generated {
        var bytes: [UInt8]
        var method: String
        var target: String
        var body: [UInt8]
        var keepAlive: Bool
    }

    private func randomToken(_ rng: inout SplitMix64, _ length: ClosedRange<Int>) -> String {
        String(decoding: (0..<Int.random(in: length, using: &rng)).map { _ in Self.tokenBytes.randomElement(using: &rng)! }, as: UTF8.self)
    }

    private func generateRequest(_ rng: inout SplitMix64, maxBody: Int) -> Generated {
        let method = Self.methods.randomElement(using: &rng)!
        var target = "/" + randomToken(&rng, 0...12).replacingOccurrences(of: "?", with: "")
        if Bool.random(using: &rng) { target += "?q=" + randomToken(&rng, 0...8) + "&x=%20y" }
        let http10 = Int.random(in: 0..<6, using: &rng) == 0
        var text = ""
        for _ in 0..<Int.random(in: 0...2, using: &rng) where Int.random(in: 0..<4, using: &rng) == 0 { text += "\r\n" }
        text += "\(method) \(target) HTTP/1.\(http10 ? 0 : 1)\r\nHost: example\r\n"
        var keepAlive = !http10
        switch Int.random(in: 0..<5, using: &rng) {
        case 0: text += "Connection: close\r\n"; keepAlive = false
        case 1: text += "connection: Keep-Alive\r\n"; keepAlive = true
        default: break
        }
        for _ in 0..<Int.random(in: 0...6, using: &rng) {
            var name = randomToken(&rng, 1...16)
            // Framing headers are generated below, deliberately.
            if ["content-length", "transfer-encoding", "connection", "expect"].contains(name.lowercased()) { name = "X-" + name }
            let value = String(decoding: (0..<Int.random(in: 0...40, using: &rng)).map { _ in Self.valueBytes.randomElement(using: &rng)! }, as: UTF8.self)
            text += "\(name):\(Bool.random(using: &rng) ? " " : "")\(value)\r\n"
        }
        let bodyLength = Int.random(in: 0...3, using: &rng) == 0 ? 0 : Int.random(in: 0...min(maxBody, 600), using: &rng)
        let body = (0..<bodyLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var bytes: [UInt8]
        if !http10 && Bool.random(using: &rng) {
            text += "Transfer-Encoding: chunked\r\n\r\n"
            bytes = Array(text.utf8)
            var offset = 0
            while offset < body.count {
                let size = min(Int.random(in: 1...200, using: &rng), body.count - offset)
                var sizeLine = String(size, radix: 16, uppercase: Bool.random(using: &rng))
                if Int.random(in: 0..<4, using: &rng) == 0 { sizeLine += ";ext=\(randomToken(&rng, 0...6))" }
                bytes += Array((sizeLine + "\r\n").utf8) + body[offset..<offset + size] + Array("\r\n".utf8)
                offset += size
            }
            bytes += Array("0\r\n".utf8)
            if Int.random(in: 0..<3, using: &rng) == 0 { bytes += Array("Trailer-\(randomToken(&rng, 1...5)): v\r\n".utf8) }
            bytes += Array("\r\n".utf8)
        } else {
            if bodyLength > 0 || Bool.random(using: &rng) { text += "Content-Length: \(bodyLength)\r\n" }
            text += "\r\n"
            bytes = Array(text.utf8) + body
        }
        return Generated(bytes: bytes, method: method, target: target, body: body, keepAlive: keepAlive)
    }

    private func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            guard !bytes.isEmpty else { break }
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<7, using: &rng) {
            case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
            case 1: bytes[at] ^= 1 << UInt8.random(in: 0...7, using: &rng)
            case 2: bytes.insert([13, 10, 32, 58, 59, 48, 0x7F, 0].randomElement(using: &rng)!, at: at)
            case 3: bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...8, using: &rng)))
            case 4: bytes = Array(bytes[0..<at])
            case 5: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + 20)], at: at)
            default: bytes.replaceSubrange(at..<at, with: Array("\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n".utf8).prefix(Int.random(in: 1...40, using: &rng)))
            }
        }
        return bytes
    }

    /// Random piece sizes covering `count` bytes: sometimes single bytes, sometimes big.
    private func randomPieces(_ count: Int, _ rng: inout SplitMix64) -> [Int] {
        let maxPiece = [1, 3, 17, 64, 500].randomElement(using: &rng)!
        var pieces: [Int] = []
        var covered = 0
        while covered < count {
            let size = Int.random(in: 1...maxPiece, using: &rng)
            pieces.append(size)
            covered += size
        }
        return pieces
    }

    private func randomLimits(_ rng: inout SplitMix64) -> HTTPParserLimits {
        // Small limits half of the time so 413 and 431 are exercised too.
        Bool.random(using: &rng)
            ? HTTPParserLimits()
            : HTTPParserLimits(maxHeadBytes: Int.random(in: 40...400, using: &rng),
                               maxBodyBytes: Int.random(in: 0...400, using: &rng),
                               maxChunkOverheadBytes: Int.random(in: 10...200, using: &rng))
    }

    func testValidPipelinedRequestsParseIdenticallyInAnyChunking() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        for caseIndex in 0..<6000 {
            let generated = (0..<Int.random(in: 1...4, using: &rng)).map { _ in generateRequest(&rng, maxBody: 1 << 20) }
            let input = generated.flatMap(\.bytes)
            let whole = httpParseStream(input)
            XCTAssertEqual(whole.count, generated.count, "case \(caseIndex): \(String(decoding: input, as: UTF8.self).debugDescription)")
            for (result, expected) in zip(whole, generated) {
                guard case .request(let request, let consumed) = result else {
                    XCTFail("case \(caseIndex): \(result) for \(String(decoding: expected.bytes, as: UTF8.self).debugDescription)")
                    continue
                }
                XCTAssertEqual(consumed, expected.bytes.count, "case \(caseIndex)")
                XCTAssertEqual(request.method, expected.method)
                XCTAssertEqual(request.target, expected.target)
                XCTAssertEqual(request.body, expected.body)
                XCTAssertEqual(request.keepAlive, expected.keepAlive)
            }
            for _ in 0..<2 {
                XCTAssertEqual(httpParseStream(input, pieces: randomPieces(input.count, &rng)), whole, "case \(caseIndex)")
            }
            if caseIndex % 10 == 0 {
                XCTAssertEqual(httpParseStream(input, pieces: Array(repeating: 1, count: input.count)), whole, "case \(caseIndex) bytewise")
            }
        }
    }

    func testMutatedAndRandomBytesNeverCrashAndIgnoreChunking() {
        var rng = SplitMix64(seed: 0x5EED_0002)
        var statuses: [Int: Int] = [:]
        var requestsSeen = 0
        for caseIndex in 0..<6000 {
            let limits = randomLimits(&rng)
            let input: [UInt8]
            if caseIndex % 5 == 0 {
                input = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                let valid = (0..<Int.random(in: 1...3, using: &rng)).flatMap { _ in generateRequest(&rng, maxBody: 400).bytes }
                input = mutate(valid, &rng)
            }
            let whole = httpParseStream(input, limits: limits)
            for result in whole {
                switch result {
                case .error(let status, _): statuses[status, default: 0] += 1
                case .request: requestsSeen += 1
                case .needMore: XCTFail("needMore is never recorded")
                }
            }
            for _ in 0..<3 {
                let chunked = httpParseStream(input, pieces: randomPieces(input.count, &rng), limits: limits)
                if chunked != whole {
                    XCTFail("case \(caseIndex): \(chunked) != \(whole) for \(String(decoding: input, as: UTF8.self).debugDescription)")
                    return
                }
            }
        }
        // The corpus must reach every verdict, or it tests less than it claims.
        for status in [400, 413, 431, 501] {
            XCTAssertGreaterThan(statuses[status, default: 0], 0, "no \(status) produced")
        }
        XCTAssertGreaterThan(requestsSeen, 1000)
    }
}
