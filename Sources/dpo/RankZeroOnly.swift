import Foundation

/// Commands that run on one process (`init`, `generate`, `score`, `logps`) started under
/// mpirun/srun: rank 0 alone runs, prints and writes; the other ranks end at once, quietly.
/// Without this every rank printed the same text and `init` had N processes writing one
/// directory. MPI itself is never started (a launcher runs non-MPI programs as well).
enum RankZeroOnly {

    /// Variables launchers set to this process's rank (Open MPI, PMIx, PMI/MPICH).
    static let rankVariables = ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]
    /// Variables launchers set to the number of ranks.
    static let sizeVariables = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"]

    /// This process's rank and the job's rank count, (0, 1) outside a launcher.
    static func position(environment: [String: String] = ProcessInfo.processInfo.environment) -> (rank: Int, size: Int) {
        let rank = rankVariables.lazy.compactMap { environment[$0].flatMap(Int.init) }.first
            ?? environment["SLURM_PROCID"].flatMap(Int.init) ?? 0
        let size = sizeVariables.lazy.compactMap { environment[$0].flatMap(Int.init) }.first ?? 1
        return (rank, max(size, rank + 1))
    }

    /// Runs `body` on rank 0 only; rank 0 says once (on stderr) that the others idle.
    static func run(command: String, _ body: () throws -> Void) throws {
        let (rank, size) = position()
        guard rank == 0 else { return }
        if size > 1 {
            FileHandle.standardError.write(Data(
                "note: dpo \(command) runs on one process: rank 0 does the work, the other \(size - 1) rank(s) of this launch do nothing\n".utf8))
        }
        try body()
    }
}
