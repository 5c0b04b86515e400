/// A row of `events` or `dead_letters`, as the checker needs it.
struct StoredRow: Sendable {
    var id: String
    var seq: Int?
    /// The payload's `n` (events only): which publish attempt's payload was stored.
    var n: Int?
}

/// One id the checker found wrong, with what it knows about how the id was published.
struct Finding: Sendable, Codable {
    var id: String
    /// Rows found in `events` and in `dead_letters`.
    var eventsRows: Int
    var deadLetterRows: Int
    /// Seqs the producer acknowledged for this id.
    var ackedSeqs: [Int]
    /// Seconds since the run began when the id was first acknowledged (nil: never).
    var firstAckedAt: Double?
    var detail: String
}

/// What the checker concluded from the publish history and the database.
struct CheckResult: Sendable, Codable {
    /// Distinct ids with at least one 202.
    var ackedDistinct = 0
    /// Events (with duplicates) in 202 answers.
    var ackedEvents = 0
    /// Distinct ids only ever published in requests that got no answer.
    var indeterminateDistinct = 0
    /// Poison requests the producer refused (400), and all refused requests.
    var refusedPoison = 0
    var refusedRequests = 0
    /// Refused requests by why: the status and, for a 503, the producer's reason (so a
    /// run shows how many its disk faults refused), or "no connection".
    var refusedByReason: [String: Int] = [:]
    /// Rows in `events` and `dead_letters` for this run's ids.
    var eventsRows = 0
    var deadLetterRows = 0
    /// Acknowledged ids with no row anywhere.
    var lost: [Finding] = []
    /// Ids with more than one row (over both tables).
    var duplicated: [Finding] = []
    /// Rows for ids never published, or only in refused requests.
    var unexpected: [Finding] = []
    /// Rows whose seq or payload matches no acknowledged publish of that id.
    var mismatched: [Finding] = []
    /// Seqs the producer handed out twice, or batches whose seqs did not fit.
    var seqErrors: [String] = []

    var violations: Int { lost.count + duplicated.count + unexpected.count + mismatched.count + seqErrors.count }
}

/// The exactly-once checker, in the manner of Jepsen's queue checker: from what the
/// producer acknowledged (and what it may have accepted without answering) and what the
/// database holds, it names the lost, duplicated and unexpected ids.
enum Checker {
    static func check(attempts: [PublishAttempt], events: [StoredRow], deadLetters: [StoredRow]) -> CheckResult {
        var result = CheckResult()
        var ackedSeqs: [String: [Int]] = [:]
        var firstAck: [String: Double] = [:]
        /// seq -> (id, payload n) as acknowledged.
        var bySeq: [Int: (id: String, n: Int)] = [:]
        var maybe: Set<String> = []
        var refusedIDs: Set<String> = []
        for attempt in attempts {
            switch attempt.outcome {
            case .acked(let first):
                result.ackedEvents += attempt.events.count
                for (offset, event) in attempt.events.enumerated() {
                    let seq = first + offset
                    if let earlier = bySeq[seq] {
                        result.seqErrors.append("seq \(seq) acknowledged for \(earlier.id) and again for \(event.id) (batch \(attempt.batch))")
                    }
                    bySeq[seq] = (event.id, event.n)
                    ackedSeqs[event.id, default: []].append(seq)
                    if firstAck[event.id] == nil { firstAck[event.id] = attempt.answeredAt }
                }
            case .unknown:
                for event in attempt.events { maybe.insert(event.id) }
            case .refused(let why):
                result.refusedRequests += 1
                result.refusedByReason[refusalReason(why), default: 0] += 1
                if attempt.poison { result.refusedPoison += 1 }
                for event in attempt.events { refusedIDs.insert(event.id) }
            }
        }
        result.ackedDistinct = ackedSeqs.count
        result.indeterminateDistinct = maybe.subtracting(ackedSeqs.keys).count

        var eventsCount: [String: Int] = [:]
        var deadCount: [String: Int] = [:]
        for row in events { eventsCount[row.id, default: 0] += 1 }
        for row in deadLetters { deadCount[row.id, default: 0] += 1 }
        result.eventsRows = events.count
        result.deadLetterRows = deadLetters.count

        func finding(_ id: String, _ detail: String) -> Finding {
            Finding(id: id, eventsRows: eventsCount[id] ?? 0, deadLetterRows: deadCount[id] ?? 0,
                    ackedSeqs: ackedSeqs[id] ?? [], firstAckedAt: firstAck[id], detail: detail)
        }
        for id in ackedSeqs.keys.sorted() where (eventsCount[id] ?? 0) + (deadCount[id] ?? 0) == 0 {
            result.lost.append(finding(id, "acknowledged, stored nowhere"))
        }
        for id in Set(eventsCount.keys).union(deadCount.keys).sorted() {
            let total = (eventsCount[id] ?? 0) + (deadCount[id] ?? 0)
            if total > 1 { result.duplicated.append(finding(id, "\(total) rows")) }
            if ackedSeqs[id] == nil && !maybe.contains(id) {
                result.unexpected.append(finding(id, refusedIDs.contains(id) ? "stored, but every publish of it was refused" : "stored, never published"))
            }
        }
        for row in events {
            guard let seqs = ackedSeqs[row.id], !maybe.contains(row.id) else { continue }
            guard let seq = row.seq, seqs.contains(seq) else {
                result.mismatched.append(finding(row.id, "stored with seq \(row.seq.map(String.init) ?? "null"), acknowledged with \(seqs)"))
                continue
            }
            if let n = row.n, let acked = bySeq[seq], acked.n != n {
                result.mismatched.append(finding(row.id, "stored payload n=\(n) at seq \(seq), acknowledged payload n=\(acked.n)"))
            }
        }
        return result
    }
}

/// The short reason of a refusal for counting: "503 event log unavailable" for a 503
/// whose error names a reason before a colon, the status alone for any other answer,
/// "no connection" when the producer could not be reached.
func refusalReason(_ refusal: String) -> String {
    let status = refusal.prefix(3)
    guard status.count == 3, status.allSatisfy(\.isNumber) else { return "no connection" }
    guard status == "503", let key = refusal.range(of: "\"error\":") else { return String(status) }
    let reason = refusal[key.upperBound...].drop { $0 == " " || $0 == "\"" }.prefix { $0 != ":" && $0 != "\"" && $0 != ";" }
    return reason.isEmpty ? String(status) : "503 " + reason
}
