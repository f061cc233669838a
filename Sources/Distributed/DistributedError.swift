/// What can go wrong between ranks, with messages that say which ranks and what to do.
public enum DistributedError: Error, CustomStringConvertible, Equatable {
    /// An MPI call failed (at start-up; later failures end the job through `abort`).
    case mpi(call: String, message: String)
    /// Ranks hold different weights after `step` (their checksums differ from rank 0's).
    case weightsDiverged(step: Int, ranks: [Int])
    /// Ranks run a different binary or configuration than rank 0.
    case runMismatch(part: String, ranks: [Int])
    /// srun started several tasks but gave them no MPI world (no PMI/PMIx variables).
    case launcherWithoutMPI(tasks: Int)
    /// A gradient reducer was given group ranges it cannot use.
    case invalidGroups(String)

    public var description: String {
        switch self {
        case let .mpi(call, message):
            return "\(call) failed: \(message). Is this process started by mpirun/srun from the same Open MPI that built dpo?"
        case let .weightsDiverged(step, ranks):
            return "weights differ between ranks after step \(step): rank(s) \(ranks.map(String.init).joined(separator: ", ")) "
                + "do not match rank 0 (data-parallel ranks must stay bit-identical; check that every rank runs "
                + "the same binary, flags and BLAS threads settings, then resume from the last checkpoint)"
        case let .runMismatch(part, ranks):
            let fix = part == "binary"
                ? "every rank must run the same dpo build (rebuild and copy it to every host)"
                : "every rank must be started with the same options and the same files"
            return "rank(s) \(ranks.map(String.init).joined(separator: ", ")) run a different \(part) than rank 0; \(fix)"
        case let .launcherWithoutMPI(tasks):
            return "srun started \(tasks) tasks without an MPI interface, so each would train alone as rank 0; "
                + "use `srun --mpi=pmix` (see `srun --mpi=list`) or launch/slurm.sbatch"
        case let .invalidGroups(message):
            return "gradient groups: \(message)"
        }
    }
}
