import Glibc

/// A log operation that failed: what was being done, on which file, and the errno.
public struct LogError: Error, CustomStringConvertible, Sendable {
    /// What failed, e.g. "write 00000000000000000001.log".
    public let operation: String
    /// The errno (0 when the failure is not a system call's).
    public let code: Int32
    /// Extra words when `code` is 0.
    public let detail: String

    init(_ operation: String, code: Int32 = errno, detail: String = "") {
        self.operation = operation
        self.code = code
        self.detail = detail
    }

    /// The disk is full or the file too big: freeing space fixes it.
    public var isOutOfSpace: Bool { code == ENOSPC || code == EFBIG || code == EDQUOT }

    public var description: String {
        if code == 0 { return "\(operation): \(detail)" }
        return "\(operation): \(String(cString: strerror(code))) (\(Self.name(code)))"
    }

    private static func name(_ code: Int32) -> String {
        switch code {
        case ENOSPC: return "ENOSPC"
        case EIO: return "EIO"
        case EROFS: return "EROFS"
        case EFBIG: return "EFBIG"
        case EDQUOT: return "EDQUOT"
        case EACCES: return "EACCES"
        case ENOENT: return "ENOENT"
        default: return "errno \(code)"
        }
    }
}
