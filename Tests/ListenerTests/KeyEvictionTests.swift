import XCTest
@testable import Dedup

/// When Redis may evict the listeners' keys (all of which have TTLs), read from `INFO memory`.
final class KeyEvictionTests: XCTestCase {
    func testOnlyAMemoryLimitWithAnEvictingPolicyMayEvict() {
        func info(_ limit: Int, _ policy: String) -> String {
            "# Memory\r\nused_memory:1024\r\nmaxmemory:\(limit)\r\nmaxmemory_human:0B\r\nmaxmemory_policy:\(policy)\r\n"
        }
        XCTAssertEqual(KeyEviction(info: info(0, "volatile-lru")), .never, "no limit, nothing to evict for")
        XCTAssertEqual(KeyEviction(info: info(1 << 30, "noeviction")), .never)
        for policy in ["volatile-lru", "volatile-ttl", "allkeys-lru", "allkeys-random", "volatile-lfu"] {
            XCTAssertEqual(KeyEviction(info: info(1 << 30, policy)), .possible(policy: policy), policy)
            XCTAssertNotNil(KeyEviction(info: info(1 << 30, policy))?.warning)
        }
        XCTAssertNil(KeyEviction(info: "# Memory\r\nused_memory:1024\r\n"), "an INFO without the fields says nothing")
        XCTAssertNil(KeyEviction.never.warning)
    }
}
