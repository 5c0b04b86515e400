import Glibc
import Reactor

/// A chunk of bytes read from one peer, waiting to be written to the other.
struct FaultProxyChunk {
    var bytes: [UInt8]
    /// How much of `bytes` is already written.
    var offset = 0
    /// Monotonic nanoseconds before which it may not be written (added latency).
    let due: UInt64
}

/// One direction of a pair: what was read from the source and not yet written on.
struct FaultProxyLane {
    /// Chunks still to be written (a long queue, a healed black hole, drains in linear time).
    private var chunks = HeadQueue<FaultProxyChunk>()
    /// Bytes not yet written, to stop reading when too much is held.
    private(set) var heldBytes = 0
    /// The source sent its FIN.
    var sourceEnded = false
    /// The FIN was passed on (shutdown of the destination's write side).
    var finSent = false

    /// Reading pauses above this, so a black-holed or slow peer holds memory, not more.
    static let holdLimit = 1 << 20

    var isEmpty: Bool { chunks.isEmpty }

    /// The next chunk to write.
    var first: FaultProxyChunk? { chunks.first }

    mutating func append(_ bytes: [UInt8], due: UInt64) {
        chunks.append(FaultProxyChunk(bytes: bytes, due: due))
        heldBytes += bytes.count
    }

    /// Marks `count` bytes of the first chunk written.
    mutating func consume(_ count: Int) {
        heldBytes -= count
        var done = false
        chunks.updateFirst { chunk in
            chunk.offset += count
            done = chunk.offset == chunk.bytes.count
        }
        if done { chunks.popFirst() }
    }
}

/// One proxied connection: the accepted client, its own upstream connection, a lane per
/// direction, and the state of a cut-before-reply. Used by the proxy thread only.
final class FaultProxyPair {
    /// Longest cut pattern; also how much of the client's stream is kept to find a pattern
    /// split across two reads.
    static let maxPatternLength = 256

    let client: Int32
    let server: Int32
    /// The non-blocking upstream connect has completed.
    var serverConnected = false
    /// Index: `FaultProxy.Direction.rawValue`.
    var lanes = [FaultProxyLane(), FaultProxyLane()]
    /// Client bytes read so far, and written to the server so far: a cut counts server
    /// bytes as the answer only once the matching chunk is written.
    var clientBytesRead = 0
    var clientBytesWritten = 0
    /// A cut pattern matched: the offset in the client's stream where the matching chunk
    /// ends. Server bytes read once that much is written are swallowed.
    var cutMark: Int?
    /// Server bytes swallowed by this pair's cut.
    var swallowed = 0
    /// The last client bytes seen, for patterns that straddle two reads.
    private var tail: [UInt8] = []
    /// Per side (0 client, 1 server): poll reported an error or hang-up. Such a descriptor
    /// is left out of poll while the proxy neither reads nor writes it (a black hole),
    /// since poll would report it again at once and spin.
    var hungUp = [false, false]
    /// How the pair ends, once decided. The sockets are closed later in the turn, after
    /// the counters are published, so a test that sees the close also sees it counted.
    private(set) var ending: Ending?

    /// How a pair's sockets are closed.
    enum Ending {
        /// FIN: both peers finished, or the proxy stops.
        case close
        /// RST to both peers.
        case reset
    }

    /// An ending is decided: no more reading or writing.
    var closed: Bool { ending != nil }

    init(client: Int32, server: Int32) {
        self.client = client
        self.server = server
    }

    /// The descriptor bytes of `direction` are read from.
    func source(_ direction: FaultProxy.Direction) -> Int32 { direction == .toServer ? client : server }

    /// The descriptor bytes of `direction` are written to.
    func destination(_ direction: FaultProxy.Direction) -> Int32 { direction == .toServer ? server : client }

    /// Records client bytes and tells whether `pattern` ends inside them (a match wholly
    /// inside older bytes was seen, or not armed, before). Nil: not armed; empty: any bytes.
    func noteClientBytes(_ bytes: [UInt8], pattern: [UInt8]?) -> Bool {
        var matched = pattern?.isEmpty == true
        if let pattern, !pattern.isEmpty {
            let carried = tail.suffix(pattern.count - 1)
            let window = Array(carried) + bytes
            matched = Self.contains(window, pattern)
        }
        tail.append(contentsOf: bytes.suffix(Self.maxPatternLength))
        if tail.count > Self.maxPatternLength { tail.removeFirst(tail.count - Self.maxPatternLength) }
        return matched
    }

    /// Decides to abort both sides with an RST; what the lanes held is discarded.
    func reset() {
        if ending == nil { ending = .reset }
    }

    /// Decides to close both sides normally (FIN).
    func close() {
        if ending == nil { ending = .close }
    }

    /// Closes the sockets as decided; called once per pair, after the counters are published.
    func finish() {
        switch ending {
        case .reset?:
            FaultProxySocket.reset(client)
            FaultProxySocket.reset(server)
        case .close?:
            Glibc.close(client)
            Glibc.close(server)
        case nil:
            break
        }
    }

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        let first = needle[0]
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
