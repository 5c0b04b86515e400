/// Where the keys of a command given as an argument array are, so the cluster client can
/// send it to the master of their slot.
enum RedisKeyRouting {
    /// Where a command goes.
    enum Route: Equatable {
        /// No key: any master will do (PING, INFO, SCRIPT LOAD, EVAL with no keys).
        case keyless
        /// Every key hashes to this slot.
        case slot(Int)
        /// Keys in different slots: no single node can run it.
        case crossSlot
    }

    /// Multi-key commands whose keys we know; any other command's key is its first argument.
    static func route<A: RedisArgument>(_ arguments: [A]) -> Route {
        guard let name = arguments.first?.withRedisBytes({ String(decoding: $0, as: UTF8.self).uppercased() }) else { return .keyless }
        let keys: StrideTo<Int>
        switch name {
        case _ where keyless.contains(name):
            return .keyless
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard arguments.count > 2, let count = arguments[2].withRedisBytes({ Int(String(decoding: $0, as: UTF8.self)) }),
                  count > 0 else { return .keyless }
            keys = stride(from: 3, to: min(3 + count, arguments.count), by: 1)
        case "MGET", "DEL", "UNLINK", "EXISTS", "TOUCH", "WATCH", "SINTER", "SUNION", "SDIFF", "PFCOUNT":
            keys = stride(from: 1, to: arguments.count, by: 1)
        case "MSET", "MSETNX":
            keys = stride(from: 1, to: arguments.count, by: 2)
        default:
            keys = stride(from: 1, to: min(2, arguments.count), by: 1)
        }
        var slot: Int?
        for index in keys {
            let keySlot = RedisSlot.of(arguments[index])
            if let slot, slot != keySlot { return .crossSlot }
            slot = keySlot
        }
        return slot.map(Route.slot) ?? .keyless
    }

    /// Commands that name no key (their second argument is a subcommand or a value).
    private static let keyless: Set<String> = [
        "PING", "ECHO", "INFO", "CLUSTER", "SCRIPT", "FUNCTION", "CONFIG", "CLIENT", "COMMAND", "DBSIZE", "TIME",
        "FLUSHALL", "FLUSHDB", "LASTSAVE", "SLOWLOG", "LATENCY", "READONLY", "READWRITE", "HELLO", "AUTH", "SELECT",
        "ASKING", "SAVE", "BGSAVE", "ROLE", "WAIT", "RANDOMKEY", "SCAN", "KEYS",
    ]

    /// The error a command across slots fails with: the text Redis itself answers.
    static let crossSlotError = RedisError.server(
        "CROSSSLOT Keys in request don't hash to the same slot (in Redis Cluster a multi-key command needs all its keys in one slot: give them a common {hash tag})")
}
