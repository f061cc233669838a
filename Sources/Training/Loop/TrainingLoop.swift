import Distributed
import Foundation
import Llama
import Preference

/// Drives `DPOStep` from the run's first step to its last: data, the step, logging,
/// evaluation, checkpoints and stops, reported through `TrainingEvents`.
final class TrainingLoop {
    let run: PreparedRun
    let events: TrainingEvents
    let hooks: ActiveTestHooks
    var state: TrainerState
    var log: MetricsWindow
    var lastEvalMetrics: [(name: String, value: Double)] = []
    private let clock = ContinuousClock()

    init(run: PreparedRun, events: TrainingEvents, hooks: ActiveTestHooks) {
        self.run = run
        self.events = events
        self.hooks = hooks
        state = run.state
        log = MetricsWindow(pendingPacked: run.state.pendingMetricSums)
        run.step.faults = hooks.stepFaults
    }

    func train() throws -> TrainingSummary {
        let p = run.parameters, plan = run.plan, dpo = run.step
        var step = state.globalStep
        // A stop before the first step (Ctrl-C during loading) leaves at once, writing nothing.
        if step < plan.totalSteps && agreeOnStop(afterStep: nil) { return summary(finalStep: step, saved: nil, stopped: true) }
        ShutdownSignal.setImmediate(false)
        let loopStart = clock.now
        var epochBatches: (epoch: Int, batches: [[Int]])?
        while step < plan.totalSteps {
            CollectiveWatchdog.step = step + 1  // names the step if a collective hangs (--collective-timeout)
            try hooks.beforeStep(step + 1)
            let microBatches = plan.microBatches(
                step: step, pairs: run.trainPairs, batchPairs: p.batchPairs, paddingId: run.paddingId, cache: &epochBatches)
            let logged = (step + 1) % p.logEvery == 0 || step + 1 == plan.totalSteps
            let result = try dpo.step(
                microBatches: microBatches, learningRate: plan.schedule.learningRate(at: step), completionLogits: logged)
            step += 1
            try record(result, step: step)
            // Ranks must hold bit-identical weights; a drift (a bug, bad memory, a different BLAS) stops the job early.
            // (--zero 1: each rank holds another master shard, and the working weights are all-gathered,
            // so the same bytes on every rank by construction; saves and the end still compare the gathered whole.)
            if run.communicator.size > 1 && dpo.sharded == nil && p.checkEvery > 0 && step % p.checkEvery == 0 && step < plan.totalSteps {
                try dpo.withMasterWeights { try run.communicator.checkConsistency($0, step: step) }
            }
            if logged { try logWindow(result, step: step) }
            state.pendingMetricSums = log.pending.packed
            if events.isPrimary { events.send(.progress(progress(result, step: step, since: loopStart))) }
            if let evalPairs = run.evalPairs, (p.evalEvery > 0 && step % p.evalEvery == 0) || step == plan.totalSteps {
                try evaluate(evalPairs, step: step)
            }
            if step < plan.totalSteps && agreeOnStop(afterStep: step) {
                let saved = try saveCheckpoint(name: CheckpointStore.checkpointName(step: step), step: step)
                return summary(finalStep: step, saved: saved, stopped: true)
            }
            if p.saveEvery > 0 && step % p.saveEvery == 0 && step < plan.totalSteps {
                _ = try saveCheckpoint(name: CheckpointStore.checkpointName(step: step), step: step)
            }
        }
        try FinalModelCheck.check(
            master: dpo.gatherMasterWeights(), stepsRun: step - run.state.globalStep,
            skippedSteps: state.lossScaler.totalSkips - (run.restoredState?.lossScaler.totalSkips ?? 0), precision: p.precision)
        let saved = try saveCheckpoint(name: CheckpointStore.finalName, step: step)
        return summary(finalStep: step, saved: saved, stopped: false)
    }
}
