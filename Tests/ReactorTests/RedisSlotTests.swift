import XCTest
@testable import Reactor

/// The key-to-slot function against the cluster specification's vectors.
final class RedisSlotTests: XCTestCase {
    private func crc(_ text: String) -> UInt16 {
        Array(text.utf8).withUnsafeBytes { RedisSlot.crc16($0) }
    }

    func testCRC16IsXMODEM() {
        XCTAssertEqual(crc("123456789"), 0x31C3)
        XCTAssertEqual(crc(""), 0)
        XCTAssertEqual(RedisSlot.of("foo"), 12182)
        XCTAssertEqual(RedisSlot.of("somekey"), 11058)
    }

    func testHashTagsFollowTheSpecification() {
        XCTAssertEqual(RedisSlot.of("{user1000}.following"), RedisSlot.of("{user1000}.followers"))
        XCTAssertEqual(RedisSlot.of("{user1000}.following"), RedisSlot.of("user1000"))
        // An empty tag hashes the whole key; only the first { and the next } count.
        XCTAssertEqual(RedisSlot.of("foo{}{bar}"), Int(crc("foo{}{bar}") & 0x3FFF))
        XCTAssertEqual(RedisSlot.of("foo{{bar}}zap"), Int(crc("{bar") & 0x3FFF))
        XCTAssertEqual(RedisSlot.of("foo{bar}{zap}"), RedisSlot.of("bar"))
        XCTAssertEqual(RedisSlot.of("foo{bar"), Int(crc("foo{bar") & 0x3FFF))
        XCTAssertEqual(RedisSlot.of(Array("{a}x".utf8)), RedisSlot.of("a"))
    }

    func testRedirectionsParse() {
        func parse(_ text: String) -> RedisRedirect? { Array(text.utf8).withUnsafeBytes { RedisRedirect($0) } }
        XCTAssertEqual(parse("MOVED 3999 127.0.0.1:6381")?.kind, .moved)
        XCTAssertEqual(parse("MOVED 3999 127.0.0.1:6381")?.slot, 3999)
        XCTAssertEqual(parse("ASK 12 ::1:7000")?.host, "::1")
        XCTAssertEqual(parse("ASK 12 :7000")?.host, "")
        XCTAssertEqual(parse("ASK 12 :7000")?.port, 7000)
        XCTAssertEqual(parse("TRYAGAIN Multiple keys request during rehashing of slot")?.kind, .tryAgain)
        XCTAssertNil(parse("MOVED 99999 h:1"))
        XCTAssertNil(parse("ERR unknown command"))
    }

    func testSettingsListBecomesSeedsWithTheFirstCredentials() throws {
        let urls = try RedisClients.urls("redis://:s3cret@h1:7000, h2:7001,redis://u:other@h3:7002")
        XCTAssertEqual(urls.map(\.host), ["h1", "h2", "h3"])
        XCTAssertEqual(urls.map(\.password), ["s3cret", "s3cret", "other"])
        XCTAssertEqual(urls[1].description, "redis://:***@h2:7001")
        XCTAssertThrowsError(try RedisClients.urls("redis://h1:7000/2,h2:7001"))
        XCTAssertThrowsError(try RedisClients.urls("redis://:s3cret@h1:7000,,h2:7001")) { error in
            XCTAssertFalse("\(error)".contains("s3cret"))
        }
        XCTAssertEqual(try RedisClients.urls("redis://h:1").count, 1)
    }
}
