import Foundation

/// How a child process ended: its exit code, or the signal that killed it (as `Process.terminationStatus`).
public struct ChildExit: Sendable, Equatable, CustomStringConvertible {
    public var status: Int32
    public var reason: Process.TerminationReason

    public init(status: Int32, reason: Process.TerminationReason) {
        self.status = status
        self.reason = reason
    }

    public var description: String { reason == .exit ? "exit \(status)" : "signal \(status)" }
}

extension Process {
    /// Waits up to `timeout` for the child to end; nil if it is still running at the deadline.
    ///
    /// Use this, never `waitUntilExit()` or `terminationStatus` after a wait: Foundation learns that a child ended
    /// when a socket it shares with the child reaches EOF, and that socket is not close-on-exec, so a child that
    /// another test thread spawns at the same moment inherits it and keeps it open for as long as it lives: a child
    /// that has long ended is then never seen to end. This looks at the child itself
    /// with `waitid(WNOWAIT)`, which leaves it for Foundation to reap.
    public func waitForExit(timeout: Duration) -> ChildExit? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if !isRunning { return ChildExit(status: terminationStatus, reason: terminationReason) }
            var info = siginfo_t()
            let result = waitid(P_PID, id_t(processIdentifier), &info, WEXITED | WNOHANG | WNOWAIT)
            if result == 0 && info._sifields._sigchld.si_pid == processIdentifier {
                let exited = info.si_code == CLD_EXITED
                return ChildExit(status: info._sifields._sigchld.si_status, reason: exited ? .exit : .uncaughtSignal)
            }
            if result == -1 && errno == ECHILD {
                // Foundation reaped it between the two looks: it has ended, and `isRunning` says so a moment later
                // (Foundation sets it after its waitpid), whatever the timeout.
                let settle = ContinuousClock.now.advanced(by: .seconds(10))
                while isRunning && ContinuousClock.now < settle { usleep(1_000) }
                return isRunning ? nil : ChildExit(status: terminationStatus, reason: terminationReason)
            }
            if ContinuousClock.now >= deadline { return nil }
            usleep(5_000)
        }
    }

    /// Whether the child has ended (without waiting).
    public var hasExited: Bool { waitForExit(timeout: .zero) != nil }

    /// SIGTERM, then SIGKILL if the child has not ended within `grace`, then waits for it to end; nil if even
    /// SIGKILL did not end it within 30 seconds. (A test must fail, never hang, when a child ignores SIGTERM.)
    public func terminate(grace: Duration) -> ChildExit? {
        if let exit = waitForExit(timeout: .zero) { return exit }
        kill(processIdentifier, SIGTERM)
        if let exit = waitForExit(timeout: grace) { return exit }
        kill(processIdentifier, SIGKILL)
        return waitForExit(timeout: .seconds(30))
    }
}
