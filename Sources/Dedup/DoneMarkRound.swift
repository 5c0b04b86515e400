import Reactor

/// The done markers of one stored batch: one pipelined `SET event:<id> d|<instance> PX
/// window` per event. A done marker is true once the row is stored, whoever holds the key
/// by then (an owner that took over stores the same row, which is already there), so it
/// needs no compare, and one plain command per event is all the Redis work it takes.
final class DoneMarkRound: RedisReplySink {
    private var remaining: Int
    private var failure: RedisError?
    private var completion: ((RedisError?) -> Void)?

    /// `completion` runs once every marker is answered: nil when all were set.
    init(count: Int, completion: @escaping (RedisError?) -> Void) {
        remaining = count
        self.completion = completion
    }

    func redisReply(_ index: Int, _ reply: RedisReplyView?, error: RedisError?) {
        if let error {
            failure = error
        } else if reply?.kind != .status {
            failure = .unexpectedReply("SET answered \(reply.map { "\($0.kind)" } ?? "nothing")")
        }
        remaining -= 1
        guard remaining == 0, let completion else { return }
        self.completion = nil
        completion(failure)
    }
}
