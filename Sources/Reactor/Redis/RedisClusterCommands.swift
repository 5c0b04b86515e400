extension RedisClusterClient {
    /// `SET key value PX px [NX] [GET]` on the key's master, answered to `sink` with
    /// `index`, exactly as `RedisClient.set(_:_:px:nx:get:sink:index:)` answers.
    public func set<K: RedisArgument, V: RedisArgument>(_ key: K, _ value: V, px: Int, nx: Bool, get: Bool,
                                                       sink: RedisReplySink, index: Int) {
        let slot = RedisSlot.of(key)
        let lane = route(slot)
        commandEncoder(for: lane).set(key, value, px: px, nx: nx, get: get)
        send(.sink(sink, index), slot: slot, via: lane)
    }

    /// Sends any command, e.g. `["HSET", "h", "f", "v"]`, to the master of its first key
    /// (keyless commands such as PING go to any master). A multi-key command whose keys
    /// are in different slots fails at once with a `CROSSSLOT` server error.
    public func command<A: RedisArgument>(_ arguments: [A], completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        let slot: Int
        switch RedisKeyRouting.route(arguments) {
        case .keyless: slot = -1
        case .slot(let keySlot): slot = keySlot
        case .crossSlot:
            loop.executeSoon { completion(.failure(RedisKeyRouting.crossSlotError)) }
            return
        }
        let lane = route(slot)
        let encoder = commandEncoder(for: lane)
        encoder.beginCommand(argumentCount: arguments.count)
        for argument in arguments { argument.withRedisBytes { encoder.argument($0) } }
        send(.reply(completion), slot: slot, via: lane)
    }

    /// Sends a command of exactly `argumentCount` arguments, which `write` appends, to the
    /// master of `routingKey`'s slot. Every key the command names must be in that slot
    /// (use a common hash tag); the node refuses others with `CROSSSLOT`.
    public func command<K: RedisArgument>(routingKey: K, argumentCount: Int, _ write: (inout RedisCommandWriter) -> Void,
                                          completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        let slot = RedisSlot.of(routingKey)
        let lane = route(slot)
        commandEncoder(for: lane).encodeCommand(argumentCount: argumentCount, write)
        send(.reply(completion), slot: slot, via: lane)
    }
}
