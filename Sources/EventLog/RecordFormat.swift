import CZlib

/// How one record sits in a segment file (all integers little-endian):
///
///     length: UInt32   bytes of payload
///     crc:    UInt32   zlib crc32 of the seq bytes followed by the payload
///     seq:    UInt64
///     payload
///
/// The checksum covers the seq so a record copied to the wrong place is caught too.
public enum RecordFormat {
    /// Bytes before the payload.
    public static let headerBytes = 16

    /// Largest payload a record may carry (a sanity bound for reading a corrupt length).
    public static let maxPayloadBytes = 64 << 20

    /// The checksum of a record whose header starts at `record` (seq and payload in place).
    @inline(__always)
    static func checksum(_ record: UnsafeRawPointer, payloadBytes: Int) -> UInt32 {
        let bytes = record.advanced(by: 8).assumingMemoryBound(to: UInt8.self)
        return UInt32(truncatingIfNeeded: crc32(0, bytes, UInt32(8 + payloadBytes)))
    }

    /// Writes the header for `seq` and a payload of `payloadBytes` at `record`; the payload
    /// must already be in place after it.
    @inline(__always)
    static func seal(_ record: UnsafeMutableRawPointer, seq: UInt64, payloadBytes: Int) {
        record.storeBytes(of: UInt32(payloadBytes).littleEndian, toByteOffset: 0, as: UInt32.self)
        record.storeBytes(of: seq.littleEndian, toByteOffset: 8, as: UInt64.self)
        let crc = checksum(UnsafeRawPointer(record), payloadBytes: payloadBytes)
        record.storeBytes(of: crc.littleEndian, toByteOffset: 4, as: UInt32.self)
    }

    /// What lies at the start of `bytes`.
    enum Parsed {
        /// A whole record whose checksum matches.
        case record(seq: UInt64, payload: UnsafeRawBufferPointer, size: Int)
        /// Not enough bytes for the record the header announces.
        case incomplete(needed: Int)
        /// The header or checksum is wrong.
        case corrupt
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) -> Parsed {
        guard bytes.count >= headerBytes else { return .incomplete(needed: headerBytes) }
        let base = bytes.baseAddress!
        let length = Int(UInt32(littleEndian: base.loadUnaligned(as: UInt32.self)))
        guard length <= maxPayloadBytes else { return .corrupt }
        let size = headerBytes + length
        guard bytes.count >= size else { return .incomplete(needed: size) }
        let crc = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard crc == checksum(base, payloadBytes: length) else { return .corrupt }
        let seq = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        return .record(seq: seq, payload: UnsafeRawBufferPointer(start: base + headerBytes, count: length), size: size)
    }
}
