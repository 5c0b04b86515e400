import Foundation
import TestSupport

/// The producer and listener to test (`--bin-dir`, `DEDUP_CHAOS_BIN_DIR`, else the
/// release products), and what the producer supports.
struct ChaosBinaries: Sendable {
    let producer: String
    let listener: String
    let origin: String
    /// `producer serve --help` lists `--data-dir`: the durable log is there, and a killed
    /// producer restarted on its DATA_DIR must keep every event it answered 202 for.
    let producerHasDataDir: Bool

    static func locate(binDir: String?) throws -> ChaosBinaries {
        let found = try ServiceBinaries.locate(binDir: binDir, environment: "DEDUP_CHAOS_BIN_DIR")
        let (_, help) = try TestServers.run(found.producer, ["serve", "--help"])
        return ChaosBinaries(producer: found.producer, listener: found.listener, origin: found.origin,
                             producerHasDataDir: help.contains("--data-dir"))
    }
}
