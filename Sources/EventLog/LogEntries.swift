/// Payloads to append, back to back in one byte array with their lengths: the shape an
/// accepted publish request already has, so handing it to the log copies nothing.
public struct LogEntries: Sendable {
    /// The payloads, concatenated.
    public var bytes: [UInt8]
    /// Length of each payload, in order.
    public var lengths: [Int]

    /// Wraps payloads laid out back to back.
    public init(bytes: [UInt8], lengths: [Int]) {
        self.bytes = bytes
        self.lengths = lengths
    }

    /// Number of payloads.
    public var count: Int { lengths.count }
}

/// What one group commit did, handed from the sync thread back to the log's owner, who
/// passes it to `EventLog.complete(_:)`.
public struct LogAppendOutcome: Sendable {
    /// The entries appended (or not), in order, handed back to their owner.
    public let entries: [LogEntries]
    /// Seq given to the first payload.
    public let firstSeq: UInt64
    /// Seq of the last payload.
    public let lastSeq: UInt64
    /// Time spent in write + fdatasync.
    public let syncNanos: UInt64
    /// A segment started for this group (its first seq and a read descriptor), reported
    /// even when the write then failed: the sync thread writes there from now on.
    let rolled: (firstSeq: UInt64, readFD: Int32)?
    let result: Result<Written, LogError>

    struct Written: Sendable {
        /// The active segment's durable size after the write.
        var activeSize: Int
        /// Index entries for the records written.
        var index: SparseIndex
    }
}
