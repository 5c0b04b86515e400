import CCrypto

/// The Lua scripts behind the claim protocol. Each acts only while the key still holds the
/// caller's value, atomically on the server, so an owner whose claim expired and was taken
/// over can never delete, extend or finish someone else's claim.
///
/// Loaded with SCRIPT LOAD in the connect handshake and called with EVALSHA; the SHA-1 is
/// also computed here so commands queued before the first connect can be encoded already.
enum RedisScript: Int, CaseIterable {
    /// DEL the key if it holds ARGV[1]; returns 1 if deleted.
    case compareAndDelete
    /// PEXPIRE the key to ARGV[2] ms if it holds ARGV[1]; returns 1 if extended.
    case compareAndExtend
    /// SET the key to ARGV[2] with PX ARGV[3] if it holds ARGV[1]; returns 1 if replaced.
    case markDone

    var source: StaticString {
        switch self {
        case .compareAndDelete:
            return "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"
        case .compareAndExtend:
            return "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
        case .markDone:
            return "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end"
        }
    }

    var sourceBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: source.utf8Start, count: source.utf8CodeUnitCount)
    }

    /// The lowercase hex SHA-1 Redis uses as the script's name.
    var sha: [UInt8] { RedisScript.shas[rawValue] }

    private static let shas: [[UInt8]] = allCases.map { sha1Hex($0.sourceBytes) }

    static func sha1Hex(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = digest.withUnsafeMutableBufferPointer { out in
            EVP_Digest(bytes.baseAddress, bytes.count, out.baseAddress, &length, EVP_sha1(), nil)
        }
        precondition(ok == 1 && length == 20, "SHA-1 failed")
        let hexDigits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(40)
        for byte in digest.prefix(20) {
            hex.append(hexDigits[Int(byte >> 4)])
            hex.append(hexDigits[Int(byte & 15)])
        }
        return hex
    }
}
