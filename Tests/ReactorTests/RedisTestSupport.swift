import TestSupport
import XCTest
@testable import Reactor

/// Shared helpers for the Redis tests: a loop and a client that is up, unique keys, and a
/// way to wait for one completion.
enum RedisTestKit {
    /// A key prefix no other test (or earlier run against the same server) uses.
    static func prefix(_ name: String = #function) -> String {
        "t:\(name.prefix { $0 != "(" }):\(UInt32.random(in: 0...UInt32.max)):"
    }

    static func quickConfiguration(whileDown: RedisClient.WhileDown = .queue(limit: 1000),
                                   commandTimeout: Duration = .seconds(3),
                                   connectTimeout: Duration = .seconds(2)) -> RedisClient.Configuration {
        RedisClient.Configuration(connectTimeout: connectTimeout, commandTimeout: commandTimeout,
                                  reconnectDelay: .milliseconds(20), maxReconnectDelay: .milliseconds(200),
                                  whileDown: whileDown)
    }

    /// A client on a fresh loop, connected to `url` (the shared server by default).
    static func connectedClient(url: String = RedisTestServer.shared.url,
                                configuration: RedisClient.Configuration = quickConfiguration(),
                                file: StaticString = #filePath, line: UInt = #line) throws -> (EventLoop, RedisClient) {
        let loop = try EventLoop()
        let client = try RedisClient(loop: loop, url: url, configuration: configuration)
        XCTAssertTrue(loop.run(timeout: .seconds(5)) { client.isUp },
                      "client did not come up: \(client.lastError ?? "no error")", file: file, line: line)
        return (loop, client)
    }
}

/// Runs the loop until one completion arrives and returns its result.
func redisWait<T>(_ loop: EventLoop, timeout: Duration = .seconds(5), file: StaticString = #filePath, line: UInt = #line,
              _ issue: (@escaping (Result<T, RedisError>) -> Void) -> Void) -> Result<T, RedisError>? {
    var result: Result<T, RedisError>?
    issue { result = $0 }
    if !loop.run(timeout: timeout, until: { result != nil }) {
        XCTFail("no completion within \(timeout)", file: file, line: line)
    }
    return result
}

extension Optional {
    /// Unwraps a completed result's success value (nil when it failed or never came).
    func redisOK<S, E>(file: StaticString = #filePath, line: UInt = #line) -> S? where Wrapped == Result<S, E> {
        switch self {
        case .success(let value)?: return value
        case .failure(let error)?:
            XCTFail("unexpected failure: \(error)", file: file, line: line)
            return nil
        case nil: return nil
        }
    }

    /// The error of a completed result (nil after recording a failure when it succeeded).
    func redisError<S>(file: StaticString = #filePath, line: UInt = #line) -> RedisError? where Wrapped == Result<S, RedisError> {
        switch self {
        case .failure(let error)?: return error
        case .success(let value)?:
            XCTFail("expected an error, got \(value)", file: file, line: line)
            return nil
        case nil: return nil
        }
    }
}
