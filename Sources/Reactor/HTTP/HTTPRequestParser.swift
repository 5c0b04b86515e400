import Glibc

/// What one call of `HTTPRequestParser.parse` found.
public enum HTTPParseResult: Sendable, Equatable {
    /// The bytes so far are a valid prefix of a request; call again with more.
    case needMore
    /// A complete request, which used the first `consumed` bytes. The caller drops them and
    /// passes whatever follows (a pipelined request) to the next call.
    case request(HTTPRequest, consumed: Int)
    /// The bytes can never become a valid request: answer `status` and close.
    /// 400 malformed, 413 body too large, 431 head too large, 501 unknown transfer coding.
    case error(status: Int, message: String)
}

/// Size limits a parser enforces before it buffers anything large.
public struct HTTPParserLimits: Sendable, Equatable {
    /// Largest request head (request line, header lines and the blank line): 431 beyond.
    public var maxHeadBytes: Int
    /// Largest body, checked against Content-Length before the body arrives and against
    /// the running chunk total for chunked bodies: 413 beyond.
    public var maxBodyBytes: Int
    /// Most bytes of chunked framing (size lines, extensions, CRLFs) a body may spend, so
    /// one-byte chunks with long extensions cannot make the connection buffer grow far past
    /// `maxBodyBytes`: 413 beyond.
    public var maxChunkOverheadBytes: Int

    /// The defaults: 16 KiB head, 1 MiB body, 64 KiB chunk framing.
    public init(maxHeadBytes: Int = 16 * 1024, maxBodyBytes: Int = 1 << 20, maxChunkOverheadBytes: Int = 64 * 1024) {
        self.maxHeadBytes = maxHeadBytes
        self.maxBodyBytes = maxBodyBytes
        self.maxChunkOverheadBytes = maxChunkOverheadBytes
    }
}

/// An incremental HTTP/1.x request parser over the bytes buffered so far.
///
/// Call `parse` with every unconsumed byte of the current request (the connection keeps
/// them); the parser remembers only how far it has validated, so each byte is scanned once
/// however the input is chunked, and the result never depends on the chunking: every
/// verdict is a function of a prefix that is complete at the time it is given. After
/// `.request(_, consumed:)` it is ready for the next request, which starts at `consumed`.
/// After `.error` it keeps answering the same error.
///
/// Strict where smuggling lives (both Content-Length and Transfer-Encoding, differing
/// Content-Lengths, obsolete line folding, bare LF, whitespace before the colon are all
/// 400), lenient where it is harmless (empty lines before a request, chunk extensions and
/// trailers are skipped).
public struct HTTPRequestParser {
    private enum Phase {
        case head
        case fixedBody
        case chunkSize
        case chunkData
        case chunkDataEnd
        case trailers
        case failed
    }

    /// The limits in force.
    public let limits: HTTPParserLimits
    /// A chunk-size line (with its extensions) longer than this is malformed.
    static let maxChunkLineBytes = 4096

    private var phase = Phase.head
    /// Head: start of the next line to validate. Body phases: the cursor.
    private var cursor = 0
    private var requestLineStart = -1
    private var fieldLines = 0
    /// Early method check: how far the unterminated request line was checked (so a slow
    /// trickle is not rescanned), or `Int.max` once its method ended.
    private var methodScanned = 0
    private var methodEnd = 0
    private var targetEnd = 0
    private var version = HTTPVersion.http1_1
    private var headEnd = 0
    private var contentLength = 0
    private var chunkRemaining = 0
    private var trailerStart = 0
    private var pending: HTTPRequest?
    private var body: [UInt8] = []
    private var failureStatus = 0
    private var failureMessage = ""

    /// True while the current request's head asked `Expect: 100-continue` and its body has
    /// not fully arrived: the server should send `100 Continue` once.
    public private(set) var expectsContinue = false

    /// True until the current request's head is complete (also before its first byte):
    /// what a header deadline measures.
    public var isReadingHead: Bool { phase == .head }

