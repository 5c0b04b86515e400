/// A cluster node's answer that a command belongs elsewhere: `MOVED slot host:port` (the
/// slot lives there now), `ASK slot host:port` (this one command, during a migration) or
/// `TRYAGAIN` (a multi-key command whose keys are split by a migration in progress).
struct RedisRedirect: Equatable {
    enum Kind: Equatable { case moved, ask, tryAgain }

    let kind: Kind
    let slot: Int
    /// Empty when the node does not know its own address (`MOVED 3999 :6380`): the same
    /// host as the node that answered.
    let host: String
    let port: Int

    /// Parses an error reply's text; nil for every other error.
    init?(_ text: UnsafeRawBufferPointer) {
        if text.starts(with: "TRYAGAIN".utf8) {
            kind = .tryAgain
            slot = -1
            host = ""
            port = 0
            return
        }
        let kind: Kind
        if text.starts(with: "MOVED ".utf8) { kind = .moved } else if text.starts(with: "ASK ".utf8) { kind = .ask } else { return nil }
        let parts = text.split(separator: UInt8(ascii: " "))
        guard parts.count == 3, let slot = Int(String(decoding: parts[1], as: UTF8.self)), (0..<RedisSlot.count).contains(slot),
              let colon = parts[2].lastIndex(of: UInt8(ascii: ":")),
              let port = Int(String(decoding: parts[2][(colon + 1)...], as: UTF8.self)) else { return nil }
        self.kind = kind
        self.slot = slot
        self.host = String(decoding: parts[2][..<colon], as: UTF8.self)
        self.port = port
    }
}
