import Distributed
import Foundation
import Preference

extension TrainingLoop {
    /// Books a finished step into the trainer state; a skipped step is said, and too many in a row stop the run.
    func record(_ result: StepResult, step: Int) throws {
        let p = run.parameters
        state.lossScaler = run.step.lossScaler
        if result.applied {
            log.pending = log.pending + result.metricSums
            state.pendingSteps += 1
        } else {
            events.message("step \(step): non-finite loss or gradients, update skipped"
                + (p.precision == .fp16 ? " (loss scale now \(state.lossScaler.scale))" : ""))
            if state.lossScaler.consecutiveSkips >= p.maxSkippedSteps {
                throw TrainingError.numerical(
                    "\(state.lossScaler.consecutiveSkips) steps in a row had a non-finite loss or gradients (--max-skipped-steps "
                        + "\(p.maxSkippedSteps)); stopping at step \(step). Lower --lr, use --precision fp32, or check the data")
            }
        }
        let stepsPerEpoch = run.plan.stepsPerEpoch
        state.globalStep = step
        state.epoch = Double(step) / Double(stepsPerEpoch)
        state.epochIndex = step / stepsPerEpoch
        state.batchInEpoch = step % stepsPerEpoch
        state.trainTokens += result.globalInputTokens
        log.tokens += result.globalInputTokens
    }

    /// Logs the window's metrics, reduced over ranks, with this step's norm, rate and scale.
    func logWindow(_ result: StepResult, step: Int) throws {
        let communicator = run.communicator
        var reduced = communicator.size > 1 ? PreferenceMetricSums(packed: communicator.sum(log.pending.packed)) : log.pending
        if let logits = result.completionLogits {
            let l = communicator.sum([logits.chosen, Double(logits.chosenTokens), logits.rejected, Double(logits.rejectedTokens)])
            reduced.addLogits(chosenSum: l[0], chosenTokens: Int(l[1]), rejectedSum: l[2], rejectedTokens: Int(l[3]))
        }
        let seconds = log.seconds
        var metrics = reduced.metrics(options: run.parameters.loss)
        metrics += [
            ("grad_norm", result.gradNorm), ("learning_rate", result.learningRate), ("epoch", state.epoch),
            ("loss_scale", state.lossScaler.scale), ("tokens_per_second", seconds > 0 ? log.tokens / seconds : 0),
        ]
        if reduced.pairs > 0 {
            try logMetrics(metrics, step: step)
            log.last = metrics
            log.lastStep = step
        }
        log.reset()
        state.pendingSteps = 0
    }

    func logMetrics(_ metrics: [(name: String, value: Double)], step: Int) throws {
        state.logHistory.append(TrainerState.LogRecord(step: step, names: metrics.map(\.name), values: metrics.map(\.value)))
        guard let sink = run.sink else { return }
        do { try sink.log(step: step, metrics: metrics) } catch {
            throw TrainingError.output("cannot write metrics: \(error)")
        }
    }

    /// Rank 0's view of this step: the figures of the metrics.jsonl record when the step wrote one
    /// (so console and file agree), else the window so far (`MetricsWindow.shown`).
    func progress(_ result: StepResult, step: Int, since loopStart: ContinuousClock.Instant) -> ProgressSnapshot {
        let seconds = DPOStep.seconds(ContinuousClock().now - loopStart)
        let value = log.shown(step: step, options: run.parameters.loss)
        // SFT has no rewards: no accuracy or margin to show.
        let rewards = run.parameters.loss.kind != .sft
        return ProgressSnapshot(
            step: step, totalSteps: run.plan.totalSteps, epoch: state.epoch, loss: value["loss"] ?? .nan,
            rewardAccuracy: rewards ? value["rewards/accuracies"] ?? .nan : .nan,
            rewardMargin: rewards ? value["rewards/margins"] ?? .nan : .nan,
            tokensPerSecond: value["tokens_per_second"] ?? .nan, elapsedSeconds: seconds, startStep: run.state.globalStep)
    }

    func evaluate(_ pairs: [EncodedPair], step: Int) throws {
        let p = run.parameters
        let sums = try PreferenceEvaluator.evaluate(
            policy: run.step.policy, reference: run.evalReference, pairs: pairs, options: p.loss, batchPairs: p.batchPairs,
            paddingId: run.paddingId, communicator: run.communicator)
        lastEvalMetrics = sums.metrics(options: p.loss, prefix: "eval_")
        try logMetrics(lastEvalMetrics, step: step)
        events.message("step \(step) eval: " + lastEvalMetrics.prefix(5).map { "\($0.name) \(String(format: "%.4f", $0.value))" }.joined(separator: ", "))
    }

    /// True on every rank when any rank was asked to stop (a signal, the event callback, a
    /// `stop` fault after 1-based `afterStep`).
    func agreeOnStop(afterStep step: Int?) -> Bool {
        let here = ShutdownSignal.requested || events.stopRequested || step.map(hooks.stopsAfter) == true
        return run.communicator.size > 1 ? run.communicator.anyRank(here) : here
    }

    func summary(finalStep: Int, saved: URL?, stopped: Bool) -> TrainingSummary {
        TrainingSummary(
            startStep: run.state.globalStep, finalStep: finalStep, totalSteps: run.plan.totalSteps,
            skippedSteps: stopped && saved == nil ? 0 : state.lossScaler.totalSkips, lastMetrics: log.last,
            lastEvalMetrics: lastEvalMetrics, savedDirectory: run.isPrimary ? saved : nil, stoppedBySignal: stopped)
    }
}