    /// Creates a parser for one connection.
    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
    }

    /// Forgets any partial request (the caller dropped its bytes).
    public mutating func reset() {
        phase = .head
        cursor = 0
        requestLineStart = -1
        fieldLines = 0
        methodScanned = 0
        pending = nil
        body = []
        expectsContinue = false
    }

    /// Parses the buffered bytes of the current request (see the type's documentation).
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> HTTPParseResult {
        while true {
            let step: Step
            switch phase {
            case .failed: return .error(status: failureStatus, message: failureMessage)
            case .head: step = parseHead(bytes)
            case .fixedBody: step = parseFixedBody(bytes)
            case .chunkSize: step = parseChunkSize(bytes)
            case .chunkData: step = parseChunkData(bytes)
            case .chunkDataEnd: step = parseChunkDataEnd(bytes)
            case .trailers: step = parseTrailers(bytes)
            }
            switch step {
            case .again: continue
            case .needMore: return .needMore
            case .done(let end): return finish(consumed: end)
            case .fail(let status, let message):
                phase = .failed
                failureStatus = status
                failureMessage = message
                pending = nil
                body = []
                expectsContinue = false
                return .error(status: status, message: message)
            }
        }
    }

    private enum Step {
        case again
        case needMore
        case done(Int)
        case fail(Int, String)
    }

    private mutating func finish(consumed: Int) -> HTTPParseResult {
        var request = pending!
        request.body = body
        body = []
        reset()
        return .request(request, consumed: consumed)
    }

    // MARK: head

    private mutating func parseHead(_ p: UnsafeRawBufferPointer) -> Step {
        let limit = min(p.count, limits.maxHeadBytes)
        while cursor < limit {
            guard let lf = findLF(p, from: cursor, to: limit) else { break }
            let lineStart = cursor
            cursor = lf + 1
            let isEmptyLine = lf == lineStart + 1 && p[lineStart] == CR
            if requestLineStart < 0 {
                // Robustness (RFC 9112 2.2): ignore empty lines before the request line.
                if isEmptyLine { continue }
                if let error = validateRequestLine(p, lineStart, lf) { return .fail(400, error) }
                requestLineStart = lineStart
            } else if isEmptyLine {
                headEnd = cursor
                return buildHead(p)
            } else if let error = validateFieldLine(p, lineStart, lf) {
                return .fail(400, error)
            } else {
                fieldLines += 1
            }
        }
        // No line end yet. Reject a request line whose method is already impossible so
        // garbage (a TLS hello, a stray protocol) is refused at once, not after 16 KiB.
        // The check reads the same bytes, in the same order, with the same verdicts as
        // validateRequestLine does later, so it can only say sooner what that would say.
        if requestLineStart < 0, cursor < limit, p[cursor] != CR, methodScanned != .max {
            switch scanMethod(p, lineStart: cursor, from: max(cursor, methodScanned), end: limit) {
            case .invalid: return .fail(400, "invalid method")
            case .incomplete: methodScanned = limit
            case .ends: methodScanned = .max
            }
        }
        if p.count >= limits.maxHeadBytes { return .fail(431, "request head exceeds \(limits.maxHeadBytes) bytes") }
        return .needMore
    }

    private enum MethodScan { case invalid, incomplete, ends(Int) }

    /// Scans the method token of the line at `lineStart`, resuming at `from` (the bytes
    /// before it are known token bytes): it ends at the first space and must be non-empty.
    private func scanMethod(_ p: UnsafeRawBufferPointer, lineStart: Int, from: Int, end: Int) -> MethodScan {
        var i = from
        while i < end {
            let b = p[i]
            if b == SP { return i == lineStart ? .invalid : .ends(i) }
            if !isTokenByte(b) { return .invalid }
            i += 1
        }
        return .incomplete
    }

    /// `method SP target SP HTTP/1.x CRLF`; `lf` is the index of the LF.
    private mutating func validateRequestLine(_ p: UnsafeRawBufferPointer, _ start: Int, _ lf: Int) -> String? {
        // The scan includes the CR, exactly as the early check in parseHead sees it.
        let sp1: Int
        switch scanMethod(p, lineStart: start, from: start, end: lf) {
        case .invalid: return "invalid method"
        case .incomplete: return "malformed request line"
        case .ends(let i): sp1 = i
        }
        var i = sp1 + 1
        while i < lf, p[i] != SP {
            if p[i] <= SP || p[i] == DEL { return "invalid request target" }
            i += 1
        }
        if i == lf { return "malformed request line" }
        if i == sp1 + 1 { return "invalid request target" }
        methodEnd = sp1
        targetEnd = i
        let v = i + 1
        guard lf - v == 9, p[lf - 1] == CR,
              p[v] == UInt8(ascii: "H"), p[v + 1] == UInt8(ascii: "T"), p[v + 2] == UInt8(ascii: "T"),
              p[v + 3] == UInt8(ascii: "P"), p[v + 4] == UInt8(ascii: "/"),
              isDigit(p[v + 5]), p[v + 6] == UInt8(ascii: "."), isDigit(p[v + 7])
        else { return "malformed request line" }
        guard p[v + 5] == UInt8(ascii: "1"), p[v + 7] == UInt8(ascii: "0") || p[v + 7] == UInt8(ascii: "1") else {
            return "unsupported HTTP version"
        }
        version = p[v + 7] == UInt8(ascii: "1") ? .http1_1 : .http1_0
        return nil
    }

    /// `name ":" OWS value OWS CRLF` (headers and trailers).
    private func validateFieldLine(_ p: UnsafeRawBufferPointer, _ start: Int, _ lf: Int) -> String? {
        if p[start] == SP || p[start] == HTAB { return "obsolete header line folding" }
        var i = start
        while i < lf, p[i] != COLON {
            if !isTokenByte(p[i]) { return "invalid header name" }
            i += 1
        }
        if i == lf { return "malformed header line" }
        if i == start { return "empty header name" }
        if p[lf - 1] != CR || lf - 1 < i + 1 { return "header line not ended by CRLF" }
        var j = i + 1
        while j < lf - 1 {
            let b = p[j]
            if (b < SP && b != HTAB) || b == DEL { return "invalid header value" }
            j += 1
        }
        return nil
    }

    /// The head is complete and every line valid: build the request and pick the framing.
    private mutating func buildHead(_ p: UnsafeRawBufferPointer) -> Step {
        let method = string(p, requestLineStart, methodEnd)
        let target = string(p, methodEnd + 1, targetEnd)
        var headers = HTTPHeaders(capacity: fieldLines)
        var lengthSeen = false
        var length = 0
        var transferCodings = 0
        var chunkedOnly = false
        var connectionClose = false
        var connectionKeepAlive = false
        var expectContinue = false

        // Skip the request line; every remaining line up to the blank one is a valid field.
        var lineStart = findLF(p, from: requestLineStart, to: headEnd)! + 1
        while true {
            let lf = findLF(p, from: lineStart, to: headEnd)!
            if lf == lineStart + 1 { break }
            var colon = lineStart
            while p[colon] != COLON { colon += 1 }
            var valueStart = colon + 1
            var valueEnd = lf - 1
            while valueStart < valueEnd, p[valueStart] == SP || p[valueStart] == HTAB { valueStart += 1 }
            while valueEnd > valueStart, p[valueEnd - 1] == SP || p[valueEnd - 1] == HTAB { valueEnd -= 1 }
            let name = UnsafeRawBufferPointer(rebasing: p[lineStart..<colon])
            let value = UnsafeRawBufferPointer(rebasing: p[valueStart..<valueEnd])

            if equalsLowercase(name, "content-length") {
                // A list of identical values is one length (RFC 9110 8.6); anything else is smuggling bait.
                var invalid = false
                var conflicting = false
                forEachListElement(value, skipEmpty: false) { element in
                    guard let n = parseDecimal(element) else { invalid = true; return }
                    if lengthSeen && n != length { conflicting = true }
                    lengthSeen = true
                    length = n
                }
                if invalid { return .fail(400, "invalid Content-Length") }
                if conflicting { return .fail(400, "conflicting Content-Length values") }
            } else if equalsLowercase(name, "transfer-encoding") {
                forEachListElement(value, skipEmpty: true) { coding in
                    transferCodings += 1
                    chunkedOnly = transferCodings == 1 && equalsLowercase(coding, "chunked")
                }
            } else if equalsLowercase(name, "connection") {
                forEachListElement(value, skipEmpty: true) { option in
                    if equalsLowercase(option, "close") { connectionClose = true }
                    if equalsLowercase(option, "keep-alive") { connectionKeepAlive = true }
                }
            } else if equalsLowercase(name, "expect") {
                expectContinue = equalsLowercase(value, "100-continue")
            }
            headers.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
            lineStart = lf + 1
        }

        let keepAlive = version == .http1_1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        pending = HTTPRequest(method: method, target: target, version: version, headers: headers,
                              body: [], keepAlive: keepAlive)
        if transferCodings > 0 {
            if lengthSeen { return .fail(400, "both Content-Length and Transfer-Encoding") }
            if version == .http1_0 { return .fail(400, "Transfer-Encoding in an HTTP/1.0 request") }
            if !chunkedOnly { return .fail(501, "unsupported Transfer-Encoding") }
            phase = .chunkSize
            cursor = headEnd
            expectsContinue = expectContinue && version == .http1_1
            return .again
        }
        if length > limits.maxBodyBytes {
            return .fail(413, "request body exceeds \(limits.maxBodyBytes) bytes")
        }
        if length == 0 { return .done(headEnd) }
        contentLength = length
        phase = .fixedBody
        expectsContinue = expectContinue && version == .http1_1
        return .again
    }

    // MARK: bodies

    private mutating func parseFixedBody(_ p: UnsafeRawBufferPointer) -> Step {
        guard p.count - headEnd >= contentLength else { return .needMore }
        body = Array(UnsafeRawBufferPointer(rebasing: p[headEnd..<headEnd + contentLength]))
        return .done(headEnd + contentLength)
    }

    /// `1*HEXDIG [BWS ";" extensions] CRLF`; extensions are ignored.
    private mutating func parseChunkSize(_ p: UnsafeRawBufferPointer) -> Step {
        let limit = min(p.count, cursor + Self.maxChunkLineBytes)
        guard let lf = findLF(p, from: cursor, to: limit) else {
            return p.count - cursor >= Self.maxChunkLineBytes ? .fail(400, "chunk size line too long") : .needMore
        }
        var i = cursor
        var size = 0
        while i < lf, let digit = hexValue(p[i]) {
            // Saturate: any size this big is over the body limit anyway.
            size = size >= 1 << 56 ? size : size &* 16 &+ Int(digit)
            i += 1
        }
        if i == cursor { return .fail(400, "invalid chunk size") }
        while i < lf, p[i] == SP || p[i] == HTAB { i += 1 }
        if i < lf, p[i] == SEMICOLON {
            i += 1
            while i < lf - 1 {
                if (p[i] < SP && p[i] != HTAB) || p[i] == DEL { return .fail(400, "invalid chunk extension") }
                i += 1
            }
        }
        guard i == lf - 1, p[i] == CR else { return .fail(400, "invalid chunk size") }
        cursor = lf + 1
        if (cursor - headEnd) - body.count > limits.maxChunkOverheadBytes {
            return .fail(413, "chunked framing exceeds \(limits.maxChunkOverheadBytes) bytes")
        }
        if size > limits.maxBodyBytes - body.count {
            return .fail(413, "request body exceeds \(limits.maxBodyBytes) bytes")
        }
        if size == 0 {
            phase = .trailers
            trailerStart = cursor
        } else {
            chunkRemaining = size
            phase = .chunkData
            // A declared size costs the client nothing: reserve for what may plausibly come.
            if body.isEmpty { body.reserveCapacity(min(size, 64 * 1024)) }
        }
        return .again
    }

    private mutating func parseChunkData(_ p: UnsafeRawBufferPointer) -> Step {
        let n = min(chunkRemaining, p.count - cursor)
        if n > 0 {
            body.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[cursor..<cursor + n]))
            cursor += n
            chunkRemaining -= n
        }
        guard chunkRemaining == 0 else { return .needMore }
        phase = .chunkDataEnd
        return .again
    }

    private mutating func parseChunkDataEnd(_ p: UnsafeRawBufferPointer) -> Step {
        let available = p.count - cursor
        if available == 0 { return .needMore }
        if p[cursor] != CR { return .fail(400, "chunk data not followed by CRLF") }
        if available == 1 { return .needMore }
        if p[cursor + 1] != LF { return .fail(400, "chunk data not followed by CRLF") }
        cursor += 2
        phase = .chunkSize
        return .again
    }

    /// Trailer fields after the last chunk: validated, then dropped.
    private mutating func parseTrailers(_ p: UnsafeRawBufferPointer) -> Step {
        let limit = min(p.count, trailerStart + limits.maxHeadBytes)
        while cursor < limit {
            guard let lf = findLF(p, from: cursor, to: limit) else { break }
            let lineStart = cursor
            cursor = lf + 1
            if lf == lineStart + 1 && p[lineStart] == CR { return .done(cursor) }
            if let error = validateFieldLine(p, lineStart, lf) { return .fail(400, error) }
        }
        if p.count - trailerStart >= limits.maxHeadBytes {
            return .fail(431, "trailer section exceeds \(limits.maxHeadBytes) bytes")
        }
        return .needMore
    }
}

