import Foundation

/// Ends the job when one collective call does not complete within a time limit.
///
/// Why: a host whose network stalls (packets dropped, link still up) sends no reset, so
/// MPI's TCP transport waits for it for many minutes, and Open MPI's daemons notice only
/// when their own keepalives fail. Every other rank then sits in an all-reduce forever. A
/// watchdog thread sees the collective in progress (`MPICommunicator` marks each blocking
/// call and each wait for a non-blocking one with `enter`/`leave`) and, once it has run for
/// longer than `timeout` seconds, prints which collective, which step and which peer ranks
/// (with their hosts) this rank was waiting for, and exits with status 76 (`exitCode`).
/// mpirun then ends the ranks on the other hosts (a rank that exits non-zero ends the job)
/// and exits 76 itself. No MPI call is made from the watchdog thread: the world is
/// initialised MPI_THREAD_FUNNELED, so only `_exit` is safe there.
///
/// One per process (`shared`), because a process has one MPI world. Until `start` is called
/// (one rank, or `--collective-timeout 0`) `enter`/`leave` only record the call.
public final class CollectiveWatchdog {
    /// The exit status of a job ended by the watchdog.
    public static let exitCode: Int32 = 76
    /// Default `--collective-timeout`, seconds: far above any step's wait for the slowest
    /// rank (and rank 0's checkpoint writes), far below "hung until someone looks".
    public static let defaultTimeout: Double = 300

    public static let shared = CollectiveWatchdog()

    /// The training step a collective belongs to (set by the trainer at the start of each
    /// step; 0 = start-up). Only used in the message.
    public static var step: Int {
        get { stepLock.lock(); defer { stepLock.unlock() }; return stepValue }
        set { stepLock.lock(); defer { stepLock.unlock() }; stepValue = newValue }
    }
    private static let stepLock = NSLock()
    private static var stepValue = 0

    private let lock = NSLock()
    private var timeout: Double = 0
    private var rank = 0
    /// "rank 1 (host h2), which is" / "rank 1 (host h2), rank 2 (host h3): one or more of them is":
    /// who this rank's collectives wait for.
    private var peers = ""
    private var host = ""
    private var inProgress: (call: String, since: ContinuousClock.Instant)?
    private var watching = false
    private var threadStarted = false

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    /// Arms the watchdog on every rank of `communicator` (a collective: every rank must call
    /// it, at the same point). Does nothing for one rank or a timeout of 0 (disabled).
    public func start(timeout: Double, communicator: Communicator) {
        guard communicator.size > 1, timeout > 0 else { return }
        let hosts = Array(Self.hostName().utf8).withUnsafeBytes { communicator.allGatherVariable($0) }
            .map { String(decoding: $0, as: UTF8.self) }
        let rank = communicator.rank
        configure(timeout: timeout, rank: rank, hosts: hosts)
        guard locked({ () -> Bool in defer { threadStarted = true }; return !threadStarted }) else { return }
        let interval = Swift.min(1, timeout / 4)
        Thread.detachNewThread { [self] in
            while true {
                Thread.sleep(forTimeInterval: interval)
                if let message = overdue(at: .now) { expire(message) }
            }
        }
    }

    /// Sets what the message names (and arms `overdue`) without starting the thread.
    func configure(timeout: Double, rank: Int, hosts: [String]) {
        let others = hosts.indices.filter { $0 != rank }
        var peers = others.prefix(8).map { "rank \($0) (host \(hosts[$0]))" }.joined(separator: ", ")
        if others.count > 8 { peers += " and \(others.count - 8) more" }
        peers += others.count == 1 ? ", which is" : ": one or more of them is"
        locked {
            self.timeout = timeout
            self.rank = rank
            self.host = hosts.indices.contains(rank) ? hosts[rank] : Self.hostName()
            self.peers = peers
            self.watching = true
        }
    }

    /// Disarms the watchdog (the end of a run: MPI_Finalize is not watched).
    public func stop() {
        locked { watching = false }
    }

    /// A collective (`call`, as MPI names it) begins on this thread.
    public func enter(_ call: String, at now: ContinuousClock.Instant = .now) {
        locked { inProgress = (call, now) }
    }

    /// The collective begun by `enter` has completed.
    public func leave() {
        locked { inProgress = nil }
    }

    /// The message to end the job with when the collective in progress has run for longer
    /// than the timeout at `now`; nil while none is overdue.
    func overdue(at now: ContinuousClock.Instant) -> String? {
        locked {
            guard watching, let (call, since) = inProgress else { return nil }
            let waited = now - since
            guard waited > .seconds(timeout) else { return nil }
            let seconds = Double(waited.components.seconds) + Double(waited.components.attoseconds) * 1e-18
            let step = Self.step
            let stepText = step > 0 ? "step \(step)" : "start-up (before the first step)"
            return "rank \(rank) (host \(host)): collective \(call) in \(stepText) has not completed after "
                + String(format: "%.0f", seconds) + " s (--collective-timeout \(Self.format(timeout)) s); "
                + "it waits for \(peers) lost, stalled or partitioned from this host. "
                + "Ending the job (exit status \(Self.exitCode)); continue from the newest checkpoint with --resume auto "
                + "once every host is reachable, or raise --collective-timeout if steps legitimately take longer"
        }
    }

    private func expire(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        _exit(Self.exitCode)
    }

    static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }

    /// This host's name as the kernel reports it (what MPI_Get_processor_name returns), without DNS.
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
