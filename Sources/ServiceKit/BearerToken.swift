/// A shared secret a client must present as `Authorization: Bearer <token>`. Compared in
/// constant time (no early exit on the first differing byte, and the length compared
/// last), never printed: its description is a placeholder.
public struct BearerToken: Sendable, CustomStringConvertible {
    private let bytes: [UInt8]

    /// Nil for an unset or empty value: the endpoint is open.
    public init?(_ value: String?) {
        guard let value, !value.isEmpty else { return nil }
        bytes = Array(value.utf8)
    }

    /// Whether an `Authorization` header value carries this token.
    public func admits(authorization header: String?) -> Bool {
        guard let header else { return false }
        let scheme = "bearer "
        let value = Array(header.utf8)
        guard value.count > scheme.utf8.count,
              String(decoding: value[..<scheme.utf8.count], as: UTF8.self).lowercased() == scheme else { return false }
        let presented = value[scheme.utf8.count...]
        var difference = UInt8(presented.count == bytes.count ? 0 : 1)
        for (i, byte) in presented.enumerated() {
            difference |= byte ^ bytes[i % bytes.count]
        }
        return difference == 0
    }

    /// The header value a client sends.
    public var authorizationHeader: String { "Bearer " + String(decoding: bytes, as: UTF8.self) }

    public var description: String { "<token>" }
}

/// URLs as they may be printed: a password in the user-info part is replaced, so no log
/// line or settings error ever shows one.
public enum RedactedURL {
    /// `scheme://user:secret@host/...` -> `scheme://user:***@host/...`; every URL of a
    /// comma-separated list.
    public static func text(_ url: String) -> String {
        url.split(separator: ",", omittingEmptySubsequences: false).map { redactOne(String($0)) }.joined(separator: ",")
    }

    private static func redactOne(_ url: String) -> String {
        let bytes = Array(url.utf8)
        guard let schemeEnd = (0..<max(bytes.count - 2, 0)).first(where: {
            bytes[$0] == UInt8(ascii: ":") && bytes[$0 + 1] == UInt8(ascii: "/") && bytes[$0 + 2] == UInt8(ascii: "/")
        }) else { return url }
        let authorityStart = schemeEnd + 3
        let authorityEnd = bytes[authorityStart...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }
            ?? bytes.count
        guard let at = bytes[authorityStart..<authorityEnd].lastIndex(of: UInt8(ascii: "@")),
              let colon = bytes[authorityStart..<at].firstIndex(of: UInt8(ascii: ":")) else { return url }
        return String(decoding: bytes[..<(colon + 1)], as: UTF8.self) + "***" + String(decoding: bytes[at...], as: UTF8.self)
    }
}