// MARK: byte helpers

private let CR: UInt8 = 13
private let LF: UInt8 = 10
private let SP: UInt8 = 32
private let HTAB: UInt8 = 9
private let DEL: UInt8 = 127
private let COLON = UInt8(ascii: ":")
private let COMMA = UInt8(ascii: ",")
private let SEMICOLON = UInt8(ascii: ";")

/// The index of the first LF in `p[from..<to]`.
@inline(__always)
private func findLF(_ p: UnsafeRawBufferPointer, from: Int, to: Int) -> Int? {
    guard from < to, let base = p.baseAddress else { return nil }
    guard let hit = memchr(base + from, Int32(LF), to - from) else { return nil }
    return UnsafeRawPointer(hit) - base
}

@inline(__always)
private func isDigit(_ b: UInt8) -> Bool { b &- UInt8(ascii: "0") < 10 }

/// RFC 9110 tchar: the bytes of a method or field name.
@inline(__always)
private func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    case 0x21, 0x23...0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E...0x60, 0x7C, 0x7E: return true  // !#$%&'*+-.^_`|~
    default: return false
    }
}

/// Compares bytes with a lowercase ASCII literal, ignoring the case of letters.
@inline(__always)
private func equalsLowercase<C: Collection<UInt8>>(_ bytes: C, _ literal: StaticString) -> Bool {
    guard bytes.count == literal.utf8CodeUnitCount else { return false }
    var i = 0
    for b in bytes {
        let l = literal.utf8Start[i]
        // Folding with 0x20 is exact for letters; the literal is lowercase, so only an
        // uppercase letter in `bytes` may differ from it.
        if b != l && !(b &- UInt8(ascii: "A") < 26 && b | 0x20 == l) { return false }
        i += 1
    }
    return true
}

