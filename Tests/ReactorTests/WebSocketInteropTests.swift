import Foundation
import TestSupport
import XCTest
@testable import Reactor

/// Interop with Python's `websockets` library (Tests/interop/*.py), both directions.
/// A missing library fails the test with the install command; it never skips.
final class WebSocketInteropTests: XCTestCase {
    static let interopDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("interop")

    func startPython(_ script: String, _ arguments: [String] = []) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: pythonExecutable())
        process.arguments = ["-u", Self.interopDirectory.appendingPathComponent(script).path] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        return (process, output)
    }

    func testPythonClientAgainstOurServer() throws {
        let h = try WebSocketHarness()
        h.server.onMessage = { socket, opcode, bytes in
            if opcode == .text && bytes == Array("close-me".utf8) {
                socket.close(code: .normalClosure, reason: "asked")
            } else {
                bytes.withUnsafeBytes { _ = socket.send(opcode: opcode, payload: $0) }
            }
        }
        var limitedSockets: [WebSocketConnection] = []
        let limitedRecorder = WebSocketRecorder()
        let limited = try WebSocketServer(loop: h.loop, host: "127.0.0.1", port: 0, reusePort: false,
                                          configuration: WebSocketConfiguration(maxMessageSize: 4096)) {
            $0.delegate = limitedRecorder
            limitedSockets.append($0)
        }
        defer { limited.close() }

        let (process, output) = try startPython("ws_client.py", [String(h.wsServer.port), String(limited.port)])
        // The loop runs on this thread while Python talks to it.
        let exited = h.loop.run(timeout: .seconds(120)) { !process.isRunning }
        if !exited { process.terminate() }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(exited, "ws_client.py did not finish:\n\(text)")
        XCTAssertEqual(process.terminationStatus, 0, "ws_client.py failed:\n\(text)")
        XCTAssertTrue(text.contains("0 failed"), text)
        XCTAssertFalse(text.contains("FAIL"), text)
        for line in ["ok   binary echo 1048576", "ok   fragmented text", "ok   ping answered with pong",
                     "ok   client close 1000 echoed", "ok   server close 1000", "ok   oversize -> 1009",
                     "ok   unmasked frame -> 1002", "ok   invalid UTF-8 -> 1007"] {
            XCTAssertTrue(text.contains(line), "missing '\(line)' in:\n\(text)")
        }

        // Our side saw the same story.
        XCTAssertEqual(h.serverSockets.first?.request?.queryParameter("from_seq"), "7")
        XCTAssertEqual(h.server.closes.first?.code, .normalClosure)
        XCTAssertEqual(limitedRecorder.closes.first?.code, .messageTooBig)
        let failures = h.serverSockets.compactMap(\.protocolError)
        XCTAssertTrue(failures.contains(.unmaskedClientFrame))
        XCTAssertTrue(failures.contains(.reservedBitsSet))
        XCTAssertTrue(failures.contains(.invalidUTF8))
    }

    func testOurClientAgainstPythonServer() throws {
        let (process, output) = try startPython("ws_server.py")
        defer { if process.isRunning { process.terminate() } }
        var firstLine = ""
        while !firstLine.hasSuffix("\n") {
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { break }
            firstLine += String(decoding: data, as: UTF8.self)
        }
        guard firstLine.hasPrefix("PORT "), let port = Int(firstLine.dropFirst(5).prefix { $0.isNumber }) else {
            return XCTFail("ws_server.py did not start: \(firstLine)")
        }
        let loop = try EventLoop()
        let configuration = WebSocketConfiguration(maxMessageSize: (1 << 20) + 4096)
        func open(_ path: String) -> (WebSocketClient, WebSocketRecorder) {
            let recorder = WebSocketRecorder()
            let client = WebSocketClient(loop: loop, url: WebSocketURL(host: "127.0.0.1", port: port, path: path),
                                         configuration: configuration, delegate: recorder)
            client.connect()
            XCTAssertTrue(loop.run(timeout: .seconds(10)) { client.isConnected || !recorder.closes.isEmpty }, path)
            return (client, recorder)
        }

        // Echo of every length form, both opcodes, fragments and ping from our side.
        let (echo, echoed) = open("/echo")
        let sizes = [0, 125, 126, 65535, 65536, 1 << 20]
        for size in sizes {
            echo.socket!.send(text: String(repeating: "ü", count: size / 2))
            echo.socket!.send(binary: (0..<size).map { UInt8(truncatingIfNeeded: $0 ^ 0x5A) })
        }
        Array("abc".utf8).withUnsafeBytes { _ = echo.socket!.send(opcode: .text, payload: $0, fin: false) }
        echo.socket!.sendPing([9, 9])
        Array("def".utf8).withUnsafeBytes { _ = echo.socket!.send(opcode: .continuation, payload: $0, fin: true) }
        XCTAssertTrue(loop.run(timeout: .seconds(30)) { echoed.messages.count == sizes.count * 2 + 1 && echoed.pongs.count == 1 })
        for (i, size) in sizes.enumerated() where echoed.messages.count == sizes.count * 2 + 1 {
            XCTAssertEqual(echoed.messages[2 * i].bytes, Array(String(repeating: "ü", count: size / 2).utf8), "text \(size)")
            XCTAssertEqual(echoed.messages[2 * i + 1].bytes, (0..<size).map { UInt8(truncatingIfNeeded: $0 ^ 0x5A) }, "binary \(size)")
        }
        XCTAssertEqual(echoed.messages.last.map { String(decoding: $0.bytes, as: UTF8.self) }, "abcdef")
        XCTAssertEqual(echoed.pongs, [[9, 9]])
        echo.close(code: .normalClosure)
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { echoed.closes.count == 1 })
        XCTAssertEqual(echoed.closes.first?.code, .normalClosure)

        let (fragments, fragmented) = open("/fragments")
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { fragmented.messages.count == 1 })
        XCTAssertEqual(fragmented.messages.first.map { String(decoding: $0.bytes, as: UTF8.self) }, "one two three")
        fragments.close()

        let (pinged, pingRecorder) = open("/ping")
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { pingRecorder.messages.count == 1 })
        XCTAssertEqual(pingRecorder.messages.first.map { String(decoding: $0.bytes, as: UTF8.self) }, "pong-received")
        pinged.close()

        for (path, code) in [("/close", WebSocketCloseCode.normalClosure), ("/masked", .protocolError),
                             ("/badutf8", .invalidPayload), ("/oversize", .messageTooBig)] {
            let (client, recorder) = open(path)
            XCTAssertTrue(loop.run(timeout: .seconds(10)) { recorder.closes.count == 1 }, path)
            XCTAssertEqual(recorder.closes.first?.code, code, path)
            _ = client
        }
        XCTAssertTrue(loop.run(timeout: .seconds(10)) { fragmented.closes.count == 1 && pingRecorder.closes.count == 1 })

        _ = open("/quit")
        let exited = loop.run(timeout: .seconds(10)) { !process.isRunning }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(exited, text)
        XCTAssertEqual(process.terminationStatus, 0, text)
        // What the Python server saw as close codes.
        for expected in ["RESULT /echo 1000", "RESULT /fragments 1000", "RESULT /ping 1000", "RESULT /close 1000",
                         "RESULT /masked 1002", "RESULT /badutf8 1007", "RESULT /oversize 1009"] {
            XCTAssertTrue(text.contains(expected), "missing '\(expected)' in:\n\(text)")
        }
    }
}
