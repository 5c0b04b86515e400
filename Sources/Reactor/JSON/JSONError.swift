/// A JSON error: what is wrong, at which byte, and whether the text is malformed or is
/// well-formed JSON that cannot be stored (so callers can say which it is).
public struct JSONError: Error, CustomStringConvertible, Equatable {
    /// Why the text was refused.
    public enum Kind: Equatable, Sendable {
        /// Not JSON (RFC 8259).
        case syntax
        /// JSON that PostgreSQL `jsonb`/`text` cannot hold: a NUL, a lone surrogate, a number
        /// outside `numeric`'s range. Only a scanner that `checksStorable` reports these,
        /// except a raw NUL byte in a string, which is both.
        case unstorable
        /// Arrays and objects nested deeper than the caller's limit.
        case tooDeep
    }

    /// What is wrong, worded to follow the name of the value it is about (e.g. "contains a NUL").
    public let message: String
    /// The byte the problem was found at.
    public let offset: Int
    /// Malformed, unstorable or too deep.
    public let kind: Kind

    /// An error of `kind` (a syntax error unless said otherwise) at byte `offset`.
    public init(_ message: String, at offset: Int, kind: Kind = .syntax) {
        self.message = message
        self.offset = offset
        self.kind = kind
    }

    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}
