import Reactor

/// HTTP request parse throughput over a realistic `POST /publish` with a JSON body, as the
/// producer sees it from the flood generator: 64 requests pipelined in one buffer, parsed
/// one after another exactly as `HTTPServerConnection` does. Also measures a chunked
/// variant, and the heap allocations per parsed request (the allocation gate).
///
/// Register it with `MicroSuite(name: "http_parse", run: runHTTPParseBenchmark)`.
func runHTTPParseBenchmark(quick: Bool) -> SuiteResult {
    let json = #"{"event_id": "evt-000000123456", "payload": {"message": "hello", "user": 42, "tags": ["a", "b"]}}"#
    let head = "POST /publish HTTP/1.1\r\nHost: 127.0.0.1:3005\r\nUser-Agent: dedup-flood/1.0\r\nAccept: */*\r\n"
        + "Content-Type: application/json\r\n"
    let plain = Array((head + "Content-Length: \(json.utf8.count)\r\n\r\n" + json).utf8)
    let half = json.utf8.count / 2
    let chunked = Array((head + "Transfer-Encoding: chunked\r\n\r\n"
        + String(half, radix: 16) + "\r\n" + String(json.prefix(half)) + "\r\n"
        + String(json.utf8.count - half, radix: 16) + "\r\n" + String(json.dropFirst(half)) + "\r\n0\r\n\r\n").utf8)
    let seconds = quick ? 0.5 : 3.0

    let (rate, bytesPerRequest) = measureParseRate("POST /publish", request: plain, seconds: seconds)
    let (chunkedRate, _) = measureParseRate("POST /publish chunked", request: chunked, seconds: seconds / 2)
    let allocations = measureAllocations(items: 64 * 100) {
        _ = parsePipelined(Array(repeating: plain, count: 64).flatMap { $0 }, rounds: 100)
    }
    return SuiteResult(name: "http_parse", figures: [
        ("requests_per_sec", rate),
        ("ns_per_request", rate > 0 ? 1e9 / rate : 0),
        ("mb_per_sec", rate * Double(bytesPerRequest) / 1e6),
        ("chunked_requests_per_sec", chunkedRate),
        ("allocations_per_request", allocations.allocations),
        ("bytes_allocated_per_request", allocations.bytes),
    ], notes: ["\(bytesPerRequest)-byte POST /publish, 64 pipelined per buffer"])
}

/// Parses the 64-request buffer again and again for `seconds`, printing a live rate.
private func measureParseRate(_ label: String, request: [UInt8], seconds: Double) -> (Double, Int) {
    let buffer = Array(repeating: request, count: 64).flatMap { $0 }
    let live = LiveRate(label, unit: "requests")
    let start = monotonicSeconds()
    var done = 0
    var checksum = 0
    while monotonicSeconds() - start < seconds {
        checksum &+= parsePipelined(buffer, rounds: 50)
        done += 64 * 50
        live.update(done)
    }
    let rate = live.finish(done)
    precondition(checksum != 0, "the parser found no bodies")
    return (rate, request.count)
}

/// Parses every request in `buffer` `rounds` times; returns the total body bytes seen.
private func parsePipelined(_ buffer: [UInt8], rounds: Int) -> Int {
    var parser = HTTPRequestParser()
    var bodyBytes = 0
    buffer.withUnsafeBytes { all in
        for _ in 0..<rounds {
            var offset = 0
            while offset < all.count {
                guard case .request(let request, let consumed) = parser.parse(UnsafeRawBufferPointer(rebasing: all[offset...])) else {
                    fatalError("benchmark request did not parse")
                }
                bodyBytes &+= request.body.count
                offset += consumed
            }
        }
    }
    return bodyBytes
}
