/// Writes one JSON object member by member into a buffer: names and string values are
/// escaped once, in one place, instead of being spliced into string literals.
public struct JSONObjectWriter: ~Copyable {
    private let out: ByteBuffer
    private var empty = true

    /// Starts an object (`{`) at the end of `out`.
    public init(into out: ByteBuffer) {
        self.out = out
        out.write(byte: UInt8(ascii: "{"))
    }

    private mutating func name(_ name: String) {
        if !empty { out.write(byte: UInt8(ascii: ",")) }
        empty = false
        JSONString.writeQuoted(name, to: out)
        out.write(byte: UInt8(ascii: ":"))
    }

    /// `"name": "value"`.
    public mutating func string(_ name: String, _ value: String) {
        self.name(name)
        JSONString.writeQuoted(value, to: out)
    }

    /// `"name": 42`.
    public mutating func number<N: BinaryInteger>(_ name: String, _ value: N) {
        self.name(name)
        out.write(String(value))
    }

    /// `"name": true`.
    public mutating func bool(_ name: String, _ value: Bool) {
        self.name(name)
        out.write(value ? "true" : "false")
    }

    /// `"name": ["a", "b"]`.
    public mutating func strings(_ name: String, _ values: [String]) {
        self.name(name)
        out.write(byte: UInt8(ascii: "["))
        for (i, value) in values.enumerated() {
            if i > 0 { out.write(byte: UInt8(ascii: ",")) }
            JSONString.writeQuoted(value, to: out)
        }
        out.write(byte: UInt8(ascii: "]"))
    }

    /// `"name": {...}`, written by `body` with a writer of its own.
    public mutating func object(_ name: String, _ body: (inout JSONObjectWriter) -> Void) {
        self.name(name)
        var inner = JSONObjectWriter(into: out)
        body(&inner)
        inner.finish()
    }

    /// Closes the object (`}`).
    public consuming func finish() {
        out.write(byte: UInt8(ascii: "}"))
    }
}
