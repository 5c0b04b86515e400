import Foundation
import Glibc
import Dedup
import Logging
import Reactor

/// What PostgreSQL itself charges for the rows of a stream being written by several
/// sessions instead of one: the listeners' batch insert (`EventBatchInsert`) into the
/// listeners' own schema (`ListenerSchema`: the primary key and the seq index), the same
/// rows every time, written by one session, by four that each take the rows whose id hashes
/// to them (as the listeners share events), or by four that each take blocks of 1,024
/// consecutive seqs; then the first two again without the seq index. The rows come in seq
/// order and a session with two batches in flight holds the stream up, as a listener's
/// bound does. Measured: the rate and the CPU of every PostgreSQL process (backends, WAL
/// writer, checkpointer) per row, each way twice, alternated (the machine's speed drifts).
///
/// Nothing of the listener runs here: the differences are PostgreSQL's own.
func runPostgresWritersBenchmark(quick: Bool) throws -> SuiteResult {
    let rows = quick ? 100_000 : 900_000
    let batchRows = 800
    let rounds = 2
    let server = try BenchPostgresServer()
    defer { server.stop() }
    print("  postgres \(server.version) on 127.0.0.1:\(server.port), \(BenchPostgresServer.settingsDescription)")
    let loop = try EventLoop()
    var configuration = PostgresConfiguration(url: server.url)
    configuration.operationTimeout = .seconds(120)
    let connections = try (0..<4).map { _ in try PostgresConnection(loop: loop, configuration: configuration) }
    defer { connections.forEach { $0.close() } }
    guard loop.run(timeout: .seconds(15), until: { connections.allSatisfy { $0.state == .up } }) else {
        throw PostgresBenchError.failed("cannot connect: \(String(describing: connections.first?.lastError))")
    }
    var migrated: Result<Void, PostgresError>?
    ListenerSchema.migrate(on: connections[0], logger: Logger(label: "bench")) { migrated = $0 }
    guard loop.run(timeout: .seconds(30), until: { migrated != nil }) else { throw PostgresBenchError.failed("schema: timeout") }
    try migrated!.get()
    let inserters = connections.map { EventBatchInsert(connection: $0) }

    var figures: [(String, Double)] = [("rows", Double(rows)), ("batch_rows", Double(batchRows))]
    var cpuOf: [String: Double] = [:]
    for (seqIndex, splits) in [(true, WriterSplit.allCases), (false, [WriterSplit.one, .byID])] {
        if !seqIndex { try runSQL(loop, connections[0], "DROP INDEX events_seq") }
        var samples: [WriterSplit: [(rate: Double, cpu: Double)]] = [:]
        for round in 1...rounds {
            for split in splits {
                try runSQL(loop, connections[0], "TRUNCATE events")
                try runSQL(loop, connections[0], "CHECKPOINT")
                let label = "\(split.label)\(seqIndex ? "" : ", no seq index")"
                let before = ProcStats.treeCPU(root: server.pid)
                let live = LiveRate("\(label), round \(round) of \(rounds)", unit: "rows")
                let start = monotonicSeconds()
                try writeStream(loop, Array(inserters.prefix(split.writers)), split: split, rows: rows, batchRows: batchRows, live: live)
                let elapsed = monotonicSeconds() - start
                let cpu = ProcStats.treeDelta(before, ProcStats.treeCPU(root: server.pid)) / Double(rows) * 1e6
                live.finish(rows)
                let stored = Int(try scalar(loop, connections[0], "SELECT count(*) FROM events")) ?? -1
                guard stored == rows else { throw PostgresBenchError.failed("\(label): stored \(stored) of \(rows) rows") }
                samples[split, default: []].append((Double(rows) / elapsed, cpu))
                print("  \(label), round \(round): \(formatRate(Double(rows) / elapsed)) rows/s, postgres \(String(format2: cpu)) µs CPU per row")
            }
        }
        for split in splits {
            let key = split.key + (seqIndex ? "" : "_no_seq_index")
            let rate = samples[split]!.map(\.rate).reduce(0, +) / Double(rounds)
            let cpu = samples[split]!.map(\.cpu).reduce(0, +) / Double(rounds)
            figures.append((key + "_rows_per_sec", rate))
            figures.append((key + "_postgres_us_per_row", cpu))
            cpuOf[key] = cpu
        }
    }
    for suffix in ["", "_no_seq_index"] {
        let extra = cpuOf["four_by_id" + suffix]! - cpuOf["one" + suffix]!
        figures.append(("four_by_id_extra_us_per_row" + suffix, extra))
        print("  4 sessions by id hash\(suffix.isEmpty ? "" : ", no seq index"): \(String(format2: extra)) µs more PostgreSQL CPU per row than 1")
    }
    let blocksExtra = cpuOf["four_by_seq_block"]! - cpuOf["one"]!
    figures.append(("four_by_seq_block_extra_us_per_row", blocksExtra))
    print("  4 sessions by blocks of \(WriterSplit.blockSeqs) seqs: \(String(format2: blocksExtra)) µs more PostgreSQL CPU per row than 1")
    return SuiteResult(
        name: "pg_writers",
        figures: figures,
        notes: ["the listeners' batch insert and schema (primary key and seq index), \(batchRows) rows a batch, 2 batches in flight per session",
                "rows in seq order, each to its session; postgres: CPU of all its processes per row; the mean of \(rounds) alternated rounds",
                "extra: PostgreSQL CPU per row with 4 sessions less that with 1"])
}

