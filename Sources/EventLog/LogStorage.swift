import Foundation
import Glibc

/// The one case where a synced log is still not durable: a directory on a filesystem that
/// lives in memory, or in a container's own writable layer. `fdatasync` succeeds on both,
/// so "202 means durable" would hold only until a reboot, or until the container is
/// removed (`docker run` without a volume for DATA_DIR).
enum LogStorage {
    /// What makes `directory`'s filesystem lose the log, or nil when it keeps what is
    /// synced (as far as its type tells, or when the type cannot be read).
    static func volatility(of directory: String) -> String? {
        switch filesystemType(of: directory) {
        case "tmpfs": return "tmpfs, which lives in memory: a reboot loses the log"
        case "ramfs": return "ramfs, which lives in memory: a reboot loses the log"
        case "overlay": return "overlayfs, a container's own writable layer: removing the container loses the log (mount a volume there)"
        default: return nil
        }
    }

    /// The type of the filesystem mounted deepest above `directory`, from
    /// /proc/self/mountinfo (`statfs` is not in Swift's Glibc module).
    static func filesystemType(of directory: String) -> String? {
        guard let resolved = realpath(directory, nil) else { return nil }
        let path = String(cString: resolved)
        free(resolved)
        guard let table = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        var best: (depth: Int, type: String)?
        for line in table.split(separator: "\n") {
            // "id parent major:minor root mountpoint options [optional...] - type source super"
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 4, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { continue }
            let mountPoint = unescaped(fields[4])
            let within = mountPoint == "/" || path == mountPoint || path.hasPrefix(mountPoint + "/")
            if within && mountPoint.count >= best?.depth ?? -1 { best = (mountPoint.count, String(fields[dash + 1])) }
        }
        return best?.type
    }

    /// Mount points escape space, tab, newline and backslash as octal (`\040`).
    private static func unescaped(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let raw = Array(field.utf8)
        var i = 0
        while i < raw.count {
            if raw[i] == UInt8(ascii: "\\"), i + 3 < raw.count,
               let code = UInt8(String(decoding: raw[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                bytes.append(code)
                i += 4
            } else {
                bytes.append(raw[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
