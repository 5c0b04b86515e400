import Foundation

/// A disk whose flushes fail, for a real process: a small library preloaded into it
/// (`LD_PRELOAD`) makes `fdatasync` and `fsync` fail with EIO, without flushing anything,
/// while a flag file exists. Only the process's own flushes fail; its writes land in the
/// page cache as usual, as they do when a real disk starts returning errors, so whatever
/// the process does not cut back after a failed flush is still there to be read.
///
///     let disk = try FailingDisk.build(in: dir)
///     let producer = try ServiceProcess(..., environment: env.merging(disk.environment) { $1 })
///     disk.failing = true   // every flush from now on answers EIO
public struct FailingDisk: Sendable {
    /// Where the library and the flag live (the directory given to `build`).
    public let directory: String
    public let library: String
    public let flag: String

    /// Compiles the library into `dir` (a C compiler must be on the machine).
    public static func build(in dir: String) throws -> FailingDisk {
        guard let cc = TestServers.findExecutable("cc") ?? TestServers.findExecutable("clang")
                ?? TestServers.findExecutable("gcc") else {
            throw TestServerError.failed("a failing disk needs a C compiler (cc, clang or gcc) to build its preload library")
        }
        let source = dir + "/failing_disk.c"
        let library = dir + "/libfailingdisk.so"
        try Self.source.write(toFile: source, atomically: true, encoding: .utf8)
        let (status, output) = try TestServers.run(cc, ["-O2", "-shared", "-fPIC", "-o", library, source, "-ldl"])
        guard status == 0 else { throw TestServerError.failed("building the failing-disk library failed: \(output.prefix(500))") }
        return FailingDisk(directory: dir, library: library, flag: dir + "/flushes-fail")
    }

    /// True when a C compiler is there to build the library.
    public static var canBuild: Bool {
        ["cc", "clang", "gcc"].contains { TestServers.findExecutable($0) != nil }
    }

    /// What the process to fail must have in its environment.
    public var environment: [String: String] { ["LD_PRELOAD": library, "DEDUP_FAILING_DISK_FLAG": flag] }

    /// Whether flushes fail from now on.
    public var failing: Bool {
        get { FileManager.default.fileExists(atPath: flag) }
        nonmutating set {
            if newValue {
                _ = FileManager.default.createFile(atPath: flag, contents: nil)
            } else {
                try? FileManager.default.removeItem(atPath: flag)
            }
        }
    }

    /// The flag is checked at every flush (a stat, far cheaper than the flush itself), so
    /// turning the fault on or off takes effect at the process's next flush.
    private static let source = """
        #define _GNU_SOURCE
        #include <dlfcn.h>
        #include <errno.h>
        #include <stdlib.h>
        #include <unistd.h>

        static int flushes_fail(void) {
            const char *flag = getenv("DEDUP_FAILING_DISK_FLAG");
            return flag != NULL && access(flag, F_OK) == 0;
        }

        int fdatasync(int fd) {
            static int (*real)(int);
            if (flushes_fail()) { errno = EIO; return -1; }
            if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
            return real(fd);
        }

        int fsync(int fd) {
            static int (*real)(int);
            if (flushes_fail()) { errno = EIO; return -1; }
            if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
            return real(fd);
        }
        """
}