/// Which session writes which row.
private enum WriterSplit: CaseIterable {
    /// One session writes every row.
    case one
    /// Four sessions, each the rows whose id hashes to it (how listeners share events).
    case byID
    /// Four sessions, each whole blocks of `blockSeqs` consecutive seqs (hashed).
    case bySeqBlock

    static let blockSeqs = 1_024

    var writers: Int { self == .one ? 1 : 4 }
    var label: String {
        switch self {
        case .one: return "1 session"
        case .byID: return "4 sessions by id hash"
        case .bySeqBlock: return "4 sessions by blocks of \(Self.blockSeqs) seqs"
        }
    }
    var key: String {
        switch self {
        case .one: return "one"
        case .byID: return "four_by_id"
        case .bySeqBlock: return "four_by_seq_block"
        }
    }

    /// One of four sessions by a hash of `bytes` (FNV-1a, then SplitMix64's finalizer).
    private static func quarter(_ bytes: UnsafeRawBufferPointer) -> Int {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        hash = (hash ^ (hash >> 30)) &* 0xBF58_476D_1CE4_E5B9
        hash = (hash ^ (hash >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((hash ^ (hash >> 31)) % 4)
    }

    /// The session of row `n`, whose id is `id`.
    func writer(of n: Int, id: UnsafeRawBufferPointer) -> Int {
        switch self {
        case .one: return 0
        case .byID: return Self.quarter(id)
        case .bySeqBlock: return withUnsafeBytes(of: n / Self.blockSeqs) { Self.quarter($0) }
        }
    }
}

/// Writes rows `0..<rows` in order, each to its writer (`split`), a batch of
/// `batchRows` at a time with at most two batches in flight per writer: when the writer
/// of the next row has two out and a full batch, the stream waits for it.
private func writeStream(_ loop: EventLoop, _ writers: [EventBatchInsert], split: WriterSplit, rows: Int, batchRows: Int,
                         live: LiveRate) throws {
    var batches = writers.map { $0.makeBatch() }
    var inFlight = [Int](repeating: 0, count: writers.count)
    var done = 0
    var failure: PostgresError?
    var next = 0
    let owner: StaticString = "bench-writer"
    func send(_ w: Int) {
        let batch = batches[w]
        let count = batch.count
        inFlight[w] += 1
        writers[w].insert(batch) { result in
            inFlight[w] -= 1
            switch result {
            case .success: done += count
            case .failure(let error): failure = error
            }
        }
        batches[w] = writers[w].makeBatch()
    }
    var line = StreamRow()
    while done < rows && failure == nil {
        while next < rows {
            let taken = line.format(next) { id, payload -> Bool in
                let w = split.writer(of: next, id: id)
                if batches[w].count == batchRows {
                    guard inFlight[w] < 2 else { return false }
                    send(w)
                }
                batches[w].append(eventID: id, seq: Int64(next), payload: payload,
                                  processedBy: UnsafeRawBufferPointer(start: owner.utf8Start, count: owner.utf8CodeUnitCount))
                return true
            }
            guard taken else { break }
            next += 1
        }
        if next == rows {
            for w in writers.indices where batches[w].count > 0 && inFlight[w] < 2 { send(w) }
        }
        loop.turn(maxWaitNanos: 5_000_000)
        live.update(done, of: rows)
    }
    if let failure { throw PostgresBenchError.failed("insert failed: \(failure)") }
}

/// A row shaped as the end-to-end flood publishes it: `e2e-<n>` and a 100-byte payload
/// `{"t":<19 digits>,"pad":"xx..."}`, formatted into one reused buffer.
private struct StreamRow {
    private var id: [UInt8] = []
    private let payload: [UInt8] = {
        let head = Array("{\"t\":1700000000000000000,\"pad\":\"".utf8)
        let tail = Array("\"}".utf8)
        return head + [UInt8](repeating: UInt8(ascii: "x"), count: 100 - head.count - tail.count) + tail
    }()

    mutating func format<R>(_ n: Int, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> R) -> R {
        id.removeAll(keepingCapacity: true)
        id.append(contentsOf: "e2e-".utf8)
        id.append(contentsOf: String(n).utf8)
        return id.withUnsafeBytes { id in payload.withUnsafeBytes { body(id, $0) } }
    }
}
