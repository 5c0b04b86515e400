import Glibc

/// An exclusive `flock` on `<directory>/.lock`, held while the log is open, the way Kafka
/// locks its log directories: a second producer on the same directory (two containers on
/// one volume, a restart that overlaps the old process) stops at start-up with one clear
/// line, instead of recovering and appending to the segments the first one is writing,
/// which would give the same seqs to different events. The kernel drops the lock when the
/// holder exits, however it exits, so a producer restarted after SIGKILL takes it at once.
final class DirectoryLock {
    static let fileName = ".lock"
    private var fd: Int32

    init(directory: String) throws {
        let fd = try FileIO.open(directory + "/" + Self.fileName, O_RDWR | O_CREAT, name: Self.fileName)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            let holder = Self.holder(fd)
            Glibc.close(fd)
            if code == EWOULDBLOCK {
                throw LogError("lock \(directory)", code: 0,
                               detail: "another producer\(holder.map { " (pid \($0))" } ?? "") "
                                   + "has this event log open; two writers would give the same seqs to different events")
            }
            throw LogError("lock \(directory)/\(Self.fileName)", code: code)
        }
        // Who holds it, for the message of the next one to try (best effort).
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        self.fd = fd
    }

    /// Releases the lock (closing the descriptor drops it); later calls do nothing.
    func release() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    deinit { release() }

    private static func holder(_ fd: Int32) -> Int? {
        var bytes = [UInt8](repeating: 0, count: 16)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int(String(decoding: bytes[0..<n].prefix { $0 != 0x0A }, as: UTF8.self))
    }
}
