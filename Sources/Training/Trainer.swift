import Distributed
import Foundation
import Kernels
import Llama
import Preference
import Tokenization

/// What a finished (or stopped) run did.
public struct TrainingSummary: Sendable {
    public var startStep: Int
    public var finalStep: Int
    public var totalSteps: Int
    public var skippedSteps: Int
    /// The last logged training metrics and the last evaluation, if any.
    public var lastMetrics: [(name: String, value: Double)]
    public var lastEvalMetrics: [(name: String, value: Double)]
    /// Where `final/` (or, when stopped by a signal, the checkpoint) was written; nil on other ranks.
    public var savedDirectory: URL?
    /// True when a stop signal ended the run early.
    public var stoppedBySignal: Bool
}

/// The DPO trainer: a policy and a frozen reference, the loss family on one concatenated
/// batch, gradient accumulation over the global batch, data parallelism through a
/// `Communicator`, fp32 master weights, mixed precision, checkpoints and exact resume.
///
///     let trainer = try DPOTrainer(parameters: p, communicator: World.initialize())
///     trainer.onMessage = { print($0) }
///     let summary = try trainer.run()
///
/// Distributed roles: every rank runs the same steps on its shard of each global batch;
/// gradients are averaged by `GradientReducer` as backward finishes each layer; rank 0
/// alone writes files and calls the callbacks and the metrics sink.
public final class DPOTrainer {
    public let parameters: TrainingParameters
    public let communicator: Communicator
    /// Called on rank 0 with start-up facts, checkpoint and evaluation notices.
    public var onMessage: ((String) -> Void)?
    /// Called on rank 0 after every optimizer step.
    public var onProgress: ((ProgressSnapshot) -> Void)?
    /// Called on every rank after every optimizer step with (step, this rank's seconds per phase); for `dpo bench dpo`.
    public var onStepPhases: ((Int, StepPhaseSeconds) -> Void)?
    /// Creates the metrics sink on rank 0 from (OUT, the step a resumed run continues from);
    /// default: metrics.jsonl (keeping its lines up to that step) + TensorBoard in OUT.
    public var makeMetricsSink: (URL, Int?) throws -> MetricsSink = {
        try FanOutMetricsSink.standard(outputDirectory: $0, resumingFromStep: $1)
    }
    /// Test hook: called with (step, gradients) after the reduction, before unscaling;
    /// used to inject non-finite values. Never set by the CLI.
    public var gradientHook: ((Int, UnsafeMutableBufferPointer<Float>) -> Void)?
    /// Stop (with a checkpoint) when this returns true on any rank; default: SIGINT/SIGTERM seen.
    public var shouldStop: () -> Bool = { ShutdownSignal.requested }

    public init(parameters: TrainingParameters, communicator: Communicator) {
        self.parameters = parameters
        self.communicator = communicator
    }

    private var isPrimary: Bool { communicator.rank == 0 }
    private func message(_ text: String) { if isPrimary { onMessage?(text) } }

    // MARK: - Run

