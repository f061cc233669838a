import Distributed
import Preference

/// Which pairs each step takes on this rank, how many steps, and the learning rate of each.
struct RunPlan {
    let batches: BatchPlan
    let totalSteps: Int
    let schedule: LearningRateSchedule
    var stepsPerEpoch: Int { batches.stepsPerEpoch }

    init(_ p: TrainingParameters, pairs: [EncodedPair], communicator: Communicator, restored: ResumePoint?) throws {
        do {
            batches = try BatchPlan(exampleCount: pairs.count, batchSize: p.batchPairs * p.gradAccum, worldSize: communicator.size,
                                    rank: communicator.rank, seed: p.seed, shuffle: p.shuffle,
                                    groupByLength: p.groupByLength ? pairs.map(\.longestRowLength) : nil)
        } catch { throw TrainingError.data("--data \(p.dataFile): \(error)") }
        totalSteps = p.maxSteps > 0 ? p.maxSteps : p.epochs * batches.stepsPerEpoch
        if let restored {
            try ResumeChecks.checkStepTarget(totalSteps: totalSteps, parameters: p, checkpointStep: restored.state.globalStep, checkpoint: restored.directory)
        }
        schedule = LearningRateSchedule(
            kind: p.schedule, peakLearningRate: p.learningRate,
            warmupSteps: LearningRateSchedule.warmupSteps(steps: p.warmupSteps, ratio: p.warmupRatio, totalSteps: totalSteps),
            totalSteps: totalSteps)
    }

    /// The micro-batches of 0-based `step` on this rank (`batchPairs` pairs each); `cache`
    /// keeps the current epoch's batches so each epoch is planned once.
    func microBatches(
        step: Int, pairs: [EncodedPair], batchPairs: Int, paddingId: Int32, cache: inout (epoch: Int, batches: [[Int]])?
    ) -> [PreferenceBatch] {
        let epoch = step / stepsPerEpoch
        if cache?.epoch != epoch { cache = (epoch, batches.batches(epoch: epoch)) }
        let indices = cache!.batches[step % stepsPerEpoch]
        return stride(from: 0, to: indices.count, by: batchPairs).map {
            PreferenceBatch(pairs: pairs, indices: Array(indices[$0..<min($0 + batchPairs, indices.count)]), paddingId: paddingId)
        }
    }
}
