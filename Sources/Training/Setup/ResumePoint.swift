import Distributed
import Foundation
import Llama

/// The checkpoint a run continues from (`--resume`), read and checked against this run.
struct ResumePoint {
    let directory: URL
    let contents: TrainingCheckpoint.Contents
    var state: TrainerState { contents.state }

    /// Resolves `--resume` (nil: a fresh run), checks the checkpoint against the model, the
    /// options and the data, and adapts `--grad-accum` so a new rank count keeps the global batch.
    /// With `--zero 1` only rank `rank`'s shard of the optimizer moments is read (resharded when
    /// the checkpoint was written by another world size or by `--zero 0`).
    static func resolve(
        _ p: inout TrainingParameters, inputs: LoadedInputs, worldSize: Int, rank: Int = 0, events: TrainingEvents
    ) throws -> ResumePoint? {
        let outputURL = URL(fileURLWithPath: p.outputDirectory)
        guard let resume = p.resume else {
            let store = CheckpointStore(outputDirectory: outputURL)
            if !store.checkpointSteps().isEmpty
                || FileManager.default.fileExists(atPath: outputURL.appendingPathComponent(CheckpointStore.finalName).path) {
                throw TrainingError.output(
                    "\(outputURL.path) already holds checkpoints of a run; pass --resume auto to continue it, or choose another --out")
            }
            return nil
        }
        var skippedCheckpoints: [String] = []
        let found = try CheckpointStore.resolveResume(resume, outputDirectory: outputURL, skipped: &skippedCheckpoints)
        for line in skippedCheckpoints { events.message(line) }
        guard let resumeURL = found else {
            events.message("--resume auto: no complete checkpoint in \(outputURL.path); starting fresh")
            return nil
        }
        let momentRange = p.zero != 0 ? ParameterShards.ranges(total: inputs.policyWeights.count, ranks: worldSize)[rank] : nil
        let contents = try TrainingCheckpoint.read(resumeURL, optimizerKind: p.optimizer.kind, momentRange: momentRange)
        try TrainingInputs.checkSameArchitecture(policy: inputs.config, reference: contents.config, referenceDirectory: resumeURL.path)
        guard contents.masterWeights.count == inputs.trainableCount else {
            throw TrainingError.checkpoint("\(resumeURL.path) holds \(contents.masterWeights.count) weights, this run trains \(inputs.trainableCount)"
                + (inputs.lora == nil ? "" : " (LoRA adapters)"))
        }
        let saved = contents.state
        for line in try ModelFingerprints.checkResume(
            saved: saved.modelFingerprints, now: inputs.fingerprints, checkpoint: resumeURL.path, allowChanged: p.allowChangedModel) {
            events.message(line)
        }
        for line in try ResumeChecks.checkChangedOptions(checkpoint: resumeURL, now: p, allowChanged: p.allowChangedConfig) { events.message(line) }
        if saved.worldSize != worldSize || saved.batchPairs != p.batchPairs || saved.gradAccum != p.gradAccum {
            try adaptGradientAccumulation(&p, saved: saved, worldSize: worldSize, pairCount: inputs.train.count, checkpoint: resumeURL, events: events)
        }
        if !saved.dataFingerprint.isEmpty && saved.dataFingerprint != inputs.dataFingerprint {
            events.message("warning: --data \(p.dataFile) (as encoded now) differs from the data \(resumeURL.lastPathComponent) was trained on; "
                + "the run continues, but not as the uninterrupted run would have")
        }
        events.message("resuming from \(resumeURL.path) at step \(saved.globalStep)")
        return ResumePoint(directory: resumeURL, contents: contents)
    }

    /// Another rank count or per-rank batch: a `--grad-accum` that keeps the checkpoint's global batch.
    private static func adaptGradientAccumulation(
        _ p: inout TrainingParameters, saved: TrainerState, worldSize: Int, pairCount: Int, checkpoint: URL, events: TrainingEvents
    ) throws {
        let globalBatch = saved.batchPairs * saved.gradAccum * saved.worldSize
        guard globalBatch % (p.batchPairs * worldSize) == 0 else {
            throw TrainingError.checkpoint(
                "\(checkpoint.path) was trained with a global batch of \(globalBatch) pairs (\(saved.batchPairs) x \(saved.gradAccum) x "
                    + "\(saved.worldSize) ranks); \(p.batchPairs) pairs x \(worldSize) ranks cannot make that with a whole --grad-accum. "
                    + "Choose --batch-pairs and a rank count whose product divides \(globalBatch)")
        }
        let accum = globalBatch / (p.batchPairs * worldSize)
        // The sampler pads each epoch's permutation to a multiple of the rank count, so a
        // new rank count changes the last (padded) step of an epoch when the padding differs.
        let paddedBefore = (pairCount + saved.worldSize - 1) / saved.worldSize * saved.worldSize
        let paddedNow = (pairCount + worldSize - 1) / worldSize * worldSize
        let order = paddedBefore == paddedNow
            ? "each step sees the same pairs as before (the split across ranks and micro-steps differs)"
            : "each step sees the same pairs as before except the last step of each epoch, which now repeats "
                + "\(paddedNow - pairCount) instead of \(paddedBefore - pairCount) pair(s) from the epoch's start "
                + "(\(pairCount) pairs are padded to a multiple of the rank count)"
        events.message("resuming with \(worldSize) rank(s) x \(p.batchPairs) pairs: --grad-accum \(p.gradAccum) -> \(accum) keeps the global batch "
            + "of \(globalBatch) pairs; " + order)
        p.gradAccum = accum
    }
}
