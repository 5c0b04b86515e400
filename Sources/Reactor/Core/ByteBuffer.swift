/// A growable byte buffer in the ByteBuffer style: reader and writer indices into one
/// allocation. Consumed bytes are reclaimed by compaction (moving the unread tail to the
/// front) before the allocation is ever grown, so a buffer that is drained as fast as it
/// is filled never reallocates.
///
/// A class, not a struct: connections hand their buffers to encoders and parsers, and a
/// copy-on-write value would silently copy on the hot path.
public final class ByteBuffer {
    @usableFromInline var storage: UnsafeMutableRawPointer
    @usableFromInline var capacity: Int
    @usableFromInline var readerIndex = 0
    @usableFromInline var writerIndex = 0

    /// Creates an empty buffer holding `capacity` bytes before it must grow.
    public init(capacity: Int = 4096) {
        self.capacity = max(capacity, 16)
        storage = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    /// Bytes written and not yet consumed.
    @inlinable public var readableBytes: Int { writerIndex - readerIndex }

    /// True when there is nothing to read.
    @inlinable public var isEmpty: Bool { writerIndex == readerIndex }

    /// Bytes the allocation currently holds.
    public var allocatedCapacity: Int { capacity }

    /// Calls `body` with the unread bytes.
    @inlinable
    public func withReadableBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage + readerIndex, count: readableBytes))
    }

    /// Calls `body` with the unread bytes, which it may change in place (unmasking, decoding).
    @inlinable
    public func withMutableReadableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: storage + readerIndex, count: readableBytes))
    }

    /// Marks `n` unread bytes as consumed.
    @inlinable
    public func moveReaderIndex(forwardBy n: Int) {
        precondition(n >= 0 && n <= readableBytes, "ByteBuffer: consumed more than readable")
        readerIndex += n
        if readerIndex == writerIndex {
            readerIndex = 0
            writerIndex = 0
        }
    }

    /// Keeps only the first `readable` unread bytes, dropping what was written after them
    /// (encoders that reserved more room than they used).
    @inlinable
    public func truncateWritten(to readable: Int) {
        precondition(readable >= 0 && readable <= readableBytes, "ByteBuffer: truncate past the written bytes")
        writerIndex = readerIndex + readable
    }

    /// Drops every unread byte, keeping the allocation.
    public func clear() {
        readerIndex = 0
        writerIndex = 0
    }

    /// Makes room for at least `count` more bytes after the writer index, compacting first
    /// and growing (doubling) only when compaction is not enough.
    @inlinable
    public func reserveWritable(_ count: Int) {
        if capacity - writerIndex >= count { return }
        makeRoom(count)
    }

    @usableFromInline
    func makeRoom(_ count: Int) {
        let unread = readableBytes
        if readerIndex > 0 && capacity - unread >= count && unread <= capacity / 2 {
            (storage).copyMemory(from: storage + readerIndex, byteCount: unread)
            readerIndex = 0
            writerIndex = unread
            return
        }
        var newCapacity = capacity
        while newCapacity - unread < count { newCapacity *= 2 }
        let newStorage = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        newStorage.copyMemory(from: storage + readerIndex, byteCount: unread)
        storage.deallocate()
        storage = newStorage
        capacity = newCapacity
        readerIndex = 0
        writerIndex = unread
    }

    /// Lets `body` fill up to `count` reserved bytes in place; it returns how many it wrote.
    @inlinable @discardableResult
    public func writeWithUnsafeMutableBytes(
        minimumCapacity count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> Int
    ) rethrows -> Int {
        reserveWritable(count)
        let space = UnsafeMutableRawBufferPointer(start: storage + writerIndex, count: capacity - writerIndex)
        let written = try body(space)
        precondition(written >= 0 && written <= space.count, "ByteBuffer: wrote past the reservation")
        writerIndex += written
        return written
    }

    /// Appends raw bytes.
    @inlinable
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserveWritable(bytes.count)
        (storage + writerIndex).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        writerIndex += bytes.count
    }

    /// Appends an array of bytes.
    @inlinable
    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Appends a string's UTF-8 bytes.
    @inlinable
    public func write(_ string: String) {
        var string = string
        string.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    /// Appends a static string's UTF-8 bytes without touching the heap.
    @inlinable
    public func write(_ string: StaticString) {
        write(UnsafeRawBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
    }

    /// Appends one byte.
    @inlinable
    public func write(byte: UInt8) {
        reserveWritable(1)
        storage.storeBytes(of: byte, toByteOffset: writerIndex, as: UInt8.self)
        writerIndex += 1
    }

    /// Appends `value` as ASCII decimal digits, without building a String.
    @inlinable
    public func write(decimal value: Int) {
        reserveWritable(20)
        var magnitude = value.magnitude
        if value < 0 { write(byte: UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch on the stack
        let count = withUnsafeMutableBytes(of: &digits) { scratch -> Int in
            var n = 0
            repeat {
                scratch[23 - n] = UInt8(truncatingIfNeeded: magnitude % 10) &+ 48
                magnitude /= 10
                n += 1
            } while magnitude > 0
            write(UnsafeRawBufferPointer(rebasing: scratch[(24 - n)...]))
            return n
        }
        _ = count
    }

    /// Reads the byte at `offset` from the reader index.
    @inlinable
    public func byte(at offset: Int) -> UInt8 {
        precondition(offset >= 0 && offset < readableBytes)
        return storage.load(fromByteOffset: readerIndex + offset, as: UInt8.self)
    }

    /// A copy of the unread bytes (tests and slow paths).
    public var readableBytesArray: [UInt8] {
        withReadableBytes { Array($0) }
    }

    /// Consumes and returns every unread byte as a UTF-8 string (slow paths).
    public func readString() -> String {
        let s = withReadableBytes { String(decoding: $0, as: UTF8.self) }
        clear()
        return s
    }
}
