/// Whether Redis may evict the listeners' keys when its memory fills. Every key they keep
/// has a TTL (claims, done markers, progress marks, member states), so any policy other
/// than `noeviction`, the volatile ones included (the default of several managed Redis
/// services), can drop them before their time: an evicted claim or done marker is an event
/// processed again (never stored twice: PostgreSQL's primary key decides), an evicted
/// member state a listener taken for gone. With `noeviction` a full Redis refuses writes
/// instead, and the listeners wait and retry.
package enum KeyEviction: Equatable, Sendable {
    case never
    case possible(policy: String)

    /// The verdict on `INFO memory`'s text: eviction needs a memory limit (`maxmemory`
    /// above 0) and a policy that evicts.
    package init?(info: String) {
        var limit: UInt64?
        var policy: String?
        for line in info.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("maxmemory:") { limit = UInt64(line.dropFirst("maxmemory:".count)) }
            if line.hasPrefix("maxmemory_policy:") { policy = String(line.dropFirst("maxmemory_policy:".count)) }
        }
        guard let limit, let policy else { return nil }
        self = limit == 0 || policy == "noeviction" ? .never : .possible(policy: policy)
    }

    /// The warning for a Redis that may evict.
    package var warning: String? {
        guard case .possible(let policy) = self else { return nil }
        return "Redis may evict keys when its memory fills (maxmemory-policy \(policy)): an evicted claim or done marker means an event processed again, an evicted member state a listener taken for gone (rows stay unique either way). Set maxmemory-policy noeviction and size Redis for the dedup window (docs/operations.md, \"Sizing Redis for the dedup window\")."
    }
}
