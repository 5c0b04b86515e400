/// A close status code (RFC 6455 section 7.4).
///
/// A struct over the raw value rather than an enum: peers may send any code in the
/// registered (1000-2999) or private (3000-4999) ranges, and we must echo them as-is.
public struct WebSocketCloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The code as sent on the wire (big-endian there).
    public var rawValue: UInt16
    /// Wraps a raw code.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Wraps a raw code.
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// 1000: the purpose of the connection is fulfilled.
    public static let normalClosure = WebSocketCloseCode(1000)
    /// 1001: the endpoint is going away (server shutdown, page left).
    public static let goingAway = WebSocketCloseCode(1001)
    /// 1002: the peer broke the protocol.
    public static let protocolError = WebSocketCloseCode(1002)
    /// 1003: a data type the endpoint cannot accept.
    public static let unsupportedData = WebSocketCloseCode(1003)
    /// 1005: no code was present. Reported locally, never sent.
    public static let noStatusReceived = WebSocketCloseCode(1005)
    /// 1006: the connection dropped without a close frame. Reported locally, never sent.
    public static let abnormalClosure = WebSocketCloseCode(1006)
    /// 1007: a text message (or close reason) was not valid UTF-8.
    public static let invalidPayload = WebSocketCloseCode(1007)
    /// 1008: a policy was violated.
    public static let policyViolation = WebSocketCloseCode(1008)
    /// 1009: a message exceeded the size limit.
    public static let messageTooBig = WebSocketCloseCode(1009)
    /// 1010: the client needed an extension the server did not offer.
    public static let mandatoryExtension = WebSocketCloseCode(1010)
    /// 1011: the server hit an unexpected condition.
    public static let internalError = WebSocketCloseCode(1011)
    /// 1013: try again later; we use it for consumers too slow to keep up.
    public static let tryAgainLater = WebSocketCloseCode(1013)

    /// Whether this code may appear in a close frame on the wire. 1005, 1006 and 1015 are
    /// reserved for local reporting; codes below 1000, 1004 and unassigned 1016-2999 are invalid.
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014: return true
        case 3000...4999: return true
        default: return false
        }
    }

    /// The decimal code.
    public var description: String { String(rawValue) }
}
