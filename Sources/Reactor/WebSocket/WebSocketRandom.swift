import Glibc

/// CSPRNG bytes from the kernel (`getrandom`). Mask keys must be unpredictable (RFC 6455
/// section 10.3), so never `rand()`; bulk refills keep the system call out of the
/// per-frame path. Not OpenSSL's RAND_bytes: its first call initializes OpenSSL's
/// providers and DRBG, about 3 MiB of a listener's resident memory for 64 bytes of keys.
public enum WebSocketRandom {
    /// Fills `bytes` with random bytes; traps if the kernel cannot give them, as sending
    /// predictable keys would be worse than stopping.
    public static func fill(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { fill($0) }
    }

    /// Fills raw memory with random bytes.
    public static func fill(_ bytes: UnsafeMutableRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var filled = 0
        while filled < bytes.count {
            let n = getrandom(base + filled, bytes.count - filled, 0)
            if n < 0 && errno == EINTR { continue }
            precondition(n > 0, "getrandom failed (errno \(errno))")
            filled += n
        }
    }

    /// glibc's `getrandom(2)` wrapper, which the Glibc module does not import.
    private static let getrandom: @convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> Int = {
        guard let symbol = dlsym(nil, "getrandom") else { fatalError("getrandom is not in this libc") }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> Int).self)
    }()
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
