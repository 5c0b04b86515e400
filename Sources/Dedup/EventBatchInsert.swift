import Reactor

/// Rows for one batch insert, encoded as they are appended straight into four reusable
/// buffers in PostgreSQL's binary array format (`array_send`), one buffer per column. Binary
/// elements are length-prefixed, so ids and JSON payloads need no quoting or escaping and
/// no per-row String or allocation is made.
///
/// Layout of each buffer: a 20-byte header (ndim, has-nulls flag, element type OID, length,
/// lower bound; patched when the batch is sealed), then per element a big-endian Int32
/// length (-1 for NULL) and the bytes.
package final class EventRows: PostgresBinaryParameters {
    private static let headerSize = 20
    private static let textOID: UInt32 = 25
    private static let int8OID: UInt32 = 20

    /// Replaced, not cleared, on reset while a result still reads it (`EventInsertResult`).
    private(set) var ids: ByteBuffer
    let seqs: ByteBuffer
    let payloads: ByteBuffer
    let owners: ByteBuffer
    /// Rows appended so far.
    package private(set) var count = 0
    private var hasNullPayload = false
    private var sealed = false
    /// From an inserter's pool: goes back there after its completion.
    let pooled: Bool
    /// Submitted and not yet completed.
    var inUse = false

    /// A batch the caller owns (call `reset()` to reuse it). Batches from
    /// `EventBatchInsert.makeBatch()` are recycled for you instead.
    package convenience init() {
        self.init(pooled: false)
    }

    init(pooled: Bool) {
        self.pooled = pooled
        ids = ByteBuffer(capacity: 16 << 10)
        seqs = ByteBuffer(capacity: 8 << 10)
        payloads = ByteBuffer(capacity: 64 << 10)
        owners = ByteBuffer(capacity: 16 << 10)
        reset()
    }

    /// Empties the batch, keeping its buffers' capacity.
    package func reset() {
        precondition(!inUse, "EventRows: reset while an insert is using it")
        if !isKnownUniquelyReferenced(&ids) { ids = ByteBuffer(capacity: ids.allocatedCapacity) }
        for buffer in [ids, seqs, payloads, owners] {
            buffer.clear()
            _ = buffer.writeWithUnsafeMutableBytes(minimumCapacity: Self.headerSize) { space in
                space.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: Self.headerSize)
                return Self.headerSize
            }
        }
        count = 0
        hasNullPayload = false
        sealed = false
    }

    /// Bytes held by the four buffers (for pool limits and memory accounting).
    package var allocatedBytes: Int {
        ids.allocatedCapacity + seqs.allocatedCapacity + payloads.allocatedCapacity + owners.allocatedCapacity
    }

    /// Appends one row. `eventID` and `processedBy` are UTF-8 text; `payload` is JSON text,
    /// or nil for SQL NULL. The bytes are copied; the pointers need not outlive the call.
    package func append(eventID: UnsafeRawBufferPointer, seq: Int64, payload: UnsafeRawBufferPointer?,
                       processedBy: UnsafeRawBufferPointer) {
        precondition(!sealed, "EventRows: append after insert; make or reset a batch")
        Self.appendElement(ids, eventID)
        _ = seqs.writeWithUnsafeMutableBytes(minimumCapacity: 12) { space in
            space.storeBytes(of: UInt32(8).bigEndian, toByteOffset: 0, as: UInt32.self)
            space.storeBytes(of: UInt64(bitPattern: seq).bigEndian, toByteOffset: 4, as: UInt64.self)
            return 12
        }
        if let payload {
            Self.appendElement(payloads, payload)
        } else {
            _ = payloads.writeWithUnsafeMutableBytes(minimumCapacity: 4) { space in
                space.storeBytes(of: UInt32(bitPattern: -1).bigEndian, toByteOffset: 0, as: UInt32.self)
                return 4
            }
            hasNullPayload = true
        }
        Self.appendElement(owners, processedBy)
        count += 1
    }

    /// Appends one row from Strings (native Swift strings are contiguous UTF-8: no copy).
    package func append(eventID: String, seq: Int64, payload: String?, processedBy: String) {
        var eventID = eventID
        var processedBy = processedBy
        eventID.withUTF8 { id in
            processedBy.withUTF8 { owner in
                if var payload {
                    payload.withUTF8 {
                        append(eventID: UnsafeRawBufferPointer(id), seq: seq, payload: UnsafeRawBufferPointer($0),
                               processedBy: UnsafeRawBufferPointer(owner))
                    }
                } else {
                    append(eventID: UnsafeRawBufferPointer(id), seq: seq, payload: nil,
                           processedBy: UnsafeRawBufferPointer(owner))
                }
            }
        }
    }

    private static func appendElement(_ buffer: ByteBuffer, _ bytes: UnsafeRawBufferPointer) {
        _ = buffer.writeWithUnsafeMutableBytes(minimumCapacity: 4 + bytes.count) { space in
            space.storeBytes(of: UInt32(bytes.count).bigEndian, toByteOffset: 0, as: UInt32.self)
            if bytes.count > 0 {
                (space.baseAddress! + 4).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            }
            return 4 + bytes.count
        }
    }

    /// Writes the array headers now that the row count is known. Idempotent.
    func seal() {
        sealed = true
        Self.patchHeader(ids, elementType: Self.textOID, count: count, hasNull: false)
        Self.patchHeader(seqs, elementType: Self.int8OID, count: count, hasNull: false)
        Self.patchHeader(payloads, elementType: Self.textOID, count: count, hasNull: hasNullPayload)
        Self.patchHeader(owners, elementType: Self.textOID, count: count, hasNull: false)
    }

    private static func patchHeader(_ buffer: ByteBuffer, elementType: UInt32, count: Int, hasNull: Bool) {
        buffer.withMutableReadableBytes { header in
            header.storeBytes(of: UInt32(1).bigEndian, toByteOffset: 0, as: UInt32.self)
            header.storeBytes(of: UInt32(hasNull ? 1 : 0).bigEndian, toByteOffset: 4, as: UInt32.self)
            header.storeBytes(of: elementType.bigEndian, toByteOffset: 8, as: UInt32.self)
            header.storeBytes(of: UInt32(count).bigEndian, toByteOffset: 12, as: UInt32.self)
            header.storeBytes(of: UInt32(1).bigEndian, toByteOffset: 16, as: UInt32.self)
        }
    }

    /// libpq's parameter arrays for the four columns, all binary.
    package func withParameters<R>(
        _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R
    ) -> R {
        ids.withReadableBytes { a in
            seqs.withReadableBytes { b in
                payloads.withReadableBytes { c in
                    owners.withReadableBytes { d in
                        withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: 4) { values in
                            withUnsafeTemporaryAllocation(of: Int32.self, capacity: 8) { ints in
                                for (i, column) in [a, b, c, d].enumerated() {
                                    values[i] = UnsafePointer(column.baseAddress!.assumingMemoryBound(to: CChar.self))
                                    ints[i] = Int32(column.count)
                                    ints[4 + i] = 1
                                }
                                return body(4, UnsafePointer(values.baseAddress), UnsafePointer(ints.baseAddress),
                                            UnsafePointer(ints.baseAddress! + 4))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What a batch insert did: which ids were new (stored by this call) and which were not.
package struct EventInsertResult {
    /// Rows in the batch, duplicates included.
    package let batchCount: Int
    /// The `RETURNING event_id` rows of an insert with ON CONFLICT (nil otherwise).
    let returned: PostgresResult?
    /// A plain insert succeeded: every id of the batch is new. Its ids, as sent.
    let allOf: ByteBuffer?

    init(batchCount: Int, returned: PostgresResult?, allOf: ByteBuffer? = nil) {
        self.batchCount = batchCount
        self.returned = returned
        self.allOf = allOf
    }

    /// Rows actually inserted (ids not stored before and first in the batch).
    package var insertedCount: Int { allOf != nil ? batchCount : returned?.rowCount ?? 0 }

    /// Calls `body` with each newly stored id, in place (valid only during the call).
    package func forEachInsertedID(_ body: (UnsafeRawBufferPointer) -> Void) {
        if let allOf {
            // The array's elements after its 20-byte header: a big-endian length, then the bytes.
            allOf.withReadableBytes { array in
                var at = 20
                while at + 4 <= array.count {
                    let length = Int(UInt32(bigEndian: array.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                    body(UnsafeRawBufferPointer(rebasing: array[(at + 4)..<(at + 4 + length)]))
                    at += 4 + length
                }
            }
            return
        }
        guard let returned else { return }
        for row in 0..<returned.rowCount {
            returned.withValue(row, 0) { body($0 ?? UnsafeRawBufferPointer(start: nil, count: 0)) }
        }
    }

    /// The newly stored ids as Strings (allocates; for tests and slow paths).
    package var insertedIDs: [String] {
        var ids: [String] = []
        forEachInsertedID { ids.append(String(decoding: $0, as: UTF8.self)) }
        return ids
    }
}

/// The batch insert of events as one statement per batch:
/// `INSERT ... SELECT unnest($1::text[]), unnest($2::bigint[]), unnest($3::text[])::jsonb,
/// unnest($4::text[]) ON CONFLICT (event_id) DO NOTHING RETURNING event_id`. Idempotent, so aborted attempts
/// are retried; ids repeated inside one batch are stored once (DO NOTHING, unlike DO UPDATE,
/// accepts a row conflicting with one the same statement inserted) and reported new once.
///
/// Claims keep ids already stored out of almost every batch, so a batch is first sent as a
/// plain INSERT: ON CONFLICT makes PostgreSQL probe the primary key for every row before
/// inserting it (speculative insertion), about 15 % of its CPU per row in `perf`. A plain
/// insert needs no RETURNING either: if it succeeds, every id of the batch was new. One
/// that meets a stored id fails whole (23505) and inserts nothing, and the batch is
/// sent again with ON CONFLICT; the next `conflictAwareRun` batches go that way directly,
/// since conflicts come in runs (a takeover, a wiped Redis, a dedup window that expired).
package final class EventBatchInsert {
    /// The connection the inserts run on.
    package let connection: PostgresConnection
    /// The target table.
    package let table: String
    /// The prepared INSERT ... ON CONFLICT DO NOTHING.
    package let statement: PostgresStatement
    /// The same INSERT without ON CONFLICT: all or nothing.
    let plainStatement: PostgresStatement
    /// Batches sent with ON CONFLICT straight away after a plain insert met a conflict.
    package var conflictAwareRun = 64
    private var conflictAwareLeft = 0
    /// Plain inserts that met a stored id and were sent again with ON CONFLICT.
    package private(set) var conflictRetries = 0
    private var pool: [EventRows] = []
    /// Idle batches kept for reuse; more are freed.
    package var maxPooledBatches = 64
    /// A batch whose buffers grew beyond this is freed rather than pooled.
    package var maxPooledBatchBytes = 16 << 20

    /// Declares the insert statement for `table` on `connection`.
    package init(connection: PostgresConnection, table: String = "events") {
        self.connection = connection
        self.table = table
        // unnest in the select list, not in FROM: the rows stream out of the arrays instead
        // of being gathered first in a tuplestore (a table function is materialised). The
        // payloads travel as text and become jsonb row by row, in memory reused for every
        // row; a jsonb[] parameter is converted whole when it arrives, and the backend's
        // heap grew and shrank by about a megabyte per statement (page faults were a fifth
        // of PostgreSQL's CPU in `perf`).
        let insert = """
            INSERT INTO \(PostgresIdentifier.quoted(table)) (event_id, seq, payload, processed_by) \
            SELECT unnest($1::text[]), unnest($2::bigint[]), unnest($3::text[])::jsonb, unnest($4::text[])
            """
        statement = connection.prepare(insert + " ON CONFLICT (event_id) DO NOTHING RETURNING event_id")
        plainStatement = connection.prepare(insert)
    }

    /// An empty batch from the pool.
    package func makeBatch() -> EventRows {
        if let batch = pool.popLast() { return batch }
        return EventRows(pooled: true)
    }

    /// Inserts the batch's rows; `completion` runs on the loop with the new ids or an error.
    /// The batch belongs to the inserter from now on: a pooled batch goes back to the pool
    /// after `completion` returns, unless `completion` submits it again (the way to retry
    /// after `.connectionLost`).
    package func insert(_ batch: EventRows, completion: @escaping (Result<EventInsertResult, PostgresError>) -> Void) {
        precondition(!batch.inUse, "EventRows: inserted twice at once")
        batch.seal()
        batch.inUse = true
        if batch.count == 0 {
            connection.loop.executeSoon { [weak self] in
                batch.inUse = false
                completion(.success(EventInsertResult(batchCount: 0, returned: nil)))
                if batch.pooled && !batch.inUse { self?.recycle(batch) }
            }
            return
        }
        let plain = conflictAwareLeft == 0
        if !plain { conflictAwareLeft -= 1 }
        connection.execute(plain ? plainStatement : statement, binary: batch) { [weak self] outcome in
            if plain, case .failure(let error) = outcome, error.sqlState == "23505", let self {
                self.conflictRetries += 1
                self.conflictAwareLeft = self.conflictAwareRun
                self.connection.execute(self.statement, binary: batch) { [weak self] outcome in
                    self?.finish(batch, outcome, completion)
                }
                return
            }
            self?.finish(batch, outcome, plain: plain, completion)
        }
    }

    private func finish(_ batch: EventRows, _ outcome: Result<PostgresResult, PostgresError>, plain: Bool = false,
                        _ completion: (Result<EventInsertResult, PostgresError>) -> Void) {
        batch.inUse = false
        completion(outcome.map {
            plain ? EventInsertResult(batchCount: batch.count, returned: nil, allOf: batch.ids)
                  : EventInsertResult(batchCount: batch.count, returned: $0)
        })
        if batch.pooled && !batch.inUse { recycle(batch) }
    }

    private func recycle(_ batch: EventRows) {
        guard pool.count < maxPooledBatches, batch.allocatedBytes <= maxPooledBatchBytes else { return }
        batch.reset()
        pool.append(batch)
    }
}
