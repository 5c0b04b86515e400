import ArgumentParser
import Foundation
import ServiceKit

Signals.prepare()

do {
    var command = try ListenerOptions.parseAsRoot()
    try command.run()
} catch let error as SettingError {
    FileHandle.standardError.write(Data("listener: \(error)\n".utf8))
    exit(2)
} catch {
    ListenerOptions.exit(withError: error)
}
