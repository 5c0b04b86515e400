import Glibc

/// The log's stream id: 16 lowercase hex characters from the system's random source,
/// created with the log and kept in `DATA_DIR/stream` for its whole life. Seqs mean
/// something only together with it: a new log starts a new stream at seq 1.
enum StreamID {
    /// Reads the id, or creates it when the directory holds no log yet. A directory with
    /// segments but no readable id is refused rather than given a new one: that would
    /// silently restart seqs under the listeners.
    static func loadOrCreate(directory: String, hasSegments: Bool) throws -> (id: String, created: Bool) {
        let path = directory + "/" + SegmentName.streamFile
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            var bytes = [UInt8](repeating: 0, count: 64)
            let n = try bytes.withUnsafeMutableBytes {
                try FileIO.preadUpTo(fd, $0.baseAddress!, count: 64, at: 0, name: path)
            }
            let text = String(decoding: bytes[0..<n], as: UTF8.self).trimmingSuffixNewline()
            guard isValid(text) else {
                throw LogError("read \(path)", code: 0, detail: "not a stream id ('\(text.prefix(32))'); move the directory aside to start a new log")
            }
            return (text, false)
        }
        guard errno == ENOENT else { throw LogError("open \(path)") }
        if hasSegments {
            throw LogError("open \(path)", code: 0, detail: "the log has segments but no stream id; move the directory aside to start a new log")
        }
        let id = make()
        // Written aside and renamed, so a crash leaves either no id or a whole one.
        let temporary = path + ".tmp"
        let out = try FileIO.open(temporary, O_WRONLY | O_CREAT | O_TRUNC, name: temporary)
        defer { close(out) }
        let line = Array((id + "\n").utf8)
        try line.withUnsafeBytes { try FileIO.pwriteAll(out, $0, at: 0, name: temporary) }
        try FileIO.dataSync(out, name: temporary)
        guard rename(temporary, path) == 0 else { throw LogError("rename \(temporary)") }
        try FileIO.syncDirectory(directory)
        return (id, true)
    }

    static func isValid(_ text: String) -> Bool {
        text.utf8.count == 16 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    static func make() -> String {
        var generator = SystemRandomNumberGenerator()  // getrandom(2) underneath
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension String {
    fileprivate func trimmingSuffixNewline() -> String {
        var text = Substring(self)
        while let last = text.last, last == "\n" || last == "\r" || last == " " { text = text.dropLast() }
        return String(text)
    }
}
