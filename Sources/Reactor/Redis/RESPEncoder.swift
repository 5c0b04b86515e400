/// Writes commands as RESP arrays of bulk strings (`*N\r\n$len\r\narg\r\n...`) into one
/// reusable allocation: no per-argument Strings, no hiredis format pass.
///
/// Its own storage rather than a `ByteBuffer`: the buffer's cross-module stored properties
/// cost a dynamic exclusivity check per write, several per command on the hot path, while
/// these private ones are checked statically.
final class RESPEncoder {
    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    /// Bytes encoded since the last `reset()`.
    private(set) var count = 0

    init(capacity: Int = 4096) {
        self.capacity = capacity
        storage = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    /// The encoded bytes, valid until the next write or reset.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage, count: count) }

    /// Forgets the encoded bytes, keeping the allocation.
    @inline(__always) func reset() { count = 0 }

    /// Starts a command of `count` arguments (the command name counts).
    @inline(__always)
    func beginCommand(argumentCount: Int) {
        reserve(24)
        put(UInt8(ascii: "*"))
        putDecimal(argumentCount)
        putCRLF()
    }

    /// Appends one argument.
    @inline(__always)
    func argument(_ bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count + 26)
        put(UInt8(ascii: "$"))
        putDecimal(bytes.count)
        putCRLF()
        if let base = bytes.baseAddress, bytes.count > 0 {
            (storage + count).copyMemory(from: base, byteCount: bytes.count)
            count += bytes.count
        }
        putCRLF()
    }

    /// Appends one argument from a literal (command names, flags).
    @inline(__always)
    func argument(_ literal: StaticString) {
        argument(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// Appends an integer argument as its decimal digits, without building a String.
    @inline(__always)
    func argument(decimal value: Int) {
        reserve(48)
        put(UInt8(ascii: "$"))
        putDecimal(RESPEncoder.decimalLength(value))
        putCRLF()
        putDecimal(value)
        putCRLF()
    }

    /// Appends a String argument's UTF-8 bytes.
    func argument(_ string: String) {
        var string = string
        string.withUTF8 { argument(UnsafeRawBufferPointer($0)) }
    }

    /// Appends already-encoded RESP (a kept script tail).
    func appendEncoded(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        (storage + count).copyMemory(from: base, byteCount: bytes.count)
        count += bytes.count
    }

    // MARK: raw writes (space reserved by the caller)

    @inline(__always)
    private func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    private func grow(_ needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newStorage = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        newStorage.copyMemory(from: storage, byteCount: count)
        storage.deallocate()
        storage = newStorage
        capacity = newCapacity
    }

    @inline(__always)
    private func put(_ byte: UInt8) {
        storage.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    private func putCRLF() {
        storage.storeBytes(of: 0x0A0D, toByteOffset: count, as: UInt16.self)  // "\r\n", little-endian
        count += 2
    }

    @inline(__always)
    private func putDecimal(_ value: Int) {
        if value < 0 { put(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        let digits = RESPEncoder.decimalLength(Int(bitPattern: magnitude))
        var index = count + digits - 1
        repeat {
            storage.storeBytes(of: UInt8(truncatingIfNeeded: magnitude % 10) &+ 48, toByteOffset: index, as: UInt8.self)
            magnitude /= 10
            index -= 1
        } while magnitude > 0
        count += digits
    }

    /// Number of ASCII characters `value` takes in decimal.
    @inline(__always)
    static func decimalLength(_ value: Int) -> Int {
        var magnitude = value.magnitude
        var digits = 1
        while magnitude >= 10 {
            magnitude /= 10
            digits += 1
        }
        return value < 0 ? digits + 1 : digits
    }
}
