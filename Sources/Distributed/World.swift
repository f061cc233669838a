import Foundation

/// Decides once, at start-up, whether this process is one rank of an MPI job.
public enum World {
    /// Environment variables that mpirun (Open MPI), srun (PMI/PMIx) or MPICH's
    /// launchers set in every rank they start.
    public static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"]

    /// True when a launcher started this process.
    public static func launchedByMPI(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        launcherVariables.contains { environment[$0] != nil }
    }

    /// The communicator for this process: MPI when started by a launcher, otherwise a world
    /// of one rank without touching MPI (which keeps a lone `dpo` fast to start and quiet;
    /// an MPI singleton init costs ~0.4 s here and starts helper processes).
    public static func initialize(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Communicator {
        if launchedByMPI(environment: environment) { return try MPICommunicator() }
        // srun without an MPI plugin starts N copies that would each train alone as rank 0.
        if let tasks = environment["SLURM_STEP_NUM_TASKS"].flatMap(Int.init), tasks > 1 {
            throw DistributedError.launcherWithoutMPI(tasks: tasks)
        }
        return SingleProcessCommunicator()
    }

    /// Runs `body` on this process's communicator and leaves MPI afterwards.
    ///
    /// An error thrown by `body` on a multi-rank job ends the whole job through
    /// `abort(code: 1, message:)` ("rank R: <error>"), so no rank waits forever for a
    /// rank that stopped; in a world of one rank it is rethrown to the caller.
    public static func run<Result>(_ body: (Communicator) throws -> Result) throws -> Result {
        let communicator = try initialize()
        do {
            let result = try body(communicator)
            communicator.finalize()
            return result
        } catch {
            if communicator.size > 1 { communicator.abort(code: 1, message: "\(error)") }
            communicator.finalize()
            throw error
        }
    }
}
