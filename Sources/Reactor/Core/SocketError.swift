import Glibc

/// A failed system call on a socket or descriptor, with the errno it left.
public struct SocketError: Error, CustomStringConvertible, Equatable {
    /// The errno value.
    public let errno: Int32
    /// What was being done, e.g. "connect" or "read".
    public let operation: String

    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    /// The error from the calling thread's current errno.
    static func current(_ operation: String) -> SocketError {
        SocketError(errno: Glibc.errno, operation: operation)
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno)))"
    }
}
