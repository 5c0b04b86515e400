import Glibc
import ServiceKit

ListenerMemory.configure()
Signals.prepare()

do {
    let command = ListenerOptions(flags: ListenerOptions.parser.parseOrExit())
    try command.run()
} catch let error as SettingError {
    let line = Array("listener: \(error)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
} catch {
    let line = Array("Error: \(error)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}
