import XCTest
@testable import Producer

/// The slow-client rule: a subscriber is closed when it is behind and has taken no bytes
/// for the timeout, never while it takes bytes, however slowly.
final class StallWatchTests: XCTestCase {
    private let timeout: UInt64 = 500_000_000
    private let lookEvery: UInt64 = 250_000_000

    func testASubscriberThatTakesNoBytesForTheTimeoutIsStalled() {
        var watch = StallWatch(timeoutNanos: timeout)
        var stalledAt: UInt64?
        for look in 0..<10 where stalledAt == nil {
            let now = UInt64(look) * lookEvery
            if watch.look(now: now, behind: true, writable: false, cursor: 100, pendingBytes: 4 << 20) { stalledAt = now }
        }
        // The first look only records where it stands; the stall counts from the second.
        XCTAssertEqual(stalledAt, lookEvery + timeout)
    }

    func testASubscriberThatTakesBytesSlowerThanEventsArriveIsNeverStalled() {
        var watch = StallWatch(timeoutNanos: timeout)
        var cursor: UInt64 = 100
        var pending = 4 << 20
        for look in 0..<100 {
            // Every look finds its socket full, yet it took some bytes since the last one:
            // its queue shrank, or it drained far enough for more frames to be queued.
            if look % 2 == 0 { pending -= 1_000 } else { cursor += 50 }
            XCTAssertFalse(watch.look(now: UInt64(look) * lookEvery, behind: true, writable: false,
                                      cursor: cursor, pendingBytes: pending), "closed at look \(look)")
        }
    }

    func testCatchingUpOrAWritableSocketStartsTheCountOver() {
        var watch = StallWatch(timeoutNanos: timeout)
        var now: UInt64 = 0
        func look(behind: Bool = true, writable: Bool = false) -> Bool {
            defer { now += lookEvery }
            return watch.look(now: now, behind: behind, writable: writable, cursor: 100, pendingBytes: 4 << 20)
        }
        XCTAssertFalse(look())
        XCTAssertFalse(look())
        XCTAssertNotNil(watch.stalledSince)
        XCTAssertFalse(look(writable: true))
        XCTAssertNil(watch.stalledSince)
        XCTAssertFalse(look())
        XCTAssertFalse(look(behind: false))
        XCTAssertNil(watch.stalledSince)
        XCTAssertFalse(look())
        XCTAssertFalse(look())
        XCTAssertTrue(look(), "no bytes taken for the whole timeout since the last reset")
    }
}
