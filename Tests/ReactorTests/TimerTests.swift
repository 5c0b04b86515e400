import XCTest
@testable import Reactor

final class TimerTests: XCTestCase {
    func testTimersFireInDeadlineOrderAndEqualDeadlinesInScheduleOrder() throws {
        let loop = try EventLoop()
        var fired: [String] = []
        let base = loop.nowNanos + 20_000_000
        loop.schedule(atNanos: base + 2_000_000) { fired.append("late") }
        loop.schedule(atNanos: base) { fired.append("a") }
        loop.schedule(atNanos: base) { fired.append("b") }
        loop.schedule(atNanos: base) { fired.append("c") }
        loop.schedule(atNanos: base - 10_000_000) { fired.append("early") }
        XCTAssertTrue(loop.run(timeout: .seconds(2)) { fired.count == 5 })
        XCTAssertEqual(fired, ["early", "a", "b", "c", "late"])
    }

    func testCancelledTimersNeverFireWherverTheySitInTheHeap() throws {
        let loop = try EventLoop()
        var fired: [Int] = []
        var handles: [TimerHandle] = []
        for i in 0..<200 {
            // Scrambled deadlines so cancelled timers sit at every depth of the heap.
            let delay = (i * 7919) % 200
            handles.append(loop.schedule(in: .milliseconds(delay / 10)) { fired.append(i) })
        }
        for i in stride(from: 0, to: 200, by: 3) { loop.cancel(handles[i]) }
        XCTAssertFalse(handles[0].isScheduled)
        let expected = (0..<200).filter { $0 % 3 != 0 }
        XCTAssertTrue(loop.run(timeout: .seconds(2)) { fired.count == expected.count })
        loop.run(timeout: .milliseconds(50)) { false }
        XCTAssertEqual(Set(fired), Set(expected))
        XCTAssertEqual(fired.count, expected.count)
        XCTAssertEqual(loop.scheduledTimerCount, 0)
    }

    func testHeapKeepsOrderUnderRandomInsertAndCancel() {
        var heap = TimerHeap()
        var rng = SystemRandomNumberGenerator()
        var live: [TimerHandle] = []
        for _ in 0..<5_000 {
            if !live.isEmpty && Bool.random(using: &rng) {
                let victim = live.remove(at: Int.random(in: 0..<live.count, using: &rng))
                heap.remove(victim)
            } else {
                live.append(heap.makeTimer(deadline: UInt64.random(in: 0..<1_000, using: &rng)) {})
            }
        }
        var previous: (UInt64, UInt64) = (0, 0)
        var popped = 0
        while let timer = heap.popExpired(now: .max) {
            XCTAssertTrue((timer.deadline, timer.sequence) > previous)
            previous = (timer.deadline, timer.sequence)
            popped += 1
        }
        XCTAssertEqual(popped, live.count)
    }

    func testCancelAfterFiringIsHarmless() throws {
        let loop = try EventLoop()
        var count = 0
        let timer = loop.schedule(in: .milliseconds(1)) { count += 1 }
        XCTAssertTrue(loop.run(timeout: .seconds(1)) { count == 1 })
        loop.cancel(timer)
        XCTAssertEqual(count, 1)
    }
}
