/// Header fields in arrival order, looked up case-insensitively (field names are ASCII
/// tokens, so an ASCII fold is exact and needs no lowercased copies).
public struct HTTPHeaders: Sendable, Equatable, Sequence {
    /// One field line: the name as sent and the value with surrounding whitespace removed.
    public struct Field: Sendable, Equatable {
        /// The field name as the peer spelled it.
        public var name: String
        /// The field value, leading and trailing spaces and tabs removed.
        public var value: String

        /// Creates a field.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The fields in the order they arrived.
    public private(set) var fields: [Field]

    /// Creates a header list from (name, value) pairs.
    public init(_ pairs: [(String, String)] = []) {
        fields = pairs.map { Field(name: $0.0, value: $0.1) }
    }

    /// Creates an empty list with room for `capacity` fields.
    init(capacity: Int) {
        fields = []
        fields.reserveCapacity(capacity)
    }

    /// Number of field lines.
    public var count: Int { fields.count }

    /// Appends a field (repeated names are kept as separate lines).
    public mutating func add(name: String, value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// The first value of the field `name`, compared case-insensitively.
    public subscript(_ name: String) -> String? {
        for field in fields where asciiCaseInsensitiveEquals(field.name, name) { return field.value }
        return nil
    }

    /// Every value of the field `name`, in order.
    public func values(for name: String) -> [String] {
        fields.compactMap { asciiCaseInsensitiveEquals($0.name, name) ? $0.value : nil }
    }

    /// True when a field named `name` is present.
    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// True when any `name` field holds `token` in its comma-separated list
    /// (e.g. `Connection: keep-alive, Upgrade` contains `upgrade`), case-insensitively.
    public func containsToken(_ token: String, in name: String) -> Bool {
        for field in fields where asciiCaseInsensitiveEquals(field.name, name) {
            let value = field.value.utf8
            var start = value.startIndex
            while true {
                let end = value[start...].firstIndex(of: UInt8(ascii: ",")) ?? value.endIndex
                if asciiCaseInsensitiveEquals(trimmedOWS(value[start..<end]), token.utf8) { return true }
                if end == value.endIndex { break }
                start = value.index(after: end)
            }
        }
        return false
    }

    /// Iterates the fields in arrival order.
    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }
}

/// ASCII case-insensitive equality of two strings (header names, tokens).
func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    asciiCaseInsensitiveEquals(a.utf8, b.utf8)
}

func asciiCaseInsensitiveEquals<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
    guard a.count == b.count else { return false }
    var j = b.startIndex
    for x in a {
        let y = b[j]
        // Letters differ only in bit 0x20; anything else must match exactly.
        if x != y && !(x | 0x20 == y | 0x20 && (x | 0x20) &- UInt8(ascii: "a") < 26) { return false }
        j = b.index(after: j)
    }
    return true
}

/// Drops leading and trailing spaces and tabs (RFC 9110 "OWS").
func trimmedOWS<C: BidirectionalCollection<UInt8>>(_ bytes: C) -> C.SubSequence {
    var start = bytes.startIndex
    var end = bytes.endIndex
    while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start = bytes.index(after: start) }
    while end > start {
        let before = bytes.index(before: end)
        guard bytes[before] == 0x20 || bytes[before] == 0x09 else { break }
        end = before
    }
    return bytes[start..<end]
}
