import Foundation
import Glibc

/// `swift run -c release Chaos [--seed N] [--seconds S] [--listeners N] [--faults K,...]
/// [--rate R] [--output DIR] [--bin-dir DIR]`: seeded faults against the real system,
/// judged by an exactly-once checker. Exits 0 on a clean run, 1 on a violation, 2 on a
/// bad command line or a system that would not start.
switch ChaosOptions.parse(Array(CommandLine.arguments.dropFirst())) {
case .failure(let error) where error.isHelp:
    print(ChaosOptions.usage)
    exit(0)
case .failure(let error):
    FileHandle.standardError.write(Data("Chaos: \(error.message)\n".utf8))
    exit(2)
case .success(let options):
    do {
        exit(try ChaosRun(options: options).run() ? 0 : 1)
    } catch let error as ChaosUsageError {
        FileHandle.standardError.write(Data("Chaos: \(error.message)\n".utf8))
        exit(2)
    } catch {
        FileHandle.standardError.write(Data("Chaos: could not run: \(error)\n".utf8))
        exit(2)
    }
}
