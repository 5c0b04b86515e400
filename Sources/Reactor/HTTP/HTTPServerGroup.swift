/// One `HTTPServer` per loop of an `EventLoopGroup`, all on the same port (SO_REUSEPORT
/// lets the kernel spread connections). Each loop gets its own router and state, built
/// by `setup` on that loop's thread.
public final class HTTPServerGroup: Sendable {
    /// The port every loop listens on (the kernel's choice when the configuration said 0).
    public let port: Int
    private let servers: [(loop: EventLoopHandle, server: LoopBound<HTTPServer>)]

    /// Binds a server on every loop of `group`; `setup` fills in each one's router and
    /// `onUpgrade` on its own loop. Call from a thread that is not one of the group's loops
    /// (it waits for each loop in turn). If any loop fails, those already bound are closed.
    public init(group: EventLoopGroup, configuration: HTTPServer.Configuration,
                setup: @escaping @Sendable (HTTPServer) throws -> Void) throws {
        var configuration = configuration
        configuration.reusePort = true
        var servers: [(loop: EventLoopHandle, server: LoopBound<HTTPServer>)] = []
        do {
            for handle in group.handles {
                let wanted = configuration
                let box = try handle.submitAndWait { loop -> LoopBound<HTTPServer> in
                    let server = try HTTPServer(loop: loop, configuration: wanted, router: HTTPRouter())
                    do { try setup(server) } catch {
                        server.close()
                        throw error
                    }
                    return LoopBound(server, on: loop)
                }
                servers.append((handle, box))
                // Port 0 means "any" only for the first loop; the others join the port it got.
                configuration.port = try handle.submitAndWait { box.value(on: $0).port }
            }
        } catch {
            for entry in servers { Self.close(entry) }
            throw error
        }
        self.servers = servers
        port = configuration.port
    }

    /// Stops listening on every loop (open connections finish as usual). Call from outside the loops.
    public func close() {
        for entry in servers { Self.close(entry) }
    }

    private static func close(_ entry: (loop: EventLoopHandle, server: LoopBound<HTTPServer>)) {
        let box = entry.server
        _ = try? entry.loop.submitAndWait { box.value(on: $0).close() }
    }
}
