import Reactor

/// Whether a failed insert may succeed if tried again.
enum StoreFailure: Equatable {
    /// The connection, the server's state or a conflict between sessions: retried with
    /// backoff while the claims are kept alive.
    case transient
    /// PostgreSQL refuses the data itself and always will: the refused rows are isolated
    /// and dead-lettered, never retried for ever.
    case permanent
    /// PostgreSQL refused the insert for now: code in the schema raised (a trigger or a
    /// function: classes 09, 27, 2F, 38, 39, P0), or the statement ran past
    /// `statement_timeout` and was cancelled (57014; a trigger slow for one row does it).
    /// It may be one row, and it may pass once an operator changes the code or the
    /// timeout, so it is retried like a transient failure; a part refused this way again
    /// and again is split, so that one row cannot hold back the rest.
    case refusedForNow

    /// Data exceptions (class 22: bad encoding, NUL in text or jsonb, numeric overflow),
    /// integrity violations (class 23, except the key conflict that ON CONFLICT absorbs
    /// and that only a concurrent schema change could raise) and program limits (class
    /// 54: a value too large) depend only on the rows. Everything else (lost connections,
    /// 08; serialization and deadlocks, 40; resources, 53; operator intervention, 57,
    /// but for a cancelled statement; system errors, 58; a missing table an operator can
    /// restore) is worth retrying.
    init(_ error: PostgresError) {
        guard error.code == .server, let state = error.sqlState, state.utf8.count == 5 else {
            self = .transient
            return
        }
        if state == "57014" {
            self = .refusedForNow
            return
        }
        switch state.prefix(2) {
        case "22", "54": self = .permanent
        case "09", "27", "2F", "38", "39", "P0": self = .refusedForNow
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

    /// Splits the next part in halves, the lower half next; false when it is one row.
    mutating func split() -> Bool {
        guard let part = pending.last, part.count > 1 else { return false }
        pending.removeLast()
        let middle = part.lowerBound + part.count / 2
        pending.append(middle..<part.upperBound)
        pending.append(part.lowerBound..<middle)
        return true
    }

    /// Puts the next part behind every other one: a row refused for now waits while the
    /// rest of its batch goes on.
    mutating func postpone() {
        guard pending.count > 1 else { return }
        pending.insert(pending.removeLast(), at: 0)
    }

    /// The next part was refused for good: returns the row it isolated (to dead-letter),
    /// or nil when the part was split and its halves are pending.
    mutating func refused() -> Int? {
        if split() { return nil }
        return pending.removeLast().lowerBound
    }
}
