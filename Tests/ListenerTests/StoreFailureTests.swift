@testable import Dedup
import Reactor
import XCTest

/// A permanent data error never wedges a batch: its rows are isolated and dead-lettered;
/// everything else is retried.
final class StoreFailureTests: XCTestCase {
    private func server(_ state: String) -> PostgresError { PostgresError(.server, "x", sqlState: state) }

    func testDataErrorsArePermanent() {
        for state in ["22021", "22P05", "22003", "22P02", "23502", "23514", "54000"] {
            XCTAssertEqual(StoreFailure(server(state)), .permanent, state)
        }
    }

    func testConnectionAndServerStateErrorsAreTransient() {
        for state in ["08006", "40001", "40P01", "53300", "57P01", "58030", "42P01", "23505"] {
            XCTAssertEqual(StoreFailure(server(state)), .transient, state)
        }
        XCTAssertEqual(StoreFailure(PostgresError(.connectionLost, "gone")), .transient)
        XCTAssertEqual(StoreFailure(PostgresError(.timeout, "slow")), .transient)
    }

    func testARefusalByATriggerOrFunctionOrAStatementTimeoutIsRetriedNotDeadLettered() {
        for state in ["P0001", "P0004", "09000", "27000", "2F005", "38001", "39P01", "57014"] {
            XCTAssertEqual(StoreFailure(server(state)), .refusedForNow, state)
        }
    }

    /// Splitting and postponing a part a trigger refuses: every other row is stored, and
    /// the refused one is left alone, last.
    func testARowRefusedForNowIsSplitOffAndPostponedBehindTheRest() {
        var plan = InsertPlan(count: 200)
        var stored = Set<Int>()
        var attempts = 0
        while let part = plan.next, attempts < 1_000 {
            attempts += 1
            if part.contains(137) {
                if !plan.split() { plan.postpone() }
                if part == 137..<138, stored.count == 199 { break }
            } else {
                stored.formUnion(part)
                plan.inserted()
            }
        }
        XCTAssertEqual(stored, Set(0..<200).subtracting([137]))
        XCTAssertEqual(plan.next, 137..<138)
        XCTAssertLessThan(attempts, 40)
    }

    /// Inserting with a plan against a table that refuses `bad` rows: returns the rows
    /// stored, the rows dead-lettered and the inserts it took.
    private func simulate(count: Int, bad: Set<Int>) -> (stored: Set<Int>, dead: Set<Int>, inserts: Int) {
        var plan = InsertPlan(count: count)
        var stored = Set<Int>(), dead = Set<Int>(), inserts = 0
        while let part = plan.next {
            inserts += 1
            if part.contains(where: bad.contains) {
                if let row = plan.refused() { dead.insert(row) }
            } else {
                stored.formUnion(part)
                plan.inserted()
            }
        }
        return (stored, dead, inserts)
    }

    func testOnePoisonRowAmongTwoHundredIsIsolatedAndTheRestStored() {
        let result = simulate(count: 200, bad: [100])
        XCTAssertEqual(result.dead, [100])
        XCTAssertEqual(result.stored, Set(0..<200).subtracting([100]))
        XCTAssertLessThanOrEqual(result.inserts, 2 * 8 + 1)
    }

    func testAnyPoisonRowsAreIsolatedExactly() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let count = Int.random(in: 1...300, using: &rng)
            let bad = Set((0..<Int.random(in: 0...5, using: &rng)).map { _ in Int.random(in: 0..<count, using: &rng) })
            let result = simulate(count: count, bad: bad)
            XCTAssertEqual(result.dead, bad)
            XCTAssertEqual(result.stored, Set(0..<count).subtracting(bad))
        }
    }
}
