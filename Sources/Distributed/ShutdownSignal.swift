import CMPIShim

/// "Stop after the current step", requested by SIGTERM, SIGINT, SIGHUP (a dropped ssh session),
/// SIGUSR1 or SIGUSR2. Installing also ignores SIGPIPE: a closed log pipe stops the output, not the run.
///
/// Slurm sends SIGTERM before a time limit; the launch scripts turn SIGTERM/SIGINT on
/// `mpirun` into SIGUSR1 for the ranks (Open MPI 4.1's mpirun would follow a forwarded
/// SIGTERM with SIGKILL after one second). A second SIGINT/SIGTERM stops at once.
/// Ranks receive signals at different moments, so they decide together with `agreed(by:)`
/// once per step and all stop after the same step.
public enum ShutdownSignal {
    /// Installs the signal handlers (they only record the signal). Call once at start-up.
    public static func install() throws {
        guard dpo_stop_signals_install() == 0 else {
            throw DistributedError.mpi(call: "sigaction", message: "could not install the stop signal handlers")
        }
    }

    /// Restores the default actions (a signal ends the process again).
    public static func uninstall() { dpo_stop_signals_uninstall() }

    /// True once this process has received a stop signal.
    public static var requested: Bool { dpo_stop_signal_received() != 0 }

    /// The signal number received (0 when none).
    public static var signalNumber: Int32 { dpo_stop_signal_received() }

    /// True on every rank when any rank has received a stop signal (one tiny all-reduce).
    public static func agreed(by communicator: Communicator) -> Bool {
        communicator.anyRank(requested)
    }

    /// While true, a stop signal ends the process at once (its default action) instead of
    /// "after the current step": for start-up (loading, encoding), where there is nothing to
    /// checkpoint and waiting for the first step would only delay the exit.
    public static func setImmediate(_ immediate: Bool) { dpo_stop_signals_set_immediate(immediate ? 1 : 0) }

    /// What the process writes to stderr when a stop signal ends it at once (while immediate):
    /// `stopped by SIGINT (Ctrl-C)` followed by `note` (e.g. " during start-up ...: nothing
    /// was written"); nil writes nothing (ranks other than 0). The shell's status (130, 143)
    /// alone does not say what was cut short.
    public static func setImmediateNote(_ note: String?) {
        guard let note else { return dpo_stop_signals_set_immediate_note(nil) }
        note.withCString { dpo_stop_signals_set_immediate_note($0) }
    }

    /// Forgets a received signal (tests).
    public static func reset() { dpo_stop_signal_reset() }
}
