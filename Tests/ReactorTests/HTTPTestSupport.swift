import Reactor

/// Feeds `input` to a fresh parser the way a connection does: bytes arrive in pieces of
/// the given sizes (the rest in one piece), the buffered bytes are parsed after each
/// arrival, consumed bytes are dropped. Returns every request and the error, if any.
func httpParseStream(_ input: [UInt8], pieces: [Int] = [], limits: HTTPParserLimits = HTTPParserLimits()) -> [HTTPParseResult] {
    var parser = HTTPRequestParser(limits: limits)
    var buffered: [UInt8] = []
    var results: [HTTPParseResult] = []
    var position = 0
    var piece = 0
    while position < input.count {
        let size = piece < pieces.count ? min(max(pieces[piece], 1), input.count - position) : input.count - position
        buffered.append(contentsOf: input[position..<position + size])
        position += size
        piece += 1
        draining: while !buffered.isEmpty {
            let result = buffered.withUnsafeBytes { parser.parse($0) }
            switch result {
            case .needMore:
                break draining
            case .request(_, let consumed):
                results.append(result)
                buffered.removeFirst(consumed)
            case .error:
                results.append(result)
                return results
            }
        }
    }
    return results
}

/// Parses a buffer once and returns the single result.
func httpParseOnce(_ text: String, limits: HTTPParserLimits = HTTPParserLimits()) -> HTTPParseResult {
    var parser = HTTPRequestParser(limits: limits)
    return Array(text.utf8).withUnsafeBytes { parser.parse($0) }
}

/// The request of a `.request` result, or nil.
func httpRequestOf(_ result: HTTPParseResult) -> HTTPRequest? {
    if case .request(let request, _) = result { return request }
    return nil
}

/// The status of an `.error` result, or nil.
func httpErrorStatus(_ result: HTTPParseResult) -> Int? {
    if case .error(let status, _) = result { return status }
    return nil
}


