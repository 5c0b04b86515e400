import Glibc

/// Thin throwing wrappers over the file system calls the log uses; each retries EINTR
/// and names the file in its error.
enum FileIO {
    static func open(_ path: String, _ flags: Int32, name: String) throws -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, 0o644)
            if fd >= 0 { return fd }
            if errno != EINTR { throw LogError("open \(name)") }
        }
    }

    /// Writes all of `bytes` at `offset`; a short write that cannot continue throws.
    static func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, name: String) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n > 0 { done += n; continue }
            if n < 0 && errno == EINTR { continue }
            throw LogError("write \(name)", code: n < 0 ? errno : ENOSPC)
        }
    }

    /// Reads up to `count` bytes at `offset` into `buffer`; returns how many (short at EOF).
    static func preadUpTo(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, count: Int, at offset: Int, name: String) throws -> Int {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(offset + done))
            if n > 0 { done += n; continue }
            if n == 0 { break }
            if errno == EINTR { continue }
            throw LogError("read \(name)")
        }
        return done
    }

    static func dataSync(_ fd: Int32, name: String) throws {
        while fdatasync(fd) != 0 {
            if errno != EINTR { throw LogError("fdatasync \(name)") }
        }
    }

    static func truncate(_ fd: Int32, to size: Int, name: String) throws {
        while ftruncate(fd, off_t(size)) != 0 {
            if errno != EINTR { throw LogError("truncate \(name)") }
        }
    }

    static func size(_ fd: Int32, name: String) throws -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw LogError("stat \(name)") }
        return Int(info.st_size)
    }

    /// Makes a directory's entries (created, renamed, removed files) durable.
    static func syncDirectory(_ path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY, name: path)
        defer { close(fd) }
        while fsync(fd) != 0 {
            if errno != EINTR { throw LogError("fsync directory \(path)") }
        }
    }

    /// Names in a directory (without . and ..).
    static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw LogError("list \(path)") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Creates `path` and any missing parents.
    static func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw LogError("create directory \(prefix)") }
            prefix += "/"
        }
    }
}
