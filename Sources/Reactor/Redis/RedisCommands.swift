import CHiredis

/// Bytes a Redis key, value or argument can be given as, without copying: `String`,
/// `[UInt8]`, `ArraySlice<UInt8>`, `Substring` and `UnsafeRawBufferPointer`.
public protocol RedisArgument {
    /// Calls `body` with the argument's bytes, valid only during the call.
    func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension UnsafeRawBufferPointer: RedisArgument {
    /// The buffer itself.
    @inlinable public func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(self)
    }
}

extension Array: RedisArgument where Element == UInt8 {
    /// The array's storage.
    @inlinable public func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(body)
    }
}

extension ArraySlice: RedisArgument where Element == UInt8 {
    /// The slice's storage.
    @inlinable public func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(body)
    }
}

extension String: RedisArgument {
    /// The UTF-8 bytes (native strings need no copy).
    @inlinable public func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = self
        return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}

extension Substring: RedisArgument {
    /// The UTF-8 bytes.
    @inlinable public func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = self
        return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}

/// The outcome of `SET ... NX`: did we take the key, or does someone hold it?
public enum RedisSetResult: Equatable, Sendable {
    /// The value was written: with NX the key was free and is now ours.
    case written
    /// NX found the key present and wrote nothing. With `get: true` this carries the value
    /// the key holds (Redis 7 `SET k v PX ms NX GET`, one round trip); without it, nil.
    case taken([UInt8]?)
}

extension RedisClient {
    // MARK: generic

    /// Sends any command, e.g. `["HSET", "h", "f", "v"]`. An error reply completes with
    /// `RedisError.server`; every other reply is copied into a `RedisReply`.
    public func command<A: RedisArgument>(_ arguments: [A], completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        encoder.beginCommand(argumentCount: arguments.count)
        for argument in arguments { argument.withRedisBytes { encoder.argument($0) } }
        submit(.reply(completion))
    }

    /// Sends any command given as strings, e.g. `command("INCRBY", "n", "5") { ... }`.
    public func command(_ arguments: String..., completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        command(arguments, completion: completion)
    }

    // MARK: strings and keys

    /// `SET key value [PX ms] [NX] [GET]`. With `nx: true, get: true`, one round trip:
    /// `.written` when the key was free (and now holds `value` for `px` ms), `.taken(old)`
    /// with the holder's value otherwise. Without NX the write always happens: `.written`.
    public func set<K: RedisArgument, V: RedisArgument>(_ key: K, _ value: V, px: Int? = nil, nx: Bool = false, get: Bool = false,
                                                       completion: @escaping (Result<RedisSetResult, RedisError>) -> Void) {
        encoder.beginCommand(argumentCount: 3 + (px == nil ? 0 : 2) + (nx ? 1 : 0) + (get ? 1 : 0))
        encoder.argument("SET")
        key.withRedisBytes { encoder.argument($0) }
        value.withRedisBytes { encoder.argument($0) }
        if let px {
            encoder.argument("PX")
            encoder.argument(decimal: px)
        }
        if nx { encoder.argument("NX") }
        if get { encoder.argument("GET") }
        submit(.set(RedisSetFlags(nx: nx, get: get), completion))
    }

    /// `GET key`: the value, or nil when the key does not exist.
    public func get<K: RedisArgument>(_ key: K, completion: @escaping (Result<[UInt8]?, RedisError>) -> Void) {
        encoder.beginCommand(argumentCount: 2)
        encoder.argument("GET")
        key.withRedisBytes { encoder.argument($0) }
        submit(.bytes(completion))
    }

    /// `PEXPIRE key ms`: true when the key exists and got the new TTL.
    public func pexpire<K: RedisArgument>(_ key: K, milliseconds: Int, completion: @escaping (Result<Bool, RedisError>) -> Void) {
        encoder.beginCommand(argumentCount: 3)
        encoder.argument("PEXPIRE")
        key.withRedisBytes { encoder.argument($0) }
        encoder.argument(decimal: milliseconds)
        submit(.bool(completion))
    }

    /// `PTTL key`: remaining milliseconds, -1 when the key has no TTL, -2 when it is missing.
    public func pttl<K: RedisArgument>(_ key: K, completion: @escaping (Result<Int64, RedisError>) -> Void) {
        encoder.beginCommand(argumentCount: 2)
        encoder.argument("PTTL")
        key.withRedisBytes { encoder.argument($0) }
        submit(.integer(completion))
    }

