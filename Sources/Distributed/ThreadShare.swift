import CMPIShim
import Foundation

/// How many compute (BLAS) threads each rank should use.
public enum ThreadShare {
    /// Processors of this host.
    public static func hostCores() -> Int { Swift.max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Processors this process may run on (its affinity mask; smaller than `hostCores()`
    /// when the launcher bound the rank, e.g. `mpirun --bind-to core`).
    public static func affinityCores() -> Int {
        let count = Int(dpo_affinity_core_count())
        if count > 0 { return count }
        return hostCores()
    }

    /// This rank's share of the host's cores.
    ///
    /// Order: `override` (e.g. `--threads`) when given; else `DPO_THREADS` from the
    /// environment (the launch scripts set it); else, when the launcher bound the rank to a
    /// subset of cores, that subset's size; else `hostCores / ranksOnHost`, the remainder
    /// going to the lowest node ranks. Never less than 1.
    public static func threads(node: (rank: Int, size: Int), hostCores: Int = hostCores(),
                               affinityCores: Int = affinityCores(), override: Int? = nil,
                               environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        if let override, override > 0 { return override }
        if let text = environment["DPO_THREADS"], let value = Int(text), value > 0 { return value }
        if affinityCores < hostCores { return Swift.max(1, affinityCores) }
        let ranks = Swift.max(1, node.size)
        let share = hostCores / ranks + (node.rank < hostCores % ranks ? 1 : 0)
        return Swift.max(1, share)
    }

    /// `threads(node:...)` for this communicator's rank.
    public static func threads(for communicator: Communicator, override: Int? = nil) -> Int {
        threads(node: (communicator.node.rank, communicator.node.size), override: override)
    }
}
