import ArgumentParser
import Distributed
import Foundation

/// `dpo mpi-check`: exercises every collective with known answers, then optional fault
/// injection and a simulated training loop that stops on SIGTERM/SIGINT/SIGUSR1 after the
/// step in progress. Used by the 2-rank tests; useful on a new cluster:
/// `launch/cluster.sh hostfiles/mine -n 8 -- mpi-check`.
struct MPICheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpi-check", abstract: "Check every MPI collective dpo uses (diagnostic).", shouldDisplay: false)

    @Option(help: "This rank kills itself with SIGKILL after the checks (fault test).")
    var dieOnRank: Int?
    @Option(help: "This rank throws an error after the checks (fault test).")
    var throwOnRank: Int?
    @Option(help: "Simulated training steps after the checks (stop early on SIGTERM/SIGINT/SIGUSR1).")
    var steps = 0
    @Option(help: "Milliseconds of simulated work per step.")
    var stepMs = 200
    @Flag(help: "Skip the collective checks (fault and signal tests only).")
    var skipChecks = false
    @Option(help: "This rank stops responding (sleeps) in this simulated step (fault test of --collective-timeout).")
    var stallOnRank: Int?
    @Option(help: "Seconds a collective may take before the job ends with exit status 76 (0 = no limit).")
    var collectiveTimeout: Double = 0

    func run() throws {
        try ShutdownSignal.install()
        try World.run { communicator in
            let say: (String) -> Void = { line in
                if communicator.isPrimary { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
            }
            CollectiveWatchdog.shared.start(timeout: collectiveTimeout, communicator: communicator)
            if !skipChecks { try CollectiveSelfCheck.run(communicator, report: say) }
            say("threads per rank: \(ThreadShare.threads(for: communicator))")
            communicator.barrier()
            if dieOnRank == communicator.rank { kill(getpid(), SIGKILL) }
            if throwOnRank == communicator.rank {
                throw CollectiveSelfCheck.Failure(check: "fault injection", detail: "error thrown on purpose (--throw-on-rank)")
            }
            if dieOnRank != nil || throwOnRank != nil { communicator.barrier() }  // the others wait for the dead rank
            try simulateSteps(communicator, say: say)
            say("mpi-check: all checks passed on \(communicator.size) rank(s)")
        }
    }

    /// Steps of busy work; the ranks agree once per step whether any was asked to stop.
    func simulateSteps(_ communicator: Communicator, say: (String) -> Void) throws {
        guard steps > 0 else { return }
        var gradient = [Float](repeating: 1, count: 1 << 16)
        for step in 1...steps {
            CollectiveWatchdog.step = step
            if stallOnRank == communicator.rank && step == 2 { Thread.sleep(forTimeInterval: 3600) }
            let end = Date().addingTimeInterval(Double(stepMs) / 1000)
            var work: Float = 0
            while Date() < end { for i in 0..<10_000 { work += Float(i & 3) } }
            gradient[0] = work > 0 ? 1 : 0
            gradient.withUnsafeMutableBufferPointer { communicator.allReduceSum($0) }
            say("step \(step) done")
            if ShutdownSignal.agreed(by: communicator) {
                say("stop requested (signal \(ShutdownSignal.signalNumber) on rank 0 or another rank): stopped cleanly after step \(step)")
                return
            }
        }
    }
}
