import Reactor

/// Whether a failed insert may succeed if tried again.
enum StoreFailure: Equatable {
    /// The connection, the server's state or a conflict between sessions: retried with
    /// backoff while the claims are kept alive.
    case transient
    /// PostgreSQL refuses the data itself and always will: the refused rows are isolated
    /// and dead-lettered, never retried for ever.
    case permanent

    /// Data exceptions (class 22: bad encoding, NUL in text or jsonb, numeric overflow),
    /// integrity violations (class 23, except the key conflict that ON CONFLICT absorbs
    /// and that only a concurrent schema change could raise) and program limits (class
    /// 54: a value too large) depend only on the rows. Everything else (lost connections,
    /// 08; serialization and deadlocks, 40; resources, 53; operator intervention, 57;
    /// system errors, 58; a missing table an operator can restore) is worth retrying.
    init(_ error: PostgresError) {
        guard error.code == .server, let state = error.sqlState, state.utf8.count == 5 else {
            self = .transient
            return
        }
        switch state.prefix(2) {
        case "22", "54": self = .permanent
        case "23": self = state == "23505" ? .transient : .permanent
        default: self = .transient
        }
    }
}

/// The parts of a batch still to insert. It starts whole; a part PostgreSQL refuses for
/// good is split in halves, the lower half first, until each refused row stands alone,
/// so k bad rows among n cost about k·log2(n) extra inserts and every good row is stored.
struct InsertPlan: Equatable {
    /// Parts still to insert, the next one last.
    private(set) var pending: [Range<Int>]

    init(count: Int) { pending = count > 0 ? [0..<count] : [] }

    /// The part to insert next, nil when all are done.
    var next: Range<Int>? { pending.last }

    /// The next part was inserted.
    mutating func inserted() { pending.removeLast() }

    /// The next part was refused for good: returns the row it isolated (to dead-letter),
    /// or nil when the part was split and its halves are pending.
    mutating func refused() -> Int? {
        let part = pending.removeLast()
        if part.count == 1 { return part.lowerBound }
        let middle = part.lowerBound + part.count / 2
        pending.append(middle..<part.upperBound)
        pending.append(part.lowerBound..<middle)
        return nil
    }
}
