import TestSupport
import XCTest
@testable import Reactor

/// The claim scripts act only on a key that still holds our value: another owner's key is
/// never deleted, extended or marked done.
final class RedisScriptTests: XCTestCase {
    func testCompareAndDeleteDeletesOnlyOurOwnValue() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let p = RedisTestKit.prefix()
        _ = redisWait(loop) { client.set(p + "mine", "me", px: 30_000, completion: $0) }
        _ = redisWait(loop) { client.set(p + "theirs", "them", px: 30_000, completion: $0) }
        XCTAssertEqual(redisWait(loop) { client.compareAndDelete(p + "mine", expected: "me", completion: $0) }.redisOK(), true)
        XCTAssertEqual(redisWait(loop) { client.compareAndDelete(p + "theirs", expected: "me", completion: $0) }.redisOK(), false)
        XCTAssertEqual(redisWait(loop) { client.compareAndDelete(p + "missing", expected: "me", completion: $0) }.redisOK(), false)
        XCTAssertEqual(try RedisTestServer.shared.cli("EXISTS", p + "mine"), "0")
        XCTAssertEqual(try RedisTestServer.shared.cli("GET", p + "theirs"), "them")
        client.close()
    }

    func testCompareAndExtendExtendsOnlyOurOwnClaim() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let p = RedisTestKit.prefix()
        _ = redisWait(loop) { client.set(p + "mine", "me", px: 1_000, completion: $0) }
        _ = redisWait(loop) { client.set(p + "theirs", "them", px: 1_000, completion: $0) }
        XCTAssertEqual(redisWait(loop) { client.compareAndExtend(p + "mine", expected: "me", px: 60_000, completion: $0) }.redisOK(), true)
        XCTAssertEqual(redisWait(loop) { client.compareAndExtend(p + "theirs", expected: "me", px: 60_000, completion: $0) }.redisOK(), false)
        XCTAssertEqual(redisWait(loop) { client.compareAndExtend(p + "missing", expected: "me", px: 60_000, completion: $0) }.redisOK(), false)
        let mine = try XCTUnwrap(redisWait(loop) { client.pttl(p + "mine", completion: $0) }.redisOK())
        let theirs = try XCTUnwrap(redisWait(loop) { client.pttl(p + "theirs", completion: $0) }.redisOK())
        XCTAssertTrue((58_000...60_000).contains(mine), "extended PTTL \(mine)")
        XCTAssertTrue((0...1_000).contains(theirs), "other owner's PTTL changed: \(theirs)")
        XCTAssertEqual(try RedisTestServer.shared.cli("EXISTS", p + "missing"), "0")
        client.close()
    }

    func testMarkDoneReplacesOnlyOurClaimWithTheDoneMarkerAndItsTTL() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let p = RedisTestKit.prefix()
        _ = redisWait(loop) { client.set(p + "mine", "me", px: 30_000, completion: $0) }
        _ = redisWait(loop) { client.set(p + "theirs", "them", px: 30_000, completion: $0) }
        XCTAssertEqual(redisWait(loop) { client.markDone(p + "mine", expected: "me", doneValue: "done", px: 600_000, completion: $0) }.redisOK(), true)
        XCTAssertEqual(redisWait(loop) { client.markDone(p + "theirs", expected: "me", doneValue: "done", px: 600_000, completion: $0) }.redisOK(), false)
        XCTAssertEqual(redisWait(loop) { client.markDone(p + "missing", expected: "me", doneValue: "done", px: 600_000, completion: $0) }.redisOK(), false)
        XCTAssertEqual(redisWait(loop) { client.get(p + "mine", completion: $0) }.redisOK(), Array("done".utf8))
        let ttl = try XCTUnwrap(redisWait(loop) { client.pttl(p + "mine", completion: $0) }.redisOK())
        XCTAssertTrue((590_000...600_000).contains(ttl), "done marker PTTL \(ttl)")
        XCTAssertEqual(try RedisTestServer.shared.cli("GET", p + "theirs"), "them")
        let theirs = try XCTUnwrap(Int(try RedisTestServer.shared.cli("PTTL", p + "theirs")))
        XCTAssertTrue((0...30_000).contains(theirs), "other owner's PTTL changed: \(theirs)")
        XCTAssertEqual(try RedisTestServer.shared.cli("EXISTS", p + "missing"), "0")
        client.close()
    }

    func testScriptShasMatchWhatTheServerComputes() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        for script in RedisScript.allCases {
            let reply = redisWait(loop) { done in
                client.command([Array("SCRIPT".utf8), Array("LOAD".utf8), Array(script.sourceBytes)], completion: done)
            }
            XCTAssertEqual(reply.redisOK()?.bytes, script.sha)
        }
        client.close()
    }

    func testNoScriptAfterScriptFlushFallsBackToEvalAndStillWorks() throws {
        let (loop, client) = try RedisTestKit.connectedClient()
        let p = RedisTestKit.prefix()
        _ = redisWait(loop) { client.set(p + "a", "me", completion: $0) }
        _ = redisWait(loop) { client.set(p + "b", "them", completion: $0) }
        XCTAssertEqual(redisWait(loop) { client.command("SCRIPT", "FLUSH", completion: $0) }.redisOK()?.isOK, true)
        // Pipelined, so the resent EVALs overtake nothing they should not.
        var first: Result<Bool, RedisError>?
        var second: Result<Bool, RedisError>?
        client.compareAndDelete(p + "a", expected: "me") { first = $0 }
        client.compareAndDelete(p + "b", expected: "me") { second = $0 }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { first != nil && second != nil })
        XCTAssertEqual(first.redisOK(), true)
        XCTAssertEqual(second.redisOK(), false)
        XCTAssertEqual(try RedisTestServer.shared.cli("GET", p + "b"), "them")
        // EVAL cached the script again: EVALSHA works without a fallback.
        let sha = String(decoding: RedisScript.compareAndDelete.sha, as: UTF8.self)
        XCTAssertEqual(try RedisTestServer.shared.cli("SCRIPT", "EXISTS", sha), "1")
        client.close()
    }
}
