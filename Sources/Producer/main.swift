import ArgumentParser
import Foundation
import Glibc
import ServiceKit

/// `producer`: accepts events over HTTP and broadcasts them over WebSocket.
/// `producer flood`: the load generator.
struct ProducerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "producer",
        abstract: "Accepts events over HTTP and broadcasts them, sequenced, to every listener over WebSocket.",
        subcommands: [Serve.self, FloodCommand.self],
        defaultSubcommand: Serve.self)
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the producer (the default).")
    @OptionGroup var options: ServeOptions

    func run() throws {
        let settings = try options.resolve()
        let logger = LogSetup.bootstrap(label: "producer", instance: "producer", level: settings.logLevel)
        let server = try ProducerServer(settings: settings, logger: logger)
        if settings.authToken == nil {
            logger.warning("AUTH_TOKEN is not set: anyone who reaches ports \(settings.httpPort) and \(settings.wsPort) can publish and subscribe")
        }
        logger.info("producer listening: HTTP \(settings.host):\(server.httpPort), WebSocket \(settings.host):\(server.wsPort), \(settings.threads) loop(s), replay ring \(settings.replayCapacity) events / \(settings.replayArenaBytes >> 20) MiB")
        Signals.waitForTermination()
        logger.info("producer stopping")
        server.shutdown()
    }
}

Signals.prepare()

do {
    var command = try ProducerCommand.parseAsRoot()
    try command.run()
} catch let error as SettingError {
    FileHandle.standardError.write(Data("producer: \(error)\n".utf8))
    exit(2)
} catch {
    ProducerCommand.exit(withError: error)
}
