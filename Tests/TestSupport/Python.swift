import Foundation

/// The Python interpreter the interop tests use: `DEDUP_PYTHON` (set by scripts/test to
/// one that has the `websockets` library), else `python3` on PATH.
public func pythonExecutable() -> String {
    if let chosen = ProcessInfo.processInfo.environment["DEDUP_PYTHON"], !chosen.isEmpty { return chosen }
    return TestServers.findExecutable("python3", in: []) ?? "/usr/bin/python3"
}

/// Runs a Python script with `input` on stdin and returns its stdout; fails on a non-zero exit.
public func runPython(_ script: String, input: String = "", arguments: [String] = []) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: pythonExecutable())
    process.arguments = ["-c", script] + arguments
    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    let writer = Thread {
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
    }
    writer.start()
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    let err = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestServerError.failed("python exited \(process.terminationStatus): \(String(decoding: err, as: UTF8.self))")
    }
    return String(decoding: out, as: UTF8.self)
}
