import CHiredis

/// One Redis reply, copied out of hiredis (which frees its reply object right after the
/// callback returns). Bulk and status payloads stay bytes: a `String` is made only when
/// asked for (`string`).
public enum RedisReply: Equatable, Sendable {
    /// `+OK`-style status line.
    case status([UInt8])
    /// `-ERR ...` error line (errors are rare, so this one is a String).
    case error(String)
    /// `:123`.
    case integer(Int64)
    /// `$n` bulk string.
    case bulk([UInt8])
    /// `$-1` / `*-1`.
    case null
    /// `*n` array of replies.
    case array([RedisReply])

    /// The bytes of a bulk or status reply.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes), .status(let bytes): return bytes
        default: return nil
        }
    }

    /// A bulk, status or error reply as a String (decoded as UTF-8, on demand).
    public var string: String? {
        switch self {
        case .bulk(let bytes), .status(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .error(let message): return message
        case .integer(let value): return String(value)
        default: return nil
        }
    }

    /// The value of an integer reply.
    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// True for the `+OK` status.
    public var isOK: Bool {
        if case .status(let bytes) = self { return bytes == RedisReply.okBytes }
        return false
    }

    /// Shared so the common `+OK` costs no allocation.
    static let okBytes: [UInt8] = Array("OK".utf8)
}

// MARK: reading hiredis replies in place

/// hiredis' REDIS_REPLY_* codes (macros Swift does not import as typed constants).
enum HiredisReplyType {
    static let string: Int32 = 1
    static let array: Int32 = 2
    static let integer: Int32 = 3
    static let null: Int32 = 4
    static let status: Int32 = 5
    static let error: Int32 = 6
}

extension UnsafeMutablePointer where Pointee == redisReply {
    /// The reply's type code.
    @inline(__always) var replyType: Int32 { pointee.type }

    /// The string payload, borrowed: valid only inside the reply callback.
    @inline(__always) var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: pointee.str, count: pointee.str == nil ? 0 : pointee.len)
    }

    /// The payload as a String (error messages, slow paths).
    var payloadString: String { String(decoding: payload, as: UTF8.self) }

    /// A full copy into our own value type.
    func copyReply() -> RedisReply {
        switch replyType {
        case HiredisReplyType.string: return .bulk(Array(payload))
        case HiredisReplyType.status:
            let bytes = payload
            if bytes.count == 2 && bytes[0] == UInt8(ascii: "O") && bytes[1] == UInt8(ascii: "K") {
                return .status(RedisReply.okBytes)
            }
            return .status(Array(bytes))
        case HiredisReplyType.integer: return .integer(pointee.integer)
        case HiredisReplyType.error: return .error(payloadString)
        case HiredisReplyType.array:
            var items: [RedisReply] = []
            items.reserveCapacity(pointee.elements)
            for i in 0..<pointee.elements {
                if let element = pointee.element[i] { items.append(element.copyReply()) } else { items.append(.null) }
            }
            return .array(items)
        default: return .null
        }
    }

    /// A short description for `unexpectedReply` errors.
    var summary: String {
        switch replyType {
        case HiredisReplyType.string: return "bulk string of \(pointee.len) bytes"
        case HiredisReplyType.status: return "status \(payloadString)"
        case HiredisReplyType.integer: return "integer \(pointee.integer)"
        case HiredisReplyType.error: return "error \(payloadString)"
        case HiredisReplyType.array: return "array of \(pointee.elements)"
        case HiredisReplyType.null: return "nil"
        default: return "type \(replyType)"
        }
    }
}
