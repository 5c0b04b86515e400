import ArgumentParser
import Glibc
import ServiceKit

Signals.prepare()

do {
    var command = try ListenerOptions.parseAsRoot()
    try command.run()
} catch let error as SettingError {
    let line = Array("listener: \(error)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
} catch {
    ListenerOptions.exit(withError: error)
}
