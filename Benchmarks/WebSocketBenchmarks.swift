import Glibc
import Reactor

/// WebSocket micro benchmarks: frame parse throughput on masked 100-byte and 16 KiB frames
/// (parse + unmask in place, as a server receives them), and a loopback broadcast of
/// 100-byte text frames from one server to 2 clients, with the heap allocations per frame
/// (counted exactly by CAllocCounter's malloc interposer; Glibc's module does not export
/// mallinfo2, and exact counts are the better gate anyway).
///
/// Register it with `MicroSuite(name: "websocket", run: runWebSocketBenchmark)`.
func runWebSocketBenchmark(quick: Bool) throws -> SuiteResult {
    let seconds = quick ? 0.5 : 3.0
    var figures: [(String, Double)] = []
    for size in [100, 16 * 1024] {
        let gbps = measureFrameParse(payloadSize: size, seconds: seconds / 2)
        figures.append(("parse_\(size)B_masked_gb_per_sec", gbps))
    }
    let broadcast = try measureLoopbackBroadcast(seconds: seconds)
    figures += broadcast
    return SuiteResult(name: "websocket", figures: figures,
                       notes: ["parse: 1 MiB buffers of masked frames, parsed and unmasked in place",
                               "broadcast: 100-byte text frames, 1 server -> 2 clients on one loop over loopback"])
}

/// Parses a 1 MiB buffer of masked frames again and again; GB/s of frame bytes.
private func measureFrameParse(payloadSize: Int, seconds: Double) -> Double {
    let frame = ByteBuffer()
    let payload = [UInt8](repeating: 0x61, count: payloadSize)
    let perBuffer = max(1, (1 << 20) / (payloadSize + 14))
    for i in 0..<perBuffer {
        payload.withUnsafeBytes {
            WebSocketFrameEncoder.writeFrame(into: frame, opcode: .text, payload: $0, maskKey: UInt32(truncatingIfNeeded: i &* 2654435761))
        }
    }
    let parser = WebSocketFrameParser(role: .server)
    let live = LiveRate("parse \(payloadSize)-byte masked frames", unit: "frames")
    let start = monotonicSeconds()
    var frames = 0
    var checksum = 0
    let total = frame.readableBytes
    while monotonicSeconds() - start < seconds {
        // Unmasking toggles the bytes each pass, which is fine: the work is the same.
        frame.withMutableReadableBytes { all in
            var offset = 0
            while offset < all.count {
                guard case .frame(_, let range, let consumed) = parser.parse(UnsafeMutableRawBufferPointer(rebasing: all[offset...])) else {
                    fatalError("benchmark frame did not parse")
                }
                checksum &+= range.count
                offset += consumed
            }
        }
        frames += perBuffer
        live.update(frames)
    }
    let rate = live.finish(frames)
    precondition(checksum > 0)
    return rate / Double(perBuffer) * Double(total) / 1e9
}

/// Counts frames on the client side of the broadcast.
private final class BroadcastSink: WebSocketClientDelegate {
    var frames = 0
    var bytes = 0
    func webSocket(_ socket: WebSocketConnection, didReceiveMessage opcode: WebSocketOpcode, bytes: UnsafeRawBufferPointer) {
        frames += 1
        self.bytes += bytes.count
    }
    func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String) {}
}

private func measureLoopbackBroadcast(seconds: Double) throws -> [(String, Double)] {
    let loop = try EventLoop()
    var serverSockets: [WebSocketConnection] = []
    let server = try WebSocketServer(loop: loop, host: "127.0.0.1", port: 0, reusePort: false) { serverSockets.append($0) }
    defer { server.close() }
    let sink = BroadcastSink()
    let clients = (0..<2).map { _ in
        WebSocketClient(loop: loop, url: WebSocketURL(host: "127.0.0.1", port: server.port), delegate: sink)
    }
    clients.forEach { $0.connect() }
    guard loop.run(timeout: .seconds(10), until: { serverSockets.count == 2 && clients.allSatisfy(\.isConnected) }) else {
        throw SocketError(errno: ETIMEDOUT, operation: "benchmark clients did not connect")
    }
    // An NDJSON-looking 100-byte line.
    var line = Array(#"{"seq": 1234567, "event_id": "evt-000000123456", "payload": {"message": "hello"}}"#.utf8)
    line += [UInt8](repeating: 0x20, count: 100 - line.count)

    // Keep a bounded amount queued per client and let the loop move it.
    func pump(until deadline: Double, live: LiveRate?) -> Int {
        var sent = 0
        while monotonicSeconds() < deadline {
            for socket in serverSockets {
                var n = 0
                while socket.pendingWriteBytes < 128 * 1024 && n < 2048 {
                    line.withUnsafeBytes { _ = socket.send(textBytes: $0) }
                    n += 1
                }
                sent += n
            }
            loop.turn(maxWaitNanos: 1_000_000)
            live?.update(sink.frames)
        }
        return sent
    }
    _ = pump(until: monotonicSeconds() + 0.2, live: nil)  // warm up buffers
    let framesBefore = sink.frames
    let bytesBefore = sink.bytes
    let live = LiveRate("broadcast 100-byte frames to 2 clients", unit: "frames")
    let start = monotonicSeconds()
    var received = 0
    let allocations = measureAllocations(items: 1) {
        _ = pump(until: start + seconds, live: live)
        received = sink.frames - framesBefore
    }
    let elapsed = monotonicSeconds() - start
    live.finish(received)
    let frameRate = Double(received) / elapsed
    let mibRate = Double(sink.bytes - bytesBefore) / elapsed / 1_048_576
    clients.forEach { $0.close() }
    loop.run(timeout: .seconds(2)) { serverSockets.allSatisfy { $0.state == .closed } }
    let perFrame = Double(max(received, 1))
    return [
        ("broadcast_frames_per_sec", frameRate),
        ("broadcast_payload_mib_per_sec", mibRate),
        ("broadcast_allocations_per_frame", allocations.allocations / perFrame),
        ("broadcast_bytes_allocated_per_frame", allocations.bytes / perFrame),
    ]
}
