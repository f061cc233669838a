import Distributed
import Foundation

extension TrainingLoop {
    /// Rank 0 writes the checkpoint; every rank waits for it (so a stop leaves it complete).
    func saveCheckpoint(name: String, step: Int) throws -> URL {
        let p = run.parameters, communicator = run.communicator, store = run.store
        let master = run.step.masterWeights
        var url = store.outputDirectory.appendingPathComponent(name)
        if communicator.size > 1 {
            // Ranks whose weights drifted apart (a bug, bad memory) stop the job instead of saving.
            try master.withUnsafeBufferPointer { try communicator.checkConsistency($0, step: step) }
        }
        var failure: Error?
        if run.isPrimary {
            do {
                url = try store.save(name: name, step: step) { directory in
                    try TrainingCheckpoint.write(
                        into: directory, config: run.config, masterWeights: master, optimizer: run.step.optimizer, state: state,
                        parameters: p, tokenizerSource: URL(fileURLWithPath: p.modelDirectory))
                }
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
}