private func string(_ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> String {
    String(decoding: UnsafeRawBufferPointer(rebasing: p[start..<end]), as: UTF8.self)
}

/// Calls `body` with each element of a comma-separated field value, trimmed of OWS,
/// without allocating (Content-Length, Transfer-Encoding and Connection are lists).
@inline(__always)
private func forEachListElement(_ value: UnsafeRawBufferPointer, skipEmpty: Bool,
                                _ body: (UnsafeRawBufferPointer) -> Void) {
    var start = 0
    while start <= value.count {
        var end = start
        while end < value.count, value[end] != COMMA { end += 1 }
        var a = start
        var b = end
        while a < b, value[a] == SP || value[a] == HTAB { a += 1 }
        while b > a, value[b - 1] == SP || value[b - 1] == HTAB { b -= 1 }
        if b > a || !skipEmpty { body(UnsafeRawBufferPointer(rebasing: value[a..<b])) }
        start = end + 1
    }
}

/// Non-empty ASCII digits; saturates instead of overflowing (any such length is over the limit).
private func parseDecimal<C: Collection<UInt8>>(_ bytes: C) -> Int? {
    guard !bytes.isEmpty else { return nil }
    var n = 0
    for b in bytes {
        guard isDigit(b) else { return nil }
        n = n >= 1 << 58 ? n : n * 10 + Int(b &- UInt8(ascii: "0"))
    }
    return n
}