    public func run() throws -> TrainingSummary {
        var p = parameters
        try p.validate()
        // Start-up: a stop signal ends the process at once (see ShutdownSignal.setImmediate).
        ShutdownSignal.setImmediate(true)
        defer { ShutdownSignal.setImmediate(false) }
        BLAS.ensureBestCore()
        let worldSize = communicator.size
        let faults = try FaultInjection.fromEnvironment() ?? FaultInjection(faults: [])
        let rank = communicator.rank
        // Each rank takes its share of the host's cores (ranks on one host would oversubscribe it otherwise).
        let previousThreads = BLAS.threads
        if worldSize > 1 || p.threads != nil { BLAS.threads = ThreadShare.threads(for: communicator, override: p.threads) }
        defer { BLAS.threads = previousThreads }
        if worldSize > 1 {
            // A different binary or configuration on one rank would silently train something else.
            try communicator.verifySameRun([
                ("binary", RunFingerprint.executable()),
                ("configuration", String(decoding: try TrainingCheckpoint.encodedParameters(p), as: UTF8.self)),
            ])
        }
        let outputURL = URL(fileURLWithPath: p.outputDirectory)
        let store = CheckpointStore(outputDirectory: outputURL)

        // 1. Inputs, all checked before anything is written to OUT.
        let loaded = try TrainingInputs.loadModel(p.modelDirectory, flag: "--model")
        let config = loaded.config
        var initialWeights = loaded.weights
        var referenceWeights: [Float]?
        if p.loss.needsReference {
            if let referenceDirectory = p.referenceModelDirectory,
                URL(fileURLWithPath: referenceDirectory).standardizedFileURL != URL(fileURLWithPath: p.modelDirectory).standardizedFileURL {
                let (referenceConfig, weights) = try TrainingInputs.loadModel(referenceDirectory, flag: "--ref-model")
                try TrainingInputs.checkSameArchitecture(policy: config, reference: referenceConfig, referenceDirectory: referenceDirectory)
                referenceWeights = weights
            } else {
                referenceWeights = initialWeights
            }
        }
        let fingerprints = try ModelFingerprints.of(
            policyDirectory: p.modelDirectory, referenceDirectory: p.referenceModelDirectory, needsReference: p.loss.needsReference)
        let tokenizer = try TrainingInputs.loadTokenizer(p.modelDirectory, flag: "--model")
        let paddingId = tokenizer.paddingId
        var train = try TrainingInputs.loadPairs(
            p.dataFile, flag: "--data", tokenizer: tokenizer, encoding: p.encodingOptions, reading: p.readOptions)
        message(train.summary)
        let identical = try IdenticalPairs.filter(
            train.pairs, skip: p.skipIdentical, loss: p.loss.kind, file: p.dataFile, flag: "--data")
        train.pairs = identical.pairs
        if let report = identical.report { message(report) }
        var evalPairs: [EncodedPair]?
        if let evalFile = p.evalDataFile {
            let eval = try TrainingInputs.loadPairs(
                evalFile, flag: "--eval-data", tokenizer: tokenizer, encoding: p.encodingOptions, reading: p.readOptions)
            message(eval.summary)
            evalPairs = eval.pairs
        }
        if worldSize > 1 {
            // Each rank reads its own copy of the data: a stale copy on one host would give that rank
            // another step count and leave the others waiting in a collective forever.
            var parts = [(name: "training data (--data as encoded)", value: Self.dataFingerprint(train.pairs))]
            if let evalPairs { parts.append((name: "evaluation data (--eval-data as encoded)", value: Self.dataFingerprint(evalPairs))) }
            // The reference, unlike the policy, is not broadcast from rank 0.
            if let reference = fingerprints.reference { parts.append((name: "reference weights (--ref-model, else --model)", value: reference)) }
            try communicator.verifySameRun(parts)
        }
        try Self.checkTokenIds(train.pairs, vocabSize: config.vocabSize, file: p.dataFile, flag: "--data")
        if let evalPairs, let evalFile = p.evalDataFile {
            try Self.checkTokenIds(evalPairs, vocabSize: config.vocabSize, file: evalFile, flag: "--eval-data")
        }

        // One run per OUT (rank 0 writes it; taken once the inputs are known good): a second
        // trainer would overwrite this one's checkpoints, metrics and train_config.json.
        let runLock = isPrimary ? try RunLock.acquire(outputDirectory: URL(fileURLWithPath: p.outputDirectory)) : nil
        defer { runLock?.release() }
        if let warning = runLock?.warning { message(warning) }

        // 2. Resume: which checkpoint, and the batch geometry it implies.
        var skippedCheckpoints: [String] = []
        var resumeURL: URL?
        if let resume = p.resume {
            resumeURL = try CheckpointStore.resolveResume(resume, outputDirectory: outputURL, skipped: &skippedCheckpoints)
            for line in skippedCheckpoints { message(line) }
            if resumeURL == nil { message("--resume auto: no complete checkpoint in \(outputURL.path); starting fresh") }
        } else if !store.checkpointSteps().isEmpty || FileManager.default.fileExists(atPath: outputURL.appendingPathComponent(CheckpointStore.finalName).path) {
            throw TrainingError.output(
                "\(outputURL.path) already holds checkpoints of a run; pass --resume auto to continue it, or choose another --out")
        }
        var restored: TrainingCheckpoint.Contents?
        if let resumeURL {
            let contents = try TrainingCheckpoint.read(resumeURL, optimizerKind: p.optimizer.kind)
            try TrainingInputs.checkSameArchitecture(policy: config, reference: contents.config, referenceDirectory: resumeURL.path)
            guard contents.masterWeights.count == initialWeights.count else {
                throw TrainingError.checkpoint("\(resumeURL.path) holds \(contents.masterWeights.count) weights, the model has \(initialWeights.count)")
            }
            let saved = contents.state
            for line in try ModelFingerprints.checkResume(
                saved: saved.modelFingerprints, now: fingerprints, checkpoint: resumeURL.path, allowChanged: p.allowChangedModel) { message(line) }
            for line in try ResumeChecks.checkChangedOptions(checkpoint: resumeURL, now: p, allowChanged: p.allowChangedConfig) { message(line) }
            if saved.worldSize != worldSize || saved.batchPairs != p.batchPairs || saved.gradAccum != p.gradAccum {
                let globalBatch = saved.batchPairs * saved.gradAccum * saved.worldSize
                guard globalBatch % (p.batchPairs * worldSize) == 0 else {
                    throw TrainingError.checkpoint(
                        "\(resumeURL.path) was trained with a global batch of \(globalBatch) pairs (\(saved.batchPairs) x \(saved.gradAccum) x "
                            + "\(saved.worldSize) ranks); \(p.batchPairs) pairs x \(worldSize) ranks cannot make that with a whole --grad-accum. "
                            + "Choose --batch-pairs and a rank count whose product divides \(globalBatch)")
                }
                let accum = globalBatch / (p.batchPairs * worldSize)
                // The sampler pads each epoch's permutation to a multiple of the rank count, so a
                // new rank count changes the last (padded) step of an epoch when the padding differs.
                let pairCount = train.pairs.count
                let paddedBefore = (pairCount + saved.worldSize - 1) / saved.worldSize * saved.worldSize
                let paddedNow = (pairCount + worldSize - 1) / worldSize * worldSize
                let order = paddedBefore == paddedNow
                    ? "each step sees the same pairs as before (the split across ranks and micro-steps differs)"
                    : "each step sees the same pairs as before except the last step of each epoch, which now repeats "
                        + "\(paddedNow - pairCount) instead of \(paddedBefore - pairCount) pair(s) from the epoch's start "
                        + "(\(pairCount) pairs are padded to a multiple of the rank count)"
                message("resuming with \(worldSize) rank(s) x \(p.batchPairs) pairs: --grad-accum \(p.gradAccum) -> \(accum) keeps the global batch "
                    + "of \(globalBatch) pairs; " + order)
                p.gradAccum = accum
            }
            if !saved.dataFingerprint.isEmpty && saved.dataFingerprint != Self.dataFingerprint(train.pairs) {
                message("warning: --data \(p.dataFile) (as encoded now) differs from the data \(resumeURL.lastPathComponent) was trained on; "
                    + "the run continues, but not as the uninterrupted run would have")
            }
            restored = contents
            message("resuming from \(resumeURL.path) at step \(saved.globalStep)")
        }

        // 3. The data plan.
        let pairsPerRankStep = p.batchPairs * p.gradAccum
        let plan: BatchPlan
        do {
            plan = try BatchPlan(exampleCount: train.pairs.count, batchSize: pairsPerRankStep, worldSize: worldSize,
                                 rank: communicator.rank, seed: p.seed, shuffle: p.shuffle,
                                 groupByLength: p.groupByLength ? train.pairs.map(\.longestRowLength) : nil)
        } catch { throw TrainingError.data("--data \(p.dataFile): \(error)") }
        let stepsPerEpoch = plan.stepsPerEpoch
        let totalSteps = p.maxSteps > 0 ? p.maxSteps : p.epochs * stepsPerEpoch
        if let restored, let resumeURL {
            try ResumeChecks.checkStepTarget(totalSteps: totalSteps, parameters: p, checkpointStep: restored.state.globalStep, checkpoint: resumeURL)
        }
        let schedule = LearningRateSchedule(
            kind: p.schedule, peakLearningRate: p.learningRate,
            warmupSteps: LearningRateSchedule.warmupSteps(steps: p.warmupSteps, ratio: p.warmupRatio, totalSteps: totalSteps),
            totalSteps: totalSteps)

        // 4. OUT: writable, space for a checkpoint, earlier interrupted saves cleaned, resolved config.
        let parameterCount = initialWeights.count
        let bytesPerSavedWeight = p.saveDType == .fp32 ? 4 : 2
        let checkpointBytes = parameterCount * (bytesPerSavedWeight + (p.optimizer.kind == .adamw ? 12 : 4)) + (1 << 20)
        if isPrimary {
            try CheckpointStore.prepareOutputDirectory(outputURL, requiredBytes: checkpointBytes)
            for line in store.recoverInterruptedSaves() { message(line) }
            if let restored, let resumeURL {
                for line in try RunLineage.setAsideNewer(than: restored.state.globalStep, resumeDirectory: resumeURL, outputDirectory: outputURL) {
                    message(line)
                }
            }
            do {
                try TrainingCheckpoint.encodedParameters(p).write(
                    to: outputURL.appendingPathComponent(TrainingCheckpoint.configFileName), options: .atomic)
            } catch { throw TrainingError.output("cannot write train_config.json in \(outputURL.path): \(error.localizedDescription)") }
        }

        // 5. Weights, optimizer, models.
        var master = restored?.masterWeights ?? initialWeights
        initialWeights = []  // master now holds the only copy (no second 4-bytes-per-parameter array)
        let optimizer = FlatOptimizer(options: p.optimizer, layout: ParameterLayout(config: config))
        var state = restored?.state ?? TrainerState()
        if let restored {
            try optimizer.restore(stepCount: restored.optimizerStep, firstMoment: restored.firstMoment, secondMoment: restored.secondMoment)
        } else {
            state.lossScaler = DynamicLossScaler(enabled: p.precision == .fp16)
        }
        state.seed = p.seed
        state.dataFingerprint = Self.dataFingerprint(train.pairs)
        state.modelFingerprints = fingerprints
        state.worldSize = worldSize
        state.batchPairs = p.batchPairs
        state.gradAccum = p.gradAccum
        let startStep = state.globalStep
        // Ranks start bit-identical whatever each one read from disk.
        if worldSize > 1 { master.withUnsafeMutableBufferPointer { communicator.broadcastParameters($0) } }

        let policy: LlamaModel
        do { policy = try LlamaModel(config: config, precision: p.precision, trainable: true) } catch {
            throw TrainingError.model("--model \(p.modelDirectory): \(error)")
        }
        master.withUnsafeBufferPointer { policy.loadWeights($0) }

        var reference = ReferenceLogps.none
        var evalReference = ReferenceLogps.none
        if let referenceWeights {
            let referenceModel = try LlamaModel(config: config, precision: p.precision, trainable: false)
            referenceWeights.withUnsafeBufferPointer { referenceModel.loadWeights($0) }
            if p.precomputeReference {
                reference = try precomputedReference(
                    model: referenceModel, weights: referenceWeights, pairs: train.pairs, name: "train", paddingId: paddingId, outputURL: outputURL)
                if let evalPairs {
                    evalReference = try precomputedReference(
                        model: referenceModel, weights: referenceWeights, pairs: evalPairs, name: "eval", paddingId: paddingId, outputURL: outputURL)
                }
                // The reference model is released here: only the cached sums stay in memory.
            } else {
                reference = .model(referenceModel)
                evalReference = reference
            }
        }
        referenceWeights = nil

        if isPrimary, restored != nil, let note = try MetricsLog.dropTornLastLine(of: outputURL.appendingPathComponent("metrics.jsonl")) {
            message(note)
        }
        // 6. Metrics sink (rank 0). A resumed run keeps the logged lines up to its checkpoint
        // (later ones belong to steps that run again), so metrics.jsonl reads as if it never stopped.
        var sink: MetricsSink?
        if isPrimary {
            do { sink = try makeMetricsSink(outputURL, restored == nil ? nil : startStep) } catch {
                throw TrainingError.output("cannot open the metrics files in \(outputURL.path): \(error)")
            }
        }
        defer { try? sink?.close() }

        // 7. The loop.
        var gradients = [Float](repeating: 0, count: parameterCount)
        let reducer: GradientReducer
        do {
            reducer = try gradients.withUnsafeMutableBufferPointer { buffer in
                try GradientReducer(
                    communicator: communicator, gradients: buffer, groupRanges: policy.layout.groupRanges,
                    bucketMegabytes: p.bucketMegabytes, wireType: p.allreduceDType ?? (p.precision == .fp16 ? .fp16 : .fp32))
            }
        }
        var pending = state.pendingMetricSums.count == PreferenceMetricSums.packedCount
            ? PreferenceMetricSums(packed: state.pendingMetricSums) : PreferenceMetricSums()
        var lastMetrics: [(name: String, value: Double)] = []
        var lastEvalMetrics: [(name: String, value: Double)] = []
        var epochBatches: (epoch: Int, batches: [[Int]])?
        let clock = ContinuousClock()
        let loopStart = clock.now
        var windowStart = clock.now
        var windowTokens = 0.0
        var savedDirectory: URL?
        var stoppedBySignal = false
        var logitsOfLastMicroBatch: (chosen: Double, chosenTokens: Int, rejected: Double, rejectedTokens: Int)?

        message("training \(totalSteps - startStep) step(s) (\(startStep)/\(totalSteps) done): \(stepsPerEpoch) steps/epoch, "
            + "global batch \(p.batchPairs * p.gradAccum * worldSize) pairs (\(p.batchPairs) x \(p.gradAccum) x \(worldSize) ranks), "
            + "loss \(p.loss.kind.rawValue), beta \(p.loss.beta), precision \(p.precision.rawValue)"
            + (worldSize > 1 ? ", all-reduce \(reducer.wireType.rawValue), \(BLAS.threads) BLAS thread(s) per rank" : ""))

        var step = startStep
        // A stop before the first step (Ctrl-C during loading) leaves at once, writing nothing.
        if step < totalSteps && (communicator.size > 1 ? communicator.anyRank(shouldStop()) : shouldStop()) {
            return TrainingSummary(
                startStep: startStep, finalStep: step, totalSteps: totalSteps, skippedSteps: 0, lastMetrics: [], lastEvalMetrics: [],
                savedDirectory: nil, stoppedBySignal: true)
        }
        ShutdownSignal.setImmediate(false)
        while step < totalSteps {
            CollectiveWatchdog.step = step + 1  // names the step if a collective hangs (--collective-timeout)
            for fault in faults.matching(.delay, rank: rank, step: step + 1) { usleep(UInt32(fault.milliseconds) * 1000) }
            if faults.contains(.kill, rank: rank, step: step + 1) { kill(getpid(), SIGKILL) }
            if faults.contains(.throwError, rank: rank, step: step + 1) {
                throw TrainingError.injectedFault("rank \(rank) throws at step \(step + 1)")
            }
            var phases = StepPhaseSeconds()
            var phaseStart = clock.now
            /// Adds the time since the last mark to `phase`.
            func mark(_ phase: WritableKeyPath<StepPhaseSeconds, Double>) {
                let now = clock.now, elapsed = now - phaseStart
                phases[keyPath: phase] += Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                phaseStart = now
            }
            let epoch = step / stepsPerEpoch
            let batchInEpoch = step % stepsPerEpoch
            if epochBatches?.epoch != epoch { epochBatches = (epoch, plan.batches(epoch: epoch)) }
            let stepIndices = epochBatches!.batches[batchInEpoch]
            let microBatches = stride(from: 0, to: stepIndices.count, by: p.batchPairs).map {
                PreferenceBatch(pairs: train.pairs, indices: Array(stepIndices[$0..<min($0 + p.batchPairs, stepIndices.count)]), paddingId: paddingId)
            }
            // The normalizer must be known before the first micro-step: the global pair and
            // chosen-token counts of this step, summed over ranks.
            let counts = communicator.sum([
                Double(stepIndices.count), Double(microBatches.reduce(0) { $0 + $1.chosenTokenTotal }),
                Double(microBatches.reduce(0) { $0 + $1.inputTokenTotal }),
            ])
            let normalizer = LossNormalizer(globalPairs: Int(counts[0]), globalChosenTokens: Int(counts[1]))
            let lossScale = state.lossScaler.scale
            // GradientReducer averages over ranks, so each rank's share is scaled by the world size.
            let gradientScale = lossScale * Double(worldSize)

            for i in gradients.indices { gradients[i] = 0 }
            var stepSums = PreferenceMetricSums()
            var objective = 0.0
            mark(\.data)
            for (microIndex, batch) in microBatches.enumerated() {
                let isLast = microIndex == microBatches.count - 1
                // --share-prompt: each pair's prompt runs once (exact; nil when a batch cannot be packed).
                let shared = p.sharePrompt ? SharedPromptRows(pairedRows: batch.rows) : nil
                let tokenLogps = shared.map { policy.forward($0, saveForBackward: true) } ?? policy.forward(batch.rows, saveForBackward: true)
                let (chosen, rejected) = batch.sequenceLogps(tokenLogps)
                mark(\.policyForward)
                let referenceSums = reference.sums(for: batch, shared: shared)
                mark(\.referenceForward)
                let result = try PreferenceLoss.compute(
                    PairLogps(policyChosen: chosen, policyRejected: rejected, referenceChosen: referenceSums.chosen,
                              referenceRejected: referenceSums.rejected, chosenTokens: batch.chosenTokenCounts,
                              rejectedTokens: batch.rejectedTokenCounts),
                    options: p.loss, normalizer: normalizer)
                objective += result.objective
                stepSums.add(result, chosenTokens: batch.chosenTokenCounts)
                let dTokens = batch.tokenGradients(dChosen: result.dPolicyChosen, dRejected: result.dPolicyRejected, scale: gradientScale)
                dTokens.withUnsafeBufferPointer { d in
                    gradients.withUnsafeMutableBufferPointer { g in
                        policy.backward(dTokenLogps: d, gradients: g, groupFinished: isLast ? { reducer.groupReady($0) } : nil)
                    }
                }
                mark(\.backward)
                if isLast && (step + 1) % p.logEvery == 0 || isLast && step + 1 == totalSteps {
                    let logits = batch.completionLogitSums(policy.logits(batch.rows), vocabSize: config.vocabSize)
                    logitsOfLastMicroBatch = (logits.chosen, batch.chosenTokenTotal, logits.rejected, batch.rejectedTokenCounts.reduce(0, +))
                }
            }
            phaseStart = clock.now  // the logged step's logits (above) are in no phase
            let reduction = reducer.finish()
            mark(\.allReduceWait)
            gradients.withUnsafeMutableBufferPointer { g in gradientHook?(step, g) }
            if faults.contains(.nan, rank: rank, step: step + 1) { gradients[0] = .nan }
            if faults.contains(.zero, rank: rank, step: step + 1) { for i in gradients.indices { gradients[i] = 0 } }

            // Unscale, measure, clip; a non-finite loss or gradient on any rank skips the step everywhere.
            let inverseScale = Float(1 / lossScale)
            if lossScale != 1 { for i in gradients.indices { gradients[i] *= inverseScale } }
            let gradNorm = gradients.withUnsafeMutableBufferPointer { GradientClipping.clip($0, maxNorm: p.maxGradNorm) }
            let globalObjective = communicator.sum([objective])[0]
            let finite = !communicator.anyRank(reduction.nonFinite || !gradNorm.isFinite || !globalObjective.isFinite)
            let learningRate = schedule.learningRate(at: step)
            if state.lossScaler.update(gradientsFinite: finite) {
                master.withUnsafeMutableBufferPointer { w in
                    gradients.withUnsafeBufferPointer { g in optimizer.step(weights: w, gradients: g, learningRate: learningRate) }
                }
                if faults.contains(.diverge, rank: rank, step: step + 1) { master[0] = master[0].nextUp }
                master.withUnsafeBufferPointer { policy.loadWeights($0) }
                mark(\.optimizer)
                pending = pending + stepSums
                state.pendingSteps += 1
            } else {
                message("step \(step + 1): non-finite loss or gradients, update skipped"
                    + (p.precision == .fp16 ? " (loss scale now \(state.lossScaler.scale))" : ""))
                if state.lossScaler.consecutiveSkips >= p.maxSkippedSteps {
                    throw TrainingError.numerical(
                        "\(state.lossScaler.consecutiveSkips) steps in a row had a non-finite loss or gradients (--max-skipped-steps "
                            + "\(p.maxSkippedSteps)); stopping at step \(step + 1). Lower --lr, use --precision fp32, or check the data")
                }
            }
            step += 1
            state.globalStep = step
            // Ranks must hold bit-identical weights; a drift (a bug, bad memory, a different BLAS) stops the job early.
            if worldSize > 1 && p.checkEvery > 0 && step % p.checkEvery == 0 && step < totalSteps {
                try master.withUnsafeBufferPointer { try communicator.checkConsistency($0, step: step) }
            }
            state.epoch = Double(step) / Double(stepsPerEpoch)
            state.epochIndex = step / stepsPerEpoch
            state.batchInEpoch = step % stepsPerEpoch
            state.trainTokens += counts[2]
            windowTokens += counts[2]

            // Logging: metrics of the steps since the last log, reduced over ranks.
            if step % p.logEvery == 0 || step == totalSteps {
                var reduced = communicator.size > 1 ? PreferenceMetricSums(packed: communicator.sum(pending.packed)) : pending
                if let logits = logitsOfLastMicroBatch {
                    let l = communicator.sum([logits.chosen, Double(logits.chosenTokens), logits.rejected, Double(logits.rejectedTokens)])
                    reduced.addLogits(chosenSum: l[0], chosenTokens: Int(l[1]), rejectedSum: l[2], rejectedTokens: Int(l[3]))
                }
                let elapsed = clock.now - windowStart
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                var metrics = reduced.metrics(options: p.loss)
                metrics += [
                    ("grad_norm", gradNorm), ("learning_rate", learningRate), ("epoch", state.epoch),
                    ("loss_scale", state.lossScaler.scale), ("tokens_per_second", seconds > 0 ? windowTokens / seconds : 0),
                ]
                if reduced.pairs > 0 {
                    try logMetrics(metrics, step: step, sink: sink, state: &state)
                    lastMetrics = metrics
                }
                pending = PreferenceMetricSums()
                state.pendingSteps = 0
                logitsOfLastMicroBatch = nil
                windowStart = clock.now
                windowTokens = 0
            }
            state.pendingMetricSums = pending.packed

            if let onStepPhases { onStepPhases(step, phases) }
            if isPrimary, let onProgress {
                let now = clock.now - loopStart
                let seconds = Double(now.components.seconds) + Double(now.components.attoseconds) * 1e-18
                // This rank's view of this step (the logged metrics are the all-rank ones).
                let value = Dictionary(stepSums.metrics(options: p.loss).map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
                onProgress(ProgressSnapshot(
                    step: step, totalSteps: totalSteps, epoch: state.epoch, loss: value["loss"] ?? .nan,
                    rewardAccuracy: value["rewards/accuracies"] ?? .nan, rewardMargin: value["rewards/margins"] ?? .nan,
                    tokensPerSecond: seconds > 0 ? (state.trainTokens - (restored?.state.trainTokens ?? 0)) / seconds : 0,
                    elapsedSeconds: seconds))
            }

            // Evaluation.
            if let evalPairs, (p.evalEvery > 0 && step % p.evalEvery == 0) || step == totalSteps {
                let sums = try PreferenceEvaluator.evaluate(
                    policy: policy, reference: evalReference, pairs: evalPairs, options: p.loss, batchPairs: p.batchPairs,
                    paddingId: paddingId, communicator: communicator)
                lastEvalMetrics = sums.metrics(options: p.loss, prefix: "eval_")
                try logMetrics(lastEvalMetrics, step: step, sink: sink, state: &state)
                message("step \(step) eval: " + lastEvalMetrics.prefix(5).map { "\($0.name) \(String(format: "%.4f", $0.value))" }.joined(separator: ", "))
            }

            // Stop signal: agree across ranks, checkpoint, leave.
            let stopHere = shouldStop() || faults.contains(.stop, rank: rank, step: step)
            let stopRequested = step < totalSteps && (communicator.size > 1 ? communicator.anyRank(stopHere) : stopHere)
            if stopRequested {
                savedDirectory = try saveCheckpoint(
                    name: CheckpointStore.checkpointName(step: step), step: step, store: store, config: config, master: master,
                    optimizer: optimizer, state: state, parameters: p)
                stoppedBySignal = true
                break
            }
            if p.saveEvery > 0 && step % p.saveEvery == 0 && step < totalSteps {
                _ = try saveCheckpoint(
                    name: CheckpointStore.checkpointName(step: step), step: step, store: store, config: config, master: master,
                    optimizer: optimizer, state: state, parameters: p)
            }
        }

        if !stoppedBySignal {
            try FinalModelCheck.check(
                master: master, stepsRun: step - startStep,
                skippedSteps: state.lossScaler.totalSkips - (restored?.state.lossScaler.totalSkips ?? 0))
            savedDirectory = try saveCheckpoint(
                name: CheckpointStore.finalName, step: step, store: store, config: config, master: master, optimizer: optimizer,
                state: state, parameters: p)
        }
        return TrainingSummary(
            startStep: startStep, finalStep: step, totalSteps: totalSteps, skippedSteps: state.lossScaler.totalSkips,
            lastMetrics: lastMetrics, lastEvalMetrics: lastEvalMetrics, savedDirectory: isPrimary ? savedDirectory : nil,
            stoppedBySignal: stoppedBySignal)
    }

    // MARK: - Helpers

    /// SHA-256 (prefix) of every encoded token of the training pairs, kept in the trainer
    /// state so a resume on changed data or encoding is noticed.
    static func dataFingerprint(_ pairs: [EncodedPair]) -> String {
        var hasher = SHA256()
        hasher.update(pairs: pairs)
        return hasher.finalize().prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    /// A tokenizer whose ids exceed the model's vocabulary would index past the embedding.
    static func checkTokenIds(_ pairs: [EncodedPair], vocabSize: Int, file: String, flag: String) throws {
        for pair in pairs {
            for part in [pair.prompt, pair.chosen, pair.rejected] {
                if let bad = part.first(where: { $0 < 0 || Int($0) >= vocabSize }) {
                    throw TrainingError.data(
                        "\(flag) \(file) encodes to token id \(bad), outside the model's vocab_size \(vocabSize): "
                            + "the tokenizer does not belong to this model")
                }
            }
        }
    }

    private func logMetrics(_ metrics: [(name: String, value: Double)], step: Int, sink: MetricsSink?, state: inout TrainerState) throws {
        state.logHistory.append(TrainerState.LogRecord(step: step, names: metrics.map(\.name), values: metrics.map(\.value)))
        guard isPrimary, let sink else { return }
        do { try sink.log(step: step, metrics: metrics) } catch {
            throw TrainingError.output("cannot write metrics: \(error)")
        }
    }

    /// Rank 0 writes the checkpoint; every rank waits for it (so a stop leaves it complete).
    private func saveCheckpoint(
        name: String, step: Int, store: CheckpointStore, config: LlamaConfig, master: [Float], optimizer: FlatOptimizer,
        state: TrainerState, parameters p: TrainingParameters
    ) throws -> URL {
        var url = store.outputDirectory.appendingPathComponent(name)
        if communicator.size > 1 {
            // Ranks whose weights drifted apart (a bug, bad memory) stop the job instead of saving.
            try master.withUnsafeBufferPointer { try communicator.checkConsistency($0, step: step) }
        }
        var failure: Error?
        if isPrimary {
            do {
                url = try store.save(name: name, step: step) { directory in
                    try TrainingCheckpoint.write(
                        into: directory, config: config, masterWeights: master, optimizer: optimizer, state: state,
                        parameters: p, tokenizerSource: URL(fileURLWithPath: p.modelDirectory))
                }
                if name != CheckpointStore.finalName {
                    for removed in try store.rotate(keep: p.keepCheckpoints) { message("removed old checkpoint \(removed.lastPathComponent)") }
                }
                message("saved \(url.path)")
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

    /// Reference sums of `pairs` from the cache in OUT, computing and caching them if absent.
    private func precomputedReference(
        model: LlamaModel, weights: [Float], pairs: [EncodedPair], name: String, paddingId: Int32, outputURL: URL
    ) throws -> ReferenceLogps {
        let key = ReferenceLogpsCache.key(weights: weights, precision: parameters.precision, pairs: pairs)
        let url = ReferenceLogpsCache.url(outputDirectory: outputURL, name: name, key: key)
        // Every rank reads the same file system in the common case; a rank that cannot see it computes.
        let cachedEverywhere = !communicator.anyRank(ReferenceLogpsCache.load(url, pairCount: pairs.count) == nil)
        if cachedEverywhere, let cached = ReferenceLogpsCache.load(url, pairCount: pairs.count) {
            message("reference log-probs of \(name) data: reusing \(url.lastPathComponent)")
            return .cached(chosen: cached.chosen, rejected: cached.rejected)
        }
        if let problem = ReferenceLogpsCache.checksumProblem(url) { message(problem) }
        let sums = ReferenceLogpsCache.compute(
            model: model, pairs: pairs, batchPairs: parameters.batchPairs, paddingId: paddingId, communicator: communicator)
        if isPrimary {
            do { try ReferenceLogpsCache.save(url, chosen: sums.chosen, rejected: sums.rejected) } catch {
                throw TrainingError.output("cannot write the reference cache \(url.path): \(error)")
            }
            message("reference log-probs of \(name) data: computed \(pairs.count) pairs, cached in \(url.lastPathComponent)")
        }
        return .cached(chosen: sums.chosen, rejected: sums.rejected)
    }
}
