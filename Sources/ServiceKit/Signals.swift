import Glibc

/// SIGINT and SIGTERM taken synchronously: blocked in every thread (call before any
/// thread starts), then waited for by the main thread, which shuts the service down in
/// order. SIGPIPE is ignored: a vanished peer is an error on its socket, not a crash.
public enum Signals {
    public static func prepare() {
        var blocked = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGINT)
        sigaddset(&blocked, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &blocked, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    /// Blocks until SIGINT or SIGTERM arrives.
    public static func waitForTermination() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        var received: Int32 = 0
        sigwait(&set, &received)
    }
}
