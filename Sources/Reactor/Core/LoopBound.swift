/// A non-Sendable value that belongs to one loop, wrapped so closures crossing threads
/// can carry it; it may be unwrapped only on its own loop (checked). This is how loops
/// reach each other's objects through `EventLoopHandle.execute` without sharing them.
public struct LoopBound<Value: AnyObject>: @unchecked Sendable {
    private let value: Value
    private let owner: ObjectIdentifier

    /// Wraps `value`, which lives on `loop`.
    public init(_ value: Value, on loop: EventLoop) {
        self.value = value
        owner = ObjectIdentifier(loop)
    }

    /// The value; `loop` must be its own (the loop a handle's work runs on).
    public func value(on loop: EventLoop) -> Value {
        precondition(ObjectIdentifier(loop) == owner, "LoopBound value used off its loop")
        return value
    }
}