    /// `DEL key`: the number of keys removed (0 or 1).
    public func del<K: RedisArgument>(_ key: K, completion: @escaping (Result<Int64, RedisError>) -> Void) {
        encoder.beginCommand(argumentCount: 2)
        encoder.argument("DEL")
        key.withRedisBytes { encoder.argument($0) }
        submit(.integer(completion))
    }
}

/// Writes the arguments of one command straight into the client's encoder: for commands
/// with many arguments (a script over a batch of keys) built without an array per key.
public struct RedisCommandWriter: ~Copyable {
    fileprivate let encoder: RESPEncoder
    fileprivate var written = 0

    /// Appends one argument.
    public mutating func append<A: RedisArgument>(_ argument: A) {
        argument.withRedisBytes { encoder.argument($0) }
        written += 1
    }

    /// Appends a whole number as its decimal text.
    public mutating func append(decimal value: Int) {
        encoder.argument(decimal: value)
        written += 1
    }
}

extension RedisClient {
    /// Sends a command of exactly `argumentCount` arguments, which `write` appends.
    public func command(argumentCount: Int, _ write: (inout RedisCommandWriter) -> Void,
                        completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        encoder.encodeCommand(argumentCount: argumentCount, write)
        submit(.reply(completion))
    }
}

extension RESPEncoder {
    /// Encodes a command of exactly `argumentCount` arguments, which `write` appends.
    func encodeCommand(argumentCount: Int, _ write: (inout RedisCommandWriter) -> Void) {
        beginCommand(argumentCount: argumentCount)
        var writer = RedisCommandWriter(encoder: self)
        write(&writer)
        precondition(writer.written == argumentCount, "RedisCommandWriter: wrote \(writer.written) of \(argumentCount) arguments")
    }
}

/// Receives the replies of many commands through one object, instead of a closure (an
/// allocation) per command; each reply is read in place, without a copy.
public protocol RedisReplySink: AnyObject {
    /// Command `index` completed with `reply` (valid only during the call), or failed with
    /// `error` (an error reply, a lost connection, a timeout) and no reply.
    func redisReply(_ index: Int, _ reply: RedisReplyView?, error: RedisError?)
}

/// A reply as hiredis parsed it, borrowed for the duration of a sink's call.
public struct RedisReplyView {
    /// The reply's RESP type, as far as a sink needs to tell.
    public enum Kind: Equatable, Sendable { case status, string, null, integer, other }
    public let kind: Kind
    /// The text of a status or string reply (empty otherwise).
    public let bytes: UnsafeRawBufferPointer
    /// The value of an integer reply (0 otherwise).
    public let integer: Int64

    init(_ reply: UnsafeMutablePointer<redisReply>) {
        switch reply.replyType {
        case HiredisReplyType.status: kind = .status
        case HiredisReplyType.string: kind = .string
        case HiredisReplyType.null: kind = .null
        case HiredisReplyType.integer: kind = .integer
        default: kind = .other
        }
        bytes = kind == .status || kind == .string ? reply.payload : UnsafeRawBufferPointer(start: nil, count: 0)
        integer = kind == .integer ? reply.pointee.integer : 0
    }
}

extension RedisClient {
    /// `SET key value PX px [NX] [GET]`, answered to `sink` with `index`: with NX and GET
    /// (Redis 7) the reply is null or a status when the key was free and is now set, and
    /// the value that holds the key otherwise.
    public func set<K: RedisArgument, V: RedisArgument>(_ key: K, _ value: V, px: Int, nx: Bool, get: Bool,
                                                       sink: RedisReplySink, index: Int) {
        encoder.set(key, value, px: px, nx: nx, get: get)
        submit(.sink(sink, index))
    }
}

extension RESPEncoder {
    /// Encodes `SET key value PX px [NX] [GET]` (one place for both clients).
    @inline(__always)
    func set<K: RedisArgument, V: RedisArgument>(_ key: K, _ value: V, px: Int, nx: Bool, get: Bool) {
        beginCommand(argumentCount: 5 + (nx ? 1 : 0) + (get ? 1 : 0))
        argument("SET")
        key.withRedisBytes { argument($0) }
        value.withRedisBytes { argument($0) }
        argument("PX")
        argument(decimal: px)
        if nx { argument("NX") }
        if get { argument("GET") }
    }
}
