import Foundation
import Reactor
import XCTest

/// One `ConnectionLimit` shared by several listeners: connections over it are closed at
/// accept without a byte, and slots come back when connections close.
final class ConnectionLimitTests: XCTestCase {
    func testListenersSharingALimitRefuseTheExtraConnectionsAndAcceptAgainOnceSomeClose() throws {
        let loop = try EventLoop()
        let limit = ConnectionLimit(maximum: 3)
        let router = HTTPRouter()
        router.get("/x") { _, responder in responder.respond(.text("x")) }
        var configuration = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        configuration.connectionLimit = limit
        let first = try HTTPServer(loop: loop, configuration: configuration, router: router)
        let second = try HTTPServer(loop: loop, configuration: configuration, router: router)
        defer { first.close(); second.close() }

        func open(_ server: HTTPServer) throws -> (HTTPRawClient, TCPConnection) {
            let client = HTTPRawClient()
            let connection = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: server.port, delegate: client)
            connection.write(Array("GET /x HTTP/1.1\r\n\r\n".utf8))
            return (client, connection)
        }

        // Two on the first port, one on the second: the limit is full across both.
        let held = try [open(first), open(first), open(second)]
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { held.allSatisfy { $0.0.responseCount == 1 } })
        XCTAssertEqual(limit.openConnections, 3)

        let refused = try [open(second), open(first)]
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { refused.allSatisfy { $0.0.closed } })
        for (client, _) in refused { XCTAssertEqual(client.received, [], "a refused connection got bytes") }
        XCTAssertEqual(limit.refusedConnections, 2)
        XCTAssertTrue(held.allSatisfy { !$0.0.closed }, "the held connections must stay open")

        // One closes; its slot goes back and the next connection is served.
        held[0].1.close()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { held[0].0.closed && limit.openConnections == 2 })
        let again = try open(second)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { again.0.responseCount == 1 })
        XCTAssertEqual(limit.openConnections, 3)

        for (_, connection) in held + [again] { connection.close() }
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { limit.openConnections == 0 })
    }

    func testAnUpgradedConnectionKeepsItsSlotUntilItCloses() throws {
        let loop = try EventLoop()
        let limit = ConnectionLimit(maximum: 1)
        var configuration = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        configuration.connectionLimit = limit
        let server = try HTTPServer(loop: loop, configuration: configuration)
        defer { server.close() }
        let upgraded = HTTPUpgradedDelegate()
        server.onUpgrade = { _, connection in
            connection.write(Array("HTTP/1.1 101 Switching Protocols\r\n\r\n".utf8))
            connection.delegate = upgraded
            return true
        }
        let client = HTTPRawClient()
        let connection = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: server.port, delegate: client)
        connection.write(Array("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".utf8))
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.text.contains("101") })
        XCTAssertEqual(limit.openConnections, 1)
        XCTAssertEqual(server.openConnections, 0, "the HTTP server no longer counts it")

        let second = HTTPRawClient()
        _ = try TCPConnection.connect(loop: loop, host: "127.0.0.1", port: server.port, delegate: second)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { second.closed })

        connection.close()
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { limit.openConnections == 0 })
    }
}
