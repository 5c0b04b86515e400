import Foundation
import TestSupport
import Glibc

/// Exact heap allocations inside the listener processes, without touching the listener's
/// code: the same counter the micro suites link (`Sources/CAllocCounter/counter.c`, which
/// defines malloc and friends and counts every call) is compiled into a small shared
/// library and preloaded into each listener (`LD_PRELOAD`). A helper thread in that library
/// copies the counts every 10 ms into a file the benchmark maps (`DEDUP_ALLOC_COUNTS`), so
/// the benchmark reads them before and after a pass while the listener runs.
struct ListenerAllocationCounter {
    let library: String

    /// Builds the preload library into `dir`; nil (with the reason) when it cannot.
    static func build(packageRoot: String?, dir: String) -> (ListenerAllocationCounter?, String?) {
        guard let root = packageRoot else { return (nil, "package sources not found (needed: Sources/CAllocCounter/counter.c)") }
        let counter = root + "/Sources/CAllocCounter/counter.c"
        let include = root + "/Sources/CAllocCounter/include"
        guard FileManager.default.fileExists(atPath: counter) else { return (nil, "\(counter) not found") }
        guard let cc = TestServers.findExecutable("cc") ?? TestServers.findExecutable("clang") ?? TestServers.findExecutable("gcc") else {
            return (nil, "no C compiler (cc, clang, gcc) to build the preload counter")
        }
        let export = dir + "/alloc_export.c"
        let library = dir + "/liballoccount.so"
        do {
            try exportSource.write(toFile: export, atomically: true, encoding: .utf8)
            let (status, out) = try TestServers.run(cc, ["-O2", "-shared", "-fPIC", "-I", include, "-o", library,
                                                            counter, export, "-lpthread"])
            guard status == 0 else { return (nil, "building the preload counter failed: \(out.prefix(300))") }
        } catch {
            return (nil, "building the preload counter failed: \(error)")
        }
        return (ListenerAllocationCounter(library: library), nil)
    }

    /// The environments that load the counter into each listener, listener i publishing to
    /// `countsFiles[i]` (E2ESystem numbers its listeners, so the files go by index).
    func environments(countsFiles: [String]) -> [[String: String]] {
        countsFiles.map { ["LD_PRELOAD": library, "DEDUP_ALLOC_COUNTS": $0] }
    }

    /// (allocations, bytes, frees, heartbeat) as last published by the process; nil when
    /// the file is not there (yet).
    private static func read(_ countsFile: String) -> (allocations: UInt64, bytes: UInt64, frees: UInt64, beat: UInt64)? {
        let fd = open(countsFile, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var values = [UInt64](repeating: 0, count: 4)
        let n = values.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 32, 0) }
        guard n == 32, values[3] > 0 else { return nil }
        return (values[0], values[1], values[2], values[3])
    }

    /// Waits until the counts file has been refreshed at least twice after now, so the
    /// value read reflects everything up to this moment.
    private static func settledRead(_ countsFile: String) -> (allocations: UInt64, bytes: UInt64)? {
        guard let first = read(countsFile) else { return nil }
        let deadline = monotonicSeconds() + 2
        while monotonicSeconds() < deadline {
            usleep(5_000)
            if let now = read(countsFile), now.beat >= first.beat + 2 { return (now.allocations, now.bytes) }
        }
        return nil
    }

    /// Every listener's counts at the start of a pass; throws when one does not publish.
    static func readAll(_ countsFiles: [String]) throws -> [(allocations: UInt64, bytes: UInt64)] {
        try countsFiles.map { file in
            guard let counts = settledRead(file) else {
                throw TestServerError.failed("the listener allocation counter does not publish (\(file))")
            }
            return counts
        }
    }

    /// What each listener allocated since `before`; nil when not counted or a count is missing.
    static func deltas(_ countsFiles: [String], since before: [(allocations: UInt64, bytes: UInt64)])
        -> [(allocations: UInt64, bytes: UInt64)]? {
        guard !countsFiles.isEmpty else { return nil }
        var deltas: [(allocations: UInt64, bytes: UInt64)] = []
        for (file, before) in zip(countsFiles, before) {
            guard let after = settledRead(file) else { return nil }
            deltas.append((after.allocations - before.allocations, after.bytes - before.bytes))
        }
        return deltas
    }

    private static let exportSource = """
        #define _GNU_SOURCE
        #include <fcntl.h>
        #include <pthread.h>
        #include <stdint.h>
        #include <stdlib.h>
        #include <sys/mman.h>
        #include <time.h>
        #include <unistd.h>
        #include "CAllocCounter.h"

        /* Publishes CAllocCounter's counts every 10 ms into the file named by
           DEDUP_ALLOC_COUNTS: allocations, bytes, frees, heartbeat (8 bytes each). */
        static volatile uint64_t *shared;

        static void *publisher(void *unused) {
            (void)unused;
            uint64_t beat = 0;
            for (;;) {
                shared[0] = CAllocCounter_allocations();
                shared[1] = CAllocCounter_bytes();
                shared[2] = CAllocCounter_frees();
                shared[3] = ++beat;
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, 0);
            }
            return 0;
        }

        __attribute__((constructor)) static void start_publisher(void) {
            const char *path = getenv("DEDUP_ALLOC_COUNTS");
            if (!path) return;
            int fd = open(path, O_RDWR | O_CREAT, 0644);
            if (fd < 0) return;
            if (ftruncate(fd, 4096) != 0) { close(fd); return; }
            void *page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            close(fd);
            if (page == MAP_FAILED) return;
            shared = page;
            pthread_t thread;
            if (pthread_create(&thread, 0, publisher, 0) == 0) pthread_detach(thread);
        }
        """
}
