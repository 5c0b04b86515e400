import XCTest
@testable import Reactor

/// Our client against our server over loopback: messages, control frames, the close
/// handshake and every close code we send.
final class WebSocketConnectionTests: XCTestCase {
    func testTextAndBinaryEchoAtEveryLengthBoundary() throws {
        let h = try WebSocketHarness()
        h.server.echo = true
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        let sizes = [0, 125, 126, 65535, 65536, 1 << 20]
        for size in sizes {
            client.socket!.send(text: String(repeating: "é", count: size / 2) + (size % 2 == 1 ? "x" : ""))
            client.socket!.send(binary: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        }
        XCTAssertTrue(h.run { recorder.messages.count == sizes.count * 2 })
        for (i, size) in sizes.enumerated() {
            XCTAssertEqual(recorder.messages[2 * i].opcode, .text)
            XCTAssertEqual(recorder.messages[2 * i].bytes.count, size)
            XCTAssertEqual(recorder.messages[2 * i + 1].opcode, .binary)
            XCTAssertEqual(recorder.messages[2 * i + 1].bytes, (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        }
        client.close()
    }

    func testFragmentedMessageWithInterleavedPingIsAssembled() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        let socket = client.socket!
        Array("Hello, ".utf8).withUnsafeBytes { _ = socket.send(opcode: .text, payload: $0, fin: false) }
        socket.sendPing([1, 2, 3])
        Array("frag".utf8).withUnsafeBytes { _ = socket.send(opcode: .continuation, payload: $0, fin: false) }
        Array("mented".utf8).withUnsafeBytes { _ = socket.send(opcode: .continuation, payload: $0, fin: true) }
        XCTAssertTrue(h.run { h.server.messages.count == 1 && recorder.pongs.count == 1 })
        XCTAssertEqual(h.server.messages.first?.opcode, .text)
        XCTAssertEqual(h.server.messages.first.map { String(decoding: $0.bytes, as: UTF8.self) }, "Hello, fragmented")
        XCTAssertEqual(recorder.pongs, [[1, 2, 3]])
    }

    func testServerAnswersPingWithTheSamePayload() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        let payload = (0..<125).map { UInt8($0) }
        client.socket!.sendPing(payload)
        XCTAssertTrue(h.run { recorder.pongs.count == 1 })
        XCTAssertEqual(recorder.pongs, [payload])
    }

    func testClientInitiatedNormalCloseCompletesOnBothSides() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        let socket = client.socket!
        client.close(code: .normalClosure, reason: "bye")
        XCTAssertTrue(h.run { recorder.closes.count == 1 && h.server.closes.count == 1 })
        XCTAssertEqual(h.server.closes.first?.code, .normalClosure)
        XCTAssertEqual(h.server.closes.first?.reason, "bye")
        XCTAssertEqual(recorder.closes.first?.code, .normalClosure)
        XCTAssertEqual(socket.closeCodeSent, .normalClosure)
        XCTAssertEqual(socket.closeCodeReceived, .normalClosure)
        XCTAssertEqual(h.serverSockets[0].closeCodeSent, .normalClosure, "the server echoes the code")
    }

