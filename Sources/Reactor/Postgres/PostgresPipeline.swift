import CPostgres

/// An operation's parameters, kept until it completes so a retry can send them again.
enum PostgresParameters {
    case none
    /// Text-format values, each NUL-terminated in one buffer; an offset of -1 is SQL NULL.
    case text(ByteBuffer, [Int])
    /// Binary-format values its owner lays out (e.g. whole arrays for a batch insert).
    case binary(any PostgresBinaryParameters)
}

/// Parameters in PostgreSQL's binary format that their owner keeps and lays out: libpq's
/// four parameter arrays, valid only during `body`. Kept by the pipeline until the
/// operation completes, so a retry sends them again.
public protocol PostgresBinaryParameters: AnyObject {
    /// Calls `body(count, values, lengths, formats)` with libpq's parameter arrays.
    func withParameters<R>(
        _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R
    ) -> R
}

/// One statement execution in the pipeline: what to send, and the results gathered until
/// its sync arrives. Each operation is its own sync, hence its own implicit transaction.
final class PostgresOperation {
    /// A prepared statement, or nil for an unnamed statement made from `sql`.
    let statement: PostgresStatement?
    let sql: String
    let parameters: PostgresParameters
    private var completion: ((Result<PostgresResult, PostgresError>) -> Void)?
    var deadline: UInt64 = 0
    var attempts = 0
    /// The statement's prepare serial when this attempt was sent (see `send`).
    var preparedSerial = 0

    // Per-attempt state. libpq hands back, per command: one result then NULL; per sync:
    // one PGRES_PIPELINE_SYNC and no NULL.
    var expectsPrepareResult = false
    var resultsSeen = 0
    var awaitingNull = false
    var result: OpaquePointer?
    var error: PostgresError?
    var aborted = false

    init(statement: PostgresStatement?, sql: String, parameters: PostgresParameters,
         completion: @escaping (Result<PostgresResult, PostgresError>) -> Void) {
        self.statement = statement
        self.sql = sql
        self.parameters = parameters
        self.completion = completion
    }

    deinit {
        if let result { PQclear(result) }
    }

    var resultsExpected: Int { expectsPrepareResult ? 2 : 1 }

    /// The error to report, if the attempt failed.
    var failure: PostgresError? {
        if let error { return error }
        if aborted { return PostgresError(.server, "pipeline aborted before the statement ran") }
        return nil
    }

    func resetAttempt() {
        expectsPrepareResult = false
        resultsSeen = 0
        awaitingNull = false
        if let result { PQclear(result) }
        result = nil
        error = nil
        aborted = false
    }

    func takeResult() -> PostgresResult {
        let r = PostgresResult(taking: result)
        result = nil
        return r
    }

    /// Runs the completion once; later calls are ignored.
    func finish(_ outcome: Result<PostgresResult, PostgresError>) {
        guard let completion else { return }
        self.completion = nil
        completion(outcome)
    }

    /// Calls `body` with libpq's parameter arrays (count, values, lengths, formats). The
    /// pointers live only during the call; libpq copies them into its output buffer.
    func withParameters<R>(
        _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R
    ) -> R {
        switch parameters {
        case .none:
            return body(0, nil, nil, nil)
        case .text(let buffer, let offsets):
            return buffer.withReadableBytes { raw in
                withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: offsets.count) { values in
                    for (i, offset) in offsets.enumerated() {
                        values[i] = offset < 0 ? nil
                            : UnsafePointer((raw.baseAddress! + offset).assumingMemoryBound(to: CChar.self))
                    }
                    return body(Int32(offsets.count), UnsafePointer(values.baseAddress), nil, nil)
                }
            }
        case .binary(let parameters):
            return parameters.withParameters(body)
        }
    }
}

extension HeadQueue where Element == PostgresOperation {
    /// Removes and returns the operations whose deadline is at or before `now`.
    mutating func removeExpired(now: UInt64) -> [PostgresOperation] {
        removeAll { $0.deadline <= now }
    }
}

extension PostgresConnection {
    /// Puts one operation into libpq's output buffer: a prepare when this server session
    /// has not seen the statement yet, the execution, and a sync. False when libpq refuses
    /// (the connection is broken).
    func send(_ op: PostgresOperation, on conn: OpaquePointer) -> Bool {
        op.resetAttempt()
        if let statement = op.statement {
            if statement.preparedEpoch != epoch {
                let ok = statement.name.withCString { name in
                    statement.sql.withCString { PQsendPrepare(conn, name, $0, 0, nil) }
                }
                guard ok == 1 else { return false }
                // Later operations in this session rely on the prepare already queued ahead
                // of them; if it fails they fail with 26000 and are retried, re-preparing.
                statement.preparedEpoch = epoch
                statement.prepareSerial += 1
                op.expectsPrepareResult = true
            }
            op.preparedSerial = statement.prepareSerial
            let ok = op.withParameters { count, values, lengths, formats in
                statement.name.withCString { PQsendQueryPrepared(conn, $0, count, values, lengths, formats, 0) }
            }
            guard ok == 1 else { return false }
        } else {
            let ok = op.withParameters { count, values, lengths, formats in
                op.sql.withCString { PQsendQueryParams(conn, $0, count, nil, values, lengths, formats, 0) }
            }
            guard ok == 1 else { return false }
        }
        return PQpipelineSync(conn) == 1
    }

    /// Takes every complete result libpq has parsed and matches it to the in-flight FIFO.
    /// Never calls PQgetResult while PQisBusy: in that state it would block.
    func processResults() {
        while let conn = self.conn, let op = inFlight.first, PQisBusy(conn) == 0 {
            let res = PQgetResult(conn)
            if op.awaitingNull {
                op.awaitingNull = false
                if let res {
                    // Not the NULL we expected: keep an error it carries, drop anything else.
                    if PQresultStatus(res) == PGRES_FATAL_ERROR && op.error == nil { op.error = .fromResult(res) }
                    PQclear(res)
                }
                continue
            }
            // A NULL where a result belongs: nothing more is ready yet.
            guard let res else { break }
            let status = PQresultStatus(res)
            if status == PGRES_PIPELINE_SYNC {
                PQclear(res)
                _ = inFlight.popFirst()
                retryOrFinish(op)
                continue
            }
            let index = op.resultsSeen
            op.resultsSeen += 1
            op.awaitingNull = true
            let isPrepare = op.expectsPrepareResult && index == 0
            switch status {
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                if isPrepare || index >= op.resultsExpected {
                    PQclear(res)
                } else {
                    if let old = op.result { PQclear(old) }
                    op.result = res
                }
            case PGRES_PIPELINE_ABORTED:
                op.aborted = true
                PQclear(res)
            default:
                let error = PostgresError.fromResult(res)
                PQclear(res)
                if op.error == nil { op.error = error }
                // A failed prepare, or a statement the session lost (DEALLOCATE, pooler):
                // prepare again on the next attempt, unless a newer prepare is already
                // on its way (preparing twice would fail with 42P05).
                if let statement = op.statement, isPrepare || error.sqlState == "26000",
                   statement.prepareSerial == op.preparedSerial {
                    statement.preparedEpoch = 0
                }
            }
        }
    }
}
