/// Where a Redis server is and how to log in: `redis://[[user]:password@]host[:port][/db]`.
///
/// Parsed without Foundation. The host stays a name here; `RedisClient` resolves it before
/// hiredis sees it (hiredis would call a blocking getaddrinfo on the loop otherwise).
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    /// Host name, IPv4 literal or IPv6 literal (without brackets).
    public var host: String
    /// TCP port (6379 when the URL has none).
    public var port: Int
    /// ACL user name for `AUTH user password` (Redis 6+); nil uses the one-argument AUTH.
    public var username: String?
    /// Password for AUTH; nil sends no AUTH.
    public var password: String?
    /// Logical database for SELECT (0 sends no SELECT).
    public var database: Int

    /// The default Redis port.
    public static let defaultPort = 6379

    /// Builds a URL from parts.
    public init(host: String, port: Int = RedisURL.defaultPort, username: String? = nil,
                password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`; percent-escapes are decoded in the
    /// user name and password. Throws a `RedisURLError` that names what is wrong.
    public init(parsing text: String) throws(RedisURLError) {
        let bytes = Array(text.utf8)
        let scheme = Array("redis://".utf8)
        guard bytes.count >= scheme.count,
              zip(bytes.prefix(scheme.count), scheme).allSatisfy({ Self.lower($0) == $1 }) else {
            if text.lowercased().hasPrefix("rediss://") {
                throw RedisURLError(text, "TLS (rediss://) is not supported")
            }
            throw RedisURLError(text, "must start with redis://")
        }
        var rest = bytes[scheme.count...]
        if rest.contains(UInt8(ascii: "?")) || rest.contains(UInt8(ascii: "#")) {
            throw RedisURLError(text, "query strings and fragments are not supported")
        }

        // Split the authority from the path at the first "/" after the scheme.
        var path: ArraySlice<UInt8> = []
        if let slash = rest.firstIndex(of: UInt8(ascii: "/")) {
            path = rest[(slash + 1)...]
            rest = rest[..<slash]
        }

        // The password may itself contain "@" only percent-encoded, so the last "@" ends userinfo.
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: UInt8(ascii: "@")) {
            let info = rest[..<at]
            rest = rest[(at + 1)...]
            if let colon = info.firstIndex(of: UInt8(ascii: ":")) {
                let user = try Self.percentDecoded(info[..<colon], text, "user name")
                username = user.isEmpty ? nil : user
                password = try Self.percentDecoded(info[(colon + 1)...], text, "password")
            } else {
                // "redis://secret@host" is how some tools spell a password-only URL.
                password = try Self.percentDecoded(info, text, "password")
            }
            if password?.isEmpty == true { password = nil }
        }

        var hostBytes: ArraySlice<UInt8>
        var portBytes: ArraySlice<UInt8>?
        if rest.first == UInt8(ascii: "[") {
            guard let close = rest.firstIndex(of: UInt8(ascii: "]")) else {
                throw RedisURLError(text, "unterminated IPv6 literal")
            }
            hostBytes = rest[(rest.startIndex + 1)..<close]
            let after = rest[(close + 1)...]
            if let first = after.first {
                guard first == UInt8(ascii: ":") else { throw RedisURLError(text, "junk after IPv6 literal") }
                portBytes = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: UInt8(ascii: ":")) {
            hostBytes = rest[..<colon]
            portBytes = rest[(colon + 1)...]
        } else {
            hostBytes = rest
        }
        guard !hostBytes.isEmpty else { throw RedisURLError(text, "missing host") }
        for byte in hostBytes where !(Self.isHostByte(byte)) {
            throw RedisURLError(text, "invalid character '\(Character(Unicode.Scalar(byte)))' in host")
        }

        var port = Self.defaultPort
        if let portBytes {
            guard let value = Self.decimal(portBytes), (1...65535).contains(value) else {
                throw RedisURLError(text, "port must be a number from 1 to 65535")
            }
            port = value
        }

        var database = 0
        if !path.isEmpty {
            guard let value = Self.decimal(path), value <= Int(Int32.max) else {
                throw RedisURLError(text, "database must be a non-negative number (the /db part)")
            }
            database = value
        }

        self.host = String(decoding: hostBytes, as: UTF8.self)
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// The URL with the password masked, safe for logs and `/health`.
    public var description: String {
        var text = "redis://"
        if password != nil { text += (username ?? "") + ":***@" }
        text += host.contains(":") ? "[\(host)]" : host
        text += ":\(port)"
        if database != 0 { text += "/\(database)" }
        return text
    }

    private static func lower(_ byte: UInt8) -> UInt8 {
        (byte >= 65 && byte <= 90) ? byte + 32 : byte
    }

    private static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"),
             UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "%"):
            return true
        default:
            return false
        }
    }

    /// A plain non-negative decimal (no sign, no spaces), or nil.
    private static func decimal(_ bytes: ArraySlice<UInt8>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 10 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= 48 && byte <= 57 else { return nil }
            value = value * 10 + Int(byte - 48)
        }
        return value
    }

    private static func percentDecoded(_ bytes: ArraySlice<UInt8>, _ text: String,
                                       _ what: String) throws(RedisURLError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let byte = bytes[i]
            if byte == UInt8(ascii: "%") {
                guard i + 2 < bytes.endIndex, let high = hex(bytes[i + 1]), let low = hex(bytes[i + 2]) else {
                    throw RedisURLError(text, "bad percent-escape in \(what)")
                }
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(byte)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - 48
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - 87
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - 55
        default: return nil
        }
    }
}

/// A `redis://` URL that cannot be used, with the reason.
public struct RedisURLError: Error, Equatable, CustomStringConvertible {
    /// What is wrong, e.g. "port must be a number from 1 to 65535".
    public let reason: String
    /// The URL with any password masked.
    public let url: String

    init(_ url: String, _ reason: String) {
        self.reason = reason
        self.url = RedisURLError.masked(url)
    }

    /// "bad Redis URL 'redis://host:99999': port must be a number from 1 to 65535".
    public var description: String { "bad Redis URL '\(url)': \(reason)" }

    /// Hides everything between "//" and "@" but the user name, so a password never reaches a log.
    private static func masked(_ url: String) -> String {
        let bytes = Array(url.utf8)
        guard let slash = bytes.firstIndex(of: UInt8(ascii: "/")), slash + 1 < bytes.count,
              bytes[slash + 1] == UInt8(ascii: "/"),
              let at = bytes.lastIndex(of: UInt8(ascii: "@")), at > slash + 1 else { return url }
        let info = bytes[(slash + 2)..<at]
        let user = info.firstIndex(of: UInt8(ascii: ":")).map { info[..<$0] } ?? []
        return String(decoding: bytes[...(slash + 1)], as: UTF8.self) + String(decoding: user, as: UTF8.self)
            + ":***" + String(decoding: bytes[at...], as: UTF8.self)
    }
}