    func testServerInitiatedCloseIsEchoedAndServerDropsTCP() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        let clientSocket = client.socket!
        let started = ContinuousClock.now
        h.serverSockets[0].close(code: .tryAgainLater, reason: "slow consumer")
        XCTAssertTrue(h.run { recorder.closes.count == 1 && h.server.closes.count == 1 })
        XCTAssertEqual(recorder.closes.first?.code, .tryAgainLater)
        XCTAssertEqual(recorder.closes.first?.reason, "slow consumer")
        XCTAssertEqual(clientSocket.closeCodeSent, .tryAgainLater)
        XCTAssertEqual(h.server.closes.first?.code, .tryAgainLater)
        // The client must not have waited for its close timeout: the server dropped TCP.
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
    }

    func testUnmaskedFrameFromClientFailsWith1002() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        client.socket!.connection.write(RawFrame.make(opcode: 1, payload: Array("hi".utf8)))
        XCTAssertTrue(h.run { recorder.closes.count == 1 && h.server.closes.count == 1 })
        XCTAssertEqual(recorder.closes.first?.code, .protocolError)
        XCTAssertEqual(h.serverSockets[0].protocolError, .unmaskedClientFrame)
        XCTAssertTrue(h.server.messages.isEmpty)
    }

    func testContinuationWithoutAMessageFailsWith1002() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        Array("x".utf8).withUnsafeBytes { _ = client.socket!.send(opcode: .continuation, payload: $0) }
        XCTAssertTrue(h.run { recorder.closes.count == 1 })
        XCTAssertEqual(recorder.closes.first?.code, .protocolError)
        XCTAssertEqual(h.serverSockets[0].protocolError, .unexpectedContinuation)
    }

    func testNewMessageInsideAFragmentedOneFailsWith1002() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        Array("a".utf8).withUnsafeBytes { _ = client.socket!.send(opcode: .text, payload: $0, fin: false) }
        Array("b".utf8).withUnsafeBytes { _ = client.socket!.send(opcode: .text, payload: $0, fin: true) }
        XCTAssertTrue(h.run { recorder.closes.count == 1 })
        XCTAssertEqual(recorder.closes.first?.code, .protocolError)
        XCTAssertEqual(h.serverSockets[0].protocolError, .expectedContinuation)
    }

    func testInvalidUTF8InTextFailsWith1007EvenAcrossFragments() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        // "é" split across two fragments is valid; a lone continuation byte is not.
        ([0xC3] as [UInt8]).withUnsafeBytes { _ = client.socket!.send(opcode: .text, payload: $0, fin: false) }
        ([0xA9] as [UInt8]).withUnsafeBytes { _ = client.socket!.send(opcode: .continuation, payload: $0, fin: true) }
        ([0xA9] as [UInt8]).withUnsafeBytes { _ = client.socket!.send(opcode: .text, payload: $0) }
        XCTAssertTrue(h.run { recorder.closes.count == 1 })
        XCTAssertEqual(h.server.messages.map(\.bytes), [[0xC3, 0xA9]])
        XCTAssertEqual(recorder.closes.first?.code, .invalidPayload)
    }

    func testOversizeMessageFailsWith1009BeforeBuffering() throws {
        let h = try WebSocketHarness(configuration: WebSocketConfiguration(maxMessageSize: 1000))
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        client.socket!.send(binary: [UInt8](repeating: 1, count: 600))
        // Two fragments, each under the limit, together over it.
        [UInt8](repeating: 2, count: 600).withUnsafeBytes { _ = client.socket!.send(opcode: .binary, payload: $0, fin: false) }
        [UInt8](repeating: 3, count: 600).withUnsafeBytes { _ = client.socket!.send(opcode: .continuation, payload: $0, fin: true) }
        XCTAssertTrue(h.run { recorder.closes.count == 1 })
        XCTAssertEqual(h.server.messages.count, 1)
        XCTAssertEqual(recorder.closes.first?.code, .messageTooBig)
    }

    func testInvalidCloseFramesFailWith1002() throws {
        for payload: [UInt8] in [[0x03], [0x03, 0xED], [0x03, 0xEE], [0x00, 0x00], [0x0B, 0xB8 - 0x01]] {  // 1-byte, 1005, 1006, 0, 2999
            let h = try WebSocketHarness()
            let recorder = WebSocketRecorder()
            let client = h.connectedClient(recorder)
            payload.withUnsafeBytes { client.socket!.writeControl(.close, $0) }
            XCTAssertTrue(h.run { recorder.closes.count == 1 }, "\(payload)")
            XCTAssertEqual(recorder.closes.first?.code, .protocolError, "\(payload)")
        }
    }

    func testCloseReasonMustBeUTF8() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        ([0x03, 0xE8, 0xFF] as [UInt8]).withUnsafeBytes { client.socket!.writeControl(.close, $0) }
        XCTAssertTrue(h.run { recorder.closes.count == 1 })
        XCTAssertEqual(recorder.closes.first?.code, .invalidPayload)
    }

    func testEmptyCloseIsAnsweredWithoutACode() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        let socket = client.socket!
        [UInt8]().withUnsafeBytes { socket.writeControl(.close, $0) }
        XCTAssertTrue(h.run { recorder.closes.count == 1 && h.server.closes.count == 1 })
        XCTAssertEqual(h.server.closes.first?.code, .noStatusReceived)
        XCTAssertEqual(recorder.closes.first?.code, .noStatusReceived, "1005 is reported, never sent")
    }

    func testSendTextWithBodyWritesManyLinesIntoOneFrame() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        _ = h.connectedClient(recorder)
        let lines = 5000  // > 64 KiB in total: the 64-bit length form after a small guess
        h.serverSockets[0].sendText(expectedLength: 100) { buffer in
            for seq in 1...lines {
                if seq > 1 { buffer.write(byte: 0x0A) }
                buffer.write("{\"seq\": " as StaticString)
                buffer.write(decimal: seq)
                buffer.write(", \"event_id\": \"e\"}" as StaticString)
            }
        }
        XCTAssertTrue(h.run { recorder.messages.count == 1 })
        let text = String(decoding: recorder.messages[0].bytes, as: UTF8.self)
        let split = text.split(separator: "\n")
        XCTAssertEqual(split.count, lines)
        XCTAssertEqual(split.last, "{\"seq\": 5000, \"event_id\": \"e\"}")
    }

    func testPreEncodedBroadcastFrameReachesEveryClient() throws {
        let h = try WebSocketHarness()
        let recorders = (0..<3).map { _ in WebSocketRecorder() }
        let clients = recorders.map { recorder -> WebSocketClient in
            let client = WebSocketClient(loop: h.loop, url: h.url, delegate: recorder)
            client.connect()
            return client
        }
        XCTAssertTrue(h.run { h.serverSockets.count == 3 && clients.allSatisfy(\.isConnected) })
        let frame = ByteBuffer()
        Array("{\"seq\": 1}".utf8).withUnsafeBytes { WebSocketFrameEncoder.writeFrame(into: frame, opcode: .text, payload: $0, maskKey: nil) }
        frame.withReadableBytes { bytes in for socket in h.serverSockets { socket.send(encodedFrames: bytes) } }
        XCTAssertTrue(h.run { recorders.allSatisfy { $0.messages.count == 1 } })
        XCTAssertEqual(Set(recorders.map { String(decoding: $0.messages[0].bytes, as: UTF8.self) }), ["{\"seq\": 1}"])
    }

    func testIdlePingKeepsTheConnectionAlive() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        _ = h.connectedClient(recorder, configuration: WebSocketConfiguration(pingInterval: .milliseconds(50)))
        XCTAssertTrue(h.run(seconds: 5) { recorder.pongs.count >= 2 })
    }

    func testAPeerThatAnswersNothingIsDroppedWhileOneThatAnswersPingsStays() throws {
        var configuration = WebSocketConfiguration(pingInterval: .milliseconds(100))
        configuration.silenceTimeout = .milliseconds(600)
        let h = try WebSocketHarness(configuration: configuration)
        let lively = WebSocketRecorder()
        let livelyClient = h.connectedClient(lively)
        let silent = WebSocketRecorder()
        let silentClient = h.connectedClient(silent)
        // A half-open peer: it never reads, so it never answers a ping.
        silentClient.socket?.connection.pauseReading()
        XCTAssertTrue(h.run(seconds: 5) { h.serverSockets.contains { $0.droppedForSilence } })
        XCTAssertEqual(h.serverSockets.filter(\.droppedForSilence).count, 1)
        XCTAssertTrue(h.serverSockets[1].droppedForSilence)
        h.run(seconds: 1) { false }
        XCTAssertTrue(livelyClient.isConnected)
        XCTAssertTrue(h.serverSockets[0].isOpen)
    }

    func testBackpressureIsVisibleThroughIsWritable() throws {
        let h = try WebSocketHarness()
        let recorder = WebSocketRecorder()
        let client = h.connectedClient(recorder)
        client.socket!.connection.pauseReading()  // a consumer that stops reading
        let server = h.serverSockets[0]
        let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
        var sent = 0
        while server.isWritable && sent < 4096 {
            server.send(binary: chunk)
            sent += 1
            h.loop.run(timeout: .milliseconds(1)) { false }
        }
        XCTAssertFalse(server.isWritable)
        XCTAssertGreaterThan(server.pendingWriteBytes, 0)
        client.socket!.connection.resumeReading()
        XCTAssertTrue(h.run { server.isWritable })
    }
}
