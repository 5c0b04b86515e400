import Foundation
import Glibc

/// What the faults are set to right now; the proxy thread reads a copy at the top of
/// every turn, so a change applies to every connection at once.
struct FaultSettings: Equatable {
    /// Per direction: held, neither read nor written (index: `FaultProxy.Direction.rawValue`).
    var blackholed = [false, false]
    /// Per direction: nanoseconds each chunk waits before it is written on.
    var latencyNanos: [UInt64] = [0, 0]
    /// New clients are reset right after accept.
    var refuse = false
}

/// One-shot orders for the proxy thread, cleared when it takes them.
struct FaultCommands {
    /// Reset every open connection pair.
    var resetAll = false
    /// A new cut-before-reply arming (replacing any earlier one): pattern and how many cuts.
    var arm: (pattern: [UInt8], times: Int)?
    /// Leave the thread and close everything.
    var stop = false
}

/// The state shared between test threads and the proxy thread, behind one condition
/// lock. Every change bumps `generation`; the proxy thread acknowledges the generation it
/// has applied, and a setter waits for that, so when `blackhole(true)` returns no further
/// byte crosses the proxy, and when `resetAll()` returns every connection is already reset.
final class FaultProxyControl: @unchecked Sendable {
    private let condition = NSCondition()
    private var settings = FaultSettings()
    private var commands = FaultCommands()
    private var generation: UInt64 = 0
    private var applied: UInt64 = 0
    private var stats = FaultProxy.Stats()
    private var finished = false
    /// The write end of the self-pipe that interrupts the proxy thread's poll.
    private let wakeFD: Int32

    init(wakeFD: Int32) {
        self.wakeFD = wakeFD
    }

    deinit {
        // Closed here, not by the proxy thread: a setter racing with the thread's end must
        // never write into a descriptor number that has been reused.
        close(wakeFD)
    }

    /// Changes settings and/or commands, wakes the proxy thread and waits (bounded) until
    /// it has applied the change. Returns at once once the thread has finished.
    func change(_ update: (inout FaultSettings, inout FaultCommands) -> Void) {
        condition.lock()
        defer { condition.unlock() }
        update(&settings, &commands)
        guard !finished else { return }
        generation += 1
        let target = generation
        wake()
        // Generous: the thread applies a change within one turn, which is a poll wake-up.
        let deadline = Date().addingTimeInterval(10)
        while applied < target && !finished {
            if !condition.wait(until: deadline) { break }
        }
    }

    /// For the proxy thread: the current settings, the pending commands (cleared) and the
    /// generation they belong to.
    func take() -> (FaultSettings, FaultCommands, UInt64) {
        condition.lock()
        defer { condition.unlock() }
        let taken = commands
        commands = FaultCommands()
        return (settings, taken, generation)
    }

    /// For the proxy thread: publishes its counters and, when given, acknowledges the
    /// generation it has applied.
    func publish(_ newStats: FaultProxy.Stats, applied generation: UInt64? = nil) {
        condition.lock()
        defer { condition.unlock() }
        stats = newStats
        if let generation, generation > applied {
            applied = generation
            condition.broadcast()
        }
    }

    /// For the proxy thread, last: no setter waits for it any more.
    func markFinished(_ finalStats: FaultProxy.Stats) {
        condition.lock()
        defer { condition.unlock() }
        stats = finalStats
        finished = true
        condition.broadcast()
    }

    /// Waits until the proxy thread has finished (bounded, so a stuck test still reports).
    func waitFinished(timeout: TimeInterval = 10) {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while !finished {
            if !condition.wait(until: deadline) { return }
        }
    }

    /// The latest counters.
    var currentStats: FaultProxy.Stats {
        condition.lock()
        defer { condition.unlock() }
        return stats
    }

    /// True once the proxy thread has left its loop.
    var isFinished: Bool {
        condition.lock()
        defer { condition.unlock() }
        return finished
    }

    /// One byte into the self-pipe; a full pipe already means "wake up", so EAGAIN is fine.
    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeFD, &byte, 1)
    }
}
