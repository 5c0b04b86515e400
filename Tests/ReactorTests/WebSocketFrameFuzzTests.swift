import XCTest
@testable import Reactor

/// Feeds valid frame sequences and mutated garbage to the parser in one chunk and in random
/// chunkings, the way a connection would (keep the unconsumed tail, append the next read),
/// and demands the same results every time (uWebSockets' fuzzing/WebSocket.cpp idea).
final class WebSocketFrameFuzzTests: XCTestCase {
    enum Event: Equatable {
        case frame(WebSocketFrameHeader, [UInt8])
        case error(WebSocketProtocolError)
    }

    /// Runs the parser like a connection does: a kept tail plus each new chunk.
    func run(_ parser: WebSocketFrameParser, _ input: [UInt8], cuts: [Int], limit: Int) -> [Event] {
        var events: [Event] = []
        var kept: [UInt8] = []
        var start = 0
        for end in cuts + [input.count] {
            kept += input[start..<end]
            start = end
            var offset = 0
            loop: while true {
                let outcome: (WebSocketParseResult, [UInt8]) = kept.withUnsafeMutableBytes { all in
                    let rest = UnsafeMutableRawBufferPointer(rebasing: all[offset...])
                    let result = parser.parse(rest, limit: limit)
                    if case .frame(_, let range, _) = result { return (result, Array(rest[range])) }
                    return (result, [])
                }
                switch outcome.0 {
                case .needMore: break loop
                case .frame(let header, let range, let consumed):
                    XCTAssertEqual(range.count, header.payloadLength)
                    XCTAssertLessThanOrEqual(range.upperBound, consumed)
                    events.append(.frame(header, outcome.1))
                    offset += consumed
                case .error(let error):
                    events.append(.error(error))
                    return events
                }
            }
            kept.removeFirst(offset)
        }
        return events
    }

    func randomFrames(_ rng: inout SplitMix64, masked: Bool) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<Int(rng.next() % 6) + 1 {
            let opcodes: [UInt8] = [0, 1, 2, 8, 9, 10]
            let opcode = opcodes[Int(rng.next() % 6)]
            // Mostly small frames; the 16- and 64-bit forms often enough to be exercised.
            var size: Int
            switch rng.next() % 100 {
            case 0..<5: size = 125
            case 5..<10: size = 126 + Int(rng.next() % 10)
            case 10: size = 65535
            case 11: size = 65536 + Int(rng.next() % 100)
            default: size = Int(rng.next() % 300)
            }
            if opcode >= 8 { size = min(size, 125) }
            let seed = rng.next()
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: UInt64($0) &* 0x9E37_79B9 ^ seed) }
            let fin = opcode >= 8 || rng.next() % 3 != 0
            let mask: [UInt8]? = masked ? (0..<4).map { _ in UInt8(truncatingIfNeeded: rng.next()) } : nil
            out += RawFrame.make(fin: fin, opcode: opcode, payload: payload, mask: mask)
        }
        return out
    }

    func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        switch rng.next() % 5 {
        case 0 where !bytes.isEmpty:  // flip bits, often in headers since most frames are small
            for _ in 0..<Int(rng.next() % 4) + 1 {
                let i = Int(rng.next() % UInt64(min(bytes.count, 64)))
                bytes[i] ^= UInt8(truncatingIfNeeded: 1 << (rng.next() % 8))
            }
        case 1 where !bytes.isEmpty:
            bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))
        case 2:
            let at = bytes.isEmpty ? 0 : Int(rng.next() % UInt64(bytes.count))
            bytes.insert(contentsOf: (0..<Int(rng.next() % 16) + 1).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
        case 3:
            bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        default:
            if !bytes.isEmpty { bytes[0] = UInt8(truncatingIfNeeded: rng.next()) }
        }
        return bytes
    }

    func randomCuts(_ count: Int, _ rng: inout SplitMix64) -> [Int] {
        guard count > 1 else { return [] }
        switch rng.next() % 3 {
        case 0: return Array(stride(from: 1, to: count, by: 1)).filter { _ in rng.next() % 4 == 0 }   // many tiny reads
        case 1: return Array(1..<count)                                                            // byte by byte
        default: return (0..<Int(rng.next() % 5)).map { _ in Int(rng.next() % UInt64(count)) }.sorted()
        }
    }

    func testRandomChunkingsGiveTheSameResultsAsOneChunk() {
        var rng = SplitMix64(seed: 6455)
        var frames = 0
        var errors = 0
        let cases = 10_000
        for round in 0..<cases {
            let role: WebSocketRole = round % 2 == 0 ? .server : .client
            let parser = WebSocketFrameParser(role: role)
            var input = randomFrames(&rng, masked: role == .server)
            if round % 3 != 0 { input = mutate(input, &rng) }
            let limit = round % 7 == 0 ? 200 : 1 << 20
            let whole = run(parser, input, cuts: [], limit: limit)
            for _ in 0..<2 {
                // Byte-by-byte chunking of big inputs is quadratic in the kept tail; cap it.
                var cuts = randomCuts(input.count, &rng)
                if cuts.count > 2000 { cuts = Array(cuts.prefix(2000)) }
                let chunked = run(parser, input, cuts: cuts, limit: limit)
                XCTAssertEqual(chunked, whole, "seed 6455 round \(round)")
                if chunked != whole { return }
            }
            for event in whole {
                if case .frame = event { frames += 1 } else { errors += 1 }
            }
        }
        // The generator must really exercise both sides.
        XCTAssertGreaterThan(frames, 10_000)
        XCTAssertGreaterThan(errors, 2_000)
    }
}
