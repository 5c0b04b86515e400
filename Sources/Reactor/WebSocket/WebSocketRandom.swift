import CCrypto

/// CSPRNG bytes from OpenSSL. Mask keys must be unpredictable (RFC 6455 section 10.3), so
/// never `rand()`; bulk refills keep RAND_bytes out of the per-frame path.
public enum WebSocketRandom {
    /// Fills `bytes` from RAND_bytes; traps if the CSPRNG fails, as sending predictable
    /// keys would be worse than stopping.
    public static func fill(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { fill($0) }
    }

    /// Fills raw memory from RAND_bytes.
    public static func fill(_ bytes: UnsafeMutableRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let rc = RAND_bytes(base.assumingMemoryBound(to: UInt8.self), Int32(bytes.count))
        precondition(rc == 1, "RAND_bytes failed")
    }
}

/// A pool of mask keys refilled 64 keys at a time. One per client connection (not shared
/// across threads; Reactor types are not Sendable).
final class WebSocketMaskKeyPool {
    private static let keysPerRefill = 64
    private let pool = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: keysPerRefill)
    private var next = keysPerRefill

    deinit { pool.deallocate() }

    /// A fresh unpredictable 4-byte key.
    func nextKey() -> UInt32 {
        if next == Self.keysPerRefill {
            WebSocketRandom.fill(UnsafeMutableRawBufferPointer(pool))
            next = 0
        }
        defer { next += 1 }
        return pool[next]
    }
}
