/// What a user of Redis needs from a client, whether it talks to one node (`RedisClient`)
/// or to a cluster (`RedisClusterClient`): state for health checks, the pipelined
/// `SET ... NX GET` answered to a sink, any command, and close.
///
/// Class-bound, so `any RedisCommandClient` is a pointer and a witness table: a call costs
/// one indirect jump over calling the concrete client, which keeps its own hot path.
/// Commands complete exactly once, on the client's loop.
public protocol RedisCommandClient: AnyObject {
    /// True when commands go straight to the server(s): for a cluster, every slot is served
    /// by an up connection.
    var isUp: Bool { get }
    /// The last connection error, kept after recovery for `/health`.
    var lastError: String? { get }
    /// Called on the loop on up, down (once per outage) and closed.
    var onStateChange: ((RedisClient.State, String?) -> Void)? { get set }

    /// `SET key value PX px [NX] [GET]`, answered to `sink` with `index` (see
    /// `RedisClient.set(_:_:px:nx:get:sink:index:)`).
    func set<K: RedisArgument, V: RedisArgument>(_ key: K, _ value: V, px: Int, nx: Bool, get: Bool,
                                                sink: RedisReplySink, index: Int)

    /// Sends any command; a cluster routes it by its first key, keyless ones to any node, and
    /// refuses a multi-key command across slots with a `CROSSSLOT` error.
    func command<A: RedisArgument>(_ arguments: [A], completion: @escaping (Result<RedisReply, RedisError>) -> Void)

    /// Sends a command of exactly `argumentCount` arguments, which `write` appends; a
    /// cluster sends it to the master of `routingKey`'s slot (every key it names must hash
    /// there: use hash tags); a single node ignores the routing key.
    func command<K: RedisArgument>(routingKey: K, argumentCount: Int, _ write: (inout RedisCommandWriter) -> Void,
                                   completion: @escaping (Result<RedisReply, RedisError>) -> Void)

    /// Stops for good; pending commands complete with `RedisError.closed`.
    func close()
}

extension RedisCommandClient {
    /// Sends any command given as strings, e.g. `command("INCRBY", "n", "5") { ... }`.
    public func command(_ arguments: String..., completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        command(arguments, completion: completion)
    }
}

extension RedisClient: RedisCommandClient {
    /// `command(argumentCount:_:completion:)`: one node serves every key.
    public func command<K: RedisArgument>(routingKey: K, argumentCount: Int, _ write: (inout RedisCommandWriter) -> Void,
                                          completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        command(argumentCount: argumentCount, write, completion: completion)
    }
}

extension RedisClusterClient: RedisCommandClient {}
