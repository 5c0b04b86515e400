/// Whether PostgreSQL confirms our inserts only once they are durable. Every guarantee
/// rests on it: a stored batch's events are marked done in Redis and passed by the
/// watermark as soon as PostgreSQL confirms the insert, so nothing would ever store them
/// again. With `synchronous_commit = off` PostgreSQL confirms before the commit reaches
/// its WAL on disk, and a crash of PostgreSQL alone (no power loss needed) forgets the
/// last confirmed commits: their events are lost. A server or role may be tuned that way
/// for speed; the listener cannot know it was meant, so it says so loudly and keeps going.
package enum CommitDurability: Equatable, Sendable {
    case durable
    /// The session's `synchronous_commit` is `off`.
    case asynchronous

    /// The verdict on a `synchronous_commit` value (`on`, `local`, `remote_write` and
    /// `remote_apply` all flush the local WAL before confirming).
    package init(synchronousCommit value: String) {
        self = value.lowercased() == "off" ? .asynchronous : .durable
    }

    /// The warning for a session that is not durable.
    package var warning: String? {
        guard self == .asynchronous else { return nil }
        return "PostgreSQL runs this listener's session with synchronous_commit=off: it confirms inserts before they are on disk, so a crash of PostgreSQL can lose rows it confirmed, and their events, already marked done, would never be stored. Set synchronous_commit to on (its default) for the listener's database or role, or add options=-c%20synchronous_commit%3Don to DATABASE_URL."
    }
}
