/// Which master serves which slots, as `CLUSTER SLOTS` tells it.
struct RedisSlotMap: Equatable {
    /// One contiguous slot range and the address of the master that serves it.
    struct Range: Equatable {
        var slots: ClosedRange<Int>
        /// Empty when the node did not announce an address: the host that was asked.
        var host: String
        var port: Int
    }

    var ranges: [Range]

    /// Reads a `CLUSTER SLOTS` reply: `[[start, end, [ip, port, id, ...], replicas...], ...]`.
    /// Replicas are ignored: commands go to masters only.
    init(clusterSlots reply: RedisReply) throws(RedisError) {
        guard case .array(let entries) = reply else {
            throw RedisError.unexpectedReply("CLUSTER SLOTS answered \(reply)")
        }
        var ranges: [Range] = []
        for entry in entries {
            guard case .array(let fields) = entry, fields.count >= 3,
                  let start = fields[0].integer, let end = fields[1].integer,
                  0 <= start, start <= end, end < RedisSlot.count,
                  case .array(let master) = fields[2], master.count >= 2,
                  let host = master[0].string, let port = master[1].integer else {
                throw RedisError.unexpectedReply("CLUSTER SLOTS entry \(entry)")
            }
            // "?" is how Redis 7 says "no address known"; fall back to the asked host too.
            ranges.append(Range(slots: Int(start)...Int(end), host: host == "?" ? "" : host, port: Int(port)))
        }
        self.ranges = ranges
    }
}
