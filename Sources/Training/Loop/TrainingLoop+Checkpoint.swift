import Distributed
import Foundation

extension TrainingLoop {
    /// Rank 0 writes the checkpoint; every rank waits for it (so a stop leaves it complete).
    /// With `--zero 1` every rank first writes its optimizer shard (`stageOptimizerShards`).
    func saveCheckpoint(name: String, step: Int) throws -> URL {
        let p = run.parameters, communicator = run.communicator, store = run.store
        let master = run.step.gatherMasterWeights()
        var url = store.outputDirectory.appendingPathComponent(name)
        if communicator.size > 1 {
            // Ranks whose weights drifted apart (a bug, bad memory) stop the job instead of saving.
            try master.withUnsafeBufferPointer { try communicator.checkConsistency($0, step: step) }
        }
        let shards = try stageOptimizerShards(name: name)
        var failure: Error?
        if run.isPrimary {
            do {
                let digests = CheckpointDigests()
                url = try store.save(name: name, step: step, digests: digests) { directory in
                    try TrainingCheckpoint.write(
                        into: directory, config: run.config, masterWeights: master, optimizer: run.step.optimizer, state: state,
                        parameters: p, tokenizerSource: URL(fileURLWithPath: p.modelDirectory), optimizerShards: shards, digests: digests)
                }
                if let shards { try? FileManager.default.removeItem(at: shards.staging) }
                if name != CheckpointStore.finalName {
                    for removed in try store.rotate(keep: p.keepCheckpoints) { events.message("removed old checkpoint \(removed.lastPathComponent)") }
                }
                events.message("saved \(url.path)")
            } catch { failure = error }
        }
        if communicator.size > 1 {
            // Every rank learns rank 0's reason: whichever rank aborts the job first prints it
            // (MPI_Abort from another rank can end rank 0 before its own message is out).
            let reasons = communicator.allGather(Array((failure.map { "\($0)" } ?? "").utf8))
            if failure == nil, let reason = reasons.first(where: { !$0.isEmpty }) {
                throw TrainingError.output("rank 0 could not save \(name): \(String(decoding: reason, as: UTF8.self))")
            }
        }
        if let failure { throw failure }
        return url
    }

    /// `--zero 1`: every rank writes its optimizer shard into `OUT/.tmp-<name>-shards/` (rank 0
    /// empties it first), and the ranks agree that all writes succeeded; rank 0 then moves the
    /// shards into the checkpoint (listed in its manifest). nil with `--zero 0`. The staging
    /// name starts with `.tmp-`, so an interrupted save's leftovers are removed at the next start.
    private func stageOptimizerShards(name: String) throws -> (staging: URL, worldSize: Int)? {
        guard let sharded = run.step.sharded else { return nil }
        let communicator = run.communicator
        let staging = run.store.outputDirectory.appendingPathComponent(".tmp-\(name)-shards")
        var problem = ""
        if communicator.rank == 0 {
            do {
                if FileManager.default.fileExists(atPath: staging.path) { try FileManager.default.removeItem(at: staging) }
                try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
            } catch { problem = "cannot create \(staging.path): \(error)" }
        }
        try agree(problem, doing: "prepare the optimizer shards of \(name)")
        do {
            try OptimizerShards.write(
                into: staging, rank: communicator.rank, worldSize: communicator.size, parameters: run.step.parameterCount, sharded: sharded)
        } catch { problem = "cannot write its optimizer shard into \(staging.path): \(error)" }
        try agree(problem, doing: "save \(name)")
        return (staging, communicator.size)
    }

    /// Throws on every rank when `problem` is not empty on some rank, naming the first such rank.
    private func agree(_ problem: String, doing what: String) throws {
        let problems = run.communicator.allGather(Array(problem.utf8))
        if let rank = problems.firstIndex(where: { !$0.isEmpty }) {
            throw TrainingError.output("rank \(rank) could not \(what): \(String(decoding: problems[rank], as: UTF8.self))")
        }
    }
}
