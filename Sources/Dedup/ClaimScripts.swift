import Reactor

/// Compare-and-act over a batch of our claims (extending them while a batch is slow,
/// releasing them at shutdown): one script call per batch, never touching a key that
/// another owner holds by now.
enum ClaimScripts {
    /// A script that runs `action` on each of KEYS still holding our claim (ARGV[1]) and
    /// returns on how many it did: compare-and-act, never touching another owner's key.
    private static func forEachKeyStillOurs(_ action: String) -> String {
        """
        local n = 0
        for i = 1, #KEYS do
          if redis.call('GET', KEYS[i]) == ARGV[1] then
            \(action); n = n + 1
          end
        end
        return n
        """
    }

    /// KEYS = event keys; ARGV = our claim, ttl ms. Extends our claims.
    static let extendAll = forEachKeyStillOurs("redis.call('PEXPIRE', KEYS[i], ARGV[2])")
    /// KEYS = event keys; ARGV = our claim. Deletes our claims.
    static let releaseAll = forEachKeyStillOurs("redis.call('DEL', KEYS[i])")

    /// Calls `script` over the event keys of `events` with `args`, encoded straight into
    /// the client's buffer (no array per key): one call for a single node; on a cluster one
    /// call per slot, since a script may only touch keys of one slot. `completion` runs
    /// once every call is answered, with the first failure if any.
    static func run(_ script: String, redis: any RedisCommandClient, events: EventSet, args: [[UInt8]],
                    completion: @escaping (RedisError?) -> Void) {
        var key: [UInt8] = []
        var groups: [[Int]]
        if redis is RedisClusterClient {
            var bySlot: [Int: [Int]] = [:]
            for i in 0..<events.count {
                events.withID(i) { ClaimValues.eventKey($0, into: &key) }
                bySlot[RedisSlot.of(key), default: []].append(i)
            }
            groups = Array(bySlot.values)
        } else {
            groups = [Array(0..<events.count)]
        }
        groups.removeAll { $0.isEmpty }
        guard !groups.isEmpty else { return completion(nil) }
        var remaining = groups.count
        var failure: RedisError?
        for group in groups {
            events.withID(group[0]) { ClaimValues.eventKey($0, into: &key) }
            redis.command(routingKey: key, argumentCount: 3 + group.count + args.count, { writer in
                writer.append("EVAL")
                writer.append(script)
                writer.append(decimal: group.count)
                var key: [UInt8] = []
                for i in group {
                    events.withID(i) { ClaimValues.eventKey($0, into: &key) }
                    writer.append(key)
                }
                for arg in args { writer.append(arg) }
            }, completion: { result in
                if case .failure(let error) = result { failure = failure ?? error }
                remaining -= 1
                if remaining == 0 { completion(failure) }
            })
        }
    }
}
